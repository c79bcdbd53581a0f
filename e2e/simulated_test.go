package e2e

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// simulatedTemplates are templates whose callables have no Go handler: the worker runs
// simulated handlers for them.
var simulatedTemplates = map[string]string{
	"simulated_flow.json": `{
  "name": "simulated_flow", "namespace_name": "sim_e2e", "version": "1.0.0",
  "steps": [
    {"name": "extract", "handler": {"callable": "Acme::Extract",
      "initialization": {"simulate": {"latency_ms": {"p50": 2, "p99": 20}, "result_bytes": 512}}}},
    {"name": "load", "dependencies": ["extract"], "handler": {"callable": "Acme::Load"}}
  ]}`,
	"simulated_dynamic.yaml": `
name: simulated_dynamic
namespace_name: sim_e2e
version: 1.0.0
steps:
  - {name: start, handler: {callable: "Acme::Start", initialization: {simulate: {latency_ms: 1}}}}
  - {name: route, type: decision, dependencies: [start], handler: {callable: "Acme::Route"}}
  - {name: left, dependencies: [route], handler: {callable: "Acme::Left"}}
  - {name: right, dependencies: [route], handler: {callable: "Acme::Right"}}
  - {name: join, type: deferred_convergence, dependencies: [left, right], handler: {callable: "Acme::Join"}}
  - {name: split, type: batchable, dependencies: [start], handler: {callable: "Acme::Split"}}
  - name: chunk
    type: batch_worker
    dependencies: [split]
    handler: {callable: "Acme::Chunk"}
    batch_config: {batch_size: 100, parallelism: 3, cursor_field: id, worker_template: chunk, failure_strategy: continue_on_failure}
  - {name: gather, type: deferred_convergence, dependencies: [chunk], handler: {callable: "Acme::Gather"}}
`,
	"simulated_failure.json": `{
  "name": "simulated_failure", "namespace_name": "sim_e2e", "version": "1.0.0",
  "steps": [
    {"name": "charge", "handler": {"callable": "Acme::Charge",
      "initialization": {"simulate": {"latency_ms": 1, "error_rate": 1, "retryable_share": 0}}},
     "retry": {"max_attempts": 3}}
  ]}`,
}

// simulatedEnv starts a cluster whose worker serves only the templates above, loaded from
// a directory as TASKER_TEMPLATE_PATH would be. Its log goes to logs (dbwait_test.go's lockedBuffer).
func simulatedEnv(t *testing.T, logs *lockedBuffer) *harness.Env {
	t.Helper()
	dir := t.TempDir()
	for name, doc := range simulatedTemplates {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o600))
	}
	ts, err := workflow.LoadDir(dir)
	require.NoError(t, err)
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) { c.Templates = ts }
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	return harness.New(t, cluster, opts)
}

// stepOutcome is the part of a step's stored result these tests read.
type stepOutcome struct {
	Success bool            `json:"success"`
	Result  json.RawMessage `json:"result"`
	Error   struct {
		ErrorType string `json:"error_type"`
		Retryable bool   `json:"retryable"`
	} `json:"error"`
}

func TestSimulatedHandlers(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	env := simulatedEnv(t, &logs)
	require.Contains(t, logs.String(), `msg="simulated handlers stand in for callables without a Go handler"`)
	require.Contains(t, logs.String(), `callables="[Acme::Charge Acme::Chunk Acme::Extract Acme::Gather Acme::Join Acme::Left Acme::Load Acme::Right Acme::Route Acme::Split Acme::Start]"`)

	t.Run("complete", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 60*time.Second)
		callables := map[string]string{"extract": "Acme::Extract", "load": "Acme::Load"}
		for range 5 {
			created, done := runTask(ctx, t, env, request("sim_e2e", "simulated_flow", map[string]any{}))
			require.Equal(t, "complete", done.Status)
			require.Equal(t, 2, done.CompletedSteps)

			steps, err := env.Client.Steps(ctx, created.TaskUUID)
			require.NoError(t, err)
			require.Len(t, steps, 2)
			for _, s := range steps {
				require.Equal(t, "complete", s.CurrentState, s.Name)
				var out stepOutcome
				require.NoError(t, json.Unmarshal(s.Results, &out), s.Name)
				require.True(t, out.Success, s.Name)
				var r struct {
					Simulated bool   `json:"simulated"`
					Callable  string `json:"callable"`
					Step      string `json:"step"`
				}
				require.NoError(t, json.Unmarshal(out.Result, &r), s.Name)
				require.True(t, r.Simulated, s.Name)
				require.Equal(t, callables[s.Name], r.Callable)
				require.Equal(t, s.Name, r.Step)
				if s.Name == "extract" {
					// PostgreSQL's jsonb adds a space after each colon and comma.
					require.InDelta(t, 512, len(out.Result), 32, "extract's result size")
				}
			}
		}
	})

	t.Run("dynamic steps", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 60*time.Second)
		created, done := runTask(ctx, t, env, request("sim_e2e", "simulated_dynamic", map[string]any{}))
		require.Equal(t, "complete", done.Status)
		var names []string
		for name := range taskSteps(t, env, created.TaskUUID) {
			names = append(names, name)
		}
		// The simulated decision chose one branch; the simulated batchable step made three workers.
		require.Len(t, names, 9, "%v", names)
		require.Subset(t, names, []string{"start", "route", "join", "split", "chunk_001", "chunk_002", "chunk_003", "gather"})
	})

	t.Run("permanent failure", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 60*time.Second)
		created, done := runTask(ctx, t, env, request("sim_e2e", "simulated_failure", map[string]any{}))
		require.Equal(t, "blocked_by_failures", done.Status)
		require.Equal(t, "blocked_by_failures", done.ExecutionStatus)
		require.Equal(t, 1, done.FailedSteps)

		steps, err := env.Client.Steps(ctx, created.TaskUUID)
		require.NoError(t, err)
		require.Len(t, steps, 1)
		require.Equal(t, "error", steps[0].CurrentState)
		require.Equal(t, 1, steps[0].Attempts, "a non-retryable failure is not retried")
		var out stepOutcome
		require.NoError(t, json.Unmarshal(steps[0].Results, &out))
		require.False(t, out.Success)
		require.Equal(t, workflow.SimulatedErrorType, out.Error.ErrorType)
		require.False(t, out.Error.Retryable)
	})
}
