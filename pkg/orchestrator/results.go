package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// resultBatchMax bounds how many step results one transaction finalizes.
const resultBatchMax = 64

// resultItem is one orchestration_step_results message in a batch, with its span and
// what processing it found.
type resultItem struct {
	job       messaging.Delivery
	msg       messaging.StepMessage
	decodeErr error
	ctx       context.Context // carries the item's process_step_result span
	span      trace.Span
	start     time.Time

	archived   bool     // this transaction consumed the message
	poison     bool     // it names no task or step, or does not decode
	resultType string   // success, error or timeout: the step was finalized
	task       *taskRef // the step's task, when it was finalized
}

// stepRow is a result's step as the batch reads it, locked.
type stepRow struct {
	task, namedStep       uuid.UUID
	state                 lifecycle.StepState
	metadata              []byte         // results -> metadata
	headers               map[string]any // results -> orchestration_metadata -> headers (Retry-After)
	attempts, maxAttempts int
	retryable             bool
}

// processResults finalizes a batch of step results and advances their tasks, all in one
// transaction. Archiving the messages comes first: only one processor can archive a
// message, so a duplicate delivery changes nothing. Each result has a span of its own,
// which continues the trace of the worker span whose context the message's headers
// carry. When the batch fails, each result is tried again alone, so that one bad result
// cannot hold back the others.
func (o *Orchestrator) processResults(ctx context.Context, jobs []messaging.Delivery) {
	items := o.openItems(ctx, jobs)
	err := pgx.BeginTxFunc(ctx, o.pool, hotTx, func(tx pgx.Tx) error { return o.finalizeBatch(ctx, tx, items) })
	if err != nil && len(items) > 1 && ctx.Err() == nil {
		for _, it := range items {
			it.span.SetAttributes(attribute.Bool("batch_retried_alone", true))
			it.span.End()
		}
		o.log.Warn("a batch of step results failed; processing each alone", "results", len(items), "error", err)
		for _, j := range jobs {
			o.processResults(ctx, []messaging.Delivery{j})
		}
		return
	}
	o.closeItems(ctx, items, err)
}

// openItems decodes each job and starts its span.
func (o *Orchestrator) openItems(ctx context.Context, jobs []messaging.Delivery) []*resultItem {
	items := make([]*resultItem, len(jobs))
	for i, j := range jobs {
		it := &resultItem{job: j, start: time.Now()}
		it.msg, it.decodeErr = messaging.DecodeStepMessage(j.Body)
		it.ctx, it.span = o.tel.Tracer.Start(messaging.ContextWithHeaders(ctx, j.Headers), "process_step_result",
			trace.WithAttributes(attribute.String("correlation_id", it.msg.CorrelationID.String()),
				attribute.String("task_uuid", it.msg.TaskUUID.String()), attribute.String("step_uuid", it.msg.StepUUID.String()),
				attribute.String("claim_method", j.Method), attribute.Int("batch_size", len(jobs))))
		items[i] = it
	}
	return items
}

// closeItems records a committed batch's metrics (or its error) and ends the spans.
func (o *Orchestrator) closeItems(ctx context.Context, items []*resultItem, err error) {
	in := o.tel.Instruments
	recorded := map[*taskRef]bool{}
	for _, it := range items {
		if err != nil {
			it.span.RecordError(err)
			it.span.End()
			in.QueueError(ctx, messaging.QueueStepResults, "process")
			if ctx.Err() == nil {
				o.log.Error("process step result", "msg_id", it.job.MsgID, "claim_method", it.job.Method, "error", err)
			}
			continue
		}
		// A message someone else archived first is a duplicate: the span says so.
		it.span.SetAttributes(attribute.Bool("archived", it.archived))
		if it.archived {
			in.MessageReceived(ctx, messaging.QueueStepResults, it.job.Method, it.job.ReadCount > 1)
			op := "archive"
			if it.poison {
				op = telemetry.OpArchivePoison
			}
			in.MessagesDeleted(ctx, messaging.QueueStepResults, op, 1)
		}
		if it.resultType != "" {
			in.StepResultProcessed(ctx, it.task.correlationID.String(), it.resultType, time.Since(it.start))
			if !recorded[it.task] {
				recorded[it.task] = true
				o.recordCommitted(ctx, it.task)
			}
		}
		it.span.End()
	}
}

