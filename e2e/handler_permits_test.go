package e2e

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// A worker runs at most Concurrency handlers at once, and claims the steps waiting
// behind them while they run: those hold their claim (in_process) until a handler's
// permit frees, then run. Nothing runs twice and every task completes.
func TestWorkerClaimsAheadOfItsHandlers(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Workers = -1
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 60*time.Second)

	var running, peak atomic.Int32
	release := make(chan struct{})
	reg := workflow.DefaultRegistry()
	square := reg["math.square_even_number"]
	reg["math.square_even_number"] = func(ctx context.Context, in workflow.StepInput) (any, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return square(ctx, in)
	}
	const handlers, tasks = 2, 6
	_, err := env.AddWorker(ctx, func(c *worker.Config) {
		c.Namespaces = []string{"rust_e2e_linear"}
		c.Concurrency = handlers
		c.Registry = reg
	})
	require.NoError(t, err)

	ids := createLinearTasks(ctx, t, env, tasks)
	waitFor(t, 20*time.Second, "two handlers running and every first step claimed", func() bool {
		var claimed int
		require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM tasker.workflow_steps WHERE in_process`).Scan(&claimed))
		return running.Load() == handlers && claimed == tasks
	})
	close(release)
	requireComplete(ctx, t, env, ids)
	require.EqualValues(t, handlers, peak.Load(), "handlers that ran at once")
	var attempts int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT max(attempts) FROM tasker.workflow_steps`).Scan(&attempts))
	require.Equal(t, 1, attempts, "a step that ran twice")
}

// A claimed step that waits for a handler longer than its lease keeps its claim: the
// worker renews the lease while the step waits, so orchestration does not take it back
// and nothing runs twice.
func TestClaimedStepKeepsItsLeaseWhileItWaits(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Workers = -1
	opts.Orchestrator = func(_ int, c *orchestrator.Config) { c.PollInterval = 50 * time.Millisecond }
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 60*time.Second)

	const lease, took = time.Second, 350 * time.Millisecond
	var runs atomic.Int32
	reg := workflow.DefaultRegistry()
	square := reg["math.square_even_number"]
	reg["math.square_even_number"] = func(ctx context.Context, in workflow.StepInput) (any, error) {
		runs.Add(1)
		select {
		case <-time.After(took):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return square(ctx, in)
	}
	_, err := env.AddWorker(ctx, func(c *worker.Config) {
		c.Namespaces = []string{"rust_e2e_linear"}
		c.Concurrency = 1
		c.VisibilityTimeout = lease
		c.Registry = reg
	})
	require.NoError(t, err)

	// Five first steps, one handler: the last waits four handler runs (1.4 s), well past
	// its 1 s lease.
	const tasks = 5
	ids := createLinearTasks(ctx, t, env, tasks)
	requireComplete(ctx, t, env, ids)
	require.EqualValues(t, tasks, runs.Load(), "first steps run")
	var attempts int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT max(attempts) FROM tasker.workflow_steps`).Scan(&attempts))
	require.Equal(t, 1, attempts, "a step taken back and run again")
}
