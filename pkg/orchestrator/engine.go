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

	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// taskRef is a task locked for the current transaction.
type taskRef struct {
	uuid          uuid.UUID
	correlationID uuid.UUID
	namespace     string
	state         lifecycle.TaskState
}

// lockTask takes the task row for the rest of tx: every orchestration decision about a
// task happens under this lock, so two orchestrators never decide for one task at once.
// With skipLocked, a task another transaction holds is skipped (ok=false, err=nil).
func lockTask(ctx context.Context, tx pgx.Tx, task uuid.UUID, skipLocked bool) (*taskRef, bool, error) {
	sql := `SELECT t.task_uuid, t.correlation_id, tn.name, tt.to_state
	          FROM tasker.tasks AS t
	          JOIN tasker.named_tasks AS nt ON nt.named_task_uuid = t.named_task_uuid
	          JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
	          JOIN tasker.task_transitions AS tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
	         WHERE t.task_uuid = $1
	           FOR UPDATE OF t`
	if skipLocked {
		sql += " SKIP LOCKED"
	}
	var ref taskRef
	var state string
	err := tx.QueryRow(ctx, sql, task).Scan(&ref.uuid, &ref.correlationID, &ref.namespace, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("lock task %s: %w", task, err)
	}
	ref.state = lifecycle.TaskState(state)
	return &ref, true, nil
}

