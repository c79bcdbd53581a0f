package lifecycle_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
)

var allExecStatuses = []lifecycle.ExecutionStatus{
	lifecycle.ExecBlockedByFailures,
	lifecycle.ExecHasReadySteps,
	lifecycle.ExecProcessing,
	lifecycle.ExecAllComplete,
	lifecycle.ExecWaitingForDependencies,
}

// to is a plain move; enq is the move into steps_in_process after enqueuing ready steps.
func to(s lifecycle.TaskState) lifecycle.Move { return lifecycle.Move{To: s} }

var enq = lifecycle.Move{To: lifecycle.TaskStepsInProcess, EnqueueFirst: true}

func TestPlanTable(t *testing.T) {
	t.Parallel()
	const (
		pending     = lifecycle.TaskPending
		initing     = lifecycle.TaskInitializing
		enqueuing   = lifecycle.TaskEnqueuingSteps
		inProcess   = lifecycle.TaskStepsInProcess
		evaluating  = lifecycle.TaskEvaluatingResults
		waitDeps    = lifecycle.TaskWaitingForDependencies
		waitRetry   = lifecycle.TaskWaitingForRetry
		blocked     = lifecycle.TaskBlockedByFailures
		complete    = lifecycle.TaskComplete
		errState    = lifecycle.TaskError
		cancelled   = lifecycle.TaskCancelled
		resolved    = lifecycle.TaskResolvedManually
		sBlocked    = lifecycle.ExecBlockedByFailures
		sReady      = lifecycle.ExecHasReadySteps
		sProcessing = lifecycle.ExecProcessing
		sAll        = lifecycle.ExecAllComplete
		sWait       = lifecycle.ExecWaitingForDependencies
	)
	cases := []struct {
		name string
		snap lifecycle.Snapshot
		want []lifecycle.Move
	}{
		// pending: initialise, then as from initializing.
		{"pending ready steps", lifecycle.Snapshot{State: pending, Status: sReady}, []lifecycle.Move{to(initing), to(enqueuing), enq}},
		{"pending with no steps", lifecycle.Snapshot{State: pending, Status: sAll}, []lifecycle.Move{to(initing), to(complete)}},
		{"pending processing", lifecycle.Snapshot{State: pending, Status: sProcessing}, []lifecycle.Move{to(initing), to(waitDeps)}},
		{"pending waiting", lifecycle.Snapshot{State: pending, Status: sWait}, []lifecycle.Move{to(initing), to(waitDeps)}},
		{"pending blocked", lifecycle.Snapshot{State: pending, Status: sBlocked}, []lifecycle.Move{to(initing), to(waitDeps)}},

		// initializing.
		{"initializing ready", lifecycle.Snapshot{State: initing, Status: sReady}, []lifecycle.Move{to(enqueuing), enq}},
		{"initializing all complete", lifecycle.Snapshot{State: initing, Status: sAll}, []lifecycle.Move{to(complete)}},
		{"initializing processing", lifecycle.Snapshot{State: initing, Status: sProcessing}, []lifecycle.Move{to(waitDeps)}},
		{"initializing waiting", lifecycle.Snapshot{State: initing, Status: sWait}, []lifecycle.Move{to(waitDeps)}},
		{"initializing blocked", lifecycle.Snapshot{State: initing, Status: sBlocked}, []lifecycle.Move{to(waitDeps)}},

		// enqueuing_steps always finishes enqueuing.
		{"enqueuing ready", lifecycle.Snapshot{State: enqueuing, Status: sReady}, []lifecycle.Move{enq}},
		{"enqueuing processing", lifecycle.Snapshot{State: enqueuing, Status: sProcessing}, []lifecycle.Move{enq}},

		// steps_in_process.
		{"in process all complete", lifecycle.Snapshot{State: inProcess, Status: sAll}, []lifecycle.Move{to(evaluating), to(complete)}},
		{"in process blocked", lifecycle.Snapshot{State: inProcess, Status: sBlocked}, []lifecycle.Move{to(evaluating), to(blocked)}},
		{"in process processing", lifecycle.Snapshot{State: inProcess, Status: sProcessing}, nil},
		{"in process processing with retries", lifecycle.Snapshot{State: inProcess, Status: sProcessing, WaitingRetry: 3}, nil},
		{"in process ready", lifecycle.Snapshot{State: inProcess, Status: sReady}, []lifecycle.Move{to(evaluating), to(enqueuing), enq}},
		{"in process ready with retries", lifecycle.Snapshot{State: inProcess, Status: sReady, WaitingRetry: 1}, []lifecycle.Move{to(evaluating), to(enqueuing), enq}},
		{"in process waiting on retry", lifecycle.Snapshot{State: inProcess, Status: sWait, WaitingRetry: 1}, []lifecycle.Move{to(waitRetry)}},
		{"in process waiting on retries", lifecycle.Snapshot{State: inProcess, Status: sWait, WaitingRetry: 5}, []lifecycle.Move{to(waitRetry)}},
		{"in process waiting on dependencies", lifecycle.Snapshot{State: inProcess, Status: sWait}, []lifecycle.Move{to(evaluating), to(waitDeps)}},
		{"in process blocked with retries", lifecycle.Snapshot{State: inProcess, Status: sBlocked, WaitingRetry: 2}, []lifecycle.Move{to(evaluating), to(blocked)}},

		// evaluating_results.
		{"evaluating all complete", lifecycle.Snapshot{State: evaluating, Status: sAll}, []lifecycle.Move{to(complete)}},
		{"evaluating blocked", lifecycle.Snapshot{State: evaluating, Status: sBlocked}, []lifecycle.Move{to(blocked)}},
		{"evaluating ready", lifecycle.Snapshot{State: evaluating, Status: sReady}, []lifecycle.Move{to(enqueuing), enq}},
		{"evaluating processing", lifecycle.Snapshot{State: evaluating, Status: sProcessing}, []lifecycle.Move{to(waitDeps)}},
		{"evaluating waiting", lifecycle.Snapshot{State: evaluating, Status: sWait}, []lifecycle.Move{to(waitDeps)}},

		// waiting_for_dependencies.
		{"waiting deps processing", lifecycle.Snapshot{State: waitDeps, Status: sProcessing}, nil},
		{"waiting deps waiting", lifecycle.Snapshot{State: waitDeps, Status: sWait}, nil},
		{"waiting deps waiting with retries", lifecycle.Snapshot{State: waitDeps, Status: sWait, WaitingRetry: 2}, nil},
		{"waiting deps ready", lifecycle.Snapshot{State: waitDeps, Status: sReady}, []lifecycle.Move{to(evaluating), to(enqueuing), enq}},
		{"waiting deps all complete", lifecycle.Snapshot{State: waitDeps, Status: sAll}, []lifecycle.Move{to(evaluating), to(complete)}},
		{"waiting deps blocked", lifecycle.Snapshot{State: waitDeps, Status: sBlocked}, []lifecycle.Move{to(evaluating), to(blocked)}},

		// waiting_for_retry.
		{"waiting retry ready", lifecycle.Snapshot{State: waitRetry, Status: sReady}, []lifecycle.Move{to(enqueuing), enq}},
		{"waiting retry still waiting", lifecycle.Snapshot{State: waitRetry, Status: sWait, WaitingRetry: 1}, nil},
		{"waiting retry processing", lifecycle.Snapshot{State: waitRetry, Status: sProcessing}, nil},

		// blocked_by_failures stays: only an operator or a cancel moves it on.
		{"blocked blocked", lifecycle.Snapshot{State: blocked, Status: sBlocked}, nil},
		{"blocked ready", lifecycle.Snapshot{State: blocked, Status: sReady}, nil},

		// Unknown state: nothing to do.
		{"unknown state", lifecycle.Snapshot{State: "bogus", Status: sReady}, nil},
	}
	// Terminal states never move, whatever the steps say.
	for _, s := range []lifecycle.TaskState{complete, errState, cancelled, resolved} {
		for _, st := range allExecStatuses {
			cases = append(cases, struct {
				name string
				snap lifecycle.Snapshot
				want []lifecycle.Move
			}{fmt.Sprintf("terminal %s %s", s, st), lifecycle.Snapshot{State: s, Status: st, WaitingRetry: 1}, nil})
		}
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := lifecycle.Plan(tc.snap)
			if len(tc.want) == 0 {
				require.Empty(t, got, "plan for %+v", tc.snap)
				return
			}
			require.Equal(t, tc.want, got, "plan for %+v", tc.snap)
		})
	}
}

