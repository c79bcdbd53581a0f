package migrations_test

// A behavioural suite for the pgmq SQL API as Migrate installs it: the real
// extension where the server has it, the project's compatible schema elsewhere.
// Every assertion is about documented behaviour, so the same tests hold for both;
// the few places where the two may legitimately differ are called out.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pgmq "github.com/craigpastro/pgmq-go"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// visibilityDeadline bounds every wait for a message to become visible again;
// the timeouts used are 1 s, so this leaves ample room on a loaded machine.
const visibilityDeadline = 5 * time.Second

// pollInterval is how often a waiting test looks again.
const pollInterval = 50 * time.Millisecond

// message is one row of pgmq's message_record, by column name so that the tests
// do not depend on the column count (the extension has had headers since 1.5).
type message struct {
	MsgID      int64           `db:"msg_id"`
	ReadCt     int32           `db:"read_ct"`
	EnqueuedAt time.Time       `db:"enqueued_at"`
	VT         time.Time       `db:"vt"`
	Message    json.RawMessage `db:"message"`
}

const messageColumns = "msg_id, read_ct, enqueued_at, vt, message"

// queryMessages runs sql (which selects messageColumns) and collects the rows,
// failing the test on any error. pgmq-go's Read and ReadBatch turn a server
// error into "no rows", so assertions that nothing is visible use this instead.
func queryMessages(t *testing.T, db pgmq.DB, sql string, args ...any) []message {
	t.Helper()
	rows, err := db.Query(testContext(t), sql, args...)
	require.NoError(t, err)
	msgs, err := pgx.CollectRows(rows, pgx.RowToStructByName[message])
	require.NoError(t, err, sql)
	return msgs
}

// readRaw calls pgmq.read directly. It returns the messages in msg_id order, as
// read's row order is unspecified.
func readRaw(t *testing.T, db pgmq.DB, queue string, vt, qty int) []message {
	t.Helper()
	msgs := queryMessages(t, db, "SELECT "+messageColumns+" FROM pgmq.read($1, $2, $3)", queue, vt, qty)
	slices.SortFunc(msgs, func(a, b message) int { return cmp.Compare(a.MsgID, b.MsgID) })
	return msgs
}

// requireNothingVisible fails unless a read finds no message.
func requireNothingVisible(t *testing.T, db pgmq.DB, queue string) {
	t.Helper()
	require.Empty(t, readRaw(t, db, queue, 30, 10), "no message of %s may be visible now", queue)
}

// waitForMessage reads queue (hiding what it gets for vt seconds) until a message
// comes back or visibilityDeadline passes.
func waitForMessage(t *testing.T, db pgmq.DB, queue string, vt int) message {
	t.Helper()
	deadline := time.Now().Add(visibilityDeadline)
	for {
		if got := readRaw(t, db, queue, vt, 1); len(got) == 1 {
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message of %s became visible within %s", queue, visibilityDeadline)
		}
		time.Sleep(pollInterval)
	}
}

func createQueue(t *testing.T, db pgmq.DB, queue string) {
	t.Helper()
	require.NoError(t, pgmq.CreateQueue(testContext(t), db, queue))
}

func send(t *testing.T, db pgmq.DB, queue, body string) int64 {
	t.Helper()
	id, err := pgmq.Send(testContext(t), db, queue, json.RawMessage(body))
	require.NoError(t, err)
	return id
}

// pgmqTables lists the tables in schema pgmq, for "nothing was created" checks.
func pgmqTables(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(testContext(t), "SELECT tablename::text FROM pg_tables WHERE schemaname = 'pgmq' ORDER BY 1")
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func hasTable(t *testing.T, pool *pgxpool.Pool, schema, table string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, pool.QueryRow(testContext(t),
		"SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2)", schema, table).Scan(&ok))
	return ok
}

func countRows(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(testContext(t),
		"SELECT count(*) FROM "+pgx.Identifier{"pgmq", table}.Sanitize()).Scan(&n))
	return n
}

// archivedMessages reads pgmq.a_<queue>.
func archivedMessages(t *testing.T, pool *pgxpool.Pool, queue string) []message {
	t.Helper()
	return queryMessages(t, pool, "SELECT "+messageColumns+" FROM "+
		pgx.Identifier{"pgmq", "a_" + queue}.Sanitize()+" ORDER BY msg_id")
}

type metrics struct {
	QueueName       string `db:"queue_name"`
	QueueLength     int64  `db:"queue_length"`
	TotalMessages   int64  `db:"total_messages"`
	NewestMsgAgeSec *int32 `db:"newest_msg_age_sec"`
	OldestMsgAgeSec *int32 `db:"oldest_msg_age_sec"`
}

const metricsColumns = "queue_name, queue_length, total_messages, newest_msg_age_sec, oldest_msg_age_sec"

func queueMetrics(t *testing.T, pool *pgxpool.Pool, queue string) metrics {
	t.Helper()
	rows, err := pool.Query(testContext(t), "SELECT "+metricsColumns+" FROM pgmq.metrics($1)", queue)
	require.NoError(t, err)
	m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[metrics])
	require.NoError(t, err)
	return m
}

func ids(msgs []message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.MsgID
	}
	return out
}

