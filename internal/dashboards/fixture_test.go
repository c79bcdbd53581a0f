package dashboards_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/dashboards"
	"github.com/tasker-sim/tasker-sim/internal/dashboards/fixture"
)

// fixturePath is the chaos run recorded by `go run ./internal/dashboards/record`.
const fixturePath = "testdata/chaos.json.gz"

// recorded is the fixture loaded into storage, and a PromQL engine to query it.
type recorded struct {
	f       *fixture.Fixture
	db      storage.Queryable
	engine  *promql.Engine
	corrIDs []string
}

func loadRecorded(t *testing.T) *recorded {
	t.Helper()
	f, err := fixture.Load(fixturePath)
	require.NoError(t, err, "re-record with `go run ./internal/dashboards/record`")
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: 30 * time.Second,
		LookbackDelta: 5 * time.Minute, Parser: promQL})
	t.Cleanup(func() { _ = engine.Close() })
	return &recorded{f: f, db: newMemStore(f), engine: engine, corrIDs: f.CorrelationIDs}
}

// eval runs expr as an instant query at ts, with the dashboard variable set to the
// first kept task, and returns how many series it returned.
func (r *recorded) eval(t *testing.T, expr string, ts time.Time) int {
	t.Helper()
	expr = strings.ReplaceAll(expr, "$"+dashboards.VarCorrelationID, r.corrIDs[0])
	return len(r.vector(t, expr, ts))
}

func (r *recorded) vector(t *testing.T, expr string, ts time.Time) promql.Vector {
	t.Helper()
	q, err := r.engine.NewInstantQuery(t.Context(), r.db, nil, expr, ts)
	require.NoError(t, err, expr)
	defer q.Close()
	res := q.Exec(t.Context())
	require.NoError(t, res.Err, expr)
	if s, ok := res.Value.(promql.Scalar); ok {
		return promql.Vector{{F: s.V}}
	}
	v, err := res.Vector()
	require.NoError(t, err, expr)
	return v
}

// faultWindow returns the last scrape before the phase began (healthy), and the scrapes
// from its start until its effect has settled.
func (r *recorded) faultWindow(t *testing.T, fault dashboards.Fault) (time.Time, []time.Time) {
	t.Helper()
	p, ok := r.f.Phase(fault.Phase)
	require.True(t, ok, "the fixture has no phase %q: re-record it", fault.Phase)
	var before time.Time
	var during []time.Time
	for _, ms := range r.f.Timestamps {
		switch {
		case ms < p.StartMS:
			before = time.UnixMilli(ms)
		case ms <= p.EndMS+fault.Settle().Milliseconds():
			during = append(during, time.UnixMilli(ms))
		}
	}
	require.False(t, before.IsZero(), "phase %q began before the first scrape", fault.Phase)
	require.NotEmpty(t, during, "no scrape during phase %q", fault.Phase)
	return before, during
}

// showsUp reports whether expr returns data at one of the times.
func (r *recorded) showsUp(t *testing.T, expr string, times []time.Time) bool {
	t.Helper()
	for _, ts := range times {
		if r.eval(t, expr, ts) > 0 {
			return true
		}
	}
	return false
}

// TestPanelsReturnDataOnTheChaosRun evaluates every panel query over the recorded chaos
// run: at the end of the run for every panel; a fault-only panel must also be empty
// just before its fault phase and return data during it.
func TestPanelsReturnDataOnTheChaosRun(t *testing.T) {
	t.Parallel()
	r := loadRecorded(t)
	for _, d := range dashboards.Dashboards() {
		for _, p := range d.Panels() {
			if p.Fault == nil {
				for _, q := range p.Queries {
					require.Positive(t, r.eval(t, q.Expr, r.f.End()), "dashboard %s panel %q returns nothing at the end of the run: %s",
						d.UID, p.Title, q.Expr)
				}
				continue
			}
			before, during := r.faultWindow(t, *p.Fault)
			for _, q := range p.Queries {
				require.Zero(t, r.eval(t, q.Expr, before), "dashboard %s panel %q shows data before phase %q: %s",
					d.UID, p.Title, p.Fault.Phase, q.Expr)
				require.True(t, r.showsUp(t, q.Expr, during), "dashboard %s panel %q returns nothing during phase %q: %s",
					d.UID, p.Title, p.Fault.Phase, q.Expr)
			}
		}
	}
}

// TestAlertsOnTheChaosRun evaluates every alert over the recorded chaos run: its signal
// returns data at the end of the run, and an alert whose fault the run reproduces is
// silent just before the fault phase and crosses its threshold during it.
func TestAlertsOnTheChaosRun(t *testing.T) {
	t.Parallel()
	r := loadRecorded(t)
	for _, a := range dashboards.Alerts() {
		require.Positive(t, r.eval(t, a.Signal, r.f.End()), "alert %s: its signal returns nothing at the end of the run: %s", a.Name, a.Signal)
		if a.Fault == nil {
			continue
		}
		before, during := r.faultWindow(t, *a.Fault)
		require.Zero(t, r.eval(t, a.Expr, before), "alert %s holds before phase %q: %s", a.Name, a.Fault.Phase, a.Expr)
		require.True(t, r.showsUp(t, a.Expr, during), "alert %s never holds during phase %q: %s", a.Name, a.Fault.Phase, a.Expr)
	}
}

// TestTaskFlowPanelOnTheChaosRun reads the task-flow panel for each kept task: requests 1
// → enqueued N → executions N → successes N → submitted N → processed N → completions 1.
func TestTaskFlowPanelOnTheChaosRun(t *testing.T) {
	t.Parallel()
	r := loadRecorded(t)
	flow, ok := dashboards.Dashboards()[0].Panel("Task flow")
	require.True(t, ok)
	require.NotEmpty(t, r.corrIDs)
	for _, id := range r.corrIDs {
		var got []float64
		for _, q := range flow.Queries {
			v := r.vector(t, strings.ReplaceAll(q.Expr, "$"+dashboards.VarCorrelationID, id), r.f.End())
			require.Len(t, v, 1, "%s for %s", q.Legend, id)
			got = append(got, v[0].F)
		}
		n := got[1]
		require.Positive(t, n, "task %s enqueued no step", id)
		require.Equal(t, []float64{1, n, n, n, n, n, 1}, got, "task %s: flow %v", id, got)
	}
}
