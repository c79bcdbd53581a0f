package stepclaim

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
)

// StepData is what a step made at run time (a batch worker) carries beyond its claim:
// its inputs, the result its previous attempt stored, and the checkpoint an earlier
// attempt saved.
type StepData struct {
	Inputs, Previous, Checkpoint json.RawMessage
}

// LoadStepData reads a step's inputs, stored result and checkpoint.
func LoadStepData(ctx context.Context, db lifecycle.DB, step uuid.UUID) (StepData, error) {
	var d StepData
	err := db.QueryRow(ctx, `SELECT inputs, results, checkpoint FROM tasker.workflow_steps WHERE workflow_step_uuid = $1`,
		step).Scan(&d.Inputs, &d.Previous, &d.Checkpoint)
	if err != nil {
		return d, fmt.Errorf("load data of step %s: %w", step, err)
	}
	return d, nil
}

// SaveCheckpoint stores checkpoint (any JSON value) as the step's progress, provided
// worker still holds the claim of attempt attempt: a worker whose lease ran out must not
// overwrite the progress of the attempt that replaced it, even its own. It fails with
// ErrLeaseLost otherwise.
func SaveCheckpoint(ctx context.Context, db lifecycle.DB, step uuid.UUID, attempt int, worker string, checkpoint any) error {
	doc, err := json.Marshal(checkpoint)
	if err != nil {
		return fmt.Errorf("checkpoint of step %s: %w", step, err)
	}
	tag, err := db.Exec(ctx, `UPDATE tasker.workflow_steps SET checkpoint = $2, updated_at = now()
	                           WHERE workflow_step_uuid = $1 AND in_process AND claimed_by = $3 AND attempts = $4`,
		step, doc, worker, attempt)
	if err != nil {
		return fmt.Errorf("save checkpoint of step %s: %w", step, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("save checkpoint of step %s: %w", step, ErrLeaseLost)
	}
	return nil
}

// RenewLease extends the lease of worker's claim on attempt attempt of step to lease from
// now. It fails with ErrLeaseLost when the worker no longer holds that attempt
// (orchestration took the step back).
func RenewLease(ctx context.Context, db lifecycle.DB, step uuid.UUID, attempt int, worker string, lease time.Duration) error {
	tag, err := db.Exec(ctx, `UPDATE tasker.workflow_steps
	                             SET claim_expires_at = now() + make_interval(secs => $4), updated_at = now()
	                           WHERE workflow_step_uuid = $1 AND in_process AND claimed_by = $2 AND attempts = $3`,
		step, worker, attempt, lease.Seconds())
	if err != nil {
		return fmt.Errorf("renew the lease of step %s: %w", step, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("renew the lease of step %s: %w", step, ErrLeaseLost)
	}
	return nil
}
