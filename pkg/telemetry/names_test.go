package telemetry_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// TestNamesLiveOnlyInTheCatalog fails when production code outside this package spells a
// metric or series name itself instead of going through the catalog.
func TestNamesLiveOnlyInTheCatalog(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	var names []string
	for _, m := range telemetry.Catalog {
		names = append(names, `"`+m.Name+`"`)
		for _, s := range m.Series {
			names = append(names, `"`+s+`"`)
		}
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || path == filepath.Join(root, "pkg", "telemetry")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range names {
			require.NotContains(t, string(body), n, "%s spells a metric name; use the pkg/telemetry catalog", path)
		}
		return nil
	})
	require.NoError(t, err)
}
