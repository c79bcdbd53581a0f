package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	pgmq "github.com/craigpastro/pgmq-go"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// taskRef is a task locked for the current transaction, and what the transaction did to
// it, which becomes metrics once (and only if) the transaction commits.
type taskRef struct {
	uuid          uuid.UUID
	correlationID uuid.UUID
	namespace     string
	state         lifecycle.TaskState
	traceContext  []byte // the create_task span's context (message headers); nil for older tasks

	enqueued  []string      // names of the steps sent to the worker queue
	sendTook  time.Duration // the statement that sent them
	finalized bool          // the task reached a terminal state
	finalTook time.Duration // the finalization that got it there
}

// recordCommitted turns a committed transaction's effects on t into metrics.
func (o *Orchestrator) recordCommitted(ctx context.Context, t *taskRef) {
	in, corr := o.tel.Instruments, t.correlationID.String()
	if len(t.enqueued) > 0 {
		in.StepsEnqueued(ctx, corr, t.namespace, t.enqueued)
		in.MessagesSent(ctx, workflow.WorkerQueue(t.namespace), len(t.enqueued), t.sendTook)
	}
	if t.finalized {
		in.TaskFinalized(ctx, corr, string(t.state), t.finalTook)
	}
}

// lockTaskSQL takes the task row. The task's state is read by a separate statement
// (currentStateSQL) afterwards: under READ COMMITTED a statement that waited for the lock
// still reads other tables as of its start, which would be the state from before the
// lock holder's change.
const lockTaskSQL = `SELECT t.task_uuid, t.correlation_id, tn.name, t.trace_context
	  FROM tasker.tasks AS t
	  JOIN tasker.named_tasks AS nt ON nt.named_task_uuid = t.named_task_uuid
	  JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
	 WHERE t.task_uuid = $1
	   FOR UPDATE OF t`

const currentStateSQL = `SELECT tasker.get_current_task_state($1)`

// lockTask takes the task row for the rest of tx: every orchestration decision about a
// task happens under this lock, so two orchestrators never decide for one task at once.
// With skipLocked, a task another transaction holds is skipped (ok=false, err=nil).
func lockTask(ctx context.Context, tx pgx.Tx, task uuid.UUID, skipLocked bool) (*taskRef, bool, error) {
	sql := lockTaskSQL
	if skipLocked {
		sql += " SKIP LOCKED"
	}
	var ref taskRef
	err := tx.QueryRow(ctx, sql, task).Scan(&ref.uuid, &ref.correlationID, &ref.namespace, &ref.traceContext)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("lock task %s: %w", task, err)
	}
	var state string
	if err := tx.QueryRow(ctx, currentStateSQL, task).Scan(&state); err != nil {
		return nil, false, fmt.Errorf("state of task %s: %w", task, err)
	}
	ref.state = lifecycle.TaskState(state)
	return &ref, true, nil
}

// snapshot is what a plan is decided from: the task's execution context, and the trace
// contexts that enqueueing its ready steps links to.
type snapshot struct {
	status       string
	waitingRetry int
	ready        []uuid.UUID
	links        []byte    // JSON array of stepLink, NULL when there is nothing to link to
	cause        uuid.UUID // the step whose result led to this plan: its span is the parent, not a link
}

// snapshotSQL reads the execution context and, in the same statement, the trace contexts
// stored on the ready steps' parents (the spans a step with several parents links to) and
// on the ready steps themselves (an earlier attempt's, which a retry links to). The links
// read the ready steps through uncorrelated subqueries on c, each evaluated once: the
// planner takes the function for 1000 rows, and a subquery per row would cost enough to
// make PostgreSQL JIT-compile the statement on every result.
const snapshotSQL = `WITH c AS (SELECT execution_status, waiting_retry_steps, ready_step_uuids
	                 FROM tasker.get_task_execution_context($1)),
	     l AS (SELECT e.to_step_uuid AS step, p.workflow_step_uuid AS src, '` + linkDependency + `' AS kind, p.trace_context AS tc
	             FROM tasker.workflow_step_edges AS e
	             JOIN tasker.workflow_steps AS p ON p.workflow_step_uuid = e.from_step_uuid
	            WHERE e.to_step_uuid = ANY ((SELECT ready_step_uuids FROM c)::uuid[]) AND p.trace_context IS NOT NULL
	           UNION ALL
	           SELECT ws.workflow_step_uuid, ws.workflow_step_uuid, '` + linkPreviousAttempt + `', ws.trace_context
	             FROM tasker.workflow_steps AS ws
	            WHERE ws.workflow_step_uuid = ANY ((SELECT ready_step_uuids FROM c)::uuid[]) AND ws.trace_context IS NOT NULL)
	SELECT c.execution_status, c.waiting_retry_steps, c.ready_step_uuids,
	       (SELECT jsonb_agg(jsonb_build_object('step', l.step, 'from', l.src, 'kind', l.kind, 'trace', l.tc)) FROM l)
	  FROM c`

