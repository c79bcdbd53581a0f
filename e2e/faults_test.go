package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/faults"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
	"github.com/tasker-sim/tasker-sim/pkg/stepclaim"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
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
		created, done := runTask(ctx, t, env, req)
		return created.CorrelationID, done.Status
	}

	t.Run("error rate, not retryable", func(t *testing.T) {
		corr, status := run(`{"error_rate": 1}`)
		require.Equal(t, "blocked_by_failures", status)
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
		require.Equal(t, "blocked_by_failures", status)
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
	t.Run("slow completion sends, per process", func(t *testing.T) {
		// Every completion of the worker is slow, with nothing queued on its channel.
		w, err := env.AddWorker(ctx, func(c *worker.Config) {
			c.Namespaces = []string{"tasker_sim_test"}
			c.HandlerType = worker.HandlerTypeRuby
			c.FFIBreaker = resilience.BreakerConfig{FailureThreshold: 2, OpenTimeout: time.Hour}
		})
		require.NoError(t, err)
		setFaults(t, "http://"+w.Addr(), `{"slow_completion_ms": 150}`)
		feedUntil(t, env, "slow sends open the ffi breaker", func() bool {
			s := scrapeSamples(t, p)
			return total(s, "ffi_completion_slow_sends_total", nil) >= 2 &&
				total(s, "tasker_circuit_breaker_state", map[string]string{"component": "ffi_completion"}) == 2
		})
	})
	t.Run("slow completion on a rust worker", func(t *testing.T) {
		// Per process it is refused: a rust worker has no FFI completion send.
		resp, err := http.Post("http://"+env.Workers[0].Addr()+"/admin/faults", "application/json",
			strings.NewReader(`{"slow_completion_ms": 150}`))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Contains(t, string(body), "slow_completion_ms 150: needs an FFI handler type")
		// Per task it is ignored there: the task's steps may run on any worker.
		_, status := run(`{"slow_completion_ms": 150}`)
		require.Equal(t, "complete", status)
	})
	t.Run("process faults are refused per task", func(t *testing.T) {
		for name, value := range map[string]any{"database_unavailable": true, "flood_channel": 10, "abandon_rate": 0.5, "queue_error_rate": 0.5} {
			req := request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 4,
				faults.ContextKey: map[string]any{"error_rate": 0.1, name: value}})
			_, err := env.Client.CreateTask(ctx, req)
			var ae *client.APIError
			require.ErrorAs(t, err, &ae, name)
			require.Equal(t, http.StatusBadRequest, ae.Status, name)
			require.Equal(t, "context._faults."+name+
				": a process fault; set it with taskerctl fault set or POST /admin/faults, not per task", ae.Message)
		}
	})
	t.Run("queue reads refused", func(t *testing.T) {
		before := total(scrapeSamples(t, p), "tasker_queue_retry_attempts_total", map[string]string{"operation": "read"})
		setFaults(t, orchURL, `{"queue_error_rate": 1}`)
		setFaults(t, "http://"+env.Workers[0].Addr(), `{"queue_error_rate": 1}`)
		waitFor(t, 15*time.Second, "failed reads and their retries to be counted", func() bool {
			s := scrapeSamples(t, p)
			return total(s, "tasker_queue_errors_total", map[string]string{"operation": "read", "queue": "orchestration_step_results"}) > 0 &&
				total(s, "tasker_queue_errors_total", map[string]string{"operation": "read", "queue": "worker_rust_e2e_linear_queue"}) > 0 &&
				total(s, "tasker_queue_retry_attempts_total", map[string]string{"operation": "read"}) > before+1
		})
		setFaults(t, orchURL, `{}`)
		setFaults(t, "http://"+env.Workers[0].Addr(), `{}`)
		_, status := run(`{}`)
		require.Equal(t, "complete", status, "nothing is lost once reads work again")
	})
	t.Run("the orchestrator refuses worker faults", func(t *testing.T) {
		resp, err := http.Post(orchURL+"/admin/faults", "application/json", strings.NewReader(`{"abandon_rate": 0.5}`))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Contains(t, string(body), "abandon_rate: a worker fault")
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

// TestFFIRefusedCompletionsAreNotLost opens the ffi_completion breaker with slow
// completion sends, so completions are refused; once the fault is lifted and the breaker
// recovers, the refused steps run again after their lease and every task completes.
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

// TestSlowCompletionPerTask gives five tasks their own slow_completion_ms on a ruby
// worker with the default slow-send threshold (100 ms) and breaker threshold (5): their
// completion sends are slow and open the ffi_completion breaker, healthy tasks that
// follow are refused while it is open, and every task still completes. Only the slow
// tasks' sends count as slow.
func TestSlowCompletionPerTask(t *testing.T) {
	t.Parallel()
	p := newTelemetry(t)
	opts := telemetryOptions(p)
	opts.Worker = func(_ int, c *worker.Config) {
		c.Namespaces = []string{"tasker_sim_test"}
		c.HandlerType = worker.HandlerTypeRuby
		// A lease longer than the breaker's open timeout, so a refused step comes back to
		// a breaker that lets it through.
		c.VisibilityTimeout, c.PollInterval = 4*time.Second, 100*time.Millisecond
		c.FFIBreaker = resilience.BreakerConfig{OpenTimeout: 3 * time.Second}
	}
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 60*time.Second)
	create := func(ctxMap map[string]any) string {
		created, err := env.Client.CreateTask(ctx, request("tasker_sim_test", "slow_step", ctxMap))
		require.NoError(t, err)
		return created.TaskUUID
	}
	var ids []string
	for range resilience.FailureThresholdDefault {
		ids = append(ids, create(map[string]any{faults.ContextKey: map[string]any{"slow_completion_ms": 150}}))
	}
	breakerOpen := map[string]string{"component": "ffi_completion"}
	waitFor(t, 20*time.Second, "five slow sends to open the ffi breaker", func() bool {
		s := scrapeSamples(t, p)
		return total(s, "ffi_completion_slow_sends_total", nil) == float64(resilience.FailureThresholdDefault) &&
			total(s, "tasker_circuit_breaker_state", breakerOpen) == float64(resilience.Open)
	})
	for range 2 {
		ids = append(ids, create(map[string]any{}))
	}
	waitFor(t, 10*time.Second, "the open breaker to refuse the healthy tasks' completions", func() bool {
		return total(scrapeSamples(t, p), "ffi_completion_circuit_open_rejections_total", nil) >= 2
	})
	for _, id := range ids {
		done, err := env.Client.WaitTask(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "complete", done.Status)
	}
	require.Equal(t, float64(resilience.FailureThresholdDefault),
		total(scrapeSamples(t, p), "ffi_completion_slow_sends_total", nil), "only the slow tasks' sends were slow")
}

// queueReadCount is the highest read_ct of the messages waiting in a worker queue.
func queueReadCount(t *testing.T, env *harness.Env, namespace string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, env.Pool.QueryRow(context.Background(),
		`SELECT coalesce(max(read_ct), 0) FROM pgmq.q_`+workflow.WorkerQueue(namespace)).Scan(&n))
	return n
}

