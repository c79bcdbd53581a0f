package e2e

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	pgmq "github.com/craigpastro/pgmq-go"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/stepclaim"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// TestBatchClaimAndSubmitKeepPerMessageRules claims and submits several steps per
// statement, with a duplicate message, an archived one, a poison one and one listed twice
// in the same batch, and a lost lease among the results: each message and result gets the outcome
// it would get alone, and nothing is written twice.
func TestBatchClaimAndSubmitKeepPerMessageRules(t *testing.T) {
	t.Parallel()
	// The only worker serves another namespace, so the steps wait for the test's claims.
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) { c.Namespaces = []string{"tasker_sim_test"} }
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 30*time.Second)
	queue := workflow.WorkerQueue("rust_e2e_linear")

	for range 3 {
		_, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 6}))
		require.NoError(t, err)
	}
	msgs, err := pgmq.ReadBatch(ctx, env.Pool, queue, 30, 10)
	require.NoError(t, err)
	require.Len(t, msgs, 3, "one first step per task")
	var batch []lifecycle.ClaimMessage
	for _, m := range msgs {
		sm, err := messaging.DecodeStepMessage(m.Message)
		require.NoError(t, err)
		batch = append(batch, lifecycle.ClaimMessage{MsgID: m.MsgID, Step: sm.StepUUID, Method: stepclaim.MethodPoll})
	}
	// A second copy of the first step's message, a message about no step at all, and a
	// message id that does not exist (already archived by someone else).
	dupID, err := pgmq.Send(ctx, env.Pool, queue, msgs[0].Message)
	require.NoError(t, err)
	poison := uuid.New()
	poisonID, err := pgmq.Send(ctx, env.Pool, queue, []byte(`{"task_uuid":"`+uuid.NewString()+`","step_uuid":"`+poison.String()+`","correlation_id":"`+uuid.NewString()+`"}`))
	require.NoError(t, err)
	batch = append(batch,
		lifecycle.ClaimMessage{MsgID: dupID, Step: batch[0].Step, Method: stepclaim.MethodPoll},
		lifecycle.ClaimMessage{MsgID: poisonID, Step: poison, Method: stepclaim.MethodPoll},
		lifecycle.ClaimMessage{MsgID: 1 << 40, Step: batch[1].Step, Method: stepclaim.MethodEvent},
		// The third message again (its notification and a poll both delivered it).
		lifecycle.ClaimMessage{MsgID: batch[2].MsgID, Step: batch[2].Step, Method: stepclaim.MethodEvent})

	res, err := stepclaim.ClaimBatch(ctx, env.Pool, queue, "batcher", 30*time.Second, batch)
	require.NoError(t, err)
	got := make([]stepclaim.Outcome, len(res))
	for i, r := range res {
		got[i] = r.Outcome
		require.Equal(t, batch[i].MsgID, r.MsgID, "results come in the order of the messages")
	}
	require.Equal(t, []stepclaim.Outcome{stepclaim.Claimed, stepclaim.Claimed, stepclaim.Claimed,
		stepclaim.NotClaimable, stepclaim.UnknownStep, stepclaim.MessageGone, stepclaim.MessageGone}, got)
	for _, r := range res[:3] {
		require.Equal(t, 1, r.Step.Attempt)
		require.Equal(t, "linear_step_1", r.Step.StepName)
		require.Len(t, stepTransitions(t, env, r.Step.StepUUID.String()), 3, "pending, enqueued, in_progress: once each")
	}

	// Three results in one statement, one of them for an attempt this worker does not hold.
	sub := stepclaim.NewSubmitter(env.Pool, "batcher", 0)
	result := []byte(`{"success":true,"status":"completed","result":36,"metadata":{"retryable":false}}`)
	stale := *res[2].Step
	stale.Attempt = 7
	subs := []lifecycle.Submission{}
	for _, s := range []*stepclaim.Step{res[0].Step, res[1].Step, &stale} {
		subs = append(subs, lifecycle.Submission{Step: s.StepUUID, Attempt: s.Attempt, Success: true, Results: result,
			Message: []byte(`{"task_uuid":"` + s.TaskUUID.String() + `","step_uuid":"` + s.StepUUID.String() +
				`","correlation_id":"` + s.CorrelationID.String() + `"}`)})
	}
	ids, err := lifecycle.SubmitResults(ctx, env.Pool, "batcher", subs)
	require.NoError(t, err)
	require.Len(t, ids, 3)
	require.Positive(t, ids[0])
	require.Positive(t, ids[1])
	require.Zero(t, ids[2], "an attempt the worker does not hold is refused")
	// The third, submitted properly through the group-commit submitter, goes through.
	_, err = sub.Submit(ctx, res[2].Step, true, result)
	require.NoError(t, err)
	_, err = sub.Submit(ctx, res[2].Step, true, result)
	require.ErrorIs(t, err, stepclaim.ErrLeaseLost, "a second submit of the same attempt is refused")

	// Orchestration finalizes all three and enqueues each task's second step.
	for _, r := range res[:3] {
		waitFor(t, 10*time.Second, "step 1 complete", func() bool {
			rows := stepTransitions(t, env, r.Step.StepUUID.String())
			return rows[len(rows)-1].To == "complete"
		})
	}
}