// finalizeBatch is the batch's transaction: archive, lock, finalize the steps, read the
// tasks' snapshots, apply their plans. Four round trips whatever the batch size, and two
// more when completed decision or batchable steps create steps.
func (o *Orchestrator) finalizeBatch(ctx context.Context, tx pgx.Tx, items []*resultItem) error {
	tasks, steps, err := o.loadBatch(ctx, tx, items)
	if err != nil {
		return err
	}
	finals, touched := o.classify(items, tasks, steps)
	if len(finals) == 0 {
		return nil
	}
	added, err := o.branchesOf(ctx, tx, finals, tasks, steps)
	if err != nil {
		return err
	}
	var moved []uuid.UUID
	snaps := map[uuid.UUID]*snapshot{}
	b := &pgx.Batch{}
	if err := lifecycle.QueueFinalizeSteps(b, finals, &moved); err != nil {
		return err
	}
	if len(added.steps) > 0 {
		added.queue(b)
		lifecycle.QueueCreateTransitions(b, nil, nil, added.steps, o.cfg.ProcessorUUID)
	}
	var live []uuid.UUID
	for _, p := range touched {
		if !p.task.state.Settled() {
			live = append(live, p.task.uuid)
		}
	}
	if len(live) > 0 {
		queueSnapshots(b, live, snaps)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("finalize %d steps: %w", len(finals), err)
	}
	if len(moved) != len(finals) {
		return fmt.Errorf("%d of %d steps left their state concurrently: %w", len(finals)-len(moved), len(finals),
			lifecycle.ErrStaleState)
	}
	var ps []planned
	for _, p := range touched {
		if p.snap = snaps[p.task.uuid]; p.snap != nil {
			ps = append(ps, p)
		}
	}
	return o.applyPlans(ctx, tx, ps, "step_result")
}

// Statements that load a batch. The tasks are locked in uuid order (as every multi-task
// lock is taken), and their states read by a statement of its own, so that it sees the
// state as of after the lock was granted. Current states are read by correlated
// subqueries on the row's own key, so a plan cached while the tables were small (pgx
// prepares these) stays an index probe when they are large.
const (
	lockTasksSQL = `SELECT t.task_uuid, t.correlation_id, tn.name, t.trace_context, t.named_task_uuid
	  FROM tasker.tasks AS t
	  JOIN tasker.named_tasks AS nt ON nt.named_task_uuid = t.named_task_uuid
	  JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
	 WHERE t.task_uuid = ANY ($1)
	 ORDER BY t.task_uuid
	   FOR UPDATE OF t`
	taskStatesSQL = `SELECT q.id, (SELECT tt.to_state FROM tasker.task_transitions AS tt
	                     WHERE tt.task_uuid = q.id AND tt.most_recent)
	  FROM unnest($1::uuid[]) AS q(id)`
	lockStepsSQL = `SELECT ws.workflow_step_uuid, ws.task_uuid, ws.named_step_uuid,
	       (SELECT st.to_state FROM tasker.workflow_step_transitions AS st
	         WHERE st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent),
	       ws.results -> 'metadata', ws.results -> 'orchestration_metadata' -> 'headers',
	       ws.attempts, ws.max_attempts, ws.retryable
	  FROM tasker.workflow_steps AS ws
	 WHERE ws.workflow_step_uuid = ANY ($1)
	 ORDER BY ws.workflow_step_uuid
	   FOR UPDATE OF ws`
)

// queueLockTasks adds to b the lock of tasks (in uuid order; with skipLocked, tasks another
// transaction holds are left out) and, in a statement of its own, the read of their
// states. After the batch runs, locked holds a taskRef per task locked.
func queueLockTasks(b *pgx.Batch, ids []uuid.UUID, skipLocked bool, locked map[uuid.UUID]*taskRef) {
	sql := lockTasksSQL
	if skipLocked {
		sql += " SKIP LOCKED"
	}
	b.Queue(sql, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			t := &taskRef{}
			if err := rows.Scan(&t.uuid, &t.correlationID, &t.namespace, &t.traceContext, &t.namedTask); err != nil {
				return err
			}
			locked[t.uuid] = t
		}
		return rows.Err()
	})
	b.Queue(taskStatesSQL, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id uuid.UUID
			var state *string
			if err := rows.Scan(&id, &state); err != nil {
				return err
			}
			if t := locked[id]; t != nil && state != nil {
				t.state = lifecycle.TaskState(*state)
			}
		}
		return rows.Err()
	})
}

