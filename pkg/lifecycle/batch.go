package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tasker-sim/tasker-sim/pkg/messaging"
)

// The set-based hot path: each function here writes, for many steps or tasks at once,
// exactly the audit rows the one-at-a-time transitions write, under the same
// compare-and-set rules, in one statement (see migrations/sql/005_batch_hot_path.sql).

// staleStateCode is the SQLSTATE the set-based functions raise when a compare-and-set
// finds an entity in another state than the caller read.
const staleStateCode = "TS001"

// wrapStale turns the set-based functions' stale-state error into ErrStaleState.
func wrapStale(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == staleStateCode {
		return fmt.Errorf("%s: %w", pgErr.Message, ErrStaleState)
	}
	return err
}

// EnqueueEdges are the step edges an enqueue takes: a step waiting for a retry goes back
// to pending, and every ready pending step is enqueued.
var EnqueueEdges = [2][2]StepState{
	{StepWaitingForRetry, StepPending},
	{StepPending, StepEnqueued},
}

// Claim outcomes, as tasker.claim_archived_steps reports them per message.
const (
	ClaimClaimed      = "claimed"
	ClaimMessageGone  = "message_gone"
	ClaimNotClaimable = "not_claimable"
	ClaimUnknownStep  = "unknown_step"
)

// ClaimMessage is one queue message a worker wants to claim the step of.
type ClaimMessage struct {
	MsgID  int64
	Step   uuid.UUID
	Method string // how it arrived: event or poll
	Trace  []byte // the claim span's context (message headers), stored on the step
}

// ClaimedStep is what a claim found for one message. The hydration fields are set only
// when Outcome is ClaimClaimed.
type ClaimedStep struct {
	MsgID             int64
	Outcome           string
	Step              uuid.UUID
	Task              uuid.UUID
	StepName          string
	Attempt           int
	MaxAttempts       int
	Retryable         bool
	TaskName          string
	Namespace         string
	Version           string
	Context           []byte
	CorrelationID     uuid.UUID
	DependencyResults []byte
}

// ClaimSteps archives the messages of one queue and claims their steps (enqueued →
// in_progress) for worker with a lease, in one statement. It returns one result per
// message, in order.
func ClaimSteps(ctx context.Context, db DB, queue, worker string, lease time.Duration, msgs []ClaimMessage) ([]ClaimedStep, error) {
	if err := CheckStep(StepEnqueued, StepInProgress); err != nil {
		return nil, err
	}
	ids, steps := make([]int64, len(msgs)), make([]uuid.UUID, len(msgs))
	methods, traces := make([]string, len(msgs)), make([][]byte, len(msgs))
	for i, m := range msgs {
		ids[i], steps[i], methods[i], traces[i] = m.MsgID, m.Step, m.Method, m.Trace
	}
	// The archive (only one caller can archive a message) and the claim of what it
	// archived, in one statement written for this queue.
	archive, err := messaging.ArchiveCTE(queue, 1)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, archive+` SELECT msg_id, outcome, step_uuid, task_uuid, step_name, attempts, max_attempts,
		       retryable, task_name, namespace, version, context, correlation_id, dependency_results
		  FROM tasker.claim_archived_steps(ARRAY(SELECT msg_id FROM archived), $1, $2, $3, $4::jsonb[], $5, $6, $7, $8)`,
		ids, steps, methods, traces, worker, lease.Seconds(), string(StepEnqueued), string(StepInProgress))
	if err != nil {
		return nil, fmt.Errorf("claim %d steps from %s: %w", len(msgs), queue, err)
	}
	out, err := pgx.CollectRows(rows, scanClaimed)
	if err != nil {
		return nil, fmt.Errorf("claim %d steps from %s: %w", len(msgs), queue, err)
	}
	return out, nil
}

