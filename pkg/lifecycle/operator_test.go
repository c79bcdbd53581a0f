package lifecycle_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
)

func TestCheckOperatorAction(t *testing.T) {
	t.Parallel()
	for _, from := range lifecycle.StepStates {
		err := lifecycle.CheckOperatorAction(lifecycle.ActionResetForRetry, from)
		if from == lifecycle.StepError {
			require.NoError(t, err)
		} else {
			var re *lifecycle.OperatorRuleError
			require.True(t, errors.As(err, &re), "reset from %s", from)
			require.Equal(t, "cannot reset_for_retry a step in "+string(from)+": only a step in error can be reset", err.Error())
		}
		for _, a := range []lifecycle.StepAction{lifecycle.ActionResolveManually, lifecycle.ActionCompleteManually} {
			err := lifecycle.CheckOperatorAction(a, from)
			if from.Terminal() {
				require.ErrorContains(t, err, "cannot "+string(a)+" a step in "+string(from)+": the step is already finished")
			} else {
				require.NoError(t, err, "%s from %s", a, from)
				require.NoError(t, lifecycle.CheckStep(from, a.Target()), "the table allows %s from %s", a, from)
			}
		}
	}
	require.ErrorContains(t, lifecycle.CheckOperatorAction("retry", lifecycle.StepError), `operator action "retry": must be one of`)
	require.Equal(t, lifecycle.StepState(""), lifecycle.StepAction("retry").Target())
}

func TestOperatorReentry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		state  lifecycle.TaskState
		status lifecycle.ExecutionStatus
		want   bool
	}{
		{lifecycle.TaskBlockedByFailures, lifecycle.ExecBlockedByFailures, false},
		{lifecycle.TaskBlockedByFailures, lifecycle.ExecHasReadySteps, true},
		{lifecycle.TaskBlockedByFailures, lifecycle.ExecAllComplete, true},
		{lifecycle.TaskBlockedByFailures, lifecycle.ExecProcessing, true},
		{lifecycle.TaskWaitingForRetry, lifecycle.ExecHasReadySteps, false},
		{lifecycle.TaskWaitingForRetry, lifecycle.ExecWaitingForDependencies, false},
		{lifecycle.TaskWaitingForRetry, lifecycle.ExecAllComplete, true},
		{lifecycle.TaskWaitingForDependencies, lifecycle.ExecAllComplete, false},
		{lifecycle.TaskStepsInProcess, lifecycle.ExecAllComplete, false},
	}
	for _, c := range cases {
		require.Equal(t, c.want, lifecycle.OperatorReentry(c.state, c.status), "%s with %s", c.state, c.status)
		if c.want {
			// The re-entry edge is legal, and the plan from there moves the task on.
			require.NoError(t, lifecycle.CheckTask(c.state, lifecycle.TaskEvaluatingResults))
			require.NotEmpty(t, lifecycle.Plan(lifecycle.Snapshot{State: lifecycle.TaskEvaluatingResults, Status: c.status}))
		}
	}
}
