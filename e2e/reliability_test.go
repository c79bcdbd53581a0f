package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	pgmq "github.com/craigpastro/pgmq-go"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/stepclaim"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// TestDuplicateDeliveryIsHarmless delivers the same step message and the same result
// message more than once, and races two claimers on one message: exactly one claim wins
// and no transition is written twice.
func TestDuplicateDeliveryIsHarmless(t *testing.T) {
	t.Parallel()
	// The only worker serves another namespace, so the linear task's first step waits in
	// its queue for the test to claim by hand.
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) { c.Namespaces = []string{"tasker_sim_test"} }
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 30*time.Second)

	created, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 6}))
	require.NoError(t, err)
	queue := workflow.WorkerQueue("rust_e2e_linear")
	msg, err := pgmq.Read(ctx, env.Pool, queue, 30)
	require.NoError(t, err)
	step, err := messaging.DecodeStepMessage(msg.Message)
	require.NoError(t, err)

	// Two claimers race for one message.
	outcomes := make([]stepclaim.Outcome, 2)
	claimed := make([]*stepclaim.Step, 2)
	var g errgroup.Group
	for i := range 2 {
		g.Go(func() error {
			s, o, err := stepclaim.Claim(ctx, env.Pool, queue, msg.MsgID, step.StepUUID, fmt.Sprintf("racer-%d", i), 30*time.Second, stepclaim.MethodPoll)
			claimed[i], outcomes[i] = s, o
			return err
		})
	}
	require.NoError(t, g.Wait())
	require.ElementsMatch(t, []stepclaim.Outcome{stepclaim.Claimed, stepclaim.MessageGone}, outcomes)
	winner := claimed[0]
	if winner == nil {
		winner = claimed[1]
	}
	require.Equal(t, 1, winner.Attempt)
	require.Equal(t, "linear_step_1", winner.StepName)

	// The same message again: already archived.
	_, o, err := stepclaim.Claim(ctx, env.Pool, queue, msg.MsgID, step.StepUUID, "late", 30*time.Second, stepclaim.MethodEvent)
	require.NoError(t, err)
	require.Equal(t, stepclaim.MessageGone, o)

	// A second copy of the step message (a duplicate send): consumed, nothing changes.
	dupID, err := pgmq.Send(ctx, env.Pool, queue, msg.Message)
	require.NoError(t, err)
	_, o, err = stepclaim.Claim(ctx, env.Pool, queue, dupID, step.StepUUID, "dup", 30*time.Second, stepclaim.MethodPoll)
	require.NoError(t, err)
	require.Equal(t, stepclaim.NotClaimable, o)

	// Submit the result, then submit it again: the second is refused.
	result := []byte(`{"success":true,"status":"completed","result":36,"metadata":{"retryable":false}}`)
	_, err = stepclaim.Submit(ctx, env.Pool, winner, winner.StepName+"-ignored", true, result)
	require.ErrorIs(t, err, stepclaim.ErrLeaseLost, "only the claiming worker may submit")
	workerID := "racer-0"
	if claimed[0] == nil {
		workerID = "racer-1"
	}
	_, err = stepclaim.Submit(ctx, env.Pool, winner, workerID, true, result)
	require.NoError(t, err)
	_, err = stepclaim.Submit(ctx, env.Pool, winner, workerID, true, result)
	require.ErrorIs(t, err, stepclaim.ErrLeaseLost)

	// Wait for orchestration to finalize step 1, then replay its result message.
	waitFor(t, 10*time.Second, "step 1 complete", func() bool {
		rows := stepTransitions(t, env, step.StepUUID.String())
		return rows[len(rows)-1].To == "complete"
	})
	before := len(taskTransitions(t, env, created.TaskUUID))
	replay, err := json.Marshal(step)
	require.NoError(t, err)
	replayID, err := messaging.Send(ctx, env.Pool, messaging.QueueStepResults, json.RawMessage(replay))
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "replayed result archived", func() bool {
		var archived bool
		require.NoError(t, env.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pgmq.a_orchestration_step_results WHERE msg_id = $1)`,
			replayID).Scan(&archived))
		return archived
	})
	require.Equal(t, before, len(taskTransitions(t, env, created.TaskUUID)), "a replayed result changes no task state")
	rows := stepTransitions(t, env, step.StepUUID.String())
	requireWellFormedAudit(t, rows, legalStep)
	require.Equal(t, []string{"pending", "enqueued", "in_progress", "enqueued_for_orchestration", "complete"}, states(rows))

	// A worker for the namespace finishes the task.
	_, err = env.AddWorker(ctx, func(c *worker.Config) { c.Namespaces = []string{"rust_e2e_linear"} })
	require.NoError(t, err)
	done, err := env.Client.WaitTask(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", done.Status)
}

func TestRetries(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastRetryOptions())

	t.Run("exhausted", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 30*time.Second)
		created, done := runTask(ctx, t, env, request("rust_e2e_retry", "retry_exhaustion_test", map[string]any{}))
		require.Equal(t, "blocked_by_failures", done.Status)
		require.Equal(t, "blocked_by_failures", done.ExecutionStatus)
		require.Equal(t, 1, done.FailedSteps)

		steps, err := env.Client.Steps(ctx, created.TaskUUID)
		require.NoError(t, err)
		require.Len(t, steps, 1)
		require.Equal(t, "error", steps[0].CurrentState)
		require.Equal(t, 3, steps[0].Attempts)
		var res struct {
			Success bool `json:"success"`
			Error   struct {
				ErrorType string `json:"error_type"`
				Retryable bool   `json:"retryable"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal(steps[0].Results, &res))
		require.False(t, res.Success)
		require.Equal(t, "PlannedFailure", res.Error.ErrorType)

		rows := stepTransitions(t, env, steps[0].StepUUID)
		requireWellFormedAudit(t, rows, legalStep)
		attempt := []string{"enqueued", "in_progress", "enqueued_as_error_for_orchestration"}
		want := append([]string{"pending"}, attempt...)
		want = append(want, "waiting_for_retry", "pending")
		want = append(want, attempt...)
		want = append(want, "waiting_for_retry", "pending")
		want = append(want, attempt...)
		want = append(want, "error")
		require.Equal(t, want, states(rows))

		task := states(taskTransitions(t, env, created.TaskUUID))
		require.Equal(t, []string{"evaluating_results", "blocked_by_failures"}, task[len(task)-2:],
			"a failed task stays blocked until an operator acts")
		require.Contains(t, task, "waiting_for_retry")
	})

	t.Run("recovers", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 30*time.Second)
		created, done := runTask(ctx, t, env, request("rust_e2e_retry", "retry_mechanics_test", map[string]any{}))
		require.Equal(t, "complete", done.Status)
		steps, err := env.Client.Steps(ctx, created.TaskUUID)
		require.NoError(t, err)
		require.Equal(t, 3, steps[0].Attempts)
		require.JSONEq(t, `{"succeeded_on_attempt":3}`, string(mustField(t, steps[0].Results, "result")))
		requireWellFormedAudit(t, taskTransitions(t, env, created.TaskUUID), legalTask)
	})
}

