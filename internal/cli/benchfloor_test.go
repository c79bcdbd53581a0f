package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/cli"
	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
)

// The floor writes what the engine writes: after one task of each, every table of the
// tasker and pgmq schemas holds as many rows, and the task and its steps went through
// the same transitions. (Updates are not compared, only the rows that stay.) Should the
// engine come to write more or fewer rows per task, this fails, and the floor's script
// is to follow it.
func TestFloorWritesTheRowsOfATask(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)

	env := harness.New(t, cluster, harness.Options{})
	created, err := env.Client.CreateTask(ctx, &api.TaskRequest{Namespace: "rust_e2e_linear",
		Name: "mathematical_sequence", Version: "1.0.0", Context: json.RawMessage(`{"even_number": 8}`),
		Initiator: "test", SourceSystem: "test", Reason: "floor comparison"})
	require.NoError(t, err)
	done, err := env.Client.WaitTask(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", done.Status)
	engine := tableRows(ctx, t, env.Pool)

	url := harness.NewDatabase(t, cluster)
	require.NoError(t, cli.WriteFloorTasks(ctx, url, 1, 1))
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	floor := tableRows(ctx, t, pool)

	require.Equal(t, engine, floor, "rows per table after one task: the engine's, then the floor's")
	require.Equal(t, transitions(ctx, t, env.Pool), transitions(ctx, t, pool))

	// A batch of three, twice: six tasks, each complete.
	url = harness.NewDatabase(t, cluster)
	require.NoError(t, cli.WriteFloorTasks(ctx, url, 3, 2))
	pool, err = pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	var complete, steps int
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM tasker.task_transitions WHERE most_recent AND to_state = 'complete'),
		(SELECT count(*) FROM tasker.workflow_step_transitions WHERE most_recent AND to_state = 'complete')`).Scan(&complete, &steps))
	require.Equal(t, 6, complete)
	require.Equal(t, 24, steps)
}

// tableRows counts the rows of every table in the tasker and pgmq schemas.
func tableRows(ctx context.Context, t *testing.T, db *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := db.Query(ctx, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
		WHERE schemaname IN ('tasker', 'pgmq') ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	counts := map[string]int{}
	for _, tbl := range tables {
		var n int
		require.NoError(t, db.QueryRow(ctx, "SELECT count(*) FROM "+tbl).Scan(&n), tbl)
		counts[tbl] = n
	}
	return counts
}

// transitions lists the task's states in order, then how many steps made each step move.
func transitions(ctx context.Context, t *testing.T, db *pgxpool.Pool) []string {
	t.Helper()
	rows, err := db.Query(ctx, `
		SELECT format('task %s: %s -> %s', sort_key, coalesce(from_state, '-'), to_state)
		  FROM tasker.task_transitions ORDER BY sort_key`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	rows, err = db.Query(ctx, `
		SELECT sort_key, coalesce(from_state, '-'), to_state, count(*)
		  FROM tasker.workflow_step_transitions GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`)
	require.NoError(t, err)
	var key, n int
	var from, to string
	_, err = pgx.ForEachRow(rows, []any{&key, &from, &to, &n}, func() error {
		out = append(out, fmt.Sprintf("%d step(s) %d: %s -> %s", n, key, from, to))
		return nil
	})
	require.NoError(t, err)
	return out
}
