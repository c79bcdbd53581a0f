package lifecycle_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
)

// edge is one (from, to) pair of a transition table, as plain strings so the expected
// tables below are written independently of the package's constants.
type edge struct{ from, to string }

// allTaskStates and allStepStates are the state names as the design spells them.
var (
	allTaskStates = []string{
		"pending", "initializing", "enqueuing_steps", "steps_in_process", "evaluating_results",
		"waiting_for_dependencies", "waiting_for_retry", "blocked_by_failures",
		"complete", "error", "cancelled", "resolved_manually",
	}
	allStepStates = []string{
		"pending", "enqueued", "in_progress", "enqueued_for_orchestration",
		"enqueued_as_error_for_orchestration", "waiting_for_retry",
		"complete", "error", "cancelled", "resolved_manually",
	}
)

// expectedTaskEdges is the task table from the Tasker design.
func expectedTaskEdges() map[edge]bool {
	allowed := map[edge]bool{
		{"pending", "initializing"}: true,

		{"initializing", "enqueuing_steps"}:          true,
		{"initializing", "complete"}:                 true,
		{"initializing", "waiting_for_dependencies"}: true,

		{"enqueuing_steps", "steps_in_process"}: true,
		{"enqueuing_steps", "error"}:            true,

		{"steps_in_process", "evaluating_results"}: true,
		{"steps_in_process", "waiting_for_retry"}:  true,
		{"steps_in_process", "complete"}:           true,
		{"steps_in_process", "error"}:              true,

		{"evaluating_results", "complete"}:                 true,
		{"evaluating_results", "enqueuing_steps"}:          true,
		{"evaluating_results", "waiting_for_dependencies"}: true,
		{"evaluating_results", "blocked_by_failures"}:      true,

		{"waiting_for_dependencies", "evaluating_results"}: true,
		{"waiting_for_dependencies", "error"}:              true, // staleness timeout

		{"waiting_for_retry", "enqueuing_steps"}: true,
		{"waiting_for_retry", "error"}:           true, // staleness timeout

		{"blocked_by_failures", "error"}: true,
		// tasker-sim only: an operator's step action re-enters evaluation.
		{"blocked_by_failures", "evaluating_results"}: true,
		{"waiting_for_retry", "evaluating_results"}:   true,

		{"error", "pending"}:           true,
		{"error", "resolved_manually"}: true,
	}
	// Every non-terminal task state may be cancelled or resolved manually.
	for _, s := range []string{
		"pending", "initializing", "enqueuing_steps", "steps_in_process", "evaluating_results",
		"waiting_for_dependencies", "waiting_for_retry", "blocked_by_failures",
	} {
		allowed[edge{s, "cancelled"}] = true
		allowed[edge{s, "resolved_manually"}] = true
	}
	return allowed
}

// expectedStepEdges is the step table from the Tasker design.
func expectedStepEdges() map[edge]bool {
	allowed := map[edge]bool{
		{"pending", "enqueued"}:          true,
		{"pending", "in_progress"}:       true,
		{"pending", "error"}:             true,
		{"pending", "waiting_for_retry"}: true,

		{"enqueued", "in_progress"}:       true,
		{"enqueued", "error"}:             true,
		{"enqueued", "waiting_for_retry"}: true,

		{"in_progress", "enqueued_for_orchestration"}:          true,
		{"in_progress", "enqueued_as_error_for_orchestration"}: true,
		{"in_progress", "error"}:                               true,
		{"in_progress", "waiting_for_retry"}:                   true,

		{"enqueued_for_orchestration", "complete"}: true,
		{"enqueued_for_orchestration", "error"}:    true,

		{"enqueued_as_error_for_orchestration", "waiting_for_retry"}: true,
		{"enqueued_as_error_for_orchestration", "error"}:             true,
		{"enqueued_as_error_for_orchestration", "complete"}:          true,

		{"waiting_for_retry", "pending"}: true,

		{"error", "pending"}: true,
	}
	// Every non-terminal step state (error included) may be cancelled, completed or
	// resolved manually.
	for _, s := range []string{
		"pending", "enqueued", "in_progress", "enqueued_for_orchestration",
		"enqueued_as_error_for_orchestration", "waiting_for_retry", "error",
	} {
		allowed[edge{s, "cancelled"}] = true
		allowed[edge{s, "complete"}] = true
		allowed[edge{s, "resolved_manually"}] = true
	}
	return allowed
}