func TestPGMQCreateIsIdempotent(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)

	createQueue(t, pool, "orders")
	id := send(t, pool, "orders", `{"n":1}`)
	createQueue(t, pool, "orders")

	require.True(t, hasTable(t, pool, "pgmq", "q_orders"))
	require.True(t, hasTable(t, pool, "pgmq", "a_orders"))
	require.Equal(t, []int64{id}, ids(readRaw(t, pool, "orders", 30, 10)),
		"creating an existing queue keeps its messages")
	var listed int
	require.NoError(t, pool.QueryRow(testContext(t),
		"SELECT count(*) FROM pgmq.list_queues() WHERE queue_name = 'orders'").Scan(&listed))
	require.Equal(t, 1, listed)
}

func TestPGMQConcurrentCreateOfOneQueue(t *testing.T) {
	t.Parallel()
	pool, _, provider := migratedDB(t)
	ctx := testContext(t)

	// Several rounds, each a fresh queue created by many callers at once: a
	// single round rarely hits the window in which unguarded creates collide.
	const creators, rounds = 8, 6
	for round := range rounds {
		queue := fmt.Sprintf("contended_%d", round)
		start := make(chan struct{})
		errs := make([]error, creators)
		var wg sync.WaitGroup
		for i := range creators {
			wg.Go(func() {
				<-start
				errs[i] = pgmq.CreateQueue(ctx, pool, queue)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if provider == "extension" {
				// The extension's create is not guarded against a concurrent
				// create of the same queue; a catalog unique violation, a table or
				// type that "already exists" or a sequence that is not there yet is
				// its known answer (messaging.EnsureQueue is the guarded create
				// tasker-sim uses).
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && slices.Contains([]string{"23505", "42P07", "42710", "42P01"}, pgErr.Code) {
					t.Logf("%s creator %d: extension reported a concurrent-create conflict: %v", queue, i, err)
					continue
				}
			}
			require.NoError(t, err, "%s creator %d", queue, i)
		}

		id := send(t, pool, queue, `{"ok":true}`)
		require.Equal(t, []int64{id}, ids(readRaw(t, pool, queue, 30, 10)))
		var listed int
		require.NoError(t, pool.QueryRow(ctx,
			"SELECT count(*) FROM pgmq.list_queues() WHERE queue_name = $1", queue).Scan(&listed))
		require.Equal(t, 1, listed)
	}
}

func TestPGMQSendReturnsIncreasingIDs(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	createQueue(t, pool, "seq")

	var prev int64
	for i := range 5 {
		id := send(t, pool, "seq", fmt.Sprintf(`{"i":%d}`, i))
		require.Greater(t, id, prev)
		prev = id
	}
	require.Len(t, readRaw(t, pool, "seq", 30, 10), 5)
}

func TestPGMQReadHidesMessageForVT(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "jobs")
	id := send(t, pool, "jobs", `{"job":"a","n":1}`)

	got, err := pgmq.Read(ctx, pool, "jobs", 30)
	require.NoError(t, err)
	require.Equal(t, id, got.MsgID)
	require.EqualValues(t, 1, got.ReadCount)
	require.JSONEq(t, `{"job":"a","n":1}`, string(got.Message))
	hidden := got.VT.Sub(got.EnqueuedAt)
	require.InDelta(t, 30, hidden.Seconds(), 5, "vt is about 30 s after the read (enqueued %s, vt %s)", got.EnqueuedAt, got.VT)

	_, err = pgmq.Read(ctx, pool, "jobs", 30)
	require.ErrorIs(t, err, pgmq.ErrNoRows)
	requireNothingVisible(t, pool, "jobs")

	// Hidden is not gone: the message is still counted.
	require.EqualValues(t, 1, queueMetrics(t, pool, "jobs").QueueLength)

	// ReadBatch takes several at once and counts each read.
	send(t, pool, "jobs", `{"job":"b"}`)
	send(t, pool, "jobs", `{"job":"c"}`)
	batch, err := pgmq.ReadBatch(ctx, pool, "jobs", 30, 10)
	require.NoError(t, err)
	require.Len(t, batch, 2)
	for _, m := range batch {
		require.EqualValues(t, 1, m.ReadCount)
	}
}

// Two readers whose transactions are both still open take different messages,
// and neither waits for the other (FOR UPDATE SKIP LOCKED).
func TestPGMQConcurrentReadersSkipLocked(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "shared")
	first := send(t, pool, "shared", `{"n":1}`)
	second := send(t, pool, "shared", `{"n":2}`)

	tx1, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx1.Rollback(context.Background()) }()
	tx2, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx2.Rollback(context.Background()) }()

	m1, err := pgmq.Read(ctx, tx1, "shared", 30)
	require.NoError(t, err)

	// Had the reader waited for tx1's row lock, this would time out.
	quick, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m2, err := pgmq.Read(quick, tx2, "shared", 30)
	require.NoError(t, err, "the second reader must skip the locked message, not wait for it")

	require.NotEqual(t, m1.MsgID, m2.MsgID)
	require.ElementsMatch(t, []int64{first, second}, []int64{m1.MsgID, m2.MsgID})
	require.Equal(t, first, m1.MsgID, "the oldest visible message is read first")

	// A third reader finds both taken.
	tx3, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx3.Rollback(context.Background()) }()
	quick3, cancel3 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel3()
	rows, err := tx3.Query(quick3, "SELECT "+messageColumns+" FROM pgmq.read('shared', 30, 10)")
	require.NoError(t, err)
	third, err := pgx.CollectRows(rows, pgx.RowToStructByName[message])
	require.NoError(t, err, "the third reader must not wait either")
	require.Empty(t, third)
	require.NoError(t, tx3.Rollback(ctx))

	require.NoError(t, tx1.Commit(ctx))
	require.NoError(t, tx2.Commit(ctx))
	requireNothingVisible(t, pool, "shared")
}

