package dashboards_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/dashboards"
)

// TestAlertSummariesNameTheirPanel checks that each committed rule's summary names a
// panel of the dashboard its dashboard annotation points at.
func TestAlertSummariesNameTheirPanel(t *testing.T) {
	t.Parallel()
	byUID := map[string]dashboards.Dashboard{}
	for _, d := range dashboards.Dashboards() {
		byUID[d.UID] = d
	}
	rules := committedRules(t)
	require.Len(t, rules, len(dashboards.Alerts()))
	for _, r := range rules {
		d, ok := byUID[strings.TrimPrefix(r.Annotations["dashboard"], "/d/")]
		require.True(t, ok, "alert %s: annotation dashboard %q names no dashboard", r.Alert, r.Annotations["dashboard"])
		named := false
		for _, p := range d.Panels() {
			named = named || strings.Contains(r.Annotations["summary"], strconv.Quote(p.Title))
		}
		require.True(t, named, "alert %s: summary %q names no panel of %s", r.Alert, r.Annotations["summary"], d.UID)
		require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], "alert %s: severity", r.Alert)
	}
}

// TestAlertRulesWithPromtool checks the rule file and runs its unit tests (each alert
// fires on its fault series and stays silent on healthy ones) with promtool.
func TestAlertRulesWithPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: it comes with the Debian package `prometheus` " +
			"(apt-get install prometheus); the alert rules cannot be unit-tested without it")
	}
	dir := filepath.Join(root, filepath.Dir(dashboards.AlertsPath))
	for _, args := range [][]string{
		{"check", "rules", filepath.Base(dashboards.AlertsPath)},
		{"test", "rules", filepath.Base(dashboards.AlertsTestPath)},
	} {
		cmd := exec.CommandContext(t.Context(), promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// TestNoHandTypedSeriesNames fails when the generator's source spells a catalog series
// name: every name must come from telemetry.Series or the catalog, so renaming a metric
// cannot leave a dead panel or alert behind.
func TestNoHandTypedSeriesNames(t *testing.T) {
	t.Parallel()
	known := catalogSeries()
	paths, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		require.NoError(t, err)
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			for s := range known {
				require.NotContains(t, lit.Value, s, "%s spells a series name by hand; use telemetry.Series", fset.Position(lit.Pos()))
			}
			return true
		})
	}
}
