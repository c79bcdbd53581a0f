package load

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// The orchestrator counters a run is reconciled with, as Prometheus names them.
var (
	seriesRequests    = telemetry.Series(telemetry.MetricTasksRequests)
	seriesCompletions = telemetry.Series(telemetry.MetricTasksCompletions)
	seriesFailures    = telemetry.Series(telemetry.MetricTasksFailures)
)

// counters are the orchestrator's task counters at one moment, summed over their labels.
type counters struct {
	requests, terminal int64
}

// scrapeCounters reads the orchestrator's /metrics.
func scrapeCounters(ctx context.Context, base, token string) (counters, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/metrics", nil)
	if err != nil {
		return counters{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return counters{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return counters{}, fmt.Errorf("GET /metrics answered %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return counters{}, fmt.Errorf("parse /metrics: %w", err)
	}
	total := func(name string) int64 {
		var n float64
		for _, m := range fams[name].GetMetric() {
			n += m.GetCounter().GetValue()
		}
		return int64(n)
	}
	return counters{requests: total(seriesRequests),
		terminal: total(seriesCompletions) + total(seriesFailures)}, nil
}

// reconcileDeadline is how long the counters get to catch up with what the run saw: they
// are recorded after the commit that the run observes.
const reconcileDeadline = 10 * time.Second

// reconcile compares the counters' rise since before with the run's own counts.
func reconcile(ctx context.Context, base, token string, before counters, created, terminal int64) Reconciliation {
	rec := Reconciliation{Created: created, Terminal: terminal, Problems: []string{}}
	deadline := time.Now().Add(reconcileDeadline)
	for {
		now, err := scrapeCounters(ctx, base, token)
		if err != nil {
			rec.Problems = append(rec.Problems, "could not read the orchestrator's counters: "+err.Error())
			return rec
		}
		rec.Checked = true
		rec.RequestsCounted = now.requests - before.requests
		rec.TerminalCounted = now.terminal - before.terminal
		if rec.RequestsCounted == created && rec.TerminalCounted == terminal {
			return rec
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if rec.RequestsCounted != created {
		rec.Problems = append(rec.Problems, fmt.Sprintf(
			"%s rose by %d but this run created %d tasks (another client, or a lost count)",
			seriesRequests, rec.RequestsCounted, created))
	}
	if rec.TerminalCounted != terminal {
		rec.Problems = append(rec.Problems, fmt.Sprintf(
			"%s + %s rose by %d but this run saw %d tasks finish",
			seriesCompletions, seriesFailures, rec.TerminalCounted, terminal))
	}
	return rec
}