// TestPlanProperties checks every snapshot: each move is a legal edge from the state
// before it, the plan stops where the task must wait for an event, and EnqueueFirst only
// marks the move into steps_in_process (which itself always follows enqueuing_steps).
func TestPlanProperties(t *testing.T) {
	t.Parallel()
	resting := map[lifecycle.TaskState]bool{
		lifecycle.TaskStepsInProcess:         true,
		lifecycle.TaskWaitingForDependencies: true,
		lifecycle.TaskWaitingForRetry:        true,
	}
	for _, state := range lifecycle.TaskStates {
		t.Run(string(state), func(t *testing.T) {
			t.Parallel()
			for _, status := range allExecStatuses {
				for _, waiting := range []int{0, 1} {
					snap := lifecycle.Snapshot{State: state, Status: status, WaitingRetry: waiting}
					plan := lifecycle.Plan(snap)
					if state.Terminal() {
						require.Empty(t, plan, "terminal %+v must not move", snap)
					}
					if len(plan) == 0 {
						continue
					}
					cur := state
					for i, m := range plan {
						require.NoError(t, lifecycle.CheckTask(cur, m.To), "%+v: move %d (%s -> %s)", snap, i, cur, m.To)
						if m.EnqueueFirst {
							require.Equal(t, lifecycle.TaskStepsInProcess, m.To, "%+v: EnqueueFirst on move %d", snap, i)
						}
						if m.To == lifecycle.TaskStepsInProcess {
							require.True(t, m.EnqueueFirst, "%+v: move %d into steps_in_process must enqueue first", snap, i)
							require.Equal(t, lifecycle.TaskEnqueuingSteps, cur, "%+v: steps_in_process must follow enqueuing_steps", snap)
						}
						if i < len(plan)-1 {
							// Only the last move may land where the task rests.
							require.False(t, m.To.Terminal(), "%+v: move %d reaches terminal %s mid-plan", snap, i, m.To)
						}
						cur = m.To
					}
					require.True(t, cur.Settled() || resting[cur], "%+v: plan ends in %s", snap, cur)
				}
			}
		})
	}
}

// TestPlanPropertiesOutOfRange makes sure odd inputs keep the plan legal too.
func TestPlanPropertiesOutOfRange(t *testing.T) {
	t.Parallel()
	for _, state := range lifecycle.TaskStates {
		for _, snap := range []lifecycle.Snapshot{
			{State: state, Status: "bogus"},
			{State: state, Status: ""},
			{State: state, Status: lifecycle.ExecWaitingForDependencies, WaitingRetry: -1},
		} {
			cur := state
			for i, m := range lifecycle.Plan(snap) {
				require.NoError(t, lifecycle.CheckTask(cur, m.To), "%+v: move %d", snap, i)
				cur = m.To
			}
		}
	}
}
