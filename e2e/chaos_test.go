package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/cli"
	"github.com/tasker-sim/tasker-sim/internal/load"
	"github.com/tasker-sim/tasker-sim/internal/stack"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// seriesNames scrapes a process's /metrics and returns the metric family names it serves.
func seriesNames(t *testing.T, base string) map[string]bool {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/metrics", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	names := map[string]bool{}
	for name, fam := range fams {
		if len(fam.GetMetric()) > 0 {
			names[name] = true
		}
	}
	return names
}

// The built-in chaos scenario, run on real processes with default settings (the FFI worker
// only has TASKER_HANDLER_TYPE=ruby), makes every metric of the catalog appear. The
// scenario's clock runs four times faster here; the visibility timeout and the breakers'
// open time stay at their defaults, which is what bounds the test's length.
func TestChaosScenarioLightsEveryMetric(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t, 5*time.Minute)
	s, err := stack.Start(ctx, stack.Options{DatabaseURL: harness.NewDatabase(t, cluster), BinDir: binDir,
		Workers: 1, FFIWorkers: 1})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	rust := s.WorkerURLs[0]

	var out, errOut bytes.Buffer
	code := cli.Execute(ctx, []string{"load", "--url", s.URL, "--worker-url", rust, "--ffi-worker-url", s.FFIWorkerURLs[0],
		"--scenario", "chaos", "--scenario-speed", "4", "--rate", "20", "--duration", "45s", "--warmup", "0s",
		"--grace", "2m", "-o", "json"}, &out, &errOut)
	t.Logf("taskerctl load exited %d; stderr:\n%s", code, errOut.String())
	var res load.Result
	require.NoError(t, json.Unmarshal(out.Bytes(), &res), out.String())
	for _, p := range res.Phases {
		require.Empty(t, p.Error, "phase %s", p.Name)
	}
	require.Empty(t, res.Unfinished, "every task reached a terminal state")
	require.Empty(t, res.Reconciliation.Problems)
	t.Logf("created %d, refused %v, final states %v", res.Created, res.HTTPErrors, res.FinalStates)

	served := map[string]bool{}
	for _, base := range append([]string{s.URL}, s.WorkerURLs...) {
		for name := range seriesNames(t, base) {
			served[name] = true
		}
	}
	var missing []string
	for _, m := range telemetry.Catalog {
		if !slices.ContainsFunc(m.Series, func(name string) bool { return served[familyOf(name)] }) {
			missing = append(missing, m.Series[0])
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "metrics no process served after the chaos scenario")
	require.Len(t, telemetry.Catalog, 44)
}

// familyOf maps a histogram's series name to its family name, as the text parser keys it.
func familyOf(series string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok {
			return base
		}
	}
	return series
}