// targetsOf lists, sorted, the to-states the expected table allows from from.
func targetsOf(table map[edge]bool, from string) []string {
	var out []string
	for e := range table {
		if e.from == from {
			out = append(out, e.to)
		}
	}
	slices.Sort(out)
	return out
}

func sortedStrings[S ~string](states []S) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	slices.Sort(out)
	return out
}

func TestStateListsMatchDesign(t *testing.T) {
	t.Parallel()

	t.Run("task states", func(t *testing.T) {
		t.Parallel()
		require.Len(t, lifecycle.TaskStates, 12)
		seen := map[lifecycle.TaskState]bool{}
		for _, s := range lifecycle.TaskStates {
			require.False(t, seen[s], "duplicate task state %q", s)
			seen[s] = true
			require.True(t, s.Valid(), "task state %q", s)
		}
		require.ElementsMatch(t, allTaskStates, sortedStrings(lifecycle.TaskStates))
	})

	t.Run("step states", func(t *testing.T) {
		t.Parallel()
		require.Len(t, lifecycle.StepStates, 10)
		seen := map[lifecycle.StepState]bool{}
		for _, s := range lifecycle.StepStates {
			require.False(t, seen[s], "duplicate step state %q", s)
			seen[s] = true
			require.True(t, s.Valid(), "step state %q", s)
		}
		require.ElementsMatch(t, allStepStates, sortedStrings(lifecycle.StepStates))
	})

	t.Run("unknown states are not valid", func(t *testing.T) {
		t.Parallel()
		for _, s := range []string{"", "bogus", "Pending", " pending", "COMPLETE"} {
			require.False(t, lifecycle.TaskState(s).Valid(), "task %q", s)
			require.False(t, lifecycle.StepState(s).Valid(), "step %q", s)
		}
		// Names that exist in only one of the two machines.
		require.False(t, lifecycle.TaskState("in_progress").Valid())
		require.False(t, lifecycle.TaskState("enqueued").Valid())
		require.False(t, lifecycle.StepState("initializing").Valid())
		require.False(t, lifecycle.StepState("blocked_by_failures").Valid())
	})
}

func TestTerminal(t *testing.T) {
	t.Parallel()

	t.Run("task", func(t *testing.T) {
		t.Parallel()
		want := map[string]bool{
			"pending": false, "initializing": false, "enqueuing_steps": false,
			"steps_in_process": false, "evaluating_results": false,
			"waiting_for_dependencies": false, "waiting_for_retry": false,
			"blocked_by_failures": false,
			"complete":            true, "error": true, "cancelled": true, "resolved_manually": true,
		}
		require.Len(t, want, 12)
		for _, s := range lifecycle.TaskStates {
			w, ok := want[string(s)]
			require.True(t, ok, "unexpected task state %q", s)
			require.Equal(t, w, s.Terminal(), "task %q", s)
		}
		require.False(t, lifecycle.TaskState("bogus").Terminal())
	})

	t.Run("step", func(t *testing.T) {
		t.Parallel()
		want := map[string]bool{
			"pending": false, "enqueued": false, "in_progress": false,
			"enqueued_for_orchestration": false, "enqueued_as_error_for_orchestration": false,
			"waiting_for_retry": false,
			"error":             false, // an operator may reset a step in error
			"complete":          true, "cancelled": true, "resolved_manually": true,
		}
		require.Len(t, want, 10)
		for _, s := range lifecycle.StepStates {
			w, ok := want[string(s)]
			require.True(t, ok, "unexpected step state %q", s)
			require.Equal(t, w, s.Terminal(), "step %q", s)
		}
		require.False(t, lifecycle.StepState("bogus").Terminal())
	})
}

