package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tasker-sim/tasker-sim/internal/cli"
	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/pgprovision"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

var cluster *pgprovision.Cluster

func TestMain(m *testing.M) {
	c, stop, err := pgprovision.ForTestMain(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cluster = c
	code := m.Run()
	stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func taskerctl(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	root := cli.Root()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"--url", url}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestTaskCommands(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, harness.Options{})
	url := env.Orchestrators[0].URL()

	out, err := taskerctl(t, url, "task", "create", "--namespace", "rust_e2e_linear", "--name", "mathematical_sequence",
		"--input", `{"even_number": 6}`, "--correlation-id", "0199c3e0-ccdb-7581-87ab-3f67daeaa4a5", "--wait")
	require.NoError(t, err, out)
	require.Regexp(t, regexp.MustCompile(`Task UUID:\s+[0-9a-f-]{36}`), out)
	require.Contains(t, out, "0199c3e0-ccdb-7581-87ab-3f67daeaa4a5", "create prints the correlation id")
	require.Regexp(t, `Status:\s+complete`, out)
	id := regexp.MustCompile(`Task UUID:\s+([0-9a-f-]{36})`).FindStringSubmatch(out)[1]

	// The same input twice is two tasks, thanks to the run id...
	out, err = taskerctl(t, url, "task", "create", "--namespace", "rust_e2e_linear", "--name", "mathematical_sequence",
		"--input", `{"even_number": 6}`, "-o", "json")
	require.NoError(t, err)
	var created api.TaskResponse
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	require.NotEmpty(t, created.TaskUUID)
	require.NotEmpty(t, created.CorrelationID)
	// ...unless asked not to add one.
	_, err = taskerctl(t, url, "task", "create", "--namespace", "rust_e2e_linear", "--name", "mathematical_sequence",
		"--input", `{"even_number": 8}`, "--no-run-id")
	require.NoError(t, err)
	_, err = taskerctl(t, url, "task", "create", "--namespace", "rust_e2e_linear", "--name", "mathematical_sequence",
		"--input", `{"even_number": 8}`, "--no-run-id")
	require.ErrorContains(t, err, "409")

	out, err = taskerctl(t, url, "task", "get", id, "-o", "json")
	require.NoError(t, err)
	var got api.TaskResponse
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Equal(t, "complete", got.Status)
	require.Equal(t, "0199c3e0-ccdb-7581-87ab-3f67daeaa4a5", got.CorrelationID)

	out, err = taskerctl(t, url, "task", "steps", id)
	require.NoError(t, err)
	require.Contains(t, out, "2821109907456")

	out, err = taskerctl(t, url, "task", "list", "--namespace", "rust_e2e_linear", "--status", "complete")
	require.NoError(t, err)
	require.Contains(t, out, id)

	_, err = taskerctl(t, url, "task", "cancel", id)
	require.ErrorContains(t, err, "already complete")
}

func TestTaskCommandErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"task", "create", "--namespace", "a", "--name", "b", "--input", "[1]"}, "--input: must be a JSON object"},
		{[]string{"task", "create", "--name", "b"}, `"namespace" not set`},
		{[]string{"task", "get", "x", "-o", "yaml"}, "--output \"yaml\": must be text or json"},
		{[]string{"bench", "--tasks", "0"}, "--tasks 0: must be at least 1"},
		{[]string{"bench", "--even-number", "7"}, "--even-number 7: must be even"},
		{[]string{"demo", "--concurrency", "0"}, "--concurrency 0"},
	} {
		_, err := taskerctl(t, "http://127.0.0.1:1", tc.args...)
		require.ErrorContains(t, err, tc.want, tc.args)
	}
	_, err := taskerctl(t, "ftp://nowhere", "task", "get", "x")
	require.ErrorContains(t, err, "must be an http(s) URL")
}

