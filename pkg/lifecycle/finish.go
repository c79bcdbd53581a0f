package lifecycle

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-sim/tasker-sim/pkg/messaging"
)

// notifyFinalizedSQL tells every orchestrator's waiters, when the transaction commits,
// that tasks ($2) finished or settled.
const notifyFinalizedSQL = `SELECT pg_notify($1, t::text) FROM unnest($2::uuid[]) AS t`

// FinishTask is the end of a task that a transition outside its plan made terminal (a
// cancel, a staleness timeout): it records when the task finished and notifies its
// waiters, in the caller's transaction.
func FinishTask(ctx context.Context, db DB, task uuid.UUID) error {
	if _, err := db.Exec(ctx, `UPDATE tasker.tasks SET completed_at = now(), updated_at = now() WHERE task_uuid = $1`,
		task); err != nil {
		return fmt.Errorf("finish task %s: %w", task, err)
	}
	if _, err := db.Exec(ctx, notifyFinalizedSQL, messaging.TaskFinalizedChannel, []uuid.UUID{task}); err != nil {
		return fmt.Errorf("notify finalization of task %s: %w", task, err)
	}
	return nil
}

// CancelSteps moves every unfinished step of a task to cancelled, each by compare-and-set
// from the state it is in, and releases their claims, in the caller's transaction. The
// step rows are locked first (the order workers take too: step row, then its
// transitions), and their states read by a statement that starts after the locks were
// granted, so a claim that committed meanwhile is seen.
func CancelSteps(ctx context.Context, db DB, task uuid.UUID) error {
	if _, err := db.Exec(ctx, `SELECT 1 FROM tasker.workflow_steps WHERE task_uuid = $1 FOR UPDATE`, task); err != nil {
		return err
	}
	rows, err := db.Query(ctx, `
		SELECT st.to_state, array_agg(ws.workflow_step_uuid)
		  FROM tasker.workflow_steps AS ws
		  JOIN tasker.workflow_step_transitions AS st ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
		 WHERE ws.task_uuid = $1 AND st.to_state <> ALL ($2)
		 GROUP BY st.to_state`, task, []string{string(StepComplete), string(StepCancelled), string(StepResolvedManually)})
	if err != nil {
		return err
	}
	type group struct {
		state StepState
		ids   []uuid.UUID
	}
	groups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (group, error) {
		var g group
		return g, r.Scan(&g.state, &g.ids)
	})
	if err != nil {
		return err
	}
	for _, g := range groups {
		moved, err := TransitionSteps(ctx, db, g.ids, g.state, StepCancelled, map[string]any{"trigger": "task_cancelled"})
		if err != nil {
			return err
		}
		if len(moved) != len(g.ids) {
			// Cannot happen while the step rows are locked; refuse rather than half-cancel.
			return fmt.Errorf("cancel task %s: %d of %d %s steps moved: %w", task, len(moved), len(g.ids), g.state, ErrStaleState)
		}
	}
	_, err = db.Exec(ctx, `UPDATE tasker.workflow_steps SET processed = true, in_process = false,
	                          claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
	                        WHERE task_uuid = $1 AND NOT processed`, task)
	return err
}