// checkIllegal asserts that err is a *TransitionError for entity from → to whose Error()
// names both states, whose Allowed matches the expected targets, and which says "terminal"
// exactly when the from-state has no exits at all.
func checkIllegal(t *testing.T, err error, entity, from, to string, wantAllowed []string) {
	t.Helper()
	require.Error(t, err, "%s %s -> %s must be illegal", entity, from, to)
	var te *lifecycle.TransitionError
	require.True(t, errors.As(err, &te), "%s %s -> %s: error %T is not a *TransitionError", entity, from, to, err)
	require.Equal(t, entity, te.Entity)
	require.Equal(t, from, te.From)
	require.Equal(t, to, te.To)
	allowed := slices.Clone(te.Allowed)
	slices.Sort(allowed)
	require.Equal(t, wantAllowed, nilIfEmpty(allowed), "%s %s -> %s: Allowed", entity, from, to)

	msg := err.Error()
	require.Contains(t, msg, entity)
	require.Contains(t, msg, from)
	require.Contains(t, msg, to)
	require.Contains(t, msg, from+" -> "+to)
	if len(wantAllowed) == 0 {
		require.Contains(t, msg, "terminal", "%s %s has no exits: %q", entity, from, msg)
	} else {
		require.NotContains(t, msg, "terminal", "%s %s has exits: %q", entity, from, msg)
		for _, a := range wantAllowed {
			require.Contains(t, msg, a)
		}
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestCheckTaskEveryEdge(t *testing.T) {
	t.Parallel()
	allowed := expectedTaskEdges()
	for _, from := range allTaskStates {
		t.Run(from, func(t *testing.T) {
			t.Parallel()
			want := targetsOf(allowed, from)
			for _, to := range allTaskStates {
				err := lifecycle.CheckTask(lifecycle.TaskState(from), lifecycle.TaskState(to))
				if allowed[edge{from, to}] {
					require.NoError(t, err, "task %s -> %s must be legal", from, to)
					continue
				}
				checkIllegal(t, err, "task", from, to, want)
			}
		})
	}
}

func TestCheckStepEveryEdge(t *testing.T) {
	t.Parallel()
	allowed := expectedStepEdges()
	for _, from := range allStepStates {
		t.Run(from, func(t *testing.T) {
			t.Parallel()
			want := targetsOf(allowed, from)
			for _, to := range allStepStates {
				err := lifecycle.CheckStep(lifecycle.StepState(from), lifecycle.StepState(to))
				if allowed[edge{from, to}] {
					require.NoError(t, err, "step %s -> %s must be legal", from, to)
					continue
				}
				checkIllegal(t, err, "step", from, to, want)
			}
		})
	}
}

func TestExpectedTablesSize(t *testing.T) {
	t.Parallel()
	// Guards the literal tables above against accidental edits: 23 named task edges plus
	// 8 non-terminal states × 2 operator exits (none of which is already named).
	require.Len(t, expectedTaskEdges(), 23+8*2)
	// 18 named step edges plus 7 non-terminal states × 3 operator exits, minus the
	// overlaps already named (enqueued_for_orchestration→complete and
	// enqueued_as_error_for_orchestration→complete).
	require.Len(t, expectedStepEdges(), 18+7*3-2)
}

func TestTargetsMatchTables(t *testing.T) {
	t.Parallel()

	t.Run("task", func(t *testing.T) {
		t.Parallel()
		allowed := expectedTaskEdges()
		for _, from := range allTaskStates {
			got := lifecycle.TaskTargets(lifecycle.TaskState(from))
			require.Equal(t, targetsOf(allowed, from), nilIfEmpty(sortedStrings(got)), "targets from %s", from)
			require.Len(t, got, len(slices.Compact(slices.Sorted(slices.Values(got)))), "duplicate targets from %s", from)
		}
		require.Empty(t, lifecycle.TaskTargets("bogus"))
	})

	t.Run("step", func(t *testing.T) {
		t.Parallel()
		allowed := expectedStepEdges()
		for _, from := range allStepStates {
			got := lifecycle.StepTargets(lifecycle.StepState(from))
			require.Equal(t, targetsOf(allowed, from), nilIfEmpty(sortedStrings(got)), "targets from %s", from)
			require.Len(t, got, len(slices.Compact(slices.Sorted(slices.Values(got)))), "duplicate targets from %s", from)
		}
		require.Empty(t, lifecycle.StepTargets("bogus"))
	})

	t.Run("targets are copies", func(t *testing.T) {
		t.Parallel()
		got := lifecycle.TaskTargets(lifecycle.TaskPending)
		require.NotEmpty(t, got)
		got[0] = lifecycle.TaskComplete
		require.NoError(t, lifecycle.CheckTask(lifecycle.TaskPending, lifecycle.TaskInitializing))
		require.Error(t, lifecycle.CheckTask(lifecycle.TaskPending, lifecycle.TaskComplete))

		steps := lifecycle.StepTargets(lifecycle.StepPending)
		require.NotEmpty(t, steps)
		steps[0] = lifecycle.StepPending
		require.NoError(t, lifecycle.CheckStep(lifecycle.StepPending, lifecycle.StepEnqueued))
		require.Error(t, lifecycle.CheckStep(lifecycle.StepPending, lifecycle.StepPending))
	})
}

func TestCheckRejectsUnknownStates(t *testing.T) {
	t.Parallel()
	unknown := []string{"bogus", "", "Pending", "in progress"}

	t.Run("task", func(t *testing.T) {
		t.Parallel()
		for _, u := range unknown {
			for _, known := range allTaskStates {
				for _, pair := range [][2]string{{u, known}, {known, u}} {
					err := lifecycle.CheckTask(lifecycle.TaskState(pair[0]), lifecycle.TaskState(pair[1]))
					var te *lifecycle.TransitionError
					require.True(t, errors.As(err, &te), "task %q -> %q: %v", pair[0], pair[1], err)
					require.Equal(t, "task", te.Entity)
					require.Equal(t, pair[0], te.From)
					require.Equal(t, pair[1], te.To)
					require.Contains(t, err.Error(), pair[0]+" -> "+pair[1])
				}
			}
			require.Error(t, lifecycle.CheckTask(lifecycle.TaskState(u), lifecycle.TaskState(u)))
		}
		// A step-only state name is not a task state.
		require.Error(t, lifecycle.CheckTask(lifecycle.TaskPending, "enqueued"))
		require.Error(t, lifecycle.CheckTask("in_progress", lifecycle.TaskCancelled))
	})

	t.Run("step", func(t *testing.T) {
		t.Parallel()
		for _, u := range unknown {
			for _, known := range allStepStates {
				for _, pair := range [][2]string{{u, known}, {known, u}} {
					err := lifecycle.CheckStep(lifecycle.StepState(pair[0]), lifecycle.StepState(pair[1]))
					var te *lifecycle.TransitionError
					require.True(t, errors.As(err, &te), "step %q -> %q: %v", pair[0], pair[1], err)
					require.Equal(t, "step", te.Entity)
					require.Equal(t, pair[0], te.From)
					require.Equal(t, pair[1], te.To)
					require.Contains(t, err.Error(), pair[0]+" -> "+pair[1])
				}
			}
			require.Error(t, lifecycle.CheckStep(lifecycle.StepState(u), lifecycle.StepState(u)))
		}
		// A task-only state name is not a step state.
		require.Error(t, lifecycle.CheckStep(lifecycle.StepPending, "initializing"))
		require.Error(t, lifecycle.CheckStep("blocked_by_failures", lifecycle.StepCancelled))
	})

	t.Run("unknown from-state is not reported as terminal", func(t *testing.T) {
		t.Parallel()
		msg := lifecycle.CheckTask("bogus", lifecycle.TaskPending).Error()
		require.NotContains(t, msg, "is terminal")
		require.Contains(t, msg, "bogus")
		require.NotContains(t, lifecycle.CheckStep("bogus", lifecycle.StepPending).Error(), "is terminal")
	})
}

func TestTransitionErrorMessage(t *testing.T) {
	t.Parallel()

	t.Run("no exits", func(t *testing.T) {
		t.Parallel()
		err := &lifecycle.TransitionError{Entity: "task", From: "complete", To: "pending"}
		require.Equal(t, "illegal task transition complete -> pending: complete is terminal", err.Error())
	})

	t.Run("with exits", func(t *testing.T) {
		t.Parallel()
		err := &lifecycle.TransitionError{Entity: "step", From: "error", To: "enqueued", Allowed: []string{"pending", "cancelled"}}
		msg := err.Error()
		require.Contains(t, msg, "illegal step transition error -> enqueued")
		require.Contains(t, msg, "pending")
		require.Contains(t, msg, "cancelled")
		require.NotContains(t, msg, "terminal")
	})

	t.Run("terminal task error lists its operator exits", func(t *testing.T) {
		t.Parallel()
		// error is Terminal() for tasks, yet an operator may reset or resolve it, so the
		// message lists those exits instead of calling it terminal.
		require.True(t, lifecycle.TaskError.Terminal())
		err := lifecycle.CheckTask(lifecycle.TaskError, lifecycle.TaskCancelled)
		require.Error(t, err)
		require.Contains(t, err.Error(), "error -> cancelled")
		require.Contains(t, err.Error(), "pending")
		require.Contains(t, err.Error(), "resolved_manually")
	})
}
