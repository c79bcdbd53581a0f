package lifecycle

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// StepAction is an operator's manual action on one step (PATCH
// /v1/tasks/{uuid}/workflow_steps/{step_uuid}).
type StepAction string

// The operator actions, as tasker-core names them.
const (
	// ActionResetForRetry moves a step in error back to pending with its attempts reset,
	// so it runs again.
	ActionResetForRetry StepAction = "reset_for_retry"
	// ActionResolveManually marks an unfinished step resolved_manually: done, with no
	// result of its own.
	ActionResolveManually StepAction = "resolve_manually"
	// ActionCompleteManually marks an unfinished step complete with a result the
	// operator supplies.
	ActionCompleteManually StepAction = "complete_manually"
)

// StepActions lists the operator actions.
var StepActions = []StepAction{ActionResetForRetry, ActionResolveManually, ActionCompleteManually}

// Target is the state the action moves a step to ("" for an unknown action).
func (a StepAction) Target() StepState {
	switch a {
	case ActionResetForRetry:
		return StepPending
	case ActionResolveManually:
		return StepResolvedManually
	case ActionCompleteManually:
		return StepComplete
	}
	return ""
}

// OperatorRuleError is an operator action the step's state does not allow.
type OperatorRuleError struct {
	Action StepAction
	State  StepState
	Rule   string
}

func (e *OperatorRuleError) Error() string {
	return fmt.Sprintf("cannot %s a step in %s: %s", e.Action, e.State, e.Rule)
}

// CheckOperatorAction returns nil when an operator may apply action to a step in from,
// else an *OperatorRuleError. reset_for_retry takes only a step in error (as in
// tasker-core); resolve_manually and complete_manually take any step that is not
// finished (tasker-core also lets them rewrite a finished step; the sim refuses).
func CheckOperatorAction(action StepAction, from StepState) error {
	switch action {
	case ActionResetForRetry:
		if from != StepError {
			return &OperatorRuleError{action, from, "only a step in error can be reset"}
		}
	case ActionResolveManually, ActionCompleteManually:
		if from.Terminal() || !from.Valid() {
			return &OperatorRuleError{action, from,
				"the step is already finished (complete, cancelled and resolved_manually are final)"}
		}
	default:
		return fmt.Errorf("operator action %q: must be one of %v", action, StepActions)
	}
	return CheckStep(from, action.Target())
}

// OperatorAction is one operator action on a step the caller has locked.
type OperatorAction struct {
	Step   uuid.UUID
	From   StepState
	Action StepAction
	// Metadata goes on the step's transition row (trigger, action, reason, by).
	Metadata map[string]any
	// Results, for complete_manually, replace the step's stored results.
	Results []byte
}

// resetStepSQL clears what a reset step carried from its failed runs: attempts back to
// 0 (as tasker-core documents), not processed, no claim, no backoff.
const resetStepSQL = `UPDATE tasker.workflow_steps
	   SET attempts = 0, processed = false, processed_at = NULL, in_process = false, claimed_by = NULL,
	       claim_expires_at = NULL, backoff_request_seconds = NULL, updated_at = now()
	 WHERE workflow_step_uuid = $1`

// ApplyOperatorAction moves the step from a.From to the action's target under
// compare-and-set, with its audit row, and writes the step row: a reset clears attempts,
// claim and backoff; a resolution or completion marks the step processed (processed_at
// now), releases any claim (a worker's late result then finds the step finished and is
// only consumed) and, for a completion, stores a.Results. Run it in the transaction that
// holds the step row; ErrStaleState means the step was no longer in a.From.
func ApplyOperatorAction(ctx context.Context, db BatchDB, a OperatorAction) error {
	if err := CheckOperatorAction(a.Action, a.From); err != nil {
		return err
	}
	if a.Action == ActionResetForRetry {
		moved, err := TransitionSteps(ctx, db, []uuid.UUID{a.Step}, a.From, StepPending, a.Metadata)
		if err != nil {
			return err
		}
		if len(moved) != 1 {
			return fmt.Errorf("reset step %s: %w", a.Step, ErrStaleState)
		}
		_, err = db.Exec(ctx, resetStepSQL, a.Step)
		return err
	}
	var moved []uuid.UUID
	b := &pgx.Batch{}
	if err := QueueFinalizeSteps(b, []StepFinalization{{Step: a.Step, From: a.From, To: a.Action.Target(),
		Metadata: a.Metadata, Processed: true, Release: true, Results: a.Results}}, &moved); err != nil {
		return err
	}
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("%s step %s: %w", a.Action, a.Step, err)
	}
	if len(moved) != 1 {
		return fmt.Errorf("%s step %s: %w", a.Action, a.Step, ErrStaleState)
	}
	return nil
}

// OperatorReentry reports whether, after an operator action on one of its steps, a task
// in state whose steps now sum up to status must first go back to evaluating_results for
// Plan to move it on. Plan leaves a blocked task alone, and a task waiting for a retry
// moves only when a step is ready; once an operator has cleared the last failed step, or
// completed the step the retry waited for, the task re-enters evaluation instead
// (tasker-sim only: tasker-core leaves such tasks where they are).
func OperatorReentry(state TaskState, status ExecutionStatus) bool {
	switch state {
	case TaskBlockedByFailures:
		return status != ExecBlockedByFailures
	case TaskWaitingForRetry:
		return status != ExecHasReadySteps && status != ExecWaitingForDependencies
	default:
		return false
	}
}
