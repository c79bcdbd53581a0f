package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/pgprovision"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
)

// TestPostgresRestartMidLoad takes the database down for 1.5 s while tasks run. The
// processes reconnect by themselves, the breakers open, half-open and close (and the
// gauges show each state), and every task completes.
func TestPostgresRestartMidLoad(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t, 3*time.Minute)
	// Its own cluster: restarting the shared one would disturb the other tests.
	own, err := pgprovision.Start(ctx, pgprovision.Options{URL: "", EnvVar: "TASKER_RESTART_TEST_UNUSED", DisableContainer: true})
	if err != nil {
		t.Fatalf("start a cluster for the restart test: %v", err)
	}
	t.Cleanup(func() { _ = own.Stop(context.Background()) })
	if own.Source() != pgprovision.SourceLocal {
		t.Skip("the restart test needs a local throwaway cluster")
	}

	p := newTelemetry(t)
	fast := resilience.BreakerConfig{FailureThreshold: 2, OpenTimeout: 500 * time.Millisecond, SuccessThreshold: 1}
	opts := fastOptions()
	opts.Telemetry = p
	opts.Orchestrator = func(_ int, c *orchestrator.Config) {
		c.PollInterval, c.VisibilityTimeout = 100*time.Millisecond, 2*time.Second
		c.WebBreaker, c.ReadinessBreaker, c.PGMQBreaker = fast, fast, fast
	}
	opts.Worker = func(_ int, c *worker.Config) {
		c.PollInterval, c.VisibilityTimeout = 100*time.Millisecond, 2*time.Second
		c.PGMQBreaker = fast
	}
	env := harness.New(t, own, opts)

	const n = 40
	var ids []string
	for range n {
		created, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence",
			map[string]any{"even_number": 2, "_faults": map[string]any{"latency_ms": map[string]int{"min": 20, "max": 60}}}))
		require.NoError(t, err)
		ids = append(ids, created.TaskUUID)
	}

	state := func() float64 { return total(scrapeSamples(t, p), "api_circuit_breaker_state", nil) }
	seen := map[float64]bool{state(): true}

	// The outage: API calls fail until the web breaker opens and refuses them.
	require.NoError(t, own.Pause(ctx))
	waitFor(t, 10*time.Second, "the web breaker to open", func() bool {
		_, _ = env.Client.GetTask(ctx, ids[0])
		return state() == 2
	})
	seen[2] = true
	require.NoError(t, own.Resume(ctx))

	// No calls for longer than the open timeout: the gauge shows half-open; the next call
	// that succeeds closes the breaker.
	waitFor(t, 10*time.Second, "the web breaker to show half-open", func() bool { return state() == 1 })
	seen[1] = true
	waitFor(t, 10*time.Second, "the web breaker to close", func() bool {
		_, err := env.Client.GetTask(ctx, ids[0])
		return err == nil && state() == 0
	})
	seen[0] = true
	require.Equal(t, map[float64]bool{0: true, 1: true, 2: true}, seen, "closed → open → half-open → closed")

	for _, id := range ids {
		var done string
		waitFor(t, 60*time.Second, "task "+id+" to finish", func() bool {
			task, err := env.Client.GetTask(ctx, id)
			if err != nil {
				return false
			}
			done = task.Status
			return task.CompletedAt != nil
		})
		require.Equal(t, "complete", done, fmt.Sprintf("task %s", id))
	}
	var steps, completes int
	require.NoError(t, env.Pool.QueryRow(ctx, `
		SELECT count(DISTINCT st.workflow_step_uuid), count(*) FILTER (WHERE st.to_state = 'complete')
		  FROM tasker.workflow_step_transitions AS st`).Scan(&steps, &completes))
	require.Equal(t, n*4, steps)
	require.Equal(t, steps, completes, "each step completed exactly once")
}
