package faults_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/faults"
)

// TestProcessFaultsAreRefusedPerTask: a per-task faults object may not set a
// process-only fault, even to its zero value, and the error names the field.
func TestProcessFaultsAreRefusedPerTask(t *testing.T) {
	for _, doc := range []string{
		`{"database_unavailable": true}`, `{"flood_channel": 10}`, `{"abandon_rate": 0.5}`,
		`{"error_rate": 0.1, "abandon_rate": 0}`,
	} {
		err := faults.ValidateForTask([]byte(doc))
		var fe *faults.FieldError
		require.True(t, errors.As(err, &fe), "%s: %v", doc, err)
		require.Contains(t, err.Error(), fe.Field+": a process fault; set it with taskerctl fault set or POST /admin/faults")
		require.Contains(t, doc, `"`+fe.Field+`"`)
	}
	require.NoError(t, faults.ValidateForTask([]byte(`{"slow_completion_ms": 150, "error_rate": 0.1}`)))
	require.ErrorContains(t, faults.ValidateForTask([]byte(`{"slow_completion_ms": -1}`)), "slow_completion_ms -1")
	require.ErrorContains(t, faults.ValidateForTask([]byte(`{"no_such_fault": 1}`)), "no_such_fault")
}

// TestRefuseProcessFaultsInContext reads a whole task context: only its "_faults" object
// counts, and a context without one, or with one that is not an object, passes (the rest
// is checked when the task's steps run).
func TestRefuseProcessFaultsInContext(t *testing.T) {
	fe := faults.RefuseProcessFaultsInContext([]byte(`{"n": 2, "_faults": {"flood_channel": 5}}`))
	require.NotNil(t, fe)
	require.Equal(t, "flood_channel", fe.Field)
	for _, ctx := range []string{
		`{"n": 2}`, `{"flood_channel": 5}`, `{"_faults": {"latency_ms": {"min": 5, "max": 1}}}`, `{"_faults": 3}`,
		`not json "_faults"`,
	} {
		require.Nil(t, faults.RefuseProcessFaultsInContext([]byte(ctx)), ctx)
	}
}

// TestAbandonRate checks the new fault's range and its roll.
func TestAbandonRate(t *testing.T) {
	_, err := faults.Parse([]byte(`{"abandon_rate": 1.5}`))
	require.ErrorContains(t, err, "abandon_rate 1.5: must be from 0 to 1")
	f, err := faults.Parse([]byte(`{"abandon_rate": 0.25}`))
	require.NoError(t, err)
	var dropped int
	for range 10_000 {
		if f.Abandon() {
			dropped++
		}
	}
	require.InDelta(t, 2500, dropped, 300)
	require.False(t, faults.Faults{}.Abandon())
	require.True(t, faults.Faults{AbandonRate: 1}.Abandon())
}

// TestCheckedSwitch: a process's own rule refuses a Set and leaves the faults as they were.
func TestCheckedSwitch(t *testing.T) {
	var applied []faults.Faults
	s := faults.NewCheckedSwitch(faults.Faults{}, func(f faults.Faults) error {
		if f.SlowCompletionMS > 0 {
			return errors.New("slow_completion_ms: needs an FFI handler type")
		}
		return nil
	}, func(f faults.Faults) { applied = append(applied, f) })
	require.ErrorContains(t, s.Set(faults.Faults{SlowCompletionMS: 150}), "needs an FFI handler type")
	require.Equal(t, faults.Faults{}, s.Get())
	require.Empty(t, applied)
	require.NoError(t, s.Set(faults.Faults{AbandonRate: 0.5}))
	require.Equal(t, 0.5, s.Get().AbandonRate)
	require.Len(t, applied, 1)
}
