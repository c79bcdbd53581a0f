package messaging_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/messaging"
)

// Every process that shares a queue hears every notification, so two of them try to
// archive the same message. The one that comes second must neither wait for the first
// one's transaction nor archive the message again; once the first one commits, the
// message is in the archive once.
func TestArchiveSkipsAMessageAnotherTransactionHolds(t *testing.T) {
	t.Parallel()
	pool, provider := migratedPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const queue = "archive_race_queue"
	require.NoError(t, messaging.EnsureQueue(ctx, pool, queue))
	held, err := messaging.Send(ctx, pool, queue, map[string]string{"who": "held"})
	require.NoError(t, err)
	free, err := messaging.Send(ctx, pool, queue, map[string]string{"who": "free"})
	require.NoError(t, err)

	first, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = first.Rollback(context.Background()) }()
	firstGot := archive(ctx, t, first, queue, held)
	require.Equal(t, map[int64]bool{held: true}, firstGot, "provider %s", provider)

	// The second archive runs while the first transaction still holds its message: it
	// must return at once (the statement timeout fails it otherwise), with the free
	// message only.
	second, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = second.Rollback(context.Background()) }()
	_, err = second.Exec(ctx, "SET LOCAL statement_timeout = '5s'")
	require.NoError(t, err)
	secondGot := archive(ctx, t, second, queue, held, free)
	require.Equal(t, map[int64]bool{free: true}, secondGot)
	require.NoError(t, second.Commit(ctx))
	require.NoError(t, first.Commit(ctx))

	var archived, left int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM pgmq.a_"+queue).Scan(&archived))
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM pgmq.q_"+queue).Scan(&left))
	require.Equal(t, 2, archived, "each message archived once")
	require.Zero(t, left)
}

// archive runs messaging.ArchiveBatch for ids in tx and returns the ids it archived.
func archive(ctx context.Context, t *testing.T, tx pgx.Tx, queue string, ids ...int64) map[int64]bool {
	t.Helper()
	got := map[int64]bool{}
	b := &pgx.Batch{}
	require.NoError(t, messaging.ArchiveBatch(b, queue, ids, got))
	require.NoError(t, tx.SendBatch(ctx, b).Close())
	return got
}
