package cli

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBenchFloorRefusesBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--batches", "0"}, "--batches 0: each size must be from 1 to 256"},
		{[]string{"--batches", "8,257"}, "--batches 257: each size must be from 1 to 256"},
		{[]string{"--batches", ""}, `invalid argument "" for "--batches"`},
		{[]string{"--seconds", "0"}, "--seconds 0: must be from 1 to 3600"},
		{[]string{"--reference-seconds", "-1"}, "--reference-seconds -1: must be from 0 to 3600"},
		{[]string{"-o", "yaml"}, "yaml"},
	} {
		root := Root()
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		root.SetArgs(append([]string{"bench", "floor"}, tc.args...))
		require.ErrorContains(t, root.ExecuteContext(context.Background()), tc.want, tc.args)
	}
}

func TestParsePgbenchLatencyAndRuns(t *testing.T) {
	t.Parallel()
	got, err := parsePgbenchLatency("number of failed transactions: 0 (0.000%)\nlatency average = 11.311 ms\ntps = 88.4 (without initial connection time)\n")
	require.NoError(t, err)
	require.InDelta(t, 11.311, got, 1e-9)
	_, err = parsePgbenchLatency("tps = 88.4 (without initial connection time)\n")
	require.ErrorContains(t, err, "printed no \"latency average")
	runs, err := parsePgbenchProcessed("number of transactions actually processed: 885\nnumber of failed transactions: 0 (0.000%)\n")
	require.NoError(t, err)
	require.Equal(t, 885, runs)
	_, err = parsePgbenchProcessed("latency average = 11.311 ms\n")
	require.ErrorContains(t, err, "actually processed")
}

func TestPrintFloor(t *testing.T) {
	t.Parallel()
	cpu := 0.5391
	res := &FloorResult{Batches: []FloorBatch{{TasksPerBatch: 1, StepsPerSecond: 700, StepsPerTPS: 0.14},
		{TasksPerBatch: 16, StepsPerSecond: 3483.3, StepsPerTPS: 0.73, DBCPUMSPerStep: &cpu}},
		OneTaskMS: 9.28, OneTaskDBCPUMS: &cpu, Seconds: 10, Reference: &PgbenchResult{Scale: 10, Clients: 8, Threads: 2, Seconds: 10, TPS: 4742.1}}
	var out strings.Builder
	printFloor(&out, res, "not local")
	require.Regexp(t, `(?m)^  16 +3483\.3 +0\.73 +0\.539 *$`, out.String())
	require.Regexp(t, `(?m)^  1 +700\.0 +0\.14 +unknown *$`, out.String())
	require.Contains(t, out.String(), "one task at a time (1 client): 9.28 ms a task, PostgreSQL CPU 0.54 ms a task: the least")
	require.Contains(t, out.String(), "4742.1 TPS")
	require.Contains(t, out.String(), "database CPU unknown: not local")
}