func scanClaimed(r pgx.CollectableRow) (ClaimedStep, error) {
	var (
		c                     ClaimedStep
		task, corr            *uuid.UUID
		name, tn, ns, version *string
		attempts, maxAttempts *int
		retryable             *bool
	)
	if err := r.Scan(&c.MsgID, &c.Outcome, &c.Step, &task, &name, &attempts, &maxAttempts, &retryable,
		&tn, &ns, &version, &c.Context, &corr, &c.DependencyResults); err != nil {
		return c, err
	}
	if c.Outcome != ClaimClaimed {
		return c, nil
	}
	if task == nil || corr == nil || name == nil || tn == nil || ns == nil || version == nil ||
		attempts == nil || maxAttempts == nil || retryable == nil {
		return c, fmt.Errorf("claim of step %s returned an incomplete row", c.Step)
	}
	c.Task, c.CorrelationID, c.StepName, c.TaskName, c.Namespace, c.Version = *task, *corr, *name, *tn, *ns, *version
	c.Attempt, c.MaxAttempts, c.Retryable = *attempts, *maxAttempts, *retryable
	return c, nil
}

// Submission is one claimed step's result for SubmitResults.
type Submission struct {
	Step    uuid.UUID
	Attempt int
	Success bool
	Results []byte // the StepExecutionResult stored on the step
	Message []byte // the completion message for orchestration
	Headers []byte // its headers (the execution span's context), also stored on the step
}

// SubmitResults stores the results of steps worker holds, moves each in_progress →
// enqueued_for_orchestration (or enqueued_as_error_for_orchestration when it failed) and
// sends the completion messages to orchestration_step_results, in one statement. It
// returns each step's new message id, in order, or 0 where the lease was lost.
func SubmitResults(ctx context.Context, db DB, worker string, subs []Submission) ([]int64, error) {
	for _, to := range []StepState{StepEnqueuedForOrchestration, StepEnqueuedAsErrorForOrchestration} {
		if err := CheckStep(StepInProgress, to); err != nil {
			return nil, err
		}
	}
	n := len(subs)
	steps, attempts, ok := make([]uuid.UUID, n), make([]int32, n), make([]bool, n)
	results, msgs, headers := make([][]byte, n), make([][]byte, n), make([][]byte, n)
	for i, s := range subs {
		steps[i], attempts[i], ok[i] = s.Step, int32(s.Attempt), s.Success
		results[i], msgs[i], headers[i] = s.Results, s.Message, s.Headers
	}
	rows, err := db.Query(ctx, `SELECT step_uuid, msg_id FROM tasker.submit_step_results(
		$1, $2, $3, $4::jsonb[], $5::jsonb[], $6::jsonb[], $7, $8, $9, $10)`,
		steps, attempts, ok, results, msgs, headers, worker, string(StepInProgress),
		string(StepEnqueuedForOrchestration), string(StepEnqueuedAsErrorForOrchestration))
	if err != nil {
		return nil, fmt.Errorf("submit %d results: %w", n, err)
	}
	ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (int64, error) {
		var step uuid.UUID
		var id *int64
		if err := r.Scan(&step, &id); err != nil || id == nil {
			return 0, err
		}
		return *id, nil
	})
	if err != nil {
		return nil, fmt.Errorf("submit %d results: %w", n, err)
	}
	return ids, nil
}

// StepFinalization is orchestration's move of one step, with what the move writes on
// the step row besides its audit row.
type StepFinalization struct {
	Step     uuid.UUID
	From, To StepState
	Metadata map[string]any
	// Processed marks the step done (a completion).
	Processed bool
	// Backoff, when set, is the retry delay in seconds; the attempt time becomes now.
	Backoff *float64
	// Release gives up the step's claim lease (a recovered orphan).
	Release bool
	// Results, when set, replace the step's stored results.
	Results []byte
}

// finalizeStepsSQL applies a batch of StepFinalization (tasker.finalize_steps).
const finalizeStepsSQL = `SELECT tasker.finalize_steps($1, $2, $3, $4::jsonb[], $5, $6, $7, $8::jsonb[])`

// QueueFinalizeSteps adds the moves to b, so they can share a round trip with other
// statements. After the batch runs, *moved holds the steps that moved; a step that did
// not was in another state than From.
func QueueFinalizeSteps(b *pgx.Batch, fs []StepFinalization, moved *[]uuid.UUID) error {
	n := len(fs)
	steps, from, to := make([]uuid.UUID, n), make([]string, n), make([]string, n)
	meta, results := make([][]byte, n), make([][]byte, n)
	processed, release, backoff := make([]bool, n), make([]bool, n), make([]*float64, n)
	for i, f := range fs {
		if err := CheckStep(f.From, f.To); err != nil {
			return err
		}
		m, err := encodeMetadata(f.Metadata)
		if err != nil {
			return err
		}
		steps[i], from[i], to[i], meta[i] = f.Step, string(f.From), string(f.To), m
		processed[i], release[i], backoff[i], results[i] = f.Processed, f.Release, f.Backoff, f.Results
	}
	b.Queue(finalizeStepsSQL, steps, from, to, meta, processed, backoff, release, results).Query(func(rows pgx.Rows) error {
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		*moved = ids
		return err
	})
	return nil
}