// advance moves a locked task as far as it can go now: it reads the task's execution
// context, asks lifecycle.Plan for the moves, enqueues ready steps where the plan says so,
// and persists each move under compare-and-set.
func (o *Orchestrator) advance(ctx context.Context, tx pgx.Tx, t *taskRef, trigger string) error {
	var status string
	var waitingRetry int
	if err := tx.QueryRow(ctx,
		"SELECT execution_status, waiting_retry_steps FROM tasker.get_task_execution_context($1)", t.uuid,
	).Scan(&status, &waitingRetry); err != nil {
		return fmt.Errorf("execution context of task %s: %w", t.uuid, err)
	}
	plan := lifecycle.Plan(lifecycle.Snapshot{
		State: t.state, Status: lifecycle.ExecutionStatus(status), WaitingRetry: waitingRetry,
	})
	for _, move := range plan {
		meta := map[string]any{"trigger": trigger, "execution_status": status}
		if move.EnqueueFirst {
			n, err := o.enqueueReady(ctx, tx, t)
			if err != nil {
				return err
			}
			meta["steps_enqueued"] = n
		}
		if err := lifecycle.TransitionTask(ctx, tx, t.uuid, t.state, move.To, o.cfg.ProcessorUUID, meta); err != nil {
			return err
		}
		t.state = move.To
	}
	if t.state.Terminal() && len(plan) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE tasker.tasks
			   SET complete = $2, completed_at = now(), updated_at = now() WHERE task_uuid = $1`,
			t.uuid, t.state == lifecycle.TaskComplete); err != nil {
			return fmt.Errorf("finalize task %s: %w", t.uuid, err)
		}
		if err := notifyFinalized(ctx, tx, t.uuid); err != nil {
			return err
		}
		o.log.Info("task finalized", "correlation_id", t.correlationID, "task_uuid", t.uuid, "final_state", t.state)
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

// enqueueReady moves every ready step to enqueued and sends one message per step to the
// namespace's worker queue, in the caller's transaction, set-based.
func (o *Orchestrator) enqueueReady(ctx context.Context, tx pgx.Tx, t *taskRef) (int, error) {
	rows, err := tx.Query(ctx, `SELECT workflow_step_uuid, current_state
	                              FROM tasker.get_step_readiness_status($1) WHERE ready_for_execution`, t.uuid)
	if err != nil {
		return 0, fmt.Errorf("ready steps of task %s: %w", t.uuid, err)
	}
	var pending, retrying []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		var state string
		if err := rows.Scan(&id, &state); err != nil {
			rows.Close()
			return 0, err
		}
		switch lifecycle.StepState(state) {
		case lifecycle.StepWaitingForRetry:
			retrying = append(retrying, id)
		default:
			pending = append(pending, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	meta := map[string]any{"processor_uuid": o.cfg.ProcessorUUID}
	if len(retrying) > 0 {
		back, err := lifecycle.TransitionSteps(ctx, tx, retrying, lifecycle.StepWaitingForRetry, lifecycle.StepPending, meta)
		if err != nil {
			return 0, err
		}
		pending = append(pending, back...)
	}
	enqueued, err := lifecycle.TransitionSteps(ctx, tx, pending, lifecycle.StepPending, lifecycle.StepEnqueued, meta)
	if err != nil {
		return 0, err
	}
	if len(enqueued) == 0 {
		return 0, nil
	}
	if _, err := tx.Exec(ctx, `
		SELECT tasker.pgmq_send_with_notify($1,
		         jsonb_build_object('task_uuid', $2::uuid, 'step_uuid', s, 'correlation_id', $3::uuid), 0)
		  FROM unnest($4::uuid[]) AS s`,
		workflow.WorkerQueue(t.namespace), t.uuid, t.correlationID, enqueued); err != nil {
		return 0, fmt.Errorf("send steps of task %s: %w", t.uuid, err)
	}
	return len(enqueued), nil
}

// stepResult is the part of a worker's StepExecutionResult that orchestration reads.
type stepResult struct {
	Success  bool `json:"success"`
	Metadata struct {
		Retryable bool `json:"retryable"`
	} `json:"metadata"`
}

// processResult finalizes one step from one orchestration_step_results message and
// advances its task, all in one transaction. Archiving the message is the transaction's
// first act: only one processor can archive it, so a duplicate delivery changes nothing.
func (o *Orchestrator) processResult(ctx context.Context, job resultJob) error {
	msg, decodeErr := messaging.DecodeStepMessage(job.body)
	return pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
		archived, err := pgmq.Archive(ctx, tx, messaging.QueueStepResults, job.msgID)
		if err != nil {
			return fmt.Errorf("archive result message %d: %w", job.msgID, err)
		}
		if !archived {
			return nil // someone else processed it
		}
		if decodeErr != nil {
			o.log.Warn("archived poison result message", "msg_id", job.msgID, "error", decodeErr)
			return nil
		}
		t, ok, err := lockTask(ctx, tx, msg.TaskUUID, false)
		if err != nil {
			return err
		}
		if !ok {
			o.log.Warn("archived result for unknown task", "msg_id", job.msgID, "task_uuid", msg.TaskUUID)
			return nil
		}
		var state string
		var results []byte
		var attempts, maxAttempts int
		var retryable bool
		err = tx.QueryRow(ctx, `
			SELECT st.to_state, ws.results, ws.attempts, ws.max_attempts, ws.retryable
			  FROM tasker.workflow_steps AS ws
			  JOIN tasker.workflow_step_transitions AS st ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
			 WHERE ws.workflow_step_uuid = $1 AND ws.task_uuid = $2
			   FOR UPDATE OF ws`, msg.StepUUID, t.uuid).Scan(&state, &results, &attempts, &maxAttempts, &retryable)
		if errors.Is(err, pgx.ErrNoRows) {
			o.log.Warn("archived result for unknown step", "msg_id", job.msgID, "step_uuid", msg.StepUUID)
			return nil
		}
		if err != nil {
			return fmt.Errorf("load step %s: %w", msg.StepUUID, err)
		}
		switch lifecycle.StepState(state) {
		case lifecycle.StepEnqueuedForOrchestration:
			if err := lifecycle.TransitionStep(ctx, tx, msg.StepUUID, lifecycle.StepEnqueuedForOrchestration,
				lifecycle.StepComplete, map[string]any{"processor_uuid": o.cfg.ProcessorUUID}); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE tasker.workflow_steps
				   SET processed = true, processed_at = now(), updated_at = now() WHERE workflow_step_uuid = $1`,
				msg.StepUUID); err != nil {
				return err
			}
		case lifecycle.StepEnqueuedAsErrorForOrchestration:
			var r stepResult
			_ = json.Unmarshal(results, &r)
			if err := o.failStep(ctx, tx, msg.StepUUID, lifecycle.StepEnqueuedAsErrorForOrchestration,
				retryable && r.Metadata.Retryable && attempts < maxAttempts, attempts); err != nil {
				return err
			}
		default:
			// Already finalized: a duplicate or late message. Consuming it is all there is to do.
			return nil
		}
		if t.state.Terminal() {
			return nil
		}
		return o.advance(ctx, tx, t, "step_result")
	})
}

