package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
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
	namedTask     uuid.UUID

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
		final := t.state
		if final == lifecycle.TaskBlockedByFailures {
			final = lifecycle.TaskError // the task failed: blocked is how it waits for an operator
		}
		in.TaskFinalized(ctx, corr, string(final), t.finalTook)
	}
}

// hotTx begins the orchestration transactions (result batches, task creation, retries and
// recovery, cancellations and manual step actions: every transaction that locks tasks, so
// that the lock reads' cached plans are all made under these settings) with their statements on generic plans, in the BEGIN's own round trip. Their
// reads take arrays of keys, and for those the planner prefers a custom plan at every
// call: it planned a result batch's three lock reads anew each time, 0.15-0.23 ms of
// planning to 0.03 ms of execution for the task lock. A generic plan is made once per
// connection, maybe while the tables are nearly empty, and then kept; so, as in the
// hot-path functions, no scan, hash or merge join may enter it: it is the index probes
// it must be when the tables are large (without this, the step lock read went from 0.14 to
// 0.88 ms per task). JIT is off too, as in those functions: a plan that keeps a disabled
// node carries its penalty cost, which is above jit_above_cost, and would be compiled at
// every call.
var hotTx = pgx.TxOptions{BeginQuery: "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; " +
	"SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off"}

// lockTask takes the task row for the rest of tx: every orchestration decision about a
// task happens under this lock, so two orchestrators never decide for one task at once.
// With skipLocked, a task another transaction holds is skipped (ok=false, err=nil).
func lockTask(ctx context.Context, tx pgx.Tx, task uuid.UUID, skipLocked bool) (*taskRef, bool, error) {
	tasks := map[uuid.UUID]*taskRef{}
	b := &pgx.Batch{}
	queueLockTasks(b, []uuid.UUID{task}, skipLocked, tasks)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, false, fmt.Errorf("lock task %s: %w", task, err)
	}
	ref := tasks[task]
	return ref, ref != nil, nil
}

// snapshot is what a plan is decided from: the task's execution context, and the trace
// contexts that enqueueing its ready steps links to.
type snapshot struct {
	status       string
	waitingRetry int
	ready        []uuid.UUID
	readyNames   []string // the ready steps' names, in the order of ready
	links        []byte   // JSON array of stepLink, NULL when there is nothing to link to
}

// snapshotSQL reads the snapshots of many tasks: their execution contexts, the names of
// their ready steps, and the trace contexts enqueueing them links to (stepLink).
const snapshotSQL = `SELECT task_uuid, execution_status, waiting_retry_steps, ready_step_uuids, ready_step_names, links
	  FROM tasker.task_snapshots($1)`

// queueSnapshots adds the read of tasks' snapshots to b; after the batch runs, snaps
// holds one per task.
func queueSnapshots(b *pgx.Batch, tasks []uuid.UUID, snaps map[uuid.UUID]*snapshot) {
	b.Queue(snapshotSQL, tasks).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id uuid.UUID
			snap := &snapshot{}
			if err := rows.Scan(&id, &snap.status, &snap.waitingRetry, &snap.ready, &snap.readyNames, &snap.links); err != nil {
				return err
			}
			snaps[id] = snap
		}
		return rows.Err()
	})
}

// advance reads a locked task's execution context and applies its plan.
func (o *Orchestrator) advance(ctx context.Context, tx pgx.Tx, t *taskRef, trigger string) error {
	snaps := map[uuid.UUID]*snapshot{}
	b := &pgx.Batch{}
	queueSnapshots(b, []uuid.UUID{t.uuid}, snaps)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("execution context of task %s: %w", t.uuid, err)
	}
	snap := snaps[t.uuid]
	if snap == nil {
		return fmt.Errorf("execution context of task %s: no row", t.uuid)
	}
	return o.applyPlans(ctx, tx, []planned{{task: t, snap: snap, ctx: ctx}}, trigger)
}

// planned is a locked task with the snapshot its plan is decided from, and the context
// of the span that decides it: the step messages carry that span's trace context.
type planned struct {
	task  *taskRef
	snap  *snapshot
	ctx   context.Context
	cause uuid.UUID // the step whose result led to the plan, if one did
}

