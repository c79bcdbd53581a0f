package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/otlptranslator"
	"github.com/stretchr/testify/require"
	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// recordEverything drives every instrument once, through the typed methods.
func recordEverything(t *testing.T, in *telemetry.Instruments) {
	t.Helper()
	ctx := context.Background()
	d := time.Millisecond
	in.TaskRequested(ctx, "c", "t", "ns")
	in.TaskInitialized(ctx, "c", "t", d)
	in.StepsEnqueued(ctx, "c", "ns", []string{"s"})
	in.TaskFinalized(ctx, "c", "complete", d)
	in.TaskFinalized(ctx, "c", "error", d)
	in.StepResultProcessed(ctx, "c", "success", d)
	in.StepClaimed(ctx, "ns", "event", d)
	in.StepExecuted(ctx, "c", "ns", "", d)
	in.StepExecuted(ctx, "c", "ns", "handler_execution_failed", d)
	in.ResultSubmitted(ctx, "c", d)
	in.ActiveExecution(ctx, "ns", "rust", 1)
	in.MessagesSent(ctx, "q", 1, d)
	in.MessageReceived(ctx, "q", "poll", true)
	in.QueueRead(ctx, "q", d)
	in.MessagesDeleted(ctx, "q", "archive", 1)
	in.QueueError(ctx, "q", "read")
	in.QueueRetry(ctx, "listen")
	in.APIRequestRejected(ctx, "/v1/tasks")
	in.FFISlowSend(ctx)
	in.FFICircuitRejection(ctx)
	in.ChannelFull(ctx, "ch", "worker")
	in.SQLQuery(ctx, "SELECT", false, d)
	in.Transaction(ctx, "commit", d)
	in.PoolWait(ctx, "p", d)
	reg, err := in.Observe(func(_ context.Context, g *telemetry.GaugeObserver) error {
		g.TasksActive("pending", 1)
		g.StepsReady("ns", 1)
		g.QueueDepth("ns", "q", 1)
		g.QueueAge("q", 1)
		g.PoolConnections("p", 1, 1)
		g.Channel("ch", "worker", 1, 10)
		g.CircuitBreaker(telemetry.BreakerWebDatabase, 0)
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = reg.Unregister() })
}

// TestExportPathsAgree pushes every metric over OTLP/HTTP to a receiver in the test,
// names them as Prometheus 3's OTLP ingestion does (underscore escaping with suffixes),
// and compares with the names /metrics serves: both paths must give the same series.
// It sets process environment variables, so it does not run in parallel.
func TestExportPathsAgree(t *testing.T) {
	var mu sync.Mutex
	pushed := map[string]bool{}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req collectormetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		namer := otlptranslator.NewMetricNamer("", otlptranslator.UnderscoreEscapingWithSuffixes)
		mu.Lock()
		defer mu.Unlock()
		for _, rm := range req.GetResourceMetrics() {
			for _, sm := range rm.GetScopeMetrics() {
				for _, m := range sm.GetMetrics() {
					typ := otlptranslator.MetricType(otlptranslator.MetricTypeGauge)
					switch {
					case m.GetSum() != nil && m.GetSum().GetIsMonotonic():
						typ = otlptranslator.MetricTypeMonotonicCounter
					case m.GetSum() != nil:
						typ = otlptranslator.MetricTypeNonMonotonicCounter
					case m.GetHistogram() != nil:
						typ = otlptranslator.MetricTypeHistogram
					}
					name, err := namer.Build(otlptranslator.Metric{Name: m.GetName(), Unit: m.GetUnit(), Type: typ})
					if err == nil {
						pushed[name] = true
					}
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	t.Cleanup(receiver.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")

	cfg := telemetry.Config{Enabled: ptr(true), ServiceName: "export-test", SampleRate: ptr(1.0)}
	cfg.OpenTelemetry.Enabled = true
	p, err := telemetry.Setup(context.Background(), cfg, discardLogger())
	require.NoError(t, err)
	require.True(t, p.OTLPEnabled)
	recordEverything(t, p.Instruments)
	pulled := families(scrape(t, p))
	require.NoError(t, p.Shutdown(context.Background()), "shutdown flushes the OTLP push")

	mu.Lock()
	defer mu.Unlock()
	var got []string
	for n := range pushed {
		got = append(got, n)
	}
	sort.Strings(got)
	require.Equal(t, pulled, got)
	require.Len(t, got, 44)
}

// families maps series names to their metric family (histogram series share one).
func families(series []string) []string {
	seen := map[string]bool{}
	for _, s := range series {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(s, "_milliseconds"+suffix) {
				s = strings.TrimSuffix(s, suffix)
			}
		}
		seen[s] = true
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func TestDropHighCardinality(t *testing.T) {
	t.Parallel()
	cfg := telemetry.Config{Enabled: ptr(true), ServiceName: "drop-test", SampleRate: ptr(1.0), DropHighCardinalityLabels: true}
	p, err := telemetry.Setup(context.Background(), cfg, discardLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	p.Instruments.TaskRequested(context.Background(), "0199c3e0-ccdb-7581-87ab-3f67daeaa4a5", "t", "ns")
	rec := httptest.NewRecorder()
	p.MetricsHandler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Contains(t, rec.Body.String(), `tasker_tasks_requests_total{namespace="ns"`)
	require.NotContains(t, rec.Body.String(), "correlation_id")
}
