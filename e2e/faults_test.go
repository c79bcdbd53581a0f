package e2e

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/faults"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
)

func setFaults(t *testing.T, base, spec string) {
	t.Helper()
	resp, err := http.Post(base+"/admin/faults", "application/json", bytes.NewReader([]byte(spec)))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestFaultsMoveTheirMetrics injects each fault and checks the metric it should move.
func TestFaultsMoveTheirMetrics(t *testing.T) {
	t.Parallel()
	p := newTelemetry(t)
	opts := telemetryOptions(p)
	base := opts.Orchestrator
	opts.Orchestrator = func(i int, c *orchestrator.Config) {
		base(i, c)
		c.VisibilityTimeout = time.Second
		c.WebBreaker = resilience.BreakerConfig{FailureThreshold: 2, OpenTimeout: 300 * time.Millisecond, SuccessThreshold: 1}
	}
	opts.Worker = func(_ int, c *worker.Config) {
		c.VisibilityTimeout = time.Second
		c.PollInterval = 100 * time.Millisecond
		// tasker_sim_test is left to the FFI worker added below.
		c.Namespaces = []string{"rust_e2e_linear", "rust_e2e_retry"}
	}
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 60*time.Second)
	orchURL := env.Orchestrators[0].URL()

	run := func(spec string) (string, string) {
		req := request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 4})
		req.Context = append(req.Context[:len(req.Context)-1], []byte(`,"`+faults.ContextKey+`":`+spec+`}`)...)
		created, err := env.Client.CreateTask(ctx, req)
		require.NoError(t, err)
		done, err := env.Client.WaitTask(ctx, created.TaskUUID)
		require.NoError(t, err)
		return created.CorrelationID, done.Status
	}

	t.Run("error rate, not retryable", func(t *testing.T) {
		corr, status := run(`{"error_rate": 1}`)
		require.Equal(t, "error", status)
		waitFor(t, 5*time.Second, "the failure counter", func() bool {
			return total(scrapeSamples(t, p), "tasker_steps_failures_total",
				map[string]string{"correlation_id": corr, "error_type": "handler_execution_failed"}) == 1
		})
	})
	t.Run("latency", func(t *testing.T) {
		corr, status := run(`{"latency_ms": {"min": 40, "max": 60}}`)
		require.Equal(t, "complete", status)
		waitFor(t, 5*time.Second, "the execution histogram", func() bool {
			s := scrapeSamples(t, p)
			return total(s, "tasker_step_execution_duration_milliseconds_count", map[string]string{"correlation_id": corr}) == 4 &&
				total(s, "tasker_step_execution_duration_milliseconds_sum", map[string]string{"correlation_id": corr}) >= 4*40
		})
	})
	t.Run("timeouts", func(t *testing.T) {
		corr, status := run(`{"timeout_rate": 1}`)
		require.Equal(t, "error", status)
		waitFor(t, 5*time.Second, "timeout results", func() bool {
			return total(scrapeSamples(t, p), "tasker_step_results_processed_total",
				map[string]string{"correlation_id": corr, "result_type": "timeout"}) == 3
		})
	})
	t.Run("flood", func(t *testing.T) {
		w, err := env.AddWorker(ctx, func(c *worker.Config) {
			c.Namespaces = []string{"rust_e2e_retry"}
			c.CandidateCapacity, c.Concurrency = 2, 1
		})
		require.NoError(t, err)
		before := total(scrapeSamples(t, p), "mpsc_channel_full_events_total", map[string]string{"channel": "worker_step_candidates"})
		setFaults(t, "http://"+w.Addr(), `{"flood_channel": 500}`)
		waitFor(t, 10*time.Second, "full-channel events", func() bool {
			return total(scrapeSamples(t, p), "mpsc_channel_full_events_total",
				map[string]string{"channel": "worker_step_candidates"}) > before
		})
	})
	t.Run("slow completion consumer", func(t *testing.T) {
		w, err := env.AddWorker(ctx, func(c *worker.Config) {
			c.Namespaces = []string{"tasker_sim_test"}
			c.HandlerType = worker.HandlerTypeRuby
			c.FFIChannelCapacity = 1
			c.FFIBreaker = resilience.BreakerConfig{FailureThreshold: 2, OpenTimeout: time.Hour}
		})
		require.NoError(t, err)
		setFaults(t, "http://"+w.Addr(), `{"slow_completion_ms": 1000}`)
		feedUntil(t, env, "slow sends open the ffi breaker", func() bool {
			s := scrapeSamples(t, p)
			return total(s, "ffi_completion_slow_sends_total", nil) >= 2 &&
				total(s, "tasker_circuit_breaker_state", map[string]string{"component": "ffi_completion"}) == 2
		})
	})
	t.Run("database unavailable to the API", func(t *testing.T) {
		setFaults(t, orchURL, `{"database_unavailable": true}`)
		for i := range 2 {
			_, err := env.Client.GetTask(ctx, "0199c3e0-ccdb-7581-87ab-3f67daeaa4a5")
			require.True(t, client.IsStatus(err, 500), "failure %d: %v", i, err)
		}
		_, err := env.Client.GetTask(ctx, "0199c3e0-ccdb-7581-87ab-3f67daeaa4a5")
		require.True(t, client.IsStatus(err, 503), "the open breaker refuses: %v", err)
		s := scrapeSamples(t, p)
		require.Equal(t, 2.0, total(s, "api_circuit_breaker_state", nil))
		require.Positive(t, total(s, "api_requests_rejected_total", map[string]string{"endpoint": "/v1/tasks/{uuid}"}))

		// The database comes back: after the open timeout a trial request closes it.
		setFaults(t, orchURL, `{}`)
		waitFor(t, 5*time.Second, "the web breaker to close", func() bool {
			_, err := env.Client.GetTask(ctx, "0199c3e0-ccdb-7581-87ab-3f67daeaa4a5")
			return client.IsStatus(err, 404)
		})
		require.Equal(t, 0.0, total(scrapeSamples(t, p), "api_circuit_breaker_state", nil))
	})
	t.Run("bad fault specs are refused", func(t *testing.T) {
		resp, err := http.Post(orchURL+"/admin/faults", "application/json", bytes.NewReader([]byte(`{"error_rate": 2}`)))
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		_, err = env.Client.CreateTask(context.Background(), request("rust_e2e_linear", "mathematical_sequence",
			map[string]any{"even_number": 4, faults.ContextKey: map[string]any{"latency_ms": map[string]int{"min": 5, "max": 1}}}))
		require.NoError(t, err, "a task's own faults are checked when its step runs: it fails validation then")
	})
}