func mustField(t *testing.T, doc json.RawMessage, field string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(doc, &m))
	return m[field]
}

// TestKilledWorkerStepIsReclaimed SIGKILLs a worker process in the middle of a step. The
// step's lease (its visibility timeout) runs out, orchestration hands it back, another
// worker claims it, and the task completes with the step run exactly twice.
func TestKilledWorkerStepIsReclaimed(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Workers = -1
	opts.Orchestrator = func(_ int, c *orchestrator.Config) { c.PollInterval = 100 * time.Millisecond }
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 60*time.Second)

	doomed := startWorkerProcess(t, env.DatabaseURL, "doomed-worker", map[string]string{
		"TASKER_VISIBILITY_TIMEOUT_MS": "1500", "TASKER_WORKER_NAMESPACES": "tasker_sim_test"})
	waitFor(t, 20*time.Second, "the worker process to register its templates", func() bool {
		var n int
		_ = env.Pool.QueryRow(ctx, `SELECT count(*) FROM tasker.named_tasks`).Scan(&n)
		return n > 0
	})

	created, err := env.Client.CreateTask(ctx, request("tasker_sim_test", "slow_step", map[string]any{"sleep_ms": 600000}))
	require.NoError(t, err)
	waitFor(t, 20*time.Second, "the doomed worker to claim the step", func() bool {
		var by *string
		_ = env.Pool.QueryRow(ctx, `SELECT claimed_by FROM tasker.workflow_steps WHERE task_uuid = $1`, created.TaskUUID).Scan(&by)
		return by != nil && *by == "doomed-worker"
	})
	require.NoError(t, doomed.Process.Signal(syscall.SIGKILL))
	_ = doomed.Wait()

	_, err = env.AddWorker(ctx, func(c *worker.Config) {
		c.WorkerID = "rescuer"
		c.Namespaces = []string{"tasker_sim_test"}
	})
	require.NoError(t, err)
	done, err := env.Client.WaitTask(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", done.Status)

	steps, err := env.Client.Steps(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, 2, steps[0].Attempts)
	rows := stepTransitions(t, env, steps[0].StepUUID)
	requireWellFormedAudit(t, rows, legalStep)
	require.Equal(t, []string{"pending", "enqueued", "in_progress", "waiting_for_retry", "pending", "enqueued",
		"in_progress", "enqueued_for_orchestration", "complete"}, states(rows))
	require.Equal(t, "doomed-worker", rows[2].Metadata["worker_id"])
	require.Equal(t, "rescuer", rows[6].Metadata["worker_id"])
	require.Equal(t, "rescuer", mustWorker(t, steps[0].Results))
}

