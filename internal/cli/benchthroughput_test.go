package cli

import (
	"context"
	"encoding/binary"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParsePgbenchTPS(t *testing.T) {
	t.Parallel()
	pg15 := `pgbench (15.18 (Debian 15.18-0+deb12u1))
starting vacuum...end.
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 10
query mode: prepared
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 15 s
number of transactions actually processed: 78619
number of failed transactions: 0 (0.000%)
latency average = 1.526 ms
initial connection time = 12.345 ms
tps = 5241.045917 (without initial connection time)
`
	pg13 := `latency average = 2.000 ms
tps = 3999.120000 (including connections establishing)
tps = 4001.5 (excluding connections establishing)
`
	for _, tc := range []struct {
		name, out string
		want      float64
		err       string
	}{
		{"PostgreSQL 14 and later", pg15, 5241.045917, ""},
		{"before 14: the figure without connections", pg13, 4001.5, ""},
		{"whole number", "tps = 812 (without initial connection time)\n", 812, ""},
		{"no summary", "pgbench: error: connection to server failed\n", 0, "printed no"},
		{"only the figure with connections", "tps = 10.0 (including connections establishing)\n", 0, "printed no"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parsePgbenchTPS(tc.out)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tc.want, got, 1e-9)
		})
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, line string
		want       procStat
		err        string
	}{
		{"plain", "1234 (orchestrator) S 1200 1234 1200 0 -1 4194560 8000 0 0 0 250 75 3 4 20 0 12 0 9000 1000000 2000 18446744073709551615",
			procStat{ppid: 1200, utime: 250, stime: 75, cutime: 3, cstime: 4}, ""},
		{"a postgres backend: spaces in the name", "4321 (postgres: postgres tasker_sim_1 127.0.0.1(5555) idle) S 4000 4000 4000 0 -1 4194624 100 0 0 0 17 9 0 0 20 0 1 0 500 200000 300",
			procStat{ppid: 4000, utime: 17, stime: 9}, ""},
		{"parentheses in the name", "77 (a) b) (c) R 1 77 77 0 -1 0 0 0 0 0 5 6 7 8 20 0 1 0 1 1 1",
			procStat{ppid: 1, utime: 5, stime: 6, cutime: 7, cstime: 8}, ""},
		{"no name", "1234 S 1", procStat{}, "no command name"},
		{"cut short", "1234 (x) S 1 2 3", procStat{}, "fields after the command name"},
		{"not a number", "1234 (x) S 1 2 3 4 5 6 7 8 9 10 ten 11 12 13", procStat{}, "field 14"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseProcStat(tc.line)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseVMRSS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, status string
		want         int64
		err          string
	}{
		{"status file", "Name:\tworker\nVmPeak:\t 1300000 kB\nVmHWM:\t   30000 kB\nVmRSS:\t   24576 kB\nRssAnon:\t   10000 kB\n", 24576, ""},
		{"kernel thread", "Name:\tkthreadd\nState:\tS (sleeping)\n", 0, "no VmRSS"},
		{"odd unit", "VmRSS:\t 24 MB\n", 0, "want a number of kB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseVMRSS(strings.NewReader(tc.status))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestAuxvValue(t *testing.T) {
	t.Parallel()
	auxv := func(pairs ...uint64) []byte {
		var b []byte
		for _, v := range pairs {
			b = binary.NativeEndian.AppendUint64(b, v)
		}
		return b
	}
	require.Equal(t, uint64(100), auxvValue(auxv(6, 4096, 17, 100, 0, 0), 17))
	require.Equal(t, uint64(0), auxvValue(auxv(6, 4096, 0, 0, 17, 250), 17), "nothing after AT_NULL")
	require.Equal(t, uint64(0), auxvValue(auxv(6, 4096)[:12], 17), "a short vector")
	require.Greater(t, clockTicks(), 0.0)
}

func TestMedianRound(t *testing.T) {
	t.Parallel()
	withRef := func(steps, tps, scaleOut float64) ThroughputRound {
		r := ThroughputRound{Run: ThroughputRun{StepsPerSecond: steps}, Reference: &PgbenchResult{TPS: tps},
			StepsPerTPS: steps / tps}
		if scaleOut > 0 {
			r.ScaleOut, r.ScaleOutRatio = &ThroughputRun{StepsPerSecond: steps * scaleOut}, scaleOut
		}
		return r
	}
	// By ratio, not by steps/s: round 0 is the fastest burst but on the fastest machine.
	rounds := []ThroughputRound{withRef(1500, 7500, 0.7), withRef(1000, 4000, 0.9), withRef(1200, 5000, 0.8)}
	require.Equal(t, 2, MedianRound(rounds), "ratios 0.20, 0.25, 0.24: the median is 0.24")
	require.InDelta(t, 0.8, medianScaleOut(rounds), 1e-9)

	require.Equal(t, 0, MedianRound(rounds[:2]), "an even count: the lower middle, a round that ran")
	require.InDelta(t, 0.7, medianScaleOut(rounds[:2]), 1e-9)
	require.Equal(t, 0, MedianRound(rounds[1:2]), "one round")
	require.Equal(t, -1, MedianRound(nil))

	noRef := []ThroughputRound{{Run: ThroughputRun{StepsPerSecond: 900}}, {Run: ThroughputRun{StepsPerSecond: 700}},
		{Run: ThroughputRun{StepsPerSecond: 800}}}
	require.Equal(t, 2, MedianRound(noRef), "without a reference, by steps/s")
	require.Zero(t, medianScaleOut(noRef), "no round compared scale-out")
}

// Both benchmarks take --repeat from 1 to 50.
func TestBenchmarksRefuseABadRepeat(t *testing.T) {
	t.Parallel()
	for _, cmd := range [][]string{{"bench"}, {"bench", "throughput"}} {
		for _, n := range []string{"0", "51"} {
			root := Root()
			root.SetOut(io.Discard)
			root.SetErr(io.Discard)
			root.SetArgs(append(cmd, "--repeat", n))
			require.ErrorContains(t, root.ExecuteContext(context.Background()), "--repeat "+n+": must be from 1 to 50", cmd)
		}
	}
}

func TestPrintRounds(t *testing.T) {
	t.Parallel()
	db := 1.1
	rounds := []ThroughputRound{
		{Run: ThroughputRun{StepsPerSecond: 1000, DBCPUMSPerStep: &db}, Reference: &PgbenchResult{TPS: 5000}, StepsPerTPS: 0.2},
		{Run: ThroughputRun{StepsPerSecond: 1100}, Reference: &PgbenchResult{TPS: 5000}, StepsPerTPS: 0.22},
		{Run: ThroughputRun{StepsPerSecond: 1200}, Reference: &PgbenchResult{TPS: 5000}, StepsPerTPS: 0.24},
	}
	res := &ThroughputResult{ThroughputRound: rounds[MedianRound(rounds)], Rounds: rounds,
		Targets: ThroughputGoals{StepsPerTPS: throughputTarget}}
	var out strings.Builder
	printThroughput(&out, res, "")
	require.Contains(t, out.String(), "round 1: 1000.0 steps/s (PostgreSQL CPU 1.100 ms/step), pgbench 5000.0 TPS, ratio 0.20\n")
	require.Contains(t, out.String(), "median of 3 rounds: steps/s ÷ TPS 0.22 (target >= 0.5)")
	require.Contains(t, out.String(), "steps/s ÷ TPS = 1100.0 ÷ 5000.0 = 0.22")
}
