package cli_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/cli"
)

// --scenario-loop repeats a scenario, so it needs one; the check runs before anything starts.
func TestScenarioLoopNeedsAScenario(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := cli.Execute(context.Background(), []string{"load", "--url", "http://127.0.0.1:1", "--scenario-loop"}, &out, &errOut)
	require.Equal(t, 1, code)
	require.Equal(t, "taskerctl: --scenario-loop: give the --scenario to repeat\n", errOut.String())
}

// --scenario none (the compose file's LOAD_SCENARIO=none) is no scenario, looped or not.
func TestScenarioNoneIsNoScenario(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := cli.Execute(context.Background(), []string{"load", "--url", "http://127.0.0.1:1", "--scenario", "none",
		"--scenario-loop", "--duration", "1s", "--warmup", "0s", "--rate", "1", "-o", "json"}, &out, &errOut)
	require.Equal(t, 1, code, "nothing answers at the URL, so the run fails, but only after it ran")
	require.NotContains(t, errOut.String(), "--scenario")
	require.Contains(t, out.String(), `"phases": []`)
}