func (snap *snapshot) scan(row pgx.Row) error {
	return row.Scan(&snap.status, &snap.waitingRetry, &snap.ready, &snap.links)
}

func queueSnapshot(b *pgx.Batch, task uuid.UUID, snap *snapshot) {
	b.Queue(snapshotSQL, task).QueryRow(snap.scan)
}

// advance reads a locked task's execution context and applies its plan.
func (o *Orchestrator) advance(ctx context.Context, tx pgx.Tx, t *taskRef, trigger string) error {
	var snap snapshot
	if err := snap.scan(tx.QueryRow(ctx, snapshotSQL, t.uuid)); err != nil {
		return fmt.Errorf("execution context of task %s: %w", t.uuid, err)
	}
	return o.applyPlan(ctx, tx, t, snap, trigger)
}

// enqueueEdges are the step edges the enqueue in tasker.apply_task_plan takes.
var enqueueEdges = [][2]lifecycle.StepState{
	{lifecycle.StepWaitingForRetry, lifecycle.StepPending},
	{lifecycle.StepPending, lifecycle.StepEnqueued},
}

// applyPlan asks lifecycle.Plan for the task's moves, checks every edge against the
// tables, and applies them (with the enqueue of ready steps where the plan says) in one
// call to tasker.apply_task_plan, each move under compare-and-set. The step messages
// carry the trace context of ctx's span, the enqueuing span, which links to the spans of
// the enqueued steps' other parents and earlier attempts.
func (o *Orchestrator) applyPlan(ctx context.Context, tx pgx.Tx, t *taskRef, snap snapshot, trigger string) error {
	plan := lifecycle.Plan(lifecycle.Snapshot{
		State: t.state, Status: lifecycle.ExecutionStatus(snap.status), WaitingRetry: snap.waitingRetry,
	})
	if len(plan) == 0 {
		return nil
	}
	var before, after []string
	enqueue := false
	cur := t.state
	for _, m := range plan {
		if err := lifecycle.CheckTask(cur, m.To); err != nil {
			return err
		}
		if m.EnqueueFirst {
			enqueue = true
			for _, e := range enqueueEdges {
				if err := lifecycle.CheckStep(e[0], e[1]); err != nil {
					return err
				}
			}
		}
		if enqueue {
			after = append(after, string(m.To))
		} else {
			before = append(before, string(m.To))
		}
		cur = m.To
	}
	meta, err := json.Marshal(map[string]any{"trigger": trigger, "execution_status": snap.status})
	if err != nil {
		return err
	}
	var enqueued *[]string
	start := time.Now()
	if err := tx.QueryRow(ctx, `SELECT tasker.apply_task_plan($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		t.uuid, string(t.state), before, enqueue, after, workflow.WorkerQueue(t.namespace), t.correlationID,
		o.cfg.ProcessorUUID, meta, cur.Terminal(), snap.ready, messaging.Headers(ctx)).Scan(&enqueued); err != nil {
		return fmt.Errorf("apply plan to task %s: %w", t.uuid, err)
	}
	if enqueued == nil {
		return fmt.Errorf("task %s: plan from %s: %w", t.uuid, t.state, lifecycle.ErrStaleState)
	}
	took := time.Since(start)
	if len(*enqueued) > 0 {
		t.enqueued, t.sendTook = append(t.enqueued, *enqueued...), took
		linkEnqueued(trace.SpanFromContext(ctx), snap)
	}
	t.state = cur
	if cur.Terminal() {
		t.finalized, t.finalTook = true, took
		o.log.Info("task finalized", "correlation_id", t.correlationID, "task_uuid", t.uuid, "final_state", cur)
	}
	return nil
}

// notifyFinalized tells every orchestrator, when tx commits, that a task reached a
// terminal state, so API clients waiting on it return at once.
func notifyFinalized(ctx context.Context, tx pgx.Tx, task uuid.UUID) error {
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", messaging.TaskFinalizedChannel, task.String()); err != nil {
		return fmt.Errorf("notify finalization of task %s: %w", task, err)
	}
	return nil
}

// stepResult is the part of a worker's StepExecutionResult that orchestration reads.
type stepResult struct {
	Success  bool `json:"success"`
	Metadata struct {
		Retryable bool   `json:"retryable"`
		ErrorType string `json:"error_type"`
	} `json:"metadata"`
}

// processResult finalizes one step from one orchestration_step_results message and
// advances its task, all in one transaction. Archiving the message is the transaction's
// first act: only one processor can archive it, so a duplicate delivery changes nothing.
// Statements that do not depend on each other share a round trip (pgx batches). Its
// span continues the trace of the worker span whose context the message's headers carry.
func (o *Orchestrator) processResult(ctx context.Context, job resultJob) error {
	start := time.Now()
	msg, decodeErr := messaging.DecodeStepMessage(job.body)
	ctx = messaging.ContextWithHeaders(ctx, job.headers)
	ctx, span := o.tel.Tracer.Start(ctx, "process_step_result", trace.WithAttributes(
		attribute.String("correlation_id", msg.CorrelationID.String()), attribute.String("task_uuid", msg.TaskUUID.String()),
		attribute.String("step_uuid", msg.StepUUID.String()), attribute.String("claim_method", job.method)))
	defer span.End()
	var (
		t          taskRef
		archived   bool
		poison     bool
		resultType string
	)
	err := pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
		if decodeErr != nil {
			var err error
			archived, err = pgmq.Archive(ctx, tx, messaging.QueueStepResults, job.msgID)
			if err == nil && archived {
				o.log.Warn("archived poison result message", "msg_id", job.msgID, "error", decodeErr)
			}
			return err
		}
		var (
			taskFound, stepFound  bool
			taskState, stepState  string
			results               []byte
			attempts, maxAttempts int
			retryable             bool
		)
		b := &pgx.Batch{}
		b.Queue("SELECT pgmq.archive($1, $2::bigint)", messaging.QueueStepResults, job.msgID).QueryRow(func(row pgx.Row) error {
			return row.Scan(&archived)
		})
		b.Queue(lockTaskSQL, msg.TaskUUID).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&t.uuid, &t.correlationID, &t.namespace, &t.traceContext)
			taskFound = err == nil
			return ignoreNoRows(err)
		})
		// A statement of its own, so it sees the state as of after the lock was granted.
		b.Queue(currentStateSQL, msg.TaskUUID).QueryRow(func(row pgx.Row) error {
			var s *string
			err := row.Scan(&s)
			if s != nil {
				taskState = *s
			}
			return err
		})
		b.Queue(`SELECT st.to_state, ws.results, ws.attempts, ws.max_attempts, ws.retryable
			  FROM tasker.workflow_steps AS ws
			  JOIN tasker.workflow_step_transitions AS st ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
			 WHERE ws.workflow_step_uuid = $1 AND ws.task_uuid = $2
			   FOR UPDATE OF ws`, msg.StepUUID, msg.TaskUUID).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&stepState, &results, &attempts, &maxAttempts, &retryable)
			stepFound = err == nil
			return ignoreNoRows(err)
		})
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("load result %d: %w", job.msgID, err)
		}
		switch {
		case !archived:
			return nil // someone else processed it
		case !taskFound || !stepFound:
			poison = true
			o.log.Warn("archived result for an unknown task or step", "msg_id", job.msgID,
				"task_uuid", msg.TaskUUID, "step_uuid", msg.StepUUID)
			return nil
		}
		t.state = lifecycle.TaskState(taskState)

		b = &pgx.Batch{}
		var moved bool
		meta := map[string]any{"processor_uuid": o.cfg.ProcessorUUID}
		switch from := lifecycle.StepState(stepState); from {
		case lifecycle.StepEnqueuedForOrchestration:
			resultType = "success"
			if err := lifecycle.QueueStepTransition(b, msg.StepUUID, from, lifecycle.StepComplete, meta, &moved); err != nil {
				return err
			}
			b.Queue(`UPDATE tasker.workflow_steps SET processed = true, processed_at = now(), updated_at = now()
			          WHERE workflow_step_uuid = $1`, msg.StepUUID)
		case lifecycle.StepEnqueuedAsErrorForOrchestration:
			var r stepResult
			_ = json.Unmarshal(results, &r)
			resultType = "error"
			if r.Metadata.ErrorType == "Timeout" {
				resultType = "timeout"
			}
			// A finished task runs nothing more: its failed step ends in error.
			retry := retryable && r.Metadata.Retryable && attempts < maxAttempts && !t.state.Terminal()
			if err := o.queueFailStep(b, msg.StepUUID, from, retry, attempts, &moved); err != nil {
				return err
			}
		default:
			// Already finalized: a duplicate or late message. Consuming it is all there is to do.
			return nil
		}
		snap := snapshot{cause: msg.StepUUID}
		queueSnapshot(b, t.uuid, &snap)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("finalize step %s: %w", msg.StepUUID, err)
		}
		if !moved {
			return fmt.Errorf("step %s left %s concurrently: %w", msg.StepUUID, stepState, lifecycle.ErrStaleState)
		}
		if t.state.Terminal() {
			return nil
		}
		return o.applyPlan(ctx, tx, &t, snap, "step_result")
	})
	if err != nil {
		span.RecordError(err)
		o.tel.Instruments.QueueError(ctx, messaging.QueueStepResults, "process")
		return err
	}
	in := o.tel.Instruments
	// A message someone else archived first is a duplicate: the span says so.
	span.SetAttributes(attribute.Bool("archived", archived))
	if archived {
		in.MessageReceived(ctx, messaging.QueueStepResults, job.method, job.readCount > 1)
		op := "archive"
		if decodeErr != nil || poison {
			op = telemetry.OpArchivePoison
		}
		in.MessagesDeleted(ctx, messaging.QueueStepResults, op, 1)
	}
	if resultType != "" {
		in.StepResultProcessed(ctx, t.correlationID.String(), resultType, time.Since(start))
		o.recordCommitted(ctx, &t)
	}
	return nil
}

func ignoreNoRows(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	return err
}

// queueFailStep adds to b the move of a failed step to waiting_for_retry with a backoff,
// or to error when it may not run again.
func (o *Orchestrator) queueFailStep(b *pgx.Batch, step uuid.UUID, from lifecycle.StepState, retry bool, attempts int, moved *bool) error {
	meta := map[string]any{"processor_uuid": o.cfg.ProcessorUUID, "attempts": attempts}
	if !retry {
		return lifecycle.QueueStepTransition(b, step, from, lifecycle.StepError, meta, moved)
	}
	delay := o.cfg.Backoff.Delay(attempts, nil)
	if from == lifecycle.StepInProgress {
		// A lost worker is not the step's fault: try again at once.
		delay = 0
	}
	meta["backoff_seconds"] = delay.Seconds()
	if err := lifecycle.QueueStepTransition(b, step, from, lifecycle.StepWaitingForRetry, meta, moved); err != nil {
		return err
	}
	b.Queue(`UPDATE tasker.workflow_steps
		   SET backoff_request_seconds = $2, last_attempted_at = now(), updated_at = now()
		 WHERE workflow_step_uuid = $1`, step, delay.Seconds())
	return nil
}

// retryDue advances tasks that have a step whose retry backoff has run out.
func (o *Orchestrator) retryDue(ctx context.Context) (int, error) {
	return o.forEachTask(ctx, "retry_due_steps", `
		SELECT ws.task_uuid
		  FROM tasker.workflow_step_transitions AS st
		  JOIN tasker.workflow_steps AS ws ON ws.workflow_step_uuid = st.workflow_step_uuid
		  JOIN tasker.task_transitions AS tt ON tt.task_uuid = ws.task_uuid AND tt.most_recent
		 WHERE st.most_recent AND st.to_state = 'waiting_for_retry'
		   AND tt.to_state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
		   AND ws.last_attempted_at + make_interval(secs => coalesce(ws.backoff_request_seconds, 0)) <= clock_timestamp()
		 GROUP BY ws.task_uuid
		 ORDER BY min(ws.last_attempted_at + make_interval(secs => coalesce(ws.backoff_request_seconds, 0)))
		 LIMIT $1`, nil, func(ctx context.Context, tx pgx.Tx, t *taskRef) (int, error) {
		if t.state.Terminal() {
			return 0, nil
		}
		return 1, o.advance(ctx, tx, t, "retry_backoff_elapsed")
	})
}

// forEachTask runs fn, in a transaction and a span (spanName) of its own, for each task
// the query lists (it takes the batch size as $1, then args as $2…), with the task locked. Tasks another transaction holds are
// skipped: whoever holds them is already advancing them. It returns the sum of fn's counts.
// fn gets the span's context, so whatever it enqueues carries the maintenance span's trace
// context; the span links to the task's own trace.
func (o *Orchestrator) forEachTask(ctx context.Context, spanName, query string, args []any,
	fn func(ctx context.Context, tx pgx.Tx, t *taskRef) (int, error)) (int, error) {
	rows, err := o.pool.Query(ctx, query, append([]any{maintenanceBatchSize}, args...)...)
	if err != nil {
		return 0, err
	}
	tasks, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return 0, err
	}
	total := 0
	for _, id := range tasks {
		var locked *taskRef
		n := 0
		sctx, span := o.tel.Tracer.Start(ctx, spanName, trace.WithAttributes(attribute.String("task_uuid", id.String())))
		err := pgx.BeginFunc(sctx, o.pool, func(tx pgx.Tx) error {
			t, ok, err := lockTask(sctx, tx, id, true)
			if err != nil || !ok {
				return err
			}
			span.SetAttributes(attribute.String("correlation_id", t.correlationID.String()))
			linkTask(span, t)
			locked = t
			n, err = fn(sctx, tx, t)
			return err
		})
		if err != nil {
			span.RecordError(err)
		}
		span.End()
		if err != nil {
			// One failing task must not starve the rest of the batch: note it and go on.
			if ctx.Err() != nil {
				return total, ctx.Err()
			}
			o.log.Error("maintenance of a task failed", "task_uuid", id, "operation", spanName, "error", err)
			continue
		}
		total += n
		if locked != nil {
			o.recordCommitted(ctx, locked)
		}
	}
	return total, nil
}

// recoverOrphans finds steps whose claim lease ran out (their worker died or hung) and
// hands them back: to waiting_for_retry with no delay when attempts remain, else to error.
func (o *Orchestrator) recoverOrphans(ctx context.Context) (int, error) {
	return o.forEachTask(ctx, "recover_orphaned_steps", `
		SELECT DISTINCT task_uuid FROM tasker.workflow_steps
		 WHERE in_process AND claim_expires_at < now()
		 LIMIT $1`, nil, func(ctx context.Context, tx pgx.Tx, t *taskRef) (int, error) {
		rows, err := tx.Query(ctx, `
			SELECT ws.workflow_step_uuid, ws.attempts, ws.max_attempts, ws.retryable, ws.claimed_by
			  FROM tasker.workflow_steps AS ws
			  JOIN tasker.workflow_step_transitions AS st ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
			 WHERE ws.task_uuid = $1 AND ws.in_process AND ws.claim_expires_at < now() AND st.to_state = 'in_progress'
			   FOR UPDATE OF ws`, t.uuid)
		if err != nil {
			return 0, err
		}
		type orphan struct {
			id            uuid.UUID
			attempts, max int
			retryable     bool
			worker        *string
		}
		orphans, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (orphan, error) {
			var x orphan
			err := r.Scan(&x.id, &x.attempts, &x.max, &x.retryable, &x.worker)
			return x, err
		})
		if err != nil {
			return 0, err
		}
		for _, x := range orphans {
			worker := ""
			if x.worker != nil {
				worker = *x.worker
			}
			o.log.Warn("recovering orphaned step: its claim lease expired", "correlation_id", t.correlationID,
				"task_uuid", t.uuid, "step_uuid", x.id, "worker_id", worker, "attempts", x.attempts)
			b := &pgx.Batch{}
			b.Queue(`UPDATE tasker.workflow_steps
				   SET in_process = false, claimed_by = NULL, claim_expires_at = NULL, updated_at = now(),
				       results = jsonb_build_object('success', false, 'status', 'failed',
				           'error', jsonb_build_object('message', 'claim lease expired before the worker reported',
				                                       'error_type', 'WorkerLost', 'retryable', true),
				           'metadata', jsonb_build_object('retryable', true, 'worker_id', $2::text))
				 WHERE workflow_step_uuid = $1`, x.id, worker)
			var moved bool
			if err := o.queueFailStep(b, x.id, lifecycle.StepInProgress,
				x.retryable && x.attempts < x.max && !t.state.Terminal(), x.attempts, &moved); err != nil {
				return 0, err
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return 0, err
			}
			if !moved {
				return 0, fmt.Errorf("orphan %s: %w", x.id, lifecycle.ErrStaleState)
			}
		}
		if len(orphans) == 0 || t.state.Terminal() {
			return len(orphans), nil
		}
		return len(orphans), o.advance(ctx, tx, t, "orphan_recovered")
	})
}

// maintenance runs the fallback loops every PollInterval until ctx ends.
func (o *Orchestrator) maintenance(ctx context.Context) {
	tick := time.NewTicker(o.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		o.pollResults(ctx)
		// The task_readiness breaker stops the fallback loops from hammering a database
		// that keeps failing them; they resume when it half-opens.
		done, err := o.readiness.Allow()
		if err != nil {
			continue
		}
		_, rerr := o.retryDue(ctx)
		if rerr != nil && ctx.Err() == nil {
			o.log.Error("retry poller", "error", rerr)
		}
		n, oerr := o.recoverOrphans(ctx)
		if oerr != nil && ctx.Err() == nil {
			o.log.Error("orphan recovery", "error", oerr)
		} else if n > 0 {
			o.log.Info("recovered orphaned steps", "count", n)
		}
		stale, serr := o.expireStale(ctx)
		if serr != nil && ctx.Err() == nil {
			o.log.Error("staleness detector", "error", serr)
		} else if stale > 0 {
			o.log.Warn("moved stale tasks to the DLQ and to error", "count", stale)
		}
		done(ctx.Err() != nil || (rerr == nil && oerr == nil && serr == nil))
	}
}

// expireStale files tasks that sat too long in a waiting state in the DLQ (reason
// staleness_timeout, with a snapshot of the task) and moves them to error, one
// transaction per task.
func (o *Orchestrator) expireStale(ctx context.Context) (int, error) {
	st := o.cfg.Staleness
	return o.forEachTask(ctx, "expire_stale_task", `
		SELECT tt.task_uuid FROM tasker.task_transitions AS tt
		 WHERE tt.most_recent
		   AND ((tt.to_state = 'waiting_for_dependencies' AND tt.created_at < now() - make_interval(secs => $2))
		     OR (tt.to_state = 'waiting_for_retry' AND tt.created_at < now() - make_interval(secs => $3))
		     OR (tt.to_state = 'steps_in_process' AND tt.created_at < now() - make_interval(secs => $4)))
		 LIMIT $1`, []any{st.WaitingForDependencies.Seconds(), st.WaitingForRetry.Seconds(), st.StepsInProcess.Seconds()},
		func(ctx context.Context, tx pgx.Tx, t *taskRef) (int, error) {
			started := time.Now()
			switch t.state {
			case lifecycle.TaskWaitingForDependencies, lifecycle.TaskWaitingForRetry, lifecycle.TaskStepsInProcess:
			default:
				return 0, nil // it moved on since the query
			}
			if _, err := tx.Exec(ctx, `
			INSERT INTO tasker.tasks_dlq (task_uuid, original_state, dlq_reason, task_snapshot, metadata)
			SELECT t.task_uuid, $2, 'staleness_timeout', to_jsonb(t),
			       jsonb_build_object('processor_uuid', $3::uuid, 'detected_at', now())
			  FROM tasker.tasks AS t WHERE t.task_uuid = $1
			ON CONFLICT DO NOTHING`, t.uuid, string(t.state), o.cfg.ProcessorUUID); err != nil {
				return 0, err
			}
			if err := lifecycle.TransitionTask(ctx, tx, t.uuid, t.state, lifecycle.TaskError, o.cfg.ProcessorUUID,
				map[string]any{"trigger": "staleness_timeout", "dlq_reason": "staleness_timeout"}); err != nil {
				return 0, err
			}
			if _, err := tx.Exec(ctx, `UPDATE tasker.tasks SET completed_at = now(), updated_at = now() WHERE task_uuid = $1`, t.uuid); err != nil {
				return 0, err
			}
			if err := notifyFinalized(ctx, tx, t.uuid); err != nil {
				return 0, err
			}
			o.log.Warn("stale task moved to the DLQ and to error", "correlation_id", t.correlationID, "task_uuid", t.uuid,
				"original_state", t.state)
			t.finalized, t.state, t.finalTook = true, lifecycle.TaskError, time.Since(started)
			return 1, nil
		})
}
