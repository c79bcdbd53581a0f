package dashboards_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/dashboards"
	"github.com/tasker-sim/tasker-sim/internal/load"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// root is the repository root, seen from this package's directory.
const root = "../.."

// promQL parses as a Prometheus server does by default (no experimental features).
var promQL = parser.NewParser(parser.Options{})

// shippedExpr is one PromQL expression of a committed file, and where it is.
type shippedExpr struct {
	where, expr string
}

// dashboardJSON is the part of Grafana's dashboard model the tests read.
type dashboardJSON struct {
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// committedDashboards reads every committed dashboard JSON file.
func committedDashboards(t *testing.T) []dashboardJSON {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root, dashboards.DashboardsDir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, paths, "no dashboards: run `make docs`")
	var out []dashboardJSON
	for _, p := range paths {
		body, err := os.ReadFile(p) //nolint:gosec // a path of the repository
		require.NoError(t, err)
		var d dashboardJSON
		require.NoError(t, json.Unmarshal(body, &d), p)
		out = append(out, d)
	}
	return out
}

// shippedExprs lists every PromQL expression of the committed dashboards and alert rules.
func shippedExprs(t *testing.T) []shippedExpr {
	t.Helper()
	var out []shippedExpr
	for _, d := range committedDashboards(t) {
		for _, p := range d.Panels {
			for _, target := range p.Targets {
				out = append(out, shippedExpr{fmt.Sprintf("dashboard %s panel %q query %s", d.UID, p.Title, target.RefID), target.Expr})
			}
		}
	}
	for _, r := range committedRules(t) {
		out = append(out, shippedExpr{"alert " + r.Alert, r.Expr})
	}
	return out
}

// committedRules parses the committed rule file as Prometheus does when it loads it.
func committedRules(t *testing.T) []rulefmt.Rule {
	t.Helper()
	groups, errs := rulefmt.ParseFile(filepath.Join(root, dashboards.AlertsPath), false, model.UTF8Validation, promQL, nil)
	require.Empty(t, errs, "%s does not load", dashboards.AlertsPath)
	require.Len(t, groups.Groups, 1)
	return groups.Groups[0].Rules
}

// catalogSeries maps every catalog series name to its metric's name.
func catalogSeries() map[string]string {
	out := map[string]string{}
	for _, m := range telemetry.Catalog {
		for _, s := range m.Series {
			out[s] = m.Name
		}
	}
	return out
}

// selectedNames parses expr and returns the series names its selectors name, failing on
// a selector without an exact name.
func selectedNames(expr string) ([]string, error) {
	parsed, err := promQL.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, matchers := range parser.ExtractSelectors(parsed) {
		i := slices.IndexFunc(matchers, func(m *labels.Matcher) bool {
			return m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual
		})
		if i < 0 {
			return nil, fmt.Errorf("a selector has no exact metric name: %v", matchers)
		}
		names = append(names, matchers[i].Value)
	}
	return names, nil
}

// TestGeneratedFilesAreCurrent fails when a committed file under deploy/ differs from
// what the generator produces, or a dashboard file no dashboard produces is left: run
// `make docs`.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	t.Parallel()
	files, err := dashboards.Files()
	require.NoError(t, err)
	for path, want := range files {
		have, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path)))
		require.NoError(t, err, "%s is missing: run `make docs`", path)
		require.Equal(t, string(want), string(have), "%s is stale: run `make docs`", path)
	}
	stale, err := dashboards.StaleDashboards(root, files)
	require.NoError(t, err)
	require.Empty(t, stale, "no dashboard produces these any more: run `make docs`")
}

// TestExpressionsParseAndNameOnlyCatalogSeries parses every shipped expression with the
// PromQL parser and checks that each selector names a catalog series.
func TestExpressionsParseAndNameOnlyCatalogSeries(t *testing.T) {
	t.Parallel()
	known := catalogSeries()
	exprs := shippedExprs(t)
	require.NotEmpty(t, exprs)
	for _, e := range exprs {
		names, err := selectedNames(e.expr)
		require.NoError(t, err, "%s: %s", e.where, e.expr)
		require.NotEmpty(t, names, "%s selects no series: %s", e.where, e.expr)
		for _, n := range names {
			_, ok := known[n]
			require.True(t, ok, "%s names %s, which is not a catalog series", e.where, n)
		}
	}
}

