package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/stack"
)

func TestMedianBenchRound(t *testing.T) {
	t.Parallel()
	// By P50 over the commit reference: round 0 has the lowest P50 but on the fastest
	// machine.
	rounds := []BenchRound{{P50MS: 18, ReferenceCommitMS: 0.06, RatioToCommit: 300},
		{P50MS: 22, ReferenceCommitMS: 0.11, RatioToCommit: 200}, {P50MS: 25, ReferenceCommitMS: 0.1, RatioToCommit: 250}}
	require.Equal(t, 2, medianBenchRound(rounds))
	require.Equal(t, 1, medianBenchRound(rounds[:2]), "an even count: the lower middle")
	require.Equal(t, 0, medianBenchRound([]BenchRound{{P50MS: 30}, {P50MS: 20}, {P50MS: 40}}), "without a reference, by P50: 30 ms")
	require.Equal(t, -1, medianBenchRound(nil))
}

func TestPrintBenchRounds(t *testing.T) {
	t.Parallel()
	rounds := []BenchRound{{P50MS: 22.04, P99MS: 60.03, ReferenceCommitMS: 0.106, RatioToCommit: 208.3},
		{P50MS: 23.19, P99MS: 46.05, ReferenceCommitMS: 0.117, RatioToCommit: 198.6}}
	res := &BenchResult{Tasks: 100, BenchRound: rounds[0], Rounds: rounds}
	var out strings.Builder
	printBench(&out, res, 10)
	require.Contains(t, out.String(), "round 1: P50 22.04 ms, P99 60.03 ms, commit P50 0.106 ms, P50 = 208.3 x commit\n")
	require.Contains(t, out.String(), "the median round of 2")
	require.Contains(t, out.String(), "task P50 = 208.3 x commit")
}

func TestTaskCPU(t *testing.T) {
	t.Parallel()
	m := &cpuMeter{procs: []stack.Process{{Name: "orchestrator"}, {Name: "worker-1"}}}
	before := cpuReading{procs: []time.Duration{time.Second, 2 * time.Second}, db: 10 * time.Second, dbKnown: true}
	after := cpuReading{procs: []time.Duration{1200 * time.Millisecond, 2300 * time.Millisecond}, db: 12 * time.Second, dbKnown: true}
	cpu := after.perTask(before, m, 100)
	require.InDelta(t, 5.0, cpu.ServicesMS, 1e-9, "(200 + 300) ms over 100 tasks")
	require.NotNil(t, cpu.PostgresMS)
	require.InDelta(t, 20.0, *cpu.PostgresMS, 1e-9)
	require.Equal(t, "PostgreSQL 20.00 ms, orchestrator and worker 5.00 ms", cpu.String())

	after.dbKnown = false
	cpu = after.perTask(before, m, 100)
	require.Nil(t, cpu.PostgresMS, "a server whose CPU this machine cannot read")
	require.Equal(t, "PostgreSQL unknown, orchestrator and worker 5.00 ms", cpu.String())
}