// applyPlans asks lifecycle.Plan for each task's moves and applies them all, with the
// enqueue of ready steps where a plan says, in one call (lifecycle.ApplyPlans), each
// move under compare-and-set. The step messages carry the trace context of the deciding
// span, which links to the spans of the enqueued steps' other parents and earlier
// attempts. On success each taskRef holds what happened to it, for recordCommitted.
func (o *Orchestrator) applyPlans(ctx context.Context, tx pgx.Tx, ps []planned, trigger string) error {
	var plans []*lifecycle.TaskPlan
	var applied []planned
	for _, p := range ps {
		plan, err := o.planFor(p, trigger)
		if err != nil {
			return err
		}
		if plan != nil {
			plans, applied = append(plans, plan), append(applied, p)
		}
	}
	if len(plans) == 0 {
		return nil
	}
	start := time.Now()
	if _, err := lifecycle.ApplyPlans(ctx, tx, o.cfg.ProcessorUUID, plans); err != nil {
		return err
	}
	took := time.Since(start)
	for i, p := range applied {
		t, end := p.task, plans[i].End()
		if len(plans[i].Ready) > 0 {
			t.enqueued, t.sendTook = append(t.enqueued, p.snap.readyNames...), took
			linkEnqueued(trace.SpanFromContext(p.ctx), p.snap, p.cause)
		}
		t.state = end
		if end.Settled() {
			t.finalized, t.finalTook = true, took
			o.log.Info("task finalized", "correlation_id", t.correlationID, "task_uuid", t.uuid, "final_state", end)
		}
	}
	return nil
}

// planFor decides one task's plan from its snapshot; nil when there is nothing to do.
func (o *Orchestrator) planFor(p planned, trigger string) (*lifecycle.TaskPlan, error) {
	t, snap := p.task, p.snap
	moves := lifecycle.Plan(lifecycle.Snapshot{
		State: t.state, Status: lifecycle.ExecutionStatus(snap.status), WaitingRetry: snap.waitingRetry,
	})
	if len(moves) == 0 {
		return nil, nil
	}
	plan := &lifecycle.TaskPlan{Task: t.uuid, From: t.state, Moves: moves,
		Metadata:         map[string]any{"trigger": trigger, "execution_status": snap.status},
		NoneWaitingRetry: snap.waitingRetry == 0}
	if !slices.ContainsFunc(moves, func(m lifecycle.Move) bool { return m.EnqueueFirst }) {
		return plan, nil
	}
	plan.Queue, plan.Headers = workflow.WorkerQueue(t.namespace), messaging.Headers(p.ctx)
	plan.Ready = snap.ready
	for _, step := range snap.ready {
		msg, err := json.Marshal(messaging.StepMessage{TaskUUID: t.uuid, StepUUID: step, CorrelationID: t.correlationID})
		if err != nil {
			return nil, err
		}
		plan.Messages = append(plan.Messages, msg)
	}
	return plan, nil
}

// failStep is the move of a failed step to waiting_for_retry with a backoff, or to error
// when it may not run again. requested is the delay the handler asked for (Retry-After),
// if it did: it replaces the computed backoff.
func (o *Orchestrator) failStep(step uuid.UUID, from lifecycle.StepState, retry bool, attempts int,
	requested *time.Duration) lifecycle.StepFinalization {
	meta := map[string]any{"processor_uuid": o.cfg.ProcessorUUID, "attempts": attempts}
	if !retry {
		return lifecycle.StepFinalization{Step: step, From: from, To: lifecycle.StepError, Metadata: meta}
	}
	delay := o.cfg.Backoff.Delay(attempts, nil)
	if requested != nil {
		// The handler said when to come back (Retry-After): that, capped, without jitter.
		delay = o.cfg.Backoff.Requested(*requested)
		meta["retry_after_seconds"] = requested.Seconds()
	}
	if from == lifecycle.StepInProgress {
		// A lost worker is not the step's fault: try again at once.
		delay = 0
	}
	secs := delay.Seconds()
	meta["backoff_seconds"] = secs
	return lifecycle.StepFinalization{Step: step, From: from, To: lifecycle.StepWaitingForRetry, Metadata: meta, Backoff: &secs}
}