func TestPGMQMessageReappearsAfterVT(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "retry")
	id := send(t, pool, "retry", `{"attempt":"x"}`)

	first, err := pgmq.Read(ctx, pool, "retry", 1)
	require.NoError(t, err)
	require.EqualValues(t, 1, first.ReadCount)
	requireNothingVisible(t, pool, "retry")

	t0 := time.Now()
	again := waitForMessage(t, pool, "retry", 30)
	t.Logf("message reappeared %s after the 1 s read", time.Since(t0).Round(time.Millisecond))
	require.Equal(t, id, again.MsgID)
	require.EqualValues(t, 2, again.ReadCt)
	require.JSONEq(t, `{"attempt":"x"}`, string(again.Message))
	// Both times are the server's: the second read happened no earlier than the
	// first read's vt, and set a new vt 30 s on.
	require.False(t, again.VT.Add(-30*time.Second).Before(first.VT),
		"re-read at %s, before the first vt %s", again.VT.Add(-30*time.Second), first.VT)
}

func TestPGMQSendWithDelay(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "later")

	t.Run("seconds", func(t *testing.T) {
		id, err := pgmq.SendWithDelay(ctx, pool, "later", json.RawMessage(`{"d":"int"}`), 1)
		require.NoError(t, err)
		requireNothingVisible(t, pool, "later")
		got := waitForMessage(t, pool, "later", 30)
		require.Equal(t, id, got.MsgID)
		require.EqualValues(t, 1, got.ReadCt)
	})
	t.Run("timestamp", func(t *testing.T) {
		var now time.Time
		require.NoError(t, pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now))
		id, err := pgmq.SendWithDelayTimestamp(ctx, pool, "later", json.RawMessage(`{"d":"ts"}`), now.Add(time.Second))
		require.NoError(t, err)
		requireNothingVisible(t, pool, "later")
		got := waitForMessage(t, pool, "later", 30)
		require.Equal(t, id, got.MsgID)
		require.JSONEq(t, `{"d":"ts"}`, string(got.Message))
	})
	t.Run("long delay", func(t *testing.T) {
		id, err := pgmq.SendWithDelay(ctx, pool, "later", json.RawMessage(`{"d":"hour"}`), 3600)
		require.NoError(t, err)
		requireNothingVisible(t, pool, "later")
		var wait time.Duration
		require.NoError(t, pool.QueryRow(ctx, "SELECT vt - enqueued_at FROM pgmq.q_later WHERE msg_id = $1", id).Scan(&wait))
		require.InDelta(t, 3600, wait.Seconds(), 5)
	})
}

func TestPGMQSendBatch(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "bulk")

	bodies := []json.RawMessage{json.RawMessage(`{"n":1}`), json.RawMessage(`{"n":2}`), json.RawMessage(`{"n":3}`)}
	got, err := pgmq.SendBatch(ctx, pool, "bulk", bodies)
	require.NoError(t, err)
	require.Len(t, got, 3)
	sorted := slices.Sorted(slices.Values(got))
	require.Len(t, slices.Compact(slices.Clone(sorted)), 3, "ids are distinct")

	// Ids follow the batch's order, so in id order the bodies are the batch's.
	read := readRaw(t, pool, "bulk", 30, 10)
	require.Equal(t, sorted, ids(read))
	for i, m := range read {
		require.JSONEq(t, string(bodies[i]), string(m.Message))
	}

	delayed, err := pgmq.SendBatchWithDelay(ctx, pool, "bulk", bodies[:2], 3600)
	require.NoError(t, err)
	require.Len(t, delayed, 2)
	requireNothingVisible(t, pool, "bulk")
	require.EqualValues(t, 5, queueMetrics(t, pool, "bulk").QueueLength)
}

func TestPGMQPop(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "popq")
	a := send(t, pool, "popq", `{"m":"a"}`)
	b := send(t, pool, "popq", `{"m":"b"}`)
	c := send(t, pool, "popq", `{"m":"c"}`)

	// a is hidden by a read, so pop skips it.
	hidden := readRaw(t, pool, "popq", 30, 1)
	require.Equal(t, []int64{a}, ids(hidden))

	got, err := pgmq.Pop(ctx, pool, "popq")
	require.NoError(t, err)
	require.Equal(t, b, got.MsgID)
	require.JSONEq(t, `{"m":"b"}`, string(got.Message))
	got, err = pgmq.Pop(ctx, pool, "popq")
	require.NoError(t, err)
	require.Equal(t, c, got.MsgID)
	_, err = pgmq.Pop(ctx, pool, "popq")
	require.ErrorIs(t, err, pgmq.ErrNoRows)

	require.EqualValues(t, 1, queueMetrics(t, pool, "popq").QueueLength, "only the hidden message is left")
	require.Empty(t, archivedMessages(t, pool, "popq"), "pop deletes; it does not archive")
}