// TestVariablesListCatalogSeries checks the dashboards' label_values variables.
func TestVariablesListCatalogSeries(t *testing.T) {
	t.Parallel()
	known := catalogSeries()
	seen := 0
	for _, d := range committedDashboards(t) {
		for _, v := range d.Templating.List {
			series, label, ok := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(v.Query, "label_values("), ")"), ", ")
			require.True(t, ok, "dashboard %s variable %s: query %q is not label_values(series, label)", d.UID, v.Name, v.Query)
			metric, ok := known[series]
			require.True(t, ok, "dashboard %s variable %s: %s is not a catalog series", d.UID, v.Name, series)
			m, _ := telemetry.Lookup(metric)
			require.Contains(t, m.Labels, label, "dashboard %s variable %s: %s has no label %s", d.UID, v.Name, series, label)
			seen++
		}
	}
	require.Positive(t, seen, "the correlation_id variable is missing")
}

// TestEveryCatalogMetricIsOnAPanel proves the dashboards show all 44 metrics: each
// catalog entry has one of its series selected by some committed panel.
func TestEveryCatalogMetricIsOnAPanel(t *testing.T) {
	t.Parallel()
	shown := map[string]bool{}
	for _, d := range committedDashboards(t) {
		for _, p := range d.Panels {
			for _, target := range p.Targets {
				names, err := selectedNames(target.Expr)
				require.NoError(t, err)
				for _, n := range names {
					shown[n] = true
				}
			}
		}
	}
	var missing []string
	for _, m := range telemetry.Catalog {
		if !slices.ContainsFunc(m.Series, func(s string) bool { return shown[s] }) {
			missing = append(missing, m.Name)
		}
	}
	require.Empty(t, missing, "catalog metrics no panel shows")
	require.Len(t, telemetry.Catalog, 44)
}

// TestDashboardsHaveTheirPanels checks the layout the README promises: the reference's
// dashboards, unique panel titles, and the task-flow panel driven by correlation_id.
func TestDashboardsHaveTheirPanels(t *testing.T) {
	t.Parallel()
	var titles []string
	for _, d := range dashboards.Dashboards() {
		titles = append(titles, d.Title)
		seen := map[string]bool{}
		for _, p := range d.Panels() {
			require.False(t, seen[p.Title], "dashboard %s: panel title %q is used twice", d.UID, p.Title)
			seen[p.Title] = true
			require.NotEmpty(t, p.Queries, "dashboard %s panel %q has no query", d.UID, p.Title)
		}
	}
	for _, want := range []string{"Task Execution Overview", "Worker Performance", "System Health", "Resilience", "Database", "Messaging"} {
		require.True(t, slices.ContainsFunc(titles, func(s string) bool { return strings.HasSuffix(s, want) }), "no %s dashboard", want)
	}
	overview := dashboards.Dashboards()[0]
	flow, ok := overview.Panel("Task flow")
	require.True(t, ok)
	require.Len(t, flow.Queries, len(dashboards.FlowMetrics))
	for _, q := range flow.Queries {
		require.Contains(t, q.Expr, `correlation_id="$`+dashboards.VarCorrelationID+`"`)
	}
	breakers, ok := dashboards.Dashboards()[3].Panel(dashboards.PanelBreakerState)
	require.True(t, ok)
	require.Equal(t, []dashboards.Mapping{{Value: "0", Text: "Closed", Color: "green"},
		{Value: "1", Text: "Half-Open", Color: "yellow"}, {Value: "2", Text: "Open", Color: "red"}}, breakers.Mappings)
}

// TestFaultsNameChaosPhases checks that every fault a panel or alert waits for is a
// phase of the built-in chaos scenario.
func TestFaultsNameChaosPhases(t *testing.T) {
	t.Parallel()
	var phases []string
	for _, p := range load.Chaos().Phases {
		phases = append(phases, p.Name)
	}
	for _, d := range dashboards.Dashboards() {
		for _, p := range d.Panels() {
			if p.Fault != nil {
				require.Contains(t, phases, p.Fault.Phase, "dashboard %s panel %q", d.UID, p.Title)
			}
		}
	}
	for _, a := range dashboards.Alerts() {
		if a.Fault != nil {
			require.Contains(t, phases, a.Fault.Phase, "alert %s", a.Name)
		}
	}
}
