package dashboards

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Paths of the generated files, relative to the repository root.
const (
	DashboardsDir         = "deploy/grafana/dashboards"
	DashboardProviderPath = "deploy/grafana/provisioning/dashboards/tasker.yaml"
	DatasourcePath        = "deploy/grafana/provisioning/datasources/tasker.yaml"
	AlertsPath            = "deploy/prometheus/alerts.yml"
	AlertsTestPath        = "deploy/prometheus/alerts_test.yml"
)

// DashboardPath is where a dashboard's JSON is written.
func DashboardPath(d Dashboard) string { return DashboardsDir + "/" + d.UID + ".json" }

// Files renders every generated file, keyed by its path from the repository root.
func Files() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, d := range Dashboards() {
		body, err := RenderJSON(d)
		if err != nil {
			return nil, err
		}
		out[DashboardPath(d)] = body
	}
	for path, render := range map[string]func() ([]byte, error){
		DashboardProviderPath: DashboardProviderYAML,
		DatasourcePath:        DatasourceYAML,
		AlertsPath:            AlertsYAML,
		AlertsTestPath:        AlertsTestYAML,
	} {
		body, err := render()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out[path] = body
	}
	return out, nil
}

// Write renders every file under root and removes dashboard JSON files no dashboard
// produces any more. It returns the paths written, sorted.
func Write(root string) ([]string, error) {
	files, err := Files()
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(files))
	for path, body := range files {
		full := filepath.Join(root, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil { //nolint:gosec // a checked-in directory
			return nil, err
		}
		if err := os.WriteFile(full, body, 0o644); err != nil { //nolint:gosec // files meant to be read
			return nil, err
		}
		paths = append(paths, path)
	}
	stale, err := StaleDashboards(root, files)
	if err != nil {
		return nil, err
	}
	for _, path := range stale {
		if err := os.Remove(filepath.Join(root, filepath.FromSlash(path))); err != nil {
			return nil, err
		}
	}
	sort.Strings(paths)
	return paths, nil
}

// StaleDashboards lists the JSON files under DashboardsDir that files does not hold.
func StaleDashboards(root string, files map[string][]byte) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(DashboardsDir)))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var stale []string
	for _, e := range entries {
		path := DashboardsDir + "/" + e.Name()
		if _, ok := files[path]; !ok && strings.HasSuffix(e.Name(), ".json") {
			stale = append(stale, path)
		}
	}
	return stale, nil
}