// TestFFIRefusedCompletionsAreNotLost opens the ffi_completion breaker with a slow
// completion consumer, so completions are refused; once the fault is lifted and the
// breaker recovers, the refused steps run again after their lease and every task completes.
func TestFFIRefusedCompletionsAreNotLost(t *testing.T) {
	t.Parallel()
	p := newTelemetry(t)
	opts := telemetryOptions(p)
	base := opts.Orchestrator
	opts.Orchestrator = func(i int, c *orchestrator.Config) {
		base(i, c)
		// A lease longer than the breaker's open timeout: a refused step comes back after
		// the breaker has had its chance to recover, instead of using up its attempts.
		c.VisibilityTimeout = 4 * time.Second
	}
	opts.Worker = func(_ int, c *worker.Config) {
		c.Namespaces = []string{"tasker_sim_test"}
		c.HandlerType = worker.HandlerTypeTypeScript
		c.VisibilityTimeout, c.PollInterval = 4*time.Second, 100*time.Millisecond
		c.FFIChannelCapacity = 1
		c.FFIBreaker = resilience.BreakerConfig{FailureThreshold: 1, OpenTimeout: 3 * time.Second, SuccessThreshold: 1}
		c.Faults = faults.Faults{SlowCompletionMS: 1000}
	}
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 60*time.Second)
	// Feed work until a completion meets the open breaker and is refused.
	ids := feedUntil(t, env, "a completion is refused", func() bool {
		return total(scrapeSamples(t, p), "ffi_completion_circuit_open_rejections_total", nil) > 0
	})
	setFaults(t, "http://"+env.Workers[0].Addr(), `{}`)
	for _, id := range ids {
		done, err := env.Client.WaitTask(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "complete", done.Status)
	}
	var retried int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM tasker.workflow_steps WHERE attempts > 1`).Scan(&retried))
	require.Positive(t, retried, "refused completions were retried after their lease")
}

// feedUntil creates slow_step tasks one after another until cond holds: on a loaded
// machine steps finish far apart, so the completion channel fills only under steady supply.
func feedUntil(t *testing.T, env *harness.Env, what string, cond func() bool) []string {
	t.Helper()
	var ids []string
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30s feeding tasks until %s", what)
		}
		created, err := env.Client.CreateTask(context.Background(), request("tasker_sim_test", "slow_step", map[string]any{}))
		require.NoError(t, err)
		ids = append(ids, created.TaskUUID)
		time.Sleep(20 * time.Millisecond) // pacing the supply of work, not waiting for an outcome
	}
	return ids
}

// TestFFIStopFinishesDispatchedSteps stops an FFI worker while a step is on the foreign
// side: the graceful stop lets it finish and submit, so it completes on its first attempt
// instead of waiting out its lease.
func TestFFIStopFinishesDispatchedSteps(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) {
		c.Namespaces = []string{"tasker_sim_test"}
		c.HandlerType = worker.HandlerTypePython
		c.FFIOverhead = 300 * time.Millisecond
	}
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 30*time.Second)
	created, err := env.Client.CreateTask(ctx, request("tasker_sim_test", "slow_step", map[string]any{}))
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "the step to be claimed", func() bool {
		steps, err := env.Client.Steps(ctx, created.TaskUUID)
		return err == nil && steps[0].CurrentState == "in_progress"
	})
	require.NoError(t, env.Workers[0].Stop())
	done, err := env.Client.WaitTask(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", done.Status)
	steps, err := env.Client.Steps(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, 1, steps[0].Attempts, "finished during the graceful stop, not after a lease")
}