func mustWorker(t *testing.T, results json.RawMessage) string {
	t.Helper()
	var r struct {
		Metadata struct {
			WorkerID string `json:"worker_id"`
		} `json:"metadata"`
	}
	require.NoError(t, json.Unmarshal(results, &r))
	return r.Metadata.WorkerID
}

// startWorkerProcess runs the built worker binary; the test kills or stops it.
func startWorkerProcess(t *testing.T, dbURL, id string, env map[string]string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "worker"))
	cmd.Env = append(os.Environ(), "TASKER_DATABASE_URL="+dbURL, "TASKER_WORKER_ID="+id,
		"TASKER_WORKER_BIND_ADDRESS=127.0.0.1:0", "LOG_LEVEL=warn")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// TestTwoOrchestratorsTwoWorkers runs 200 tasks of every shape through two orchestrators
// and two workers on one database: every task completes, and every step runs once.
func TestTwoOrchestratorsTwoWorkers(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Orchestrators, opts.Workers = 2, 2
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 3*time.Minute)

	clients := []string{env.Orchestrators[0].URL(), env.Orchestrators[1].URL()}
	shapes := [][2]string{{"rust_e2e_linear", "mathematical_sequence"}, {"rust_e2e_diamond", "diamond_pattern"},
		{"rust_e2e_mixed_dag", "complex_dag"}, {"rust_e2e_tree", "hierarchical_tree"}}
	const total = 200
	var mu sync.Mutex
	ids := make([]string, 0, total)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range total {
		g.Go(func() error {
			c := clientFor(t, clients[i%2])
			shape := shapes[i%len(shapes)]
			created, err := c.CreateTask(gctx, request(shape[0], shape[1], map[string]any{"even_number": 2 + 2*(i%10)}))
			if err != nil {
				return err
			}
			done, err := c.WaitTask(gctx, created.TaskUUID)
			if err != nil {
				return err
			}
			if done.Status != "complete" {
				return fmt.Errorf("task %s ended %s", created.TaskUUID, done.Status)
			}
			mu.Lock()
			ids = append(ids, created.TaskUUID)
			mu.Unlock()
			return nil
		})
	}
	require.NoError(t, g.Wait())
	require.Len(t, ids, total)

	var tasks, complete int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE complete) FROM tasker.tasks`).Scan(&tasks, &complete))
	require.Equal(t, total, tasks)
	require.Equal(t, total, complete)

	// None run twice: one attempt and one claim per step, and no step left in flight.
	var steps, once, claims int
	require.NoError(t, env.Pool.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE attempts = 1 AND processed AND NOT in_process),
		       (SELECT count(*) FROM tasker.workflow_step_transitions WHERE to_state = 'in_progress')
		  FROM tasker.workflow_steps`).Scan(&steps, &once, &claims))
	require.Equal(t, steps, once)
	require.Equal(t, steps, claims)
	require.Equal(t, 50*(4+4+7+8), steps)

	// Nothing lost: every queue is empty and every message was archived exactly once.
	var live int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT coalesce(sum(queue_length), 0) FROM pgmq.metrics_all()`).Scan(&live))
	require.Zero(t, live)

	// Both orchestrators and both workers took part.
	var processors, workers int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(DISTINCT processor_uuid) FROM tasker.task_transitions WHERE processor_uuid IS NOT NULL`).Scan(&processors))
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(DISTINCT metadata->>'worker_id') FROM tasker.workflow_step_transitions WHERE to_state = 'in_progress'`).Scan(&workers))
	require.Equal(t, 2, processors)
	require.Equal(t, 2, workers)
}

func clientFor(t *testing.T, url string) *client.Client {
	t.Helper()
	c, err := client.New(url, nil)
	require.NoError(t, err)
	return c
}

// TestCancel cancels a task whose step is running; the running step's late result is
// refused, and the task and its steps end cancelled.
func TestCancel(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) { c.ShutdownTimeout = 100 * time.Millisecond }
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 30*time.Second)

	created, err := env.Client.CreateTask(ctx, request("tasker_sim_test", "slow_step", map[string]any{"sleep_ms": 600000}))
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "the step to start", func() bool {
		steps, err := env.Client.Steps(ctx, created.TaskUUID)
		return err == nil && steps[0].CurrentState == "in_progress"
	})
	cancelled, err := env.Client.CancelTask(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "cancelled", cancelled.Status)
	steps, err := env.Client.Steps(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "cancelled", steps[0].CurrentState)
	requireWellFormedAudit(t, taskTransitions(t, env, created.TaskUUID), legalTask)

	_, err = env.Client.CancelTask(ctx, created.TaskUUID)
	require.True(t, client.IsStatus(err, http.StatusBadRequest), "cancelling a finished task is refused, as in tasker-core: %v", err)
	var ae *client.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, api.CodeBadRequest, ae.Code)
}

// TestStaleTasksGoToTheDLQ leaves a task with no worker for its namespace: after the
// steps_in_process threshold the staleness detector files it in the DLQ and errors it.
func TestStaleTasksGoToTheDLQ(t *testing.T) {
	t.Parallel()
	env := dlqEnv(t)
	ctx := ctxFor(t, 30*time.Second)
	task := dlqStaleTask(t, ctx, env)

	var state, reason, resolution, snapshotTask string
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT original_state, dlq_reason, resolution_status, task_snapshot->>'task_uuid'
		FROM tasker.tasks_dlq WHERE task_uuid = $1`, task).Scan(&state, &reason, &resolution, &snapshotTask))
	require.Equal(t, []string{"steps_in_process", "staleness_timeout", "pending", task},
		[]string{state, reason, resolution, snapshotTask})
	rows := taskTransitions(t, env, task)
	requireWellFormedAudit(t, rows, legalTask)
	require.Equal(t, "staleness_timeout", rows[len(rows)-1].Metadata["trigger"])
}