// TaskPlan is a plan decided for one locked task, ready to apply.
type TaskPlan struct {
	Task uuid.UUID
	From TaskState
	// Moves come from Plan; the enqueue happens before the move marked EnqueueFirst.
	Moves []Move
	// Metadata goes on every task transition; the moves after the enqueue also get
	// steps_enqueued.
	Metadata map[string]any
	// Ready are the steps to enqueue (read in this transaction, under the task lock), and
	// Messages their queue messages, one each, sent to Queue with Headers.
	Ready    []uuid.UUID
	Messages [][]byte
	Queue    string
	Headers  []byte
	// NoneWaitingRetry says no step of the task waits for retry (its snapshot counted
	// none), so none of Ready moves back from waiting_for_retry first. When every plan of
	// a call says so, that flip is skipped.
	NoneWaitingRetry bool
}

// End is the state the plan leaves the task in.
func (p *TaskPlan) End() TaskState {
	if len(p.Moves) == 0 {
		return p.From
	}
	return p.Moves[len(p.Moves)-1].To
}

// planArgs are apply_plans' parallel arrays.
type planArgs struct {
	tasks            []uuid.UUID
	from             []string
	moveTasks        []uuid.UUID // every task's moves, in order, each task's after the one before
	moveTo           []string
	moveMeta         [][]byte
	ready            []uuid.UUID
	sends            map[string]*queueSend // the ready steps' messages, by queue
	queueOrder       []string
	terminal         []uuid.UUID
	terminalComplete []bool
	blocked          []uuid.UUID // tasks that settle blocked_by_failures: notified, not completed
	enqueueChecked   bool
	mayRetry         bool // some plan's ready steps may wait for retry
}

// add checks a plan's edges and appends it to the arguments.
func (a *planArgs) add(p *TaskPlan) error {
	if len(p.Messages) != len(p.Ready) {
		return fmt.Errorf("task %s: %d ready steps but %d messages", p.Task, len(p.Ready), len(p.Messages))
	}
	a.mayRetry = a.mayRetry || (len(p.Ready) > 0 && !p.NoneWaitingRetry)
	meta, err := encodeMetadata(p.Metadata)
	if err != nil {
		return err
	}
	afterMeta := map[string]any{"steps_enqueued": len(p.Ready)}
	for k, v := range p.Metadata {
		afterMeta[k] = v
	}
	after, err := encodeMetadata(afterMeta)
	if err != nil {
		return err
	}
	cur, enqueued := p.From, false
	a.tasks, a.from = append(a.tasks, p.Task), append(a.from, string(p.From))
	for _, m := range p.Moves {
		if err := CheckTask(cur, m.To); err != nil {
			return err
		}
		if m.EnqueueFirst && !enqueued {
			enqueued = true
			if err := a.addReady(p); err != nil {
				return err
			}
		}
		a.moveTasks, a.moveTo = append(a.moveTasks, p.Task), append(a.moveTo, string(m.To))
		if enqueued {
			a.moveMeta = append(a.moveMeta, after)
		} else {
			a.moveMeta = append(a.moveMeta, meta)
		}
		cur = m.To
	}
	if !enqueued && len(p.Ready) > 0 {
		return fmt.Errorf("task %s: %d ready steps but the plan does not enqueue", p.Task, len(p.Ready))
	}
	switch {
	case cur.Terminal():
		a.terminal, a.terminalComplete = append(a.terminal, p.Task), append(a.terminalComplete, cur == TaskComplete)
	case cur.Settled():
		a.blocked = append(a.blocked, p.Task)
	}
	return nil
}

