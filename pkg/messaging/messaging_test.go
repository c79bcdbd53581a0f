package messaging_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/pgprovision"
)

var cluster *pgprovision.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgprovision.RunTestMain(m, "messaging tests", func(c *pgprovision.Cluster) { cluster = c }))
}

// migratedPool opens a pool on a fresh, migrated database of this test's own, with the pgmq
// provider TASKER_TEST_PGMQ_MODE asks for (auto when unset).
func migratedPool(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "messaging_" + strings.ReplaceAll(uuid.NewString()[:13], "-", "_")
	url, err := cluster.CreateDatabase(ctx, name, "")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cluster.DropDatabase(context.Background(), name)) })
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	res, err := migrations.Migrate(ctx, pool, &migrations.Config{PGMQ: migrations.PGMQMode(os.Getenv("TASKER_TEST_PGMQ_MODE"))})
	require.NoError(t, err)
	return pool, res.PGMQProvider
}

// Orchestrators and workers create the same queues at the same moments (at start, and before
// a namespace's first task). pgmq.create alone fails in that race on the real extension;
// EnsureQueue must never fail, on either provider.
func TestEnsureQueueUnderConcurrentCallers(t *testing.T) {
	t.Parallel()
	pool, provider := migratedPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const callers, rounds = 12, 8
	for round := range rounds {
		queue := fmt.Sprintf("worker_race_%d_queue", round)
		start := make(chan struct{})
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				<-start
				errs[i] = messaging.EnsureQueue(ctx, pool, queue)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "provider %s, %s, caller %d", provider, queue, i)
		}
		var listed int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM pgmq.list_queues() WHERE queue_name = $1", queue).Scan(&listed))
		require.Equal(t, 1, listed)
		id, err := messaging.Send(ctx, pool, queue, map[string]int{"round": round})
		require.NoError(t, err)
		got, err := messaging.Read(ctx, pool, queue, 30*time.Second, 10)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, id, got[0].MsgID)
	}
	// An existing queue is found without creating anything.
	require.NoError(t, messaging.EnsureQueue(ctx, pool, "worker_race_0_queue"))
}

func TestEnsureQueueRefusesAnInvalidName(t *testing.T) {
	t.Parallel()
	pool, _ := migratedPool(t)
	err := messaging.EnsureQueue(context.Background(), pool, "x'; drop table y; --")
	require.Error(t, err)
	require.ErrorContains(t, err, "create queue")
}