func TestPGMQArchive(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "arch")
	id := send(t, pool, "arch", `{"keep":"me"}`)
	other := send(t, pool, "arch", `{"stay":true}`)
	read := readRaw(t, pool, "arch", 30, 1)
	require.Equal(t, []int64{id}, ids(read))

	ok, err := pgmq.Archive(ctx, pool, "arch", id)
	require.NoError(t, err)
	require.True(t, ok)

	archived := archivedMessages(t, pool, "arch")
	require.Len(t, archived, 1)
	require.Equal(t, id, archived[0].MsgID)
	require.EqualValues(t, 1, archived[0].ReadCt, "the archive keeps the read count")
	require.JSONEq(t, `{"keep":"me"}`, string(archived[0].Message))
	require.True(t, archived[0].EnqueuedAt.Equal(read[0].EnqueuedAt), "the archive keeps enqueued_at")
	var archivedAt time.Time
	require.NoError(t, pool.QueryRow(ctx, "SELECT archived_at FROM pgmq.a_arch WHERE msg_id = $1", id).Scan(&archivedAt))
	require.False(t, archivedAt.Before(archived[0].EnqueuedAt))

	ok, err = pgmq.Archive(ctx, pool, "arch", id)
	require.NoError(t, err)
	require.False(t, ok, "a message is archived once")
	ok, err = pgmq.Archive(ctx, pool, "arch", 999999)
	require.NoError(t, err)
	require.False(t, ok, "an unknown id archives nothing")

	require.Equal(t, 1, countRows(t, pool, "a_arch"))
	require.Equal(t, []int64{other}, ids(readRaw(t, pool, "arch", 30, 10)), "other messages stay")
}

func TestPGMQArchiveBatch(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "archb")
	got, err := pgmq.SendBatch(ctx, pool, "archb",
		[]json.RawMessage{json.RawMessage(`1`), json.RawMessage(`2`), json.RawMessage(`3`)})
	require.NoError(t, err)

	archived, err := pgmq.ArchiveBatch(ctx, pool, "archb", []int64{got[0], got[2], 999999})
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{got[0], got[2]}, archived, "only existing messages are reported")
	require.Equal(t, []int64{got[0], got[2]}, ids(archivedMessages(t, pool, "archb")))
	require.Equal(t, []int64{got[1]}, ids(readRaw(t, pool, "archb", 30, 10)))

	again, err := pgmq.ArchiveBatch(ctx, pool, "archb", []int64{got[0], got[2]})
	require.NoError(t, err)
	require.Empty(t, again)
}

func TestPGMQDelete(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "del")
	id := send(t, pool, "del", `{}`)
	other := send(t, pool, "del", `{}`)

	ok, err := pgmq.Delete(ctx, pool, "del", id)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = pgmq.Delete(ctx, pool, "del", id)
	require.NoError(t, err)
	require.False(t, ok)

	require.Equal(t, []int64{other}, ids(readRaw(t, pool, "del", 30, 10)))
	require.Empty(t, archivedMessages(t, pool, "del"), "delete does not archive")
}

func TestPGMQDeleteBatch(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "delb")
	got, err := pgmq.SendBatch(ctx, pool, "delb",
		[]json.RawMessage{json.RawMessage(`"a"`), json.RawMessage(`"b"`), json.RawMessage(`"c"`)})
	require.NoError(t, err)

	deleted, err := pgmq.DeleteBatch(ctx, pool, "delb", []int64{got[1], got[2], 999999})
	require.NoError(t, err)
	require.ElementsMatch(t, []int64{got[1], got[2]}, deleted)
	require.Equal(t, []int64{got[0]}, ids(readRaw(t, pool, "delb", 30, 10)))
	require.Empty(t, archivedMessages(t, pool, "delb"))

	again, err := pgmq.DeleteBatch(ctx, pool, "delb", []int64{got[1]})
	require.NoError(t, err)
	require.Empty(t, again)
}

func TestPGMQSetVT(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	createQueue(t, pool, "vtq")
	id := send(t, pool, "vtq", `{"v":1}`)
	const setVT = "SELECT " + messageColumns + " FROM pgmq.set_vt($1, $2, $3)"

	// Push the message an hour out: it is hidden.
	got := queryMessages(t, pool, setVT, "vtq", id, 3600)
	require.Len(t, got, 1)
	require.Equal(t, id, got[0].MsgID)
	require.EqualValues(t, 0, got[0].ReadCt, "set_vt is not a read")
	require.InDelta(t, 3600, got[0].VT.Sub(got[0].EnqueuedAt).Seconds(), 5)
	requireNothingVisible(t, pool, "vtq")

	// Bring it back now: visible at once, and a read counts once.
	got = queryMessages(t, pool, setVT, "vtq", id, 0)
	require.Len(t, got, 1)
	read := readRaw(t, pool, "vtq", 30, 10)
	require.Equal(t, []int64{id}, ids(read))
	require.EqualValues(t, 1, read[0].ReadCt)

	// An unknown id changes nothing and returns nothing.
	require.Empty(t, queryMessages(t, pool, setVT, "vtq", int64(999999), 0))
}

