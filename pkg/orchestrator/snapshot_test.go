package orchestrator

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/pgprovision"
)

var cluster *pgprovision.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgprovision.RunTestMain(m, "orchestrator tests", func(c *pgprovision.Cluster) { cluster = c }))
}

// The snapshot runs with every step result. Its plan must stay far below jit_above_cost,
// or PostgreSQL JIT-compiles it each time, at tens of milliseconds a result: the trace
// links it reads once did that, with a subquery per row of a function the planner takes
// for 1000 rows. On these empty tables the statement costs about a hundred, and the
// per-row form tens of thousands (over 200 000 with a few hundred tasks in the tables),
// so a hundredth of jit_above_cost tells the two apart.
func TestSnapshotStatementIsNotJITCompiled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "orchestrator_snapshot_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	url, err := cluster.CreateDatabase(ctx, name, "")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cluster.DropDatabase(context.Background(), name)) })
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = migrations.Migrate(ctx, pool, &migrations.Config{PGMQ: migrations.PGMQMode(os.Getenv("TASKER_TEST_PGMQ_MODE"))})
	require.NoError(t, err)

	var limit float64
	require.NoError(t, pool.QueryRow(ctx, "SELECT current_setting('jit_above_cost')::float8").Scan(&limit))
	var plan []struct {
		Plan struct {
			TotalCost float64 `json:"Total Cost"`
		} `json:"Plan"`
	}
	var raw []byte
	require.NoError(t, pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+snapshotSQL, []uuid.UUID{uuid.New(), uuid.New()}).Scan(&raw))
	require.NoError(t, json.Unmarshal(raw, &plan))
	require.Len(t, plan, 1)
	require.Less(t, plan[0].Plan.TotalCost, limit/100, "the snapshot's estimated cost heads for jit_above_cost (%v)", limit)
}