// retryDue advances tasks that have a step whose retry backoff has run out.
func (o *Orchestrator) retryDue(ctx context.Context) (int, error) {
	return o.forEachTask(ctx, "retry_due_steps", `
		SELECT ws.task_uuid
		  FROM tasker.unfinished_task_states AS u
		  JOIN tasker.workflow_steps AS ws ON ws.task_uuid = u.task_uuid
		 WHERE u.state <> 'blocked_by_failures' -- unfinished: never a terminal state
		   AND NOT ws.in_process
		   AND ws.last_attempted_at + make_interval(secs => coalesce(ws.backoff_request_seconds, 0)) <= clock_timestamp()
		   AND (SELECT st.to_state FROM tasker.workflow_step_transitions AS st
		         WHERE st.workflow_step_uuid = ws.workflow_step_uuid
		         ORDER BY st.sort_key DESC LIMIT 1) = 'waiting_for_retry'
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
		err := pgx.BeginTxFunc(sctx, o.pool, hotTx, func(tx pgx.Tx) error {
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
		SELECT DISTINCT ws.task_uuid
		  FROM tasker.tasks AS t
		  JOIN tasker.workflow_steps AS ws ON ws.task_uuid = t.task_uuid
		 WHERE t.completed_at IS NULL AND ws.in_process AND ws.claim_expires_at < now()
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
		fs := make([]lifecycle.StepFinalization, 0, len(orphans))
		for _, x := range orphans {
			worker := ""
			if x.worker != nil {
				worker = *x.worker
			}
			o.log.Warn("recovering orphaned step: its claim lease expired", "correlation_id", t.correlationID,
				"task_uuid", t.uuid, "step_uuid", x.id, "worker_id", worker, "attempts", x.attempts)
			results, err := json.Marshal(map[string]any{"success": false, "status": "failed",
				"error":    map[string]any{"message": "claim lease expired before the worker reported", "error_type": "WorkerLost", "retryable": true},
				"metadata": map[string]any{"retryable": true, "worker_id": worker}})
			if err != nil {
				return 0, err
			}
			f := o.failStep(x.id, lifecycle.StepInProgress, x.retryable && x.attempts < x.max && !t.state.Settled(), x.attempts, nil)
			f.Release, f.Results = true, results
			fs = append(fs, f)
		}
		if len(fs) > 0 {
			var moved []uuid.UUID
			b := &pgx.Batch{}
			if err := lifecycle.QueueFinalizeSteps(b, fs, &moved); err != nil {
				return 0, err
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return 0, err
			}
			if len(moved) != len(fs) {
				return 0, fmt.Errorf("orphans of task %s: %d of %d moved: %w", t.uuid, len(moved), len(fs), lifecycle.ErrStaleState)
			}
		}
		if len(orphans) == 0 || t.state.Settled() {
			return len(orphans), nil
		}
		return len(orphans), o.advance(ctx, tx, t, "orphan_recovered")
	})
}

// maintenance runs the fallback loops every PollInterval until ctx ends (the intake
// polls the results queue on the same pace).
func (o *Orchestrator) maintenance(ctx context.Context) {
	tick := time.NewTicker(o.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
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
		SELECT u.task_uuid FROM tasker.unfinished_task_states AS u
		 WHERE (u.state = 'waiting_for_dependencies' AND u.entered_at < now() - make_interval(secs => $2))
		    OR (u.state = 'waiting_for_retry' AND u.entered_at < now() - make_interval(secs => $3))
		    OR (u.state = 'steps_in_process' AND u.entered_at < now() - make_interval(secs => $4))
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
			if err := lifecycle.FinishTask(ctx, tx, t.uuid); err != nil {
				return 0, err
			}
			o.log.Warn("stale task moved to the DLQ and to error", "correlation_id", t.correlationID, "task_uuid", t.uuid,
				"original_state", t.state)
			t.finalized, t.state, t.finalTook = true, lifecycle.TaskError, time.Since(started)
			return 1, nil
		})
}
