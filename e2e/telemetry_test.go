package e2e

import (
	"context"
	"math"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	pgmq "github.com/craigpastro/pgmq-go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

func newTelemetry(t *testing.T) *telemetry.Providers {
	t.Helper()
	p, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "e2e"}, discard())
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

// sample is one line of Prometheus text.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func scrapeSamples(t *testing.T, p *telemetry.Providers) []sample {
	t.Helper()
	rec := httptest.NewRecorder()
	p.MetricsHandler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	require.NoError(t, err)
	var out []sample
	for name, f := range families {
		for _, m := range f.GetMetric() {
			out = append(out, metricSamples(name, m)...)
		}
	}
	return out
}

// metricSamples flattens one metric into the series Prometheus exposes for it: a
// histogram is its _bucket (with le), _sum and _count series.
func metricSamples(name string, m *dto.Metric) []sample {
	labels := func(extra ...string) map[string]string {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	switch {
	case m.GetCounter() != nil:
		return []sample{{name: name, labels: labels(), value: m.GetCounter().GetValue()}}
	case m.GetGauge() != nil:
		return []sample{{name: name, labels: labels(), value: m.GetGauge().GetValue()}}
	case m.GetHistogram() != nil:
		h := m.GetHistogram()
		out := []sample{
			{name: name + "_sum", labels: labels(), value: h.GetSampleSum()},
			{name: name + "_count", labels: labels(), value: float64(h.GetSampleCount())},
		}
		for _, b := range h.GetBucket() {
			out = append(out, sample{name: name + "_bucket", labels: labels("le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)),
				value: float64(b.GetCumulativeCount())})
		}
		if n := len(h.GetBucket()); n == 0 || !math.IsInf(h.GetBucket()[n-1].GetUpperBound(), 1) {
			out = append(out, sample{name: name + "_bucket", labels: labels("le", "+Inf"), value: float64(h.GetSampleCount())})
		}
		return out
	case m.GetUntyped() != nil:
		return []sample{{name: name, labels: labels(), value: m.GetUntyped().GetValue()}}
	}
	return nil
}

// total sums a series over the samples whose labels include match.
func total(samples []sample, name string, match map[string]string) float64 {
	var sum float64
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for k, v := range match {
			if s.labels[k] != v {
				continue next
			}
		}
		sum += s.value
	}
	return sum
}

func telemetryOptions(p *telemetry.Providers) harness.Options {
	o := fastOptions()
	o.Telemetry = p
	o.Orchestrator = func(_ int, c *orchestrator.Config) {
		c.PollInterval = 100 * time.Millisecond
		c.Backoff.Base = 10 * time.Millisecond
		c.Backoff.Max = 50 * time.Millisecond
	}
	return o
}

// requireFlow waits for one successful task's journey to show in the metrics, by its
// correlation id: requests 1 → enqueued n → executions n → successes n → submitted n →
// processed n → completions 1, and no failures.
func requireFlow(t *testing.T, p *telemetry.Providers, correlationID string, n float64) {
	t.Helper()
	byCorr := map[string]string{"correlation_id": correlationID}
	want := map[string]float64{
		"tasker_tasks_requests_total": 1, "tasker_steps_enqueued_total": n, "tasker_steps_executions_total": n,
		"tasker_steps_successes_total": n, "tasker_steps_results_submitted_total": n,
		"tasker_step_results_processed_total": n, "tasker_tasks_completions_total": 1,
		"tasker_tasks_failures_total": 0, "tasker_steps_failures_total": 0,
	}
	// The worker records a submission just after its statement returns, which can be a
	// moment after orchestration has already finished the task: poll until it settles.
	waitFor(t, 5*time.Second, "the flow counters", func() bool {
		s := scrapeSamples(t, p)
		for name, v := range want {
			if total(s, name, byCorr) != v {
				return false
			}
		}
		return true
	})
}

// TestFlowInvariant reads one task's journey from the metrics by its correlation_id:
// requests 1 → enqueued N → executions N → successes N → submitted N → processed N →
// completions 1; and, for a failing task, the failure counters and their labels.
func TestFlowInvariant(t *testing.T) {
	t.Parallel()
	p := newTelemetry(t)
	env := harness.New(t, cluster, telemetryOptions(p))
	ctx := ctxFor(t, 30*time.Second)

	req := request("rust_e2e_mixed_dag", "complex_dag", map[string]any{"even_number": 4})
	req.CorrelationID = "0199c3e0-ccdb-7581-87ab-3f67daeaa4a5"
	_, done := runTask(ctx, t, env, req)
	require.Equal(t, "complete", done.Status)
	requireFlow(t, p, req.CorrelationID, 7)

	failing := request("rust_e2e_retry", "retry_exhaustion_test", map[string]any{})
	failing.CorrelationID = "0199c3e0-ccdb-7581-87ab-3f67daeaa4a6"
	_, done = runTask(ctx, t, env, failing)
	require.Equal(t, "blocked_by_failures", done.Status, "a failed task waits for an operator")
	byFail := map[string]string{"correlation_id": failing.CorrelationID}
	waitFor(t, 5*time.Second, "the failure counters", func() bool {
		s := scrapeSamples(t, p)
		return total(s, "tasker_steps_executions_total", byFail) == 3 &&
			total(s, "tasker_steps_failures_total", map[string]string{"correlation_id": failing.CorrelationID,
				"error_type": "handler_execution_failed", "namespace": "rust_e2e_retry"}) == 3 &&
			total(s, "tasker_steps_successes_total", byFail) == 0 &&
			total(s, "tasker_step_results_processed_total", map[string]string{"correlation_id": failing.CorrelationID,
				"result_type": "error"}) == 3 &&
			total(s, "tasker_tasks_failures_total", byFail) == 1 &&
			total(s, "tasker_tasks_completions_total", byFail) == 0 &&
			total(s, "tasker_task_finalization_duration_milliseconds_count",
				map[string]string{"correlation_id": failing.CorrelationID, "final_state": "error"}) == 1
	})
}

// TestCatalogEmission runs real work, and the real events behind the rarer metrics (a
// redelivery after a visibility timeout, a failed queue read, a dropped LISTEN
// connection, a full channel, slow FFI completions that open their breaker, a database
// failure that opens the web breaker), then checks that /metrics holds every one of the
// 44 catalog series with its documented labels.
func TestCatalogEmission(t *testing.T) {
	t.Parallel()
	p := newTelemetry(t)
	opts := telemetryOptions(p)
	base := opts.Orchestrator
	opts.Orchestrator = func(i int, c *orchestrator.Config) {
		base(i, c)
		c.WebBreaker = resilience.BreakerConfig{FailureThreshold: 1, OpenTimeout: time.Hour}
	}
	// The only worker at first serves another namespace, so a linear step waits in its
	// queue for the test to read it the way a consumer that then dies would.
	opts.Worker = func(_ int, c *worker.Config) {
		c.Namespaces = []string{"rust_e2e_retry"}
		c.PollInterval = 100 * time.Millisecond
	}
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 60*time.Second)

	// A visibility timeout: read the step's message with a 1 s timeout and abandon it.
	linear, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 6}))
	require.NoError(t, err)
	_, err = pgmq.Read(ctx, env.Pool, workflow.WorkerQueue("rust_e2e_linear"), 1)
	require.NoError(t, err)
	// A worker for the namespace with a one-slot candidate channel and one executor, so a
	// burst of steps fills the channel and the listener has to wait.
	_, err = env.AddWorker(ctx, func(c *worker.Config) {
		c.Namespaces = []string{"rust_e2e_linear", "rust_e2e_diamond", "rust_e2e_mixed_dag", "rust_e2e_tree"}
		c.PollInterval = 100 * time.Millisecond
		c.CandidateCapacity, c.Concurrency = 1, 1
	})
	require.NoError(t, err)
	done, err := env.Client.WaitTask(ctx, linear.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", done.Status)

	var ids []string
	for i := range 12 {
		shape := [][2]string{{"rust_e2e_tree", "hierarchical_tree"}, {"rust_e2e_mixed_dag", "complex_dag"},
			{"rust_e2e_diamond", "diamond_pattern"}, {"rust_e2e_retry", "retry_exhaustion_test"}}[i%4]
		created, err := env.Client.CreateTask(ctx, request(shape[0], shape[1], map[string]any{"even_number": 2}))
		require.NoError(t, err)
		ids = append(ids, created.TaskUUID)
	}
	for _, id := range ids {
		_, err := env.Client.WaitTask(ctx, id)
		require.NoError(t, err)
	}

	// An FFI-style worker whose completion consumer is slow and whose completion channel
	// holds one item: sends take longer than the 100 ms threshold, two slow sends open the
	// ffi_completion breaker, and it then refuses completions.
	_, err = env.AddWorker(ctx, func(c *worker.Config) {
		c.Namespaces = []string{"tasker_sim_test"}
		c.HandlerType = worker.HandlerTypePython
		c.FFIChannelCapacity, c.FFICompletionDelay = 1, time.Second
		c.FFIBreaker = resilience.BreakerConfig{FailureThreshold: 2, OpenTimeout: time.Hour}
	})
	require.NoError(t, err)
	// Completions that arrive while the breaker is open are refused.
	feedUntil(t, env, "the ffi breaker refuses a completion", func() bool {
		return total(scrapeSamples(t, p), "ffi_completion_circuit_open_rejections_total", nil) > 0
	})

	// A dropped LISTEN connection: both processes reconnect, and count the retry.
	_, err = env.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'LISTEN%'`)
	require.NoError(t, err)
	// A failed queue operation: the queue of a namespace a worker serves disappears.
	_, err = env.Pool.Exec(ctx, `SELECT pgmq.drop_queue('worker_tasker_sim_test_queue')`)
	require.NoError(t, err)

	// The database fails the API: with its table gone a create answers 500, which opens
	// the web breaker (threshold 1 here), and the next request is refused with 503.
	_, err = env.Pool.Exec(ctx, `ALTER TABLE tasker.tasks RENAME TO tasks_gone`)
	require.NoError(t, err)
	_, err = env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2}))
	require.True(t, client.IsStatus(err, 500), "%v", err)
	_, err = env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2}))
	require.True(t, client.IsStatus(err, 503), "%v", err)
	_, err = env.Pool.Exec(ctx, `ALTER TABLE tasker.tasks_gone RENAME TO tasks`)
	require.NoError(t, err, "the database comes back; the breaker stays open for its timeout")

	var missing []string
	deadline := time.Now().Add(20 * time.Second)
	for missing = missingSeries(scrapeSamples(t, p)); len(missing) > 0 && time.Now().Before(deadline); missing = missingSeries(scrapeSamples(t, p)) {
		time.Sleep(50 * time.Millisecond)
	}
	require.Empty(t, missing, "catalog series never emitted")
	samples := scrapeSamples(t, p)
	for _, m := range telemetry.Catalog {
		for _, series := range m.Series {
			labels := labelsOf(samples, series)
			for _, l := range m.Labels {
				require.Contains(t, labels, l, "%s carries label %s", series, l)
			}
		}
	}
	require.Positive(t, total(samples, "tasker_queue_visibility_timeouts_total", map[string]string{"queue": "worker_rust_e2e_linear_queue"}))
	require.Positive(t, total(samples, "mpsc_channel_full_events_total", map[string]string{"channel": "worker_step_candidates"}))
	require.Positive(t, total(samples, "tasker_steps_claimed_total", map[string]string{"claim_method": "poll"}))
	require.Positive(t, total(samples, "tasker_steps_claimed_total", map[string]string{"claim_method": "event"}))
	require.Positive(t, total(samples, "ffi_completion_slow_sends_total", nil))
	require.Positive(t, total(samples, "api_requests_rejected_total", map[string]string{"endpoint": "/v1/tasks"}))
	require.Equal(t, 2.0, total(samples, "api_circuit_breaker_state", nil), "the web breaker is open")
	require.Equal(t, 2.0, total(samples, "tasker_circuit_breaker_state", map[string]string{"component": "ffi_completion"}))
}

// missingSeries lists catalog series absent from samples.
func missingSeries(samples []sample) []string {
	have := map[string]bool{}
	for _, s := range samples {
		have[s.name] = true
	}
	var missing []string
	for _, m := range telemetry.Catalog {
		for _, s := range m.Series {
			if !have[s] {
				missing = append(missing, s)
			}
		}
	}
	return missing
}

func labelsOf(samples []sample, name string) map[string]bool {
	out := map[string]bool{}
	for _, s := range samples {
		if s.name == name {
			for k := range s.labels {
				out[k] = true
			}
		}
	}
	return out
}

// TestSpans checks that each lifecycle operation makes a span carrying the task's ids.
func TestSpans(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	p := newTelemetry(t)
	p.Tracer = tp.Tracer(telemetry.ScopeName)
	env := harness.New(t, cluster, telemetryOptions(p))
	ctx := ctxFor(t, 30*time.Second)
	req := request("rust_e2e_diamond", "diamond_pattern", map[string]any{"even_number": 2})
	created, err := env.Client.CreateTask(ctx, req)
	require.NoError(t, err)
	_, err = env.Client.WaitTask(ctx, created.TaskUUID)
	require.NoError(t, err)

	counts := map[string]int{}
	waitFor(t, 5*time.Second, "every span to end", func() bool {
		counts = map[string]int{}
		for _, s := range rec.Ended() {
			attrs := map[string]string{}
			for _, kv := range s.Attributes() {
				attrs[string(kv.Key)] = kv.Value.String()
			}
			if attrs["task_uuid"] != created.TaskUUID || attrs["archived"] == "false" ||
				(s.Name() == "worker.step_claim" && attrs["outcome"] != "claimed") {
				continue // another task's, or a duplicate delivery another processor or claimer took first
			}
			require.Equal(t, created.CorrelationID, attrs["correlation_id"], s.Name())
			if s.Name() != "create_task" {
				require.NotEmpty(t, attrs["step_uuid"], s.Name())
			}
			counts[s.Name()]++
		}
		return counts["worker.step_execution"] == 4 && counts["process_step_result"] == 4 &&
			counts["worker.step_claim"] == 4 && counts["worker.step_submit"] == 4
	})
	require.Equal(t, map[string]int{"create_task": 1, "worker.step_claim": 4, "worker.step_execution": 4,
		"worker.step_submit": 4, "process_step_result": 4}, counts)
}