func TestPGMQMetrics(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "met")

	empty := queueMetrics(t, pool, "met")
	require.Equal(t, "met", empty.QueueName)
	require.Zero(t, empty.QueueLength)
	require.Zero(t, empty.TotalMessages)
	require.Nil(t, empty.NewestMsgAgeSec)
	require.Nil(t, empty.OldestMsgAgeSec)

	for i := range 4 {
		send(t, pool, "met", fmt.Sprintf(`{"i":%d}`, i))
	}
	require.Len(t, readRaw(t, pool, "met", 30, 1), 1) // hidden, still queued
	first := readRaw(t, pool, "met", 30, 1)[0]
	ok, err := pgmq.Archive(ctx, pool, "met", first.MsgID)
	require.NoError(t, err)
	require.True(t, ok)

	m := queueMetrics(t, pool, "met")
	require.EqualValues(t, 3, m.QueueLength, "hidden messages count; archived ones do not")
	require.EqualValues(t, 4, m.TotalMessages)
	require.NotNil(t, m.NewestMsgAgeSec)
	require.NotNil(t, m.OldestMsgAgeSec)
	require.GreaterOrEqual(t, *m.NewestMsgAgeSec, int32(0))
	require.GreaterOrEqual(t, *m.OldestMsgAgeSec, *m.NewestMsgAgeSec)
}

// pgmq documents total_messages as every message the queue has ever had, so
// deleting, popping or purging messages must not lower it.
func TestPGMQMetricsTotalMessagesIsAllTime(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "tot")
	for range 3 {
		send(t, pool, "tot", `{}`)
	}
	_, err := pgmq.Pop(ctx, pool, "tot")
	require.NoError(t, err)
	require.EqualValues(t, 3, queueMetrics(t, pool, "tot").TotalMessages)
	var purged int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT pgmq.purge_queue('tot')").Scan(&purged))
	require.EqualValues(t, 2, purged)
	require.EqualValues(t, 3, queueMetrics(t, pool, "tot").TotalMessages)
}

func TestPGMQMetricsAll(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	want := map[string]int64{"m_one": 1, "m_two": 2, "m_none": 0}
	for q, n := range want {
		createQueue(t, pool, q)
		for range n {
			send(t, pool, q, `{}`)
		}
	}

	rows, err := pool.Query(ctx, "SELECT "+metricsColumns+" FROM pgmq.metrics_all()")
	require.NoError(t, err)
	all, err := pgx.CollectRows(rows, pgx.RowToStructByName[metrics])
	require.NoError(t, err)
	got := map[string]int64{}
	for _, m := range all {
		got[m.QueueName] = m.QueueLength
	}
	require.Equal(t, want, got, "one row per queue, with its length")
}

func TestPGMQListQueues(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)

	type queueRow struct {
		QueueName     string    `db:"queue_name"`
		IsPartitioned bool      `db:"is_partitioned"`
		IsUnlogged    bool      `db:"is_unlogged"`
		CreatedAt     time.Time `db:"created_at"`
	}
	list := func() []queueRow {
		rows, err := pool.Query(ctx, "SELECT queue_name::text, is_partitioned, is_unlogged, created_at FROM pgmq.list_queues() ORDER BY 1")
		require.NoError(t, err)
		qs, err := pgx.CollectRows(rows, pgx.RowToStructByName[queueRow])
		require.NoError(t, err)
		return qs
	}
	require.Empty(t, list())

	var before time.Time
	require.NoError(t, pool.QueryRow(ctx, "SELECT now()").Scan(&before))
	createQueue(t, pool, "lq_b")
	createQueue(t, pool, "lq_a")
	qs := list()
	require.Len(t, qs, 2)
	require.Equal(t, "lq_a", qs[0].QueueName)
	require.Equal(t, "lq_b", qs[1].QueueName)
	for _, q := range qs {
		require.False(t, q.IsPartitioned)
		require.False(t, q.IsUnlogged)
		require.False(t, q.CreatedAt.Before(before), "created_at %s is before the test's start %s", q.CreatedAt, before)
	}

	require.NoError(t, pgmq.DropQueue(ctx, pool, "lq_b"))
	qs = list()
	require.Len(t, qs, 1)
	require.Equal(t, "lq_a", qs[0].QueueName)
}

