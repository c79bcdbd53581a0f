package telemetry_test

import (
	"context"
	"io"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

func TestCatalogHasTheReference44(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	series := map[string]bool{}
	count := map[telemetry.Domain]int{}
	for _, m := range telemetry.Catalog {
		require.False(t, names[m.Name], "%s is in the catalog twice", m.Name)
		names[m.Name] = true
		count[m.Domain]++
		require.NotEmpty(t, m.Description, m.Name)
		require.NotEmpty(t, m.Series, m.Name)
		for _, s := range m.Series {
			require.False(t, series[s], "series %s claimed twice", s)
			series[s] = true
		}
		if m.Kind == telemetry.Histogram {
			require.Equal(t, "ms", m.Unit, "the reference's histograms are in ms: %s", m.Name)
		}
	}
	require.Len(t, names, 44)
	// The reference's domains: 10 orchestration, 10 worker (tasker.queue.depth counted
	// there), 8 resilience, 7 database, 9 messaging besides the shared queue depth.
	require.Equal(t, map[telemetry.Domain]int{telemetry.Orchestration: 10, telemetry.Worker: 10,
		telemetry.Resilience: 8, telemetry.Database: 7, telemetry.Messaging: 9}, count)
}

// TestPrometheusNames records every instrument once through the real exporter and checks
// that /metrics shows exactly the catalog's series names: the translation is pinned.
func TestPrometheusNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	enabled := true
	p, err := telemetry.Setup(ctx, telemetry.Config{Enabled: &enabled, ServiceName: "catalog-test", SampleRate: ptr(1.0)},
		discardLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	recordEverything(t, p.Instruments)

	got := scrape(t, p)
	var want []string
	for _, m := range telemetry.Catalog {
		want = append(want, m.Series...)
	}
	sort.Strings(want)
	require.Equal(t, want, got)
}

func ptr[T any](v T) *T { return &v }

// scrape returns the sorted tasker series names a /metrics handler serves.
func scrape(t *testing.T, p *telemetry.Providers) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	p.MetricsHandler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		if name == "target_info" || strings.HasPrefix(name, "otel_") {
			continue
		}
		seen[name] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