// failStep moves a failed step to waiting_for_retry with a backoff, or to error when it
// may not run again.
func (o *Orchestrator) failStep(ctx context.Context, tx pgx.Tx, step uuid.UUID, from lifecycle.StepState, retry bool, attempts int) error {
	meta := map[string]any{"processor_uuid": o.cfg.ProcessorUUID, "attempts": attempts}
	if !retry {
		return lifecycle.TransitionStep(ctx, tx, step, from, lifecycle.StepError, meta)
	}
	delay := o.cfg.Backoff.Delay(attempts, nil)
	if from == lifecycle.StepInProgress {
		// A lost worker is not the step's fault: try again at once.
		delay = 0
	}
	meta["backoff_seconds"] = delay.Seconds()
	if err := lifecycle.TransitionStep(ctx, tx, step, from, lifecycle.StepWaitingForRetry, meta); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE tasker.workflow_steps
		   SET backoff_request_seconds = $2, last_attempted_at = now(), updated_at = now()
		 WHERE workflow_step_uuid = $1`, step, delay.Seconds())
	return err
}

// retryDue advances tasks that have a step whose retry backoff has run out.
func (o *Orchestrator) retryDue(ctx context.Context) (int, error) {
	rows, err := o.pool.Query(ctx, `
		SELECT DISTINCT ws.task_uuid
		  FROM tasker.workflow_step_transitions AS st
		  JOIN tasker.workflow_steps AS ws ON ws.workflow_step_uuid = st.workflow_step_uuid
		 WHERE st.most_recent AND st.to_state = 'waiting_for_retry'
		   AND ws.last_attempted_at + make_interval(secs => coalesce(ws.backoff_request_seconds, 0)) <= clock_timestamp()
		 LIMIT $1`, maintenanceBatchSize)
	if err != nil {
		return 0, err
	}
	tasks, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range tasks {
		err := pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
			t, ok, err := lockTask(ctx, tx, id, true)
			if err != nil || !ok || t.state.Terminal() {
				return err
			}
			n++
			return o.advance(ctx, tx, t, "retry_backoff_elapsed")
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// recoverOrphans finds steps whose claim lease ran out (their worker died or hung) and
// hands them back: to waiting_for_retry with no delay when attempts remain, else to error.
func (o *Orchestrator) recoverOrphans(ctx context.Context) (int, error) {
	rows, err := o.pool.Query(ctx, `
		SELECT DISTINCT task_uuid FROM tasker.workflow_steps
		 WHERE in_process AND claim_expires_at < now()
		 LIMIT $1`, maintenanceBatchSize)
	if err != nil {
		return 0, err
	}
	tasks, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return 0, err
	}
	recovered := 0
	for _, id := range tasks {
		err := pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
			t, ok, err := lockTask(ctx, tx, id, true)
			if err != nil || !ok {
				return err
			}
			rows, err := tx.Query(ctx, `
				SELECT ws.workflow_step_uuid, ws.attempts, ws.max_attempts, ws.retryable, ws.claimed_by
				  FROM tasker.workflow_steps AS ws
				  JOIN tasker.workflow_step_transitions AS st ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
				 WHERE ws.task_uuid = $1 AND ws.in_process AND ws.claim_expires_at < now() AND st.to_state = 'in_progress'
				   FOR UPDATE OF ws`, t.uuid)
			if err != nil {
				return err
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
				return err
			}
			for _, x := range orphans {
				worker := ""
				if x.worker != nil {
					worker = *x.worker
				}
				o.log.Warn("recovering orphaned step: its claim lease expired", "correlation_id", t.correlationID,
					"task_uuid", t.uuid, "step_uuid", x.id, "worker_id", worker, "attempts", x.attempts)
				if _, err := tx.Exec(ctx, `UPDATE tasker.workflow_steps
					   SET in_process = false, claimed_by = NULL, claim_expires_at = NULL, updated_at = now(),
					       results = jsonb_build_object('success', false, 'status', 'failed',
					           'error', jsonb_build_object('message', 'claim lease expired before the worker reported',
					                                       'error_type', 'WorkerLost', 'retryable', true),
					           'metadata', jsonb_build_object('retryable', true, 'worker_id', $2::text))
					 WHERE workflow_step_uuid = $1`, x.id, worker); err != nil {
					return err
				}
				if err := o.failStep(ctx, tx, x.id, lifecycle.StepInProgress,
					x.retryable && x.attempts < x.max, x.attempts); err != nil {
					return err
				}
				recovered++
			}
			if len(orphans) == 0 || t.state.Terminal() {
				return nil
			}
			return o.advance(ctx, tx, t, "orphan_recovered")
		})
		if err != nil {
			return recovered, err
		}
	}
	return recovered, nil
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
		if _, err := o.retryDue(ctx); err != nil && ctx.Err() == nil {
			o.log.Error("retry poller", "error", err)
		}
		if n, err := o.recoverOrphans(ctx); err != nil && ctx.Err() == nil {
			o.log.Error("orphan recovery", "error", err)
		} else if n > 0 {
			o.log.Info("recovered orphaned steps", "count", n)
		}
	}
}