func TestPGMQPurgeQueue(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "pq")
	var purged int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT pgmq.purge_queue('pq')").Scan(&purged))
	require.Zero(t, purged)

	for range 4 {
		send(t, pool, "pq", `{}`)
	}
	readRaw(t, pool, "pq", 30, 1) // a hidden message is purged too
	archived := send(t, pool, "pq", `{}`)
	ok, err := pgmq.Archive(ctx, pool, "pq", archived)
	require.NoError(t, err)
	require.True(t, ok)

	require.NoError(t, pool.QueryRow(ctx, "SELECT pgmq.purge_queue('pq')").Scan(&purged))
	require.EqualValues(t, 4, purged, "purge reports how many messages it removed")
	require.Zero(t, queueMetrics(t, pool, "pq").QueueLength)
	require.Len(t, archivedMessages(t, pool, "pq"), 1, "purge leaves the archive alone")

	// The queue still works.
	id := send(t, pool, "pq", `{"after":"purge"}`)
	require.Equal(t, []int64{id}, ids(readRaw(t, pool, "pq", 30, 10)))
}

func TestPGMQDropQueue(t *testing.T) {
	t.Parallel()
	pool, _, provider := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "gone")
	createQueue(t, pool, "kept")
	send(t, pool, "gone", `{}`)
	kept := send(t, pool, "kept", `{}`)

	var dropped bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT pgmq.drop_queue('gone')").Scan(&dropped))
	require.True(t, dropped)
	require.False(t, hasTable(t, pool, "pgmq", "q_gone"))
	require.False(t, hasTable(t, pool, "pgmq", "a_gone"))
	var listed int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM pgmq.list_queues() WHERE queue_name = 'gone'").Scan(&listed))
	require.Zero(t, listed)

	err := pool.QueryRow(ctx, "SELECT pgmq.drop_queue('gone')").Scan(&dropped)
	if provider == "extension" && err != nil {
		// Before pgmq 1.5.2 the extension raised here instead of returning false.
		t.Logf("extension: dropping a missing queue raised: %v", err)
	} else {
		require.NoError(t, err)
		require.False(t, dropped, "dropping a queue that does not exist returns false")
	}

	require.Equal(t, []int64{kept}, ids(readRaw(t, pool, "kept", 30, 10)), "other queues are untouched")

	// pgmq-go's DropQueue goes through the same function.
	require.NoError(t, pgmq.DropQueue(ctx, pool, "kept"))
	require.False(t, hasTable(t, pool, "pgmq", "q_kept"))

	// A dropped queue can be created afresh.
	createQueue(t, pool, "gone")
	require.Empty(t, readRaw(t, pool, "gone", 30, 10))
}

func TestPGMQRejectsInvalidQueueNames(t *testing.T) {
	t.Parallel()
	pool, _, provider := migratedDB(t)
	ctx := testContext(t)

	// A sentinel that an injected "drop table y" would remove.
	_, err := pool.Exec(ctx, "CREATE TABLE public.y (x int)")
	require.NoError(t, err)
	before := pgmqTables(t, pool)

	cases := []struct {
		name string
		// byExtension says whether pgmq itself refuses the name; the extension
		// quotes odd names and folds case rather than refusing them, while the
		// compatible schema (and tasker's own guard) only takes plain lower-case
		// identifiers.
		byExtension bool
	}{
		{"bad-name", false},
		{"x; drop table y", true},
		{"Upper", false},
		{strings.Repeat("q", 60), true},
		{"x'; drop table y; --", true},
	}
	for _, c := range cases {
		err := pgmq.CreateQueue(ctx, pool, c.name)
		if provider == "extension" && !c.byExtension {
			if err == nil {
				t.Logf("extension accepted queue name %q; dropping it again", c.name)
				_, err = pool.Exec(ctx, "SELECT pgmq.drop_queue($1)", c.name)
				require.NoError(t, err)
			}
			continue
		}
		require.Error(t, err, "create(%q) must be refused", c.name)
		if provider == "compat" {
			require.ErrorContains(t, err, "invalid queue name")
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr)
			require.Equal(t, "22023", pgErr.Code)
		}

		// Every other entry point refuses it too, rather than touching a table.
		_, err = pgmq.Send(ctx, pool, c.name, json.RawMessage(`{}`))
		require.Error(t, err, "send(%q)", c.name)
		_, err = pool.Exec(ctx, "SELECT * FROM pgmq.read($1, 30, 1)", c.name)
		require.Error(t, err, "read(%q)", c.name)
		_, err = pgmq.Archive(ctx, pool, c.name, 1)
		require.Error(t, err, "archive(%q)", c.name)
		_, err = pgmq.Delete(ctx, pool, c.name, 1)
		require.Error(t, err, "delete(%q)", c.name)
		_, err = pool.Exec(ctx, "SELECT pgmq.purge_queue($1)", c.name)
		require.Error(t, err, "purge_queue(%q)", c.name)
	}

	require.Equal(t, before, pgmqTables(t, pool), "no queue table was created")
	require.True(t, hasTable(t, pool, "public", "y"), "the sentinel table survived")

	// The longest name both providers take (47 characters) works end to end.
	long := strings.Repeat("l", 47)
	createQueue(t, pool, long)
	id := send(t, pool, long, `{"long":true}`)
	ok, err := pgmq.Archive(ctx, pool, long, id)
	require.NoError(t, err)
	require.True(t, ok)
	var dropped bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT pgmq.drop_queue($1)", long).Scan(&dropped))
	require.True(t, dropped)
}

