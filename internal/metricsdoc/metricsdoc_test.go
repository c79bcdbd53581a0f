package metricsdoc_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/metricsdoc"
)

// TestDocIsCurrent fails when docs/metrics.md no longer matches the catalog: run `make docs`.
func TestDocIsCurrent(t *testing.T) {
	t.Parallel()
	have, err := os.ReadFile("../../docs/metrics.md")
	require.NoError(t, err, "docs/metrics.md is missing: run `make docs`")
	require.Equal(t, string(metricsdoc.Render()), string(have), "docs/metrics.md is stale: run `make docs`")
}
