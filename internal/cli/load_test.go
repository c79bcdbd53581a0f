package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/cli"
	"github.com/tasker-sim/tasker-sim/internal/load"
	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// Each bad input gets a one-line error that names the field, and nothing is created.
func TestLoadRefusesBadInput(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, harness.Options{})
	url := env.Orchestrators[0].URL()
	badTOML := writeFile(t, "bad.toml", "[[phase]\nname = 1")
	badField := writeFile(t, "field.toml", `[[phase]]
name = "typo"
at = "1s"
for = "1s"
target = "worker"
faults = { error_rat = 0.5 }`)
	badTarget := writeFile(t, "target.toml", `[[phase]]
name = "where"
at = "1s"
for = "1s"
target = "database"
faults = { error_rate = 0.5 }`)
	unknownKey := writeFile(t, "key.toml", `[[phase]]
name = "k"
at = "1s"
for = "1s"
target = "worker"
when = "now"
faults = { error_rate = 0.5 }`)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--mix", "nope=1"}, `unknown shape "nope"`},
		{[]string{"--mix", "mathematical_sequence=0"}, "weight of mathematical_sequence"},
		{[]string{"--rate", "0"}, "--rate 0: must be above 0"},
		{[]string{"--rate", "-3"}, "--rate -3: must be above 0"},
		{[]string{"--ramp", "10:abc:5m"}, `--ramp "10:abc:5m": rate "abc"`},
		{[]string{"--stages", "100"}, "--stages"},
		{[]string{"--concurrency", "5", "--rate", "10"}, "--concurrency: the closed model takes no --rate"},
		{[]string{"--concurrency", "0"}, "--concurrency 0"},
		{[]string{"--duration", "-1s"}, "--duration -1s"},
		{[]string{"--warmup", "2m", "--duration", "1m"}, "--warmup 2m0s: must be shorter"},
		{[]string{"--payload-bytes", "-1"}, "--payload-bytes -1"},
		{[]string{"--threshold", "p42<1ms"}, `unknown metric "p42"`},
		{[]string{"--threshold", "p99<5"}, `value "5": must end in ms or s`},
		{[]string{"--scenario", badTOML}, "scenario"},
		{[]string{"--scenario", badField}, `unknown field "error_rat"`},
		{[]string{"--scenario", badTarget}, `target "database": must be one of`},
		{[]string{"--scenario", unknownKey}, `unknown field "phase.when"`},
		{[]string{"--scenario", "/no/such/file.toml"}, "--scenario"},
		{[]string{"--scenario", "chaos"}, "target worker: no such process is known; give its address with --worker-url"},
		{[]string{"-o", "yaml"}, "--output"},
	} {
		_, err := taskerctl(t, url, append([]string{"load"}, c.args...)...)
		require.Error(t, err, c.args)
		require.ErrorContains(t, err, c.want, c.args)
		require.NotContains(t, err.Error(), "\n", "one line: %v", c.args)
	}
	list, err := env.Client.ListTasks(context.Background(), client.ListOptions{})
	require.NoError(t, err)
	require.Zero(t, list.Pagination.TotalCount, "no bad input created a task")
}

// A short run against a running orchestrator prints its figures as JSON and writes the
// HTML report; a threshold it cannot meet fails it.
func TestLoadJSONReportAndThreshold(t *testing.T) {
	t.Parallel()
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "load-cli-test"}, discardLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	env := harness.New(t, cluster, harness.Options{Telemetry: tel})
	url := env.Orchestrators[0].URL()
	report := filepath.Join(t.TempDir(), "run.html")
	out, err := taskerctl(t, url, "load", "--rate", "20", "--duration", "3s", "--warmup", "1s",
		"--mix", "mathematical_sequence=1,diamond_pattern=1", "-o", "json", "--report", report, "--threshold", "errors<1%")
	require.NoError(t, err, out)
	var res load.Result
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, load.SchemaVersion, res.Schema)
	require.True(t, res.Passed)
	require.InDelta(t, 60, res.Created, 5)
	require.Len(t, res.Shapes, 2)
	require.Equal(t, res.Created, res.FinalStates["complete"])
	require.True(t, res.Reconciliation.Checked)
	html, err := os.ReadFile(report)
	require.NoError(t, err)
	require.Contains(t, string(html), "<svg")

	_, err = taskerctl(t, url, "load", "--rate", "10", "--duration", "2s", "--warmup", "0s",
		"--mix", "mathematical_sequence=1", "--threshold", "p50<0.001ms")
	require.ErrorContains(t, err, "threshold p50<0.001ms not met")
	require.False(t, strings.Contains(err.Error(), "never finished"))
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Every taskerctl error is printed once; an orchestrator nobody answers at is named, with
// how to start one.
func TestErrorsPrintedOnceWithAHint(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := cli.Execute(context.Background(), []string{"--url", "http://127.0.0.1:1", "task", "get",
		"0199c3e0-ccdb-7581-87ab-3f67daeaa4a5"}, &out, &errOut)
	require.Equal(t, 1, code)
	msg := errOut.String()
	require.Equal(t, 1, strings.Count(msg, "connection refused"), msg)
	require.NotContains(t, msg, "Error:")
	require.Contains(t, msg, "taskerctl: cannot reach the orchestrator at http://127.0.0.1:1")
	require.Contains(t, msg, "TASKER_ORCHESTRATION_URL")

	errOut.Reset()
	code = cli.Execute(context.Background(), []string{"verify", "--metrics-url", "http://127.0.0.1:1/metrics"}, &out, &errOut)
	require.Equal(t, 1, code)
	require.Contains(t, errOut.String(), "nothing answers at http://127.0.0.1:1/metrics")
}