func TestPGMQArchiveInRolledBackTransaction(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "txq")
	id := send(t, pool, "txq", `{"tx":1}`)

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	ok, err := pgmq.Archive(ctx, tx, "txq", id)
	require.NoError(t, err)
	require.True(t, ok)
	require.Empty(t, readRaw(t, tx, "txq", 30, 10), "inside the transaction the message is gone")
	require.NoError(t, tx.Rollback(ctx))

	require.Empty(t, archivedMessages(t, pool, "txq"))
	got := readRaw(t, pool, "txq", 30, 10)
	require.Equal(t, []int64{id}, ids(got), "the rolled-back archive left the message in the queue")
	require.EqualValues(t, 1, got[0].ReadCt)
}

// notification is the JSON payload tasker.pgmq_send_with_notify sends.
type notification struct {
	EventType      string          `json:"event_type"`
	MsgID          int64           `json:"msg_id"`
	QueueName      string          `json:"queue_name"`
	Namespace      string          `json:"namespace"`
	Message        json.RawMessage `json:"message"`
	ReadyAt        time.Time       `json:"ready_at"`
	DelaySeconds   int             `json:"delay_seconds"`
	PayloadOmitted bool            `json:"payload_omitted"`
}

// listen opens a connection that listens on channel.
func listen(t *testing.T, url, channel string) *pgx.Conn {
	t.Helper()
	conn := newConn(t, url)
	_, err := conn.Exec(testContext(t), "LISTEN "+pgx.Identifier{channel}.Sanitize())
	require.NoError(t, err)
	return conn
}

// requireNoNotification fails if conn receives a notification within wait.
func requireNoNotification(t *testing.T, conn *pgx.Conn, wait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(testContext(t), wait)
	defer cancel()
	n, err := conn.WaitForNotification(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "unexpected notification %+v", n)
}

// nextNotification waits (bounded) for conn's next notification and decodes it.
func nextNotification(t *testing.T, conn *pgx.Conn, channel string) (notification, map[string]json.RawMessage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(testContext(t), 5*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(ctx)
	require.NoError(t, err)
	require.Equal(t, channel, n.Channel)
	var ev notification
	require.NoError(t, json.Unmarshal([]byte(n.Payload), &ev), n.Payload)
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(n.Payload), &fields))
	return ev, fields
}

func sendWithNotify(t *testing.T, db pgmq.DB, queue, body string, delay int) (int64, error) {
	t.Helper()
	var id int64
	err := db.QueryRow(testContext(t), "SELECT tasker.pgmq_send_with_notify($1, $2::jsonb, $3)", queue, body, delay).Scan(&id)
	return id, err
}

func TestSendWithNotifyAfterCommit(t *testing.T) {
	t.Parallel()
	pool, url, _ := migratedDB(t)
	ctx := testContext(t)
	const queue, channel = "worker_ns1_queue", "pgmq_message_ready.ns1"
	createQueue(t, pool, queue)
	listener := listen(t, url, channel)
	elsewhere := listen(t, url, "pgmq_message_ready.ns2")

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	id, err := sendWithNotify(t, tx, queue, `{"step":"s1","n":7}`, 0)
	require.NoError(t, err)
	requireNoNotification(t, listener, 300*time.Millisecond)
	require.NoError(t, tx.Commit(ctx))

	ev, fields := nextNotification(t, listener, channel)
	require.Equal(t, "message_with_payload", ev.EventType)
	require.Equal(t, id, ev.MsgID)
	require.Equal(t, queue, ev.QueueName)
	require.Equal(t, "ns1", ev.Namespace)
	require.JSONEq(t, `{"step":"s1","n":7}`, string(ev.Message))
	require.Zero(t, ev.DelaySeconds)
	require.False(t, ev.ReadyAt.IsZero())
	require.NotContains(t, fields, "payload_omitted")

	requireNoNotification(t, listener, 300*time.Millisecond) // exactly one
	requireNoNotification(t, elsewhere, 100*time.Millisecond)

	got := readRaw(t, pool, queue, 30, 10)
	require.Equal(t, []int64{id}, ids(got), "the notified message is in the queue")
}

func TestSendWithNotifyRolledBack(t *testing.T) {
	t.Parallel()
	pool, url, _ := migratedDB(t)
	ctx := testContext(t)
	const queue, channel = "worker_ns1_queue", "pgmq_message_ready.ns1"
	createQueue(t, pool, queue)
	listener := listen(t, url, channel)

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = sendWithNotify(t, tx, queue, `{"never":"seen"}`, 0)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))

	requireNoNotification(t, listener, 300*time.Millisecond)
	requireNothingVisible(t, pool, queue)
}

