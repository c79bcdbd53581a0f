package cli

import (
	"encoding/binary"
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