func (a *planArgs) addReady(p *TaskPlan) error {
	if !a.enqueueChecked {
		for _, e := range EnqueueEdges {
			if err := CheckStep(e[0], e[1]); err != nil {
				return err
			}
		}
		a.enqueueChecked = true
	}
	if len(p.Ready) == 0 {
		return nil
	}
	if a.sends == nil {
		a.sends = map[string]*queueSend{}
	}
	qs := a.sends[p.Queue]
	if qs == nil {
		qs = &queueSend{}
		a.sends[p.Queue], a.queueOrder = qs, append(a.queueOrder, p.Queue)
	}
	for i, s := range p.Ready {
		a.ready = append(a.ready, s)
		qs.msgs, qs.headers = append(qs.msgs, p.Messages[i]), append(qs.headers, p.Headers)
	}
	return nil
}

// queueSend is the messages (and their headers) going to one queue.
type queueSend struct {
	msgs, headers [][]byte
}

// BatchDB is a DB that also runs pipelines (a pgx.Tx does).
type BatchDB interface {
	DB
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// ApplyPlans applies the plans of locked tasks in one round trip: each task's moves, each
// one a compare-and-set, with the enqueue of its ready steps and the send of their
// messages where its plan says, and for tasks that end in a terminal state their
// completion columns and the finalization notice (tasks that settle in
// blocked_by_failures get the notice only). It returns the steps it enqueued. When
// any task or step is not in the state its plan starts from, nothing is applied and the
// error wraps ErrStaleState; the caller's transaction must then roll back.
func ApplyPlans(ctx context.Context, db BatchDB, processor uuid.UUID, plans []*TaskPlan) ([]uuid.UUID, error) {
	var a planArgs
	for _, p := range plans {
		if err := a.add(p); err != nil {
			return nil, err
		}
	}
	if len(a.moveTasks)+len(a.ready) == 0 {
		return nil, nil
	}
	var enqueued []uuid.UUID
	var retryState *string // NULL: no ready step waits for retry
	if a.mayRetry {
		s := string(EnqueueEdges[0][0])
		retryState = &s
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT tasker.apply_plans($1, $2, $3, $4, $5::jsonb[], $6, $7, $8, $9, $10::text, $11, $12)`,
		a.tasks, a.from, a.moveTasks, a.moveTo, a.moveMeta,
		a.ready, a.terminal, a.terminalComplete, processor,
		retryState, string(EnqueueEdges[0][1]), string(EnqueueEdges[1][1])).Query(func(rows pgx.Rows) error {
		var err error
		enqueued, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		return err
	})
	for _, q := range a.queueOrder {
		if err := messaging.SendBatch(b, q, a.sends[q].msgs, a.sends[q].headers); err != nil {
			return nil, err
		}
	}
	if len(a.blocked) > 0 {
		// A blocked task is not finished, but its waiters hear of it as of one that is.
		b.Queue(notifyFinalizedSQL, messaging.TaskFinalizedChannel, a.blocked)
	}
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("apply %d task plans: %w", len(plans), wrapStale(err))
	}
	return enqueued, nil
}

// QueueCreateTransitions adds to b the first audit rows of new tasks and their steps: each
// starts in pending, with no state before it. tasks and correlationIDs are parallel (and
// may be empty, for steps added to existing tasks); the task transition's metadata
// records the correlation id.
func QueueCreateTransitions(b *pgx.Batch, tasks, correlationIDs, steps []uuid.UUID, processor uuid.UUID) {
	if len(tasks) > 0 {
		queueCreateTaskTransitions(b, tasks, correlationIDs, processor)
	}
	b.Queue(`INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, sort_key, most_recent)
	         SELECT s, NULL, $2, 0, true FROM unnest($1::uuid[]) AS s`, steps, string(StepPending))
}

func queueCreateTaskTransitions(b *pgx.Batch, tasks, correlationIDs []uuid.UUID, processor uuid.UUID) {
	b.Queue(`INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, sort_key, most_recent, processor_uuid, metadata)
	         SELECT t.task, NULL, $3, 0, true, $4, jsonb_build_object('correlation_id', t.correlation_id)
	           FROM unnest($1::uuid[], $2::uuid[]) AS t(task, correlation_id)`,
		tasks, correlationIDs, string(TaskPending), processor)
}