func TestSendWithNotifyLargeMessageOmitsPayload(t *testing.T) {
	t.Parallel()
	pool, url, _ := migratedDB(t)
	const queue, channel = "worker_big_queue", "pgmq_message_ready.big"
	createQueue(t, pool, queue)
	listener := listen(t, url, channel)

	body := `{"blob":"` + strings.Repeat("x", 7000) + `"}`
	id, err := sendWithNotify(t, pool, queue, body, 0)
	require.NoError(t, err)

	ev, fields := nextNotification(t, listener, channel)
	require.Equal(t, "message_ready", ev.EventType)
	require.Equal(t, id, ev.MsgID)
	require.Equal(t, queue, ev.QueueName)
	require.Equal(t, "big", ev.Namespace)
	require.True(t, ev.PayloadOmitted)
	require.NotContains(t, fields, "message", "a large message is not carried in the notification")

	got := readRaw(t, pool, queue, 30, 10)
	require.Len(t, got, 1)
	require.JSONEq(t, body, string(got[0].Message), "the queue has the whole message")

	// Just under the threshold the payload is still carried, and fits.
	small := `{"blob":"` + strings.Repeat("y", 6900) + `"}`
	id, err = sendWithNotify(t, pool, queue, small, 0)
	require.NoError(t, err)
	ev, _ = nextNotification(t, listener, channel)
	require.Equal(t, "message_with_payload", ev.EventType)
	require.Equal(t, id, ev.MsgID)
	require.JSONEq(t, small, string(ev.Message))
}

// The threshold is about the notification's size, which PostgreSQL limits in
// bytes (8000), so a message of few characters but many bytes must also go
// without its payload.
func TestSendWithNotifyLargeMultibyteMessage(t *testing.T) {
	t.Parallel()
	pool, url, _ := migratedDB(t)
	const queue, channel = "worker_mb_queue", "pgmq_message_ready.mb"
	createQueue(t, pool, queue)
	listener := listen(t, url, channel)

	body := `{"blob":"` + strings.Repeat("€", 3000) + `"}`
	require.GreaterOrEqual(t, len(body), 9000)
	id, err := sendWithNotify(t, pool, queue, body, 0)
	require.NoError(t, err)
	ev, fields := nextNotification(t, listener, channel)
	require.Equal(t, "message_ready", ev.EventType)
	require.Equal(t, id, ev.MsgID)
	require.True(t, ev.PayloadOmitted)
	require.NotContains(t, fields, "message")
}

func TestSendWithNotifyDelay(t *testing.T) {
	t.Parallel()
	pool, url, _ := migratedDB(t)
	const queue, channel = "orchestration_step_results", "pgmq_message_ready.orchestration"
	createQueue(t, pool, queue)
	listener := listen(t, url, channel)

	id, err := sendWithNotify(t, pool, queue, `{"late":true}`, 1)
	require.NoError(t, err)
	ev, _ := nextNotification(t, listener, channel)
	require.Equal(t, id, ev.MsgID)
	require.Equal(t, "orchestration", ev.Namespace)
	require.Equal(t, 1, ev.DelaySeconds)

	requireNothingVisible(t, pool, queue)
	got := waitForMessage(t, pool, queue, 30)
	require.Equal(t, id, got.MsgID)
	require.False(t, got.VT.Add(-30*time.Second).Before(ev.ReadyAt.Add(-50*time.Millisecond)),
		"the message became readable before the announced ready_at")
}

func TestExtractQueueNamespace(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	for queue, want := range map[string]string{
		"orchestration_step_results":   "orchestration",
		"orchestration_task_requests":  "orchestration",
		"worker_rust_e2e_linear_queue": "rust_e2e_linear",
		"worker_ns1_queue":             "ns1",
		"foo_queue":                    "foo",
		"other":                        "default",
		"_queue":                       "default",
	} {
		var got string
		require.NoError(t, pool.QueryRow(ctx, "SELECT tasker.extract_queue_namespace($1)", queue).Scan(&got))
		require.Equal(t, want, got, "extract_queue_namespace(%q)", queue)
	}
}

func TestReadSpecificMessage(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "spec")
	a := send(t, pool, "spec", `{"m":"a"}`)
	b := send(t, pool, "spec", `{"m":"b"}`)
	const readSpecific = "SELECT " + messageColumns + " FROM tasker.pgmq_read_specific_message($1, $2, $3)"

	// b, not the oldest, is the one asked for.
	got := queryMessages(t, pool, readSpecific, "spec", b, 30)
	require.Len(t, got, 1)
	require.Equal(t, b, got[0].MsgID)
	require.EqualValues(t, 1, got[0].ReadCt)
	require.JSONEq(t, `{"m":"b"}`, string(got[0].Message))

	require.Empty(t, queryMessages(t, pool, readSpecific, "spec", b, 30), "a hidden message is not returned")
	require.Empty(t, queryMessages(t, pool, readSpecific, "spec", int64(999999), 30), "nor an unknown one")
	require.Equal(t, []int64{a}, ids(readRaw(t, pool, "spec", 30, 10)), "a was left alone, b is hidden")

	// Once b's vt runs out it is returned again.
	queryMessages(t, pool, "SELECT "+messageColumns+" FROM pgmq.set_vt($1, $2, $3)", "spec", b, 1)
	deadline := time.Now().Add(visibilityDeadline)
	for {
		got = queryMessages(t, pool, readSpecific, "spec", b, 30)
		if len(got) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(pollInterval)
	}
	require.Len(t, got, 1, "b did not become visible within %s", visibilityDeadline)
	require.EqualValues(t, 2, got[0].ReadCt)

	_, err := pool.Exec(ctx, "SELECT * FROM tasker.pgmq_read_specific_message($1, 1, 30)", "x; drop table y")
	require.ErrorContains(t, err, "invalid queue name")
}