// TestWorkerSIGKILLMidLoad kills one of two worker processes while 120 tasks run. Every
// task completes, the steps it held are recovered after their lease, and no step records
// a transition twice.
func TestWorkerSIGKILLMidLoad(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Workers = -1
	opts.Orchestrator = func(_ int, c *orchestrator.Config) { c.PollInterval = 100 * time.Millisecond }
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 3*time.Minute)
	// The doomed worker's handlers take 300-500 ms (an injected latency), so it always
	// holds steps when it dies; the survivor's take 20-40 ms.
	env2 := func(latency string) map[string]string {
		return map[string]string{"TASKER_VISIBILITY_TIMEOUT_MS": "1500", "TASKER_WORKER_NAMESPACES": "rust_e2e_linear",
			"TASKER_FAULTS": `{"latency_ms": ` + latency + `}`, "TASKER_POLL_INTERVAL_MS": "200"}
	}
	doomed := startWorkerProcess(t, env.DatabaseURL, "doomed", env2(`{"min": 300, "max": 500}`))
	startWorkerProcess(t, env.DatabaseURL, "survivor", env2(`{"min": 20, "max": 40}`))
	waitFor(t, 20*time.Second, "both workers to register", func() bool {
		var n int
		_ = env.Pool.QueryRow(ctx, `SELECT count(*) FROM tasker.named_tasks`).Scan(&n)
		return n > 0
	})

	const total = 120
	var mu sync.Mutex
	completed := 0
	killed := make(chan struct{})
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for range total {
		g.Go(func() error {
			created, err := env.Client.CreateTask(gctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2}))
			if err != nil {
				return err
			}
			done, err := env.Client.WaitTask(gctx, created.TaskUUID)
			if err != nil {
				return err
			}
			if done.Status != "complete" {
				return fmt.Errorf("task %s ended %s", created.TaskUUID, done.Status)
			}
			mu.Lock()
			defer mu.Unlock()
			completed++
			if completed == 30 {
				close(killed)
				return doomed.Process.Signal(syscall.SIGKILL)
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	<-killed
	_ = doomed.Wait()

	var steps, completes, reported, recovered int
	require.NoError(t, env.Pool.QueryRow(ctx, `
		SELECT count(DISTINCT ws.workflow_step_uuid),
		       count(*) FILTER (WHERE st.to_state = 'complete'),
		       count(*) FILTER (WHERE st.to_state = 'enqueued_for_orchestration'),
		       count(DISTINCT ws.workflow_step_uuid) FILTER (WHERE ws.attempts > 1)
		  FROM tasker.workflow_steps AS ws
		  JOIN tasker.workflow_step_transitions AS st ON st.workflow_step_uuid = ws.workflow_step_uuid`).
		Scan(&steps, &completes, &reported, &recovered))
	require.Equal(t, total*4, steps)
	require.Equal(t, steps, completes, "each step completed exactly once")
	require.Equal(t, steps, reported, "each step reported exactly one result")
	require.Positive(t, recovered, "the killed worker held steps, and they were run again")
	var tasksDone int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks WHERE complete`).Scan(&tasksDone))
	require.Equal(t, total, tasksDone)
}