func TestVerify(t *testing.T) {
	t.Parallel()
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "verify-test"},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	env := harness.New(t, cluster, harness.Options{Telemetry: tel})
	url := env.Orchestrators[0].URL()
	const corr = "0199c3e0-ccdb-7581-87ab-3f67daeaa4b1"
	_, err = taskerctl(t, url, "task", "create", "--namespace", "rust_e2e_linear", "--name", "mathematical_sequence",
		"--input", `{"even_number": 4}`, "--correlation-id", corr, "--wait")
	require.NoError(t, err)

	var out string
	require.Eventually(t, func() bool {
		out, _ = taskerctl(t, url, "verify", "--metrics-url", url+"/metrics", "--correlation-id", corr)
		return strings.Contains(out, "✓  flow "+corr)
	}, 5*time.Second, 20*time.Millisecond, "the flow row turns green once the worker's counters land")
	require.Contains(t, out, "✓  tasker_tasks_requests_total")
	require.Contains(t, out, "requests 1 → enqueued 4 → executions 4 → successes 4 → submitted 4 → processed 4 → completions 1")
	require.Contains(t, out, "✓  api_circuit_breaker_state")
	out, err = taskerctl(t, url, "verify", "--metrics-url", url+"/metrics")
	require.NoError(t, err, out)
	require.Contains(t, out, "checks passed")
	// Rare counters (failures, rejections) have not happened, so --strict fails on coverage.
	_, err = taskerctl(t, url, "verify", "--metrics-url", url+"/metrics", "--strict")
	require.ErrorContains(t, err, "checks failed")

	// The same rows from a Prometheus HTTP API, here one answering from the same registry.
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/api/v1/query", r.URL.Path)
		rec := httptest.NewRecorder()
		tel.MetricsHandler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		var result []map[string]any
		for _, line := range strings.Split(rec.Body.String(), "\n") {
			if !strings.HasPrefix(line, "tasker_tasks_requests_total{") {
				continue
			}
			labels := map[string]string{"__name__": "tasker_tasks_requests_total", "correlation_id": corr}
			fields := strings.Fields(line)
			result = append(result, map[string]any{"metric": labels, "value": []any{1.0, fields[len(fields)-1]}})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": result}})
	}))
	t.Cleanup(prom.Close)
	out, err = taskerctl(t, url, "verify", "--prometheus", prom.URL)
	require.Error(t, err, "a Prometheus holding only request counts fails most rows")
	require.Contains(t, out, "✓  tasker_tasks_requests_total")
	require.Contains(t, out, "✗  tasker_steps_enqueued_total")
}

func TestFaultCommands(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, harness.Options{})
	url := env.Orchestrators[0].URL()
	workerURL := "http://" + env.Workers[0].Addr()

	out, err := taskerctl(t, url, "fault", "set", "--target", "orchestrator", "--spec", `{"database_unavailable": true}`)
	require.NoError(t, err)
	require.Contains(t, out, `"database_unavailable": true`)
	_, err = taskerctl(t, url, "task", "get", "0199c3e0-ccdb-7581-87ab-3f67daeaa4a5")
	require.ErrorContains(t, err, "500", "the injected fault fails the API's database work")
	out, err = taskerctl(t, url, "fault", "clear", "--target", "orchestrator")
	require.NoError(t, err)
	require.Equal(t, "{}", strings.TrimSpace(out))

	out, err = taskerctl(t, url, "fault", "set", "--target", "worker", "--worker-url", workerURL,
		"--spec", `{"error_rate": 0.5, "retryable": true, "latency_ms": {"min": 1, "max": 2}}`)
	require.NoError(t, err)
	require.Contains(t, out, `"error_rate": 0.5`)
	out, err = taskerctl(t, url, "fault", "get", "--target", "worker", "--worker-url", workerURL)
	require.NoError(t, err)
	require.Contains(t, out, `"retryable": true`)

	_, err = taskerctl(t, url, "fault", "set", "--target", "worker", "--worker-url", workerURL, "--spec", `{"error_rate": 3}`)
	require.ErrorContains(t, err, "error_rate 3: must be from 0 to 1")
	_, err = taskerctl(t, url, "fault", "set", "--target", "nowhere", "--spec", `{}`)
	require.ErrorContains(t, err, `--target "nowhere": must be orchestrator or worker`)

	// Per task: the step fails as injected, and the task is blocked by the failure.
	out, err = taskerctl(t, url, "task", "create", "--namespace", "rust_e2e_linear", "--name", "mathematical_sequence",
		"--input", `{"even_number": 4}`, "--faults", `{"error_rate": 1}`, "--wait")
	require.ErrorContains(t, err, "ended blocked_by_failures", out)
	_, err = taskerctl(t, url, "task", "create", "--namespace", "rust_e2e_linear", "--name", "mathematical_sequence",
		"--input", `{"even_number": 4}`, "--faults", `{"bogus": 1}`)
	require.ErrorContains(t, err, "--faults")
}

func TestHealthDetailed(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, harness.Options{})
	for base, keys := range map[string][]string{
		env.Orchestrators[0].URL(): {"channel_saturation", "circuit_breaker", "command_processor",
			"orchestration_database", "orchestration_system", "pool_utilization", "queue_depth", "web_database"},
		"http://" + env.Workers[0].Addr(): {"circuit_breakers", "command_processor", "database", "event_system",
			"queue_processing", "step_processing"},
	} {
		resp, err := http.Get(base + "/health/detailed")
		require.NoError(t, err)
		var h struct {
			Status string                    `json:"status"`
			Checks map[string]map[string]any `json:"checks"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, base)
		require.Equal(t, "healthy", h.Status, base)
		require.ElementsMatch(t, keys, slices.Collect(maps.Keys(h.Checks)), base)
		for name, c := range h.Checks {
			require.Equal(t, "healthy", c["status"], "%s %s: %v", base, name, c["message"])
		}
	}
}