// TestAbandonedMessagesAreRedelivered follows one step message through abandon_rate = 1
// on both claim paths. A worker that only hears notifications reads the message by id and
// drops it; a polling worker reads it again after its visibility timeout and drops it
// again. Nothing is counted until, with the fault lifted, a poll reads it once more and
// the claim sees the redelivery. The step runs once.
func TestAbandonedMessagesAreRedelivered(t *testing.T) {
	t.Parallel()
	require.LessOrEqual(t, stepclaim.VisibilityTimeoutDefault, 30*time.Second,
		"on defaults an abandoned message is back within half a minute")
	p := newTelemetry(t)
	opts := telemetryOptions(p)
	opts.Worker = func(_ int, c *worker.Config) {
		c.Namespaces = []string{"rust_e2e_linear"}
		c.VisibilityTimeout = time.Second
		c.PollInterval = time.Hour // the event path only: one poll, at connect, before any task
		c.Faults = faults.Faults{AbandonRate: 1}
	}
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 60*time.Second)
	queue := map[string]string{"queue": workflow.WorkerQueue("rust_e2e_linear")}
	created, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence",
		map[string]any{"even_number": 2}))
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "the event path to read the message and drop it", func() bool {
		return queueReadCount(t, env, "rust_e2e_linear") == 1
	})

	poller, err := env.AddWorker(ctx, func(c *worker.Config) { c.PollInterval = 100 * time.Millisecond })
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "the poll path to read the redelivery and drop it", func() bool {
		return queueReadCount(t, env, "rust_e2e_linear") >= 3
	})
	steps, err := env.Client.Steps(ctx, created.TaskUUID)
	require.NoError(t, err)
	first := steps[slices.IndexFunc(steps, func(s api.StepResponse) bool { return s.Name == "linear_step_1" })]
	require.Equal(t, "enqueued", first.CurrentState)
	require.Zero(t, first.Attempts, "an abandoned message claims nothing")
	require.Zero(t, total(scrapeSamples(t, p), "tasker_queue_visibility_timeouts_total", queue),
		"nothing is counted for a drop")

	setFaults(t, "http://"+env.Workers[0].Addr(), `{}`)
	setFaults(t, "http://"+poller.Addr(), `{}`)
	done, err := env.Client.WaitTask(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", done.Status)
	require.GreaterOrEqual(t, total(scrapeSamples(t, p), "tasker_queue_visibility_timeouts_total", queue), 1.0)
	steps, err = env.Client.Steps(ctx, created.TaskUUID)
	require.NoError(t, err)
	for _, s := range steps {
		require.Equal(t, 1, s.Attempts, "step %s ran once", s.Name)
	}
	for _, tr := range stepTransitions(t, env, first.StepUUID) {
		if tr.To == "in_progress" {
			require.Equal(t, stepclaim.MethodPoll, tr.Metadata["claim_method"], "the redelivery came back through a read")
			require.Equal(t, poller.ID(), tr.Metadata["worker_id"])
		}
	}
}

// TestAbandonRateCompletesEveryTaskOnce runs tasks through a worker that drops 30% of the
// step messages it reads: the drops come back as redeliveries, which the visibility
// timeout counter shows, and every task completes with every step run exactly once.
func TestAbandonRateCompletesEveryTaskOnce(t *testing.T) {
	t.Parallel()
	p := newTelemetry(t)
	opts := telemetryOptions(p)
	opts.Worker = func(_ int, c *worker.Config) {
		c.Namespaces = []string{"rust_e2e_linear"}
		c.VisibilityTimeout, c.PollInterval = 2*time.Second, 100*time.Millisecond
	}
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 90*time.Second)
	setFaults(t, "http://"+env.Workers[0].Addr(), `{"abandon_rate": 0.3}`)
	var ids []string
	for range 8 {
		created, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence",
			map[string]any{"even_number": 2}))
		require.NoError(t, err)
		ids = append(ids, created.TaskUUID)
	}
	for _, id := range ids {
		done, err := env.Client.WaitTask(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "complete", done.Status)
	}
	var reruns int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM tasker.workflow_steps WHERE attempts <> 1`).Scan(&reruns))
	require.Zero(t, reruns, "every step ran exactly once")
	require.Positive(t, total(scrapeSamples(t, p), "tasker_queue_visibility_timeouts_total",
		map[string]string{"queue": workflow.WorkerQueue("rust_e2e_linear")}))
}
