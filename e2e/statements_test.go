package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
)

// Statement budgets per step of a linear task run one task at a time, where every batch
// holds one step: the worst case for batching. Counted by the pgx tracer of both
// services (tasker_sql_queries_total and tasker_db_transactions_total), API calls
// included: 15.35 statements, most of them pipelined, and 1.25 transactions when this was
// last measured, the same in every run. The budgets keep that from creeping up (a task
// request that read its template's row again, as before the orchestrator cached it,
// makes 15.6); wall-clock times are not asserted here: they belong to the benchmarks.
const (
	statementsPerStepBudget   = 15.5
	transactionsPerStepBudget = 1.5
)

func TestStatementsPerStepStayWithinBudget(t *testing.T) {
	t.Parallel()
	p, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "statements"}, discard())
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	opts := fastOptions()
	opts.Telemetry = p
	// No fallback polls or maintenance during the count: only the event path.
	opts.Orchestrator = func(_ int, cfg *orchestrator.Config) { cfg.PollInterval = time.Hour }
	opts.Worker = func(_ int, cfg *worker.Config) { cfg.PollInterval = time.Hour }
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 2*time.Minute)
	run := func(n int) {
		for range n {
			task, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 6}))
			require.NoError(t, err)
			done, err := env.Client.WaitTask(ctx, task.TaskUUID)
			require.NoError(t, err)
			require.Equal(t, "complete", done.Status)
		}
	}
	run(3) // warm up: queues, templates, prepared statements
	stmts0, tx0 := countStatements(t, p)
	const tasks, stepsPerTask = 10, 4
	run(tasks)
	stmts1, tx1 := countStatements(t, p)
	steps := float64(tasks * stepsPerTask)
	perStep, txPerStep := (stmts1-stmts0)/steps, (tx1-tx0)/steps
	t.Logf("per step: %.2f statements, %.2f transactions", perStep, txPerStep)
	require.LessOrEqual(t, perStep, statementsPerStepBudget, "statements per step")
	require.LessOrEqual(t, txPerStep, transactionsPerStepBudget, "explicit transactions per step")
}

// countStatements reads the statement and transaction counters from the registry.
func countStatements(t *testing.T, p *telemetry.Providers) (statements, transactions float64) {
	t.Helper()
	samples := scrapeSamples(t, p)
	return total(samples, telemetry.Series(telemetry.MetricSQLQueries), nil),
		total(samples, telemetry.Series(telemetry.MetricDBTransactions), nil)
}