// loadBatch archives the batch's messages, then locks the tasks and steps of those it
// archived and reads their states: two round trips. Only what this transaction archived
// is locked: every orchestrator hears every result's notification, and one that lost the
// race for a message must not queue behind the winner's locks for nothing.
func (o *Orchestrator) loadBatch(ctx context.Context, tx pgx.Tx, items []*resultItem) (map[uuid.UUID]*taskRef, map[uuid.UUID]*stepRow, error) {
	ids := make([]int64, 0, len(items))
	for _, it := range items {
		ids = append(ids, it.job.MsgID)
	}
	archived := map[int64]bool{}
	b := &pgx.Batch{}
	if err := messaging.ArchiveBatch(b, messaging.QueueStepResults, ids, archived); err != nil {
		return nil, nil, err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("archive %d results: %w", len(items), err)
	}
	// A message twice in the batch (its notification and a poll) was archived once: only
	// its first listing consumed it.
	var taskIDs, stepIDs []uuid.UUID
	for _, it := range items {
		it.archived = archived[it.job.MsgID]
		delete(archived, it.job.MsgID)
		if it.archived && it.decodeErr == nil {
			taskIDs, stepIDs = append(taskIDs, it.msg.TaskUUID), append(stepIDs, it.msg.StepUUID)
		}
	}
	tasks := map[uuid.UUID]*taskRef{}
	steps := map[uuid.UUID]*stepRow{}
	if len(taskIDs) == 0 {
		return tasks, steps, nil
	}
	b = &pgx.Batch{}
	queueLockTasks(b, taskIDs, false, tasks)
	b.Queue(lockStepsSQL, stepIDs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id uuid.UUID
			var state *string
			r := &stepRow{}
			if err := rows.Scan(&id, &r.task, &r.namedStep, &state, &r.metadata, &r.headers, &r.attempts, &r.maxAttempts, &r.retryable); err != nil {
				return err
			}
			if state == nil {
				continue // a step with no audit row: treated as unknown
			}
			r.state = lifecycle.StepState(*state)
			steps[id] = r
		}
		return rows.Err()
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("load %d results: %w", len(items), err)
	}
	return tasks, steps, nil
}

// classify decides each archived result's step move. It returns the moves and, once per
// task, the tasks to plan, each with the span of its last result in the batch.
func (o *Orchestrator) classify(items []*resultItem, tasks map[uuid.UUID]*taskRef, steps map[uuid.UUID]*stepRow) (
	[]lifecycle.StepFinalization, []planned) {
	var finals []lifecycle.StepFinalization
	var touched []planned
	at := map[*taskRef]int{} // the task's place in touched
	seen := map[uuid.UUID]bool{}
	for _, it := range items {
		if !it.archived {
			continue // someone else processed it
		}
		if it.decodeErr != nil {
			it.poison = true
			o.log.Warn("archived poison result message", "msg_id", it.job.MsgID, "error", it.decodeErr)
			continue
		}
		t, st := tasks[it.msg.TaskUUID], steps[it.msg.StepUUID]
		if t == nil || st == nil || st.task != t.uuid {
			it.poison = true
			o.log.Warn("archived result for an unknown task or step", "msg_id", it.job.MsgID,
				"task_uuid", it.msg.TaskUUID, "step_uuid", it.msg.StepUUID)
			continue
		}
		if seen[it.msg.StepUUID] {
			continue // a second message for the same step in this batch: a duplicate
		}
		f, resultType, ok := o.stepMove(it.msg.StepUUID, st, t)
		if !ok {
			continue // already finalized: a duplicate or late message; consuming it is all
		}
		seen[it.msg.StepUUID] = true
		it.resultType, it.task = resultType, t
		finals = append(finals, f)
		i, ok := at[t]
		if !ok {
			i, at[t] = len(touched), len(touched)
			touched = append(touched, planned{task: t})
		}
		touched[i].ctx, touched[i].cause = it.ctx, it.msg.StepUUID
	}
	return finals, touched
}

// stepResult is the part of a worker's StepExecutionResult metadata orchestration reads.
type stepResult struct {
	Retryable bool   `json:"retryable"`
	ErrorType string `json:"error_type"`
}

// stepMove is the move a result asks of its step, and the result type it counts as; ok
// is false when the step already left the state a result finds it in.
func (o *Orchestrator) stepMove(step uuid.UUID, st *stepRow, t *taskRef) (lifecycle.StepFinalization, string, bool) {
	switch st.state {
	case lifecycle.StepEnqueuedForOrchestration:
		return lifecycle.StepFinalization{Step: step, From: st.state, To: lifecycle.StepComplete, Processed: true,
			Metadata: map[string]any{"processor_uuid": o.cfg.ProcessorUUID}}, "success", true
	case lifecycle.StepEnqueuedAsErrorForOrchestration:
		var r stepResult
		_ = json.Unmarshal(st.metadata, &r)
		resultType := "error"
		if r.ErrorType == "Timeout" {
			resultType = "timeout"
		}
		// A settled task (finished, or blocked by a failure) runs nothing more: its failed
		// step ends in error.
		retry := st.retryable && r.Retryable && st.attempts < st.maxAttempts && !t.state.Settled()
		var requested *time.Duration
		if d, ok := lifecycle.RetryAfter(st.headers, time.Now()); ok {
			requested = &d
		}
		return o.failStep(step, st.state, retry, st.attempts, requested), resultType, true
	default:
		return lifecycle.StepFinalization{}, "", false
	}
}
