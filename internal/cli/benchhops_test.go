package cli_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/cli"
	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
)

// The breakdown covers each hop of a linear task as often as the task makes it, and the
// hops of a task fit inside its create -> complete.
func TestLatencyHopsOfLinearTasks(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, harness.Options{})
	ctx := ctxFor(t)
	var ids []string
	for i := range 3 {
		created, err := env.Client.CreateTask(ctx, &api.TaskRequest{Namespace: "rust_e2e_linear",
			Name: "mathematical_sequence", Version: "1.0.0", Context: json.RawMessage(fmt.Sprintf(`{"even_number": 4, "run": %d}`, i)),
			Initiator: "test", SourceSystem: "test", Reason: "latency hops"})
		require.NoError(t, err)
		done, err := env.Client.WaitTask(ctx, created.TaskUUID)
		require.NoError(t, err)
		require.Equal(t, "complete", done.Status)
		ids = append(ids, created.TaskUUID)
	}
	hops, err := cli.LatencyHops(ctx, env.Pool, ids)
	require.NoError(t, err)
	require.Len(t, hops, 7)
	perTask := []float64{1, 4, 4, 4, 3, 1, 1} // four steps in a line
	total := hops[len(hops)-1]
	for i, h := range hops {
		require.InDelta(t, perTask[i], h.PerTask, 1e-9, h.Hop)
		require.Positive(t, h.MedianMS, h.Hop)
		require.LessOrEqual(t, h.MedianMS, total.MedianMS, "%s fits inside create -> complete", h.Hop)
	}

	none, err := cli.LatencyHops(ctx, env.Pool, nil)
	require.NoError(t, err)
	require.Len(t, none, 7, "no tasks: every hop, none made")
	for _, h := range none {
		require.Zero(t, h.PerTask)
		require.Zero(t, h.MedianMS)
	}
}