// TestApplyPlansRefusesAStaleTaskAndWritesNothing applies two plans in one call, one of
// them from a state its task is not in: the call fails with ErrStaleState, and the other
// task's moves roll back with it.
func TestApplyPlansRefusesAStaleTaskAndWritesNothing(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) { c.Namespaces = []string{"tasker_sim_test"} }
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 30*time.Second)
	a, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 6}))
	require.NoError(t, err)
	b, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 8}))
	require.NoError(t, err)
	before := taskTransitions(t, env, a.TaskUUID)
	require.Equal(t, "steps_in_process", before[len(before)-1].To)

	ta, tb := uuid.MustParse(a.TaskUUID), uuid.MustParse(b.TaskUUID)
	err = pgx.BeginFunc(ctx, env.Pool, func(tx pgx.Tx) error {
		_, err := lifecycle.ApplyPlans(ctx, tx, uuid.New(), []*lifecycle.TaskPlan{
			{Task: ta, From: lifecycle.TaskStepsInProcess, Moves: []lifecycle.Move{{To: lifecycle.TaskEvaluatingResults}}},
			// b is in steps_in_process too, not in evaluating_results.
			{Task: tb, From: lifecycle.TaskEvaluatingResults, Moves: []lifecycle.Move{{To: lifecycle.TaskWaitingForDependencies}}},
		})
		return err
	})
	require.ErrorIs(t, err, lifecycle.ErrStaleState)
	require.Equal(t, before, taskTransitions(t, env, a.TaskUUID), "the other task's move rolled back")
}

// TestConcurrentCreatesShareTransactionsAndRefuseDuplicates creates tasks from many
// goroutines at once while a lock holds the first creation's transaction in flight: the
// others queue behind it and share transactions. Then duplicates of some of them, sent at
// once, are each refused with a 409 and write nothing; every task completes.
func TestConcurrentCreatesShareTransactionsAndRefuseDuplicates(t *testing.T) {
	t.Parallel()
	p := newTelemetry(t)
	env := harness.New(t, cluster, telemetryOptions(p))
	ctx := ctxFor(t, 60*time.Second)
	const unique, dups = 20, 4
	reqs := make([]*api.TaskRequest, 0, unique)
	for i := range unique {
		reqs = append(reqs, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2 * (i + 1)}))
	}
	hold, err := env.Pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = hold.Rollback(context.Background()) })
	_, err = hold.Exec(ctx, `LOCK TABLE tasker.tasks IN SHARE MODE`) // inserts wait
	require.NoError(t, err)
	created, errs := createAll(ctx, env, reqs, func() {
		waitFor(t, 20*time.Second, "every request to reach the creation queue", func() bool {
			return total(scrapeSamples(t, p), "tasker_tasks_requests_total", nil) == unique
		})
		require.NoError(t, hold.Rollback(ctx))
	})
	ids := make([]string, unique)
	for i, err := range errs {
		require.NoError(t, err, "request %d", i)
		ids[i] = created[i].TaskUUID
	}
	var rows, txns int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT xmin::text) FROM tasker.tasks`).Scan(&rows, &txns))
	require.Equal(t, unique, rows)
	require.Less(t, txns, unique/2, "the creations that queued behind the held one shared transactions")

	_, errs = createAll(ctx, env, reqs[:dups], func() {})
	for i, err := range errs {
		require.True(t, client.IsStatus(err, http.StatusConflict), "duplicate %d: %v", i, err)
	}
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks`).Scan(&rows))
	require.Equal(t, unique, rows, "the refused duplicates wrote nothing")

	for _, id := range ids {
		task, err := env.Client.WaitTask(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "complete", task.Status)
		audit := taskTransitions(t, env, id)
		requireWellFormedAudit(t, audit, legalTask)
		require.Equal(t, "complete", audit[len(audit)-1].To)
	}
}

// createAll sends every request at once, runs meanwhile, and waits for the answers.
func createAll(ctx context.Context, env *harness.Env, reqs []*api.TaskRequest, meanwhile func()) ([]*api.TaskResponse, []error) {
	created := make([]*api.TaskResponse, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created[i], errs[i] = env.Client.CreateTask(ctx, r)
		}()
	}
	meanwhile()
	wg.Wait()
	return created, errs
}
