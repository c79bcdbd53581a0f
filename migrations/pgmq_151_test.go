package migrations_test

// The parts of pgmq 1.5.1's API beyond what tasker-sim itself calls: headers, every send and
// send_batch form, conditional reads, read_with_poll, the create variants, the deprecated
// drop_queue form, detach_archive, format_table_name and queue_visible_length. Like the rest
// of the suite these run on whichever provider Migrate installed.

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	pgmq "github.com/craigpastro/pgmq-go"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/migrations"
)

// storedMessage is a live message as its queue table holds it.
type storedMessage struct {
	Message json.RawMessage `db:"message"`
	Headers json.RawMessage `db:"headers"`
	// Hidden says the message is not visible for at least another 50 minutes.
	Hidden bool `db:"hidden"`
}

func stored(t *testing.T, pool *pgxpool.Pool, queue string, id int64) storedMessage {
	t.Helper()
	rows, err := pool.Query(testContext(t), "SELECT message, headers, vt > clock_timestamp() + interval '50 minutes' AS hidden FROM "+
		pgx.Identifier{"pgmq", "q_" + queue}.Sanitize()+" WHERE msg_id = $1", id)
	require.NoError(t, err)
	m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[storedMessage])
	require.NoError(t, err)
	return m
}

func requireJSONOrNull(t *testing.T, want string, got json.RawMessage, msgAndArgs ...any) {
	t.Helper()
	if want == "" {
		require.Nil(t, got, msgAndArgs...)
		return
	}
	require.JSONEq(t, want, string(got), msgAndArgs...)
}

func serverNow(t *testing.T, pool *pgxpool.Pool) time.Time {
	t.Helper()
	var now time.Time
	require.NoError(t, pool.QueryRow(testContext(t), "SELECT clock_timestamp()").Scan(&now))
	return now
}

func TestPGMQSendForms(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "forms")
	inAnHour := serverNow(t, pool).Add(time.Hour)
	const hdr = `{"trace":"abc"}`

	for _, c := range []struct {
		name    string
		sql     string
		args    []any
		headers string
		hidden  bool
	}{
		{"msg", "SELECT * FROM pgmq.send($1, $2::jsonb)", nil, "", false},
		{"msg headers", "SELECT * FROM pgmq.send($1, $2::jsonb, $3::jsonb)", []any{hdr}, hdr, false},
		{"msg null headers", "SELECT * FROM pgmq.send($1, $2::jsonb, $3::jsonb)", []any{nil}, "", false},
		{"msg delay", "SELECT * FROM pgmq.send($1, $2::jsonb, $3::integer)", []any{3600}, "", true},
		{"msg at", "SELECT * FROM pgmq.send($1, $2::jsonb, $3::timestamptz)", []any{inAnHour}, "", true},
		{"msg headers delay", "SELECT * FROM pgmq.send($1, $2::jsonb, $3::jsonb, $4::integer)", []any{hdr, 3600}, hdr, true},
		{"msg headers at", "SELECT * FROM pgmq.send($1, $2::jsonb, $3::jsonb, $4::timestamptz)", []any{hdr, inAnHour}, hdr, true},
	} {
		body := `{"form":"` + c.name + `"}`
		var id int64
		require.NoError(t, pool.QueryRow(ctx, c.sql, append([]any{"forms", body}, c.args...)...).Scan(&id), c.name)
		got := stored(t, pool, "forms", id)
		require.JSONEq(t, body, string(got.Message), c.name)
		requireJSONOrNull(t, c.headers, got.Headers, c.name)
		require.Equal(t, c.hidden, got.Hidden, "%s: hidden for an hour", c.name)
	}
}

func TestPGMQSendBatchForms(t *testing.T) {
	t.Parallel()
	pool, _, provider := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "bforms")
	inAnHour := serverNow(t, pool).Add(time.Hour)
	msgs := []string{`{"n":1}`, `{"n":2}`}
	hdrs := []string{`{"h":1}`, `{"h":2}`}

	for _, c := range []struct {
		name   string
		sql    string
		args   []any
		heads  bool
		hidden bool
	}{
		{"msgs", "SELECT * FROM pgmq.send_batch($1, $2::jsonb[])", nil, false, false},
		{"msgs headers", "SELECT * FROM pgmq.send_batch($1, $2::jsonb[], $3::jsonb[])", []any{hdrs}, true, false},
		{"msgs delay", "SELECT * FROM pgmq.send_batch($1, $2::jsonb[], $3::integer)", []any{3600}, false, true},
		{"msgs at", "SELECT * FROM pgmq.send_batch($1, $2::jsonb[], $3::timestamptz)", []any{inAnHour}, false, true},
		{"msgs headers delay", "SELECT * FROM pgmq.send_batch($1, $2::jsonb[], $3::jsonb[], $4::integer)", []any{hdrs, 3600}, true, true},
		{"msgs headers at", "SELECT * FROM pgmq.send_batch($1, $2::jsonb[], $3::jsonb[], $4::timestamptz)", []any{hdrs, inAnHour}, true, true},
	} {
		rows, err := pool.Query(ctx, c.sql, append([]any{"bforms", msgs}, c.args...)...)
		require.NoError(t, err, c.name)
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err, c.name)
		require.Len(t, got, 2, c.name)
		require.Less(t, got[0], got[1], "%s: ids come back in the batch's order", c.name)
		for i, id := range got {
			m := stored(t, pool, "bforms", id)
			require.JSONEq(t, msgs[i], string(m.Message), c.name)
			if c.heads {
				require.JSONEq(t, hdrs[i], string(m.Headers), "%s: headers pair with messages by position", c.name)
			} else {
				require.Nil(t, m.Headers, c.name)
			}
			require.Equal(t, c.hidden, m.Hidden, c.name)
		}
	}

	// One header for two messages: the compatible schema refuses; the extension pairs
	// what it can.
	_, err := pool.Exec(ctx, "SELECT * FROM pgmq.send_batch($1, $2::jsonb[], $3::jsonb[])", "bforms", msgs, hdrs[:1])
	if provider == "compat" {
		require.ErrorContains(t, err, "headers has 1 entries for 2 messages")
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "22023", pgErr.Code)
	} else {
		t.Logf("extension, one header for two messages: %v", err)
	}
}

func TestPGMQReadConditional(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	createQueue(t, pool, "cond")
	a := send(t, pool, "cond", `{"kind":"a","n":1}`)
	b1 := send(t, pool, "cond", `{"kind":"b","n":2}`)
	b2 := send(t, pool, "cond", `{"kind":"b","n":3,"extra":true}`)

	got := queryMessages(t, pool, "SELECT "+messageColumns+" FROM pgmq.read($1, 30, 10, $2::jsonb) ORDER BY msg_id", "cond", `{"kind":"b"}`)
	require.Equal(t, []int64{b1, b2}, ids(got), "only messages containing the condition are read")
	got = queryMessages(t, pool, "SELECT "+messageColumns+" FROM pgmq.read($1, 30, 10, $2::jsonb)", "cond", `{"kind":"c"}`)
	require.Empty(t, got)
	got = queryMessages(t, pool, "SELECT "+messageColumns+" FROM pgmq.read($1, 30, 10, '{}')", "cond")
	require.Equal(t, []int64{a}, ids(got), "an empty condition reads anything visible")
	require.Empty(t, readRaw(t, pool, "cond", 30, 10))
}

func TestPGMQReadWithPoll(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "polled")
	const poll = "SELECT " + messageColumns + " FROM pgmq.read_with_poll($1, 30, 5, $2, 50, $3::jsonb)"

	t.Run("gives up after max_poll_seconds", func(t *testing.T) {
		start := time.Now()
		require.Empty(t, queryMessages(t, pool, poll, "polled", 1, `{}`))
		took := time.Since(start)
		require.GreaterOrEqual(t, took, 900*time.Millisecond, "it polled for about a second")
		require.Less(t, took, 5*time.Second)
	})

	t.Run("returns at once what is visible", func(t *testing.T) {
		id := send(t, pool, "polled", `{"ready":true}`)
		start := time.Now()
		require.Equal(t, []int64{id}, ids(queryMessages(t, pool, poll, "polled", 10, `{}`)))
		require.Less(t, time.Since(start), 5*time.Second)
	})

	t.Run("returns a message sent while it polls", func(t *testing.T) {
		type result struct {
			msgs []message
			err  error
			took time.Duration
		}
		done := make(chan result, 1)
		var wg sync.WaitGroup
		wg.Go(func() {
			start := time.Now()
			rows, err := pool.Query(ctx, poll, "polled", 20, `{"wanted":true}`)
			if err != nil {
				done <- result{err: err}
				return
			}
			msgs, err := pgx.CollectRows(rows, pgx.RowToStructByName[message])
			done <- result{msgs: msgs, err: err, took: time.Since(start)}
		})
		defer wg.Wait()
		require.Eventually(t, func() bool {
			var n int
			_ = pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND state = 'active' AND query LIKE '%read_with_poll%'
				  AND pid <> pg_backend_pid()`).Scan(&n)
			return n == 1
		}, 10*time.Second, 20*time.Millisecond, "the poll never started")
		send(t, pool, "polled", `{"wanted":false}`)
		want := send(t, pool, "polled", `{"wanted":true}`)
		r := <-done
		require.NoError(t, r.err)
		require.Equal(t, []int64{want}, ids(r.msgs), "only the message matching the condition")
		require.Less(t, r.took, 15*time.Second, "it returned when the message came, not after max_poll_seconds")
	})
}

func TestPGMQCreateVariants(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)

	persistence := func(table string) string {
		var p string
		require.NoError(t, pool.QueryRow(ctx, "SELECT relpersistence::text FROM pg_class WHERE oid = to_regclass($1)",
			"pgmq."+table).Scan(&p))
		return p
	}
	unlogged := func(queue string) bool {
		var u bool
		require.NoError(t, pool.QueryRow(ctx, "SELECT is_unlogged FROM pgmq.list_queues() WHERE queue_name = $1", queue).Scan(&u))
		return u
	}

	_, err := pool.Exec(ctx, "SELECT pgmq.create_non_partitioned('plain')")
	require.NoError(t, err)
	require.Equal(t, "p", persistence("q_plain"))
	require.False(t, unlogged("plain"))

	_, err = pool.Exec(ctx, "SELECT pgmq.create_unlogged('fast')")
	require.NoError(t, err)
	require.Equal(t, "u", persistence("q_fast"), "live messages are unlogged")
	require.Equal(t, "p", persistence("a_fast"), "the archive is not")
	require.True(t, unlogged("fast"))
	id := send(t, pool, "fast", `{"u":1}`)
	require.Equal(t, []int64{id}, ids(readRaw(t, pool, "fast", 30, 10)))

	// Without pg_partman neither provider makes a partitioned queue, and each says why.
	before := pgmqTables(t, pool)
	_, err = pool.Exec(ctx, "SELECT pgmq.create_partitioned('parted')")
	require.ErrorContains(t, err, "pg_partman")
	_, err = pool.Exec(ctx, "SELECT pgmq.create_partitioned('parted', '1 day', '7 days')")
	require.ErrorContains(t, err, "pg_partman")
	require.Equal(t, before, pgmqTables(t, pool), "a refused create leaves nothing behind")

	archived := send(t, pool, "plain", `{"a":1}`)
	ok, err := pgmq.Archive(ctx, pool, "plain", archived)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = pool.Exec(ctx, "SELECT pgmq.convert_archive_partitioned('plain')")
	require.Error(t, err, "converting an archive needs pg_partman")
	require.Equal(t, before, pgmqTables(t, pool))
	require.Len(t, archivedMessages(t, pool, "plain"), 1, "the archive is untouched")
}

// noticeConn opens a connection that collects the notices and warnings the server sends.
func noticeConn(t *testing.T, url string) (*pgx.Conn, func() []*pgconn.Notice) {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	var mu sync.Mutex
	var notices []*pgconn.Notice
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		defer mu.Unlock()
		notices = append(notices, n)
	}
	conn, err := pgx.ConnectConfig(testContext(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn, func() []*pgconn.Notice {
		mu.Lock()
		defer mu.Unlock()
		return append([]*pgconn.Notice(nil), notices...)
	}
}

func TestPGMQDropQueueDeprecatedForm(t *testing.T) {
	t.Parallel()
	pool, url, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "old_style")
	send(t, pool, "old_style", `{}`)
	conn, notices := noticeConn(t, url)

	var dropped bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT pgmq.drop_queue('old_style', false)").Scan(&dropped))
	require.True(t, dropped)
	require.False(t, hasTable(t, pool, "pgmq", "q_old_style"))
	require.False(t, hasTable(t, pool, "pgmq", "a_old_style"))
	warned := false
	for _, n := range notices() {
		warned = warned || (n.Severity == "WARNING" && strings.Contains(n.Message, "deprecated"))
	}
	require.True(t, warned, "the two-argument form warns that it is deprecated")
}

func TestPGMQDetachArchive(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "det")
	id := send(t, pool, "det", `{"d":1}`)
	ok, err := pgmq.Archive(ctx, pool, "det", id)
	require.NoError(t, err)
	require.True(t, ok)

	_, err = pool.Exec(ctx, "SELECT pgmq.detach_archive('det')")
	require.NoError(t, err)
	require.Len(t, archivedMessages(t, pool, "det"), 1, "the archive and its messages stay")
	live := send(t, pool, "det", `{"d":2}`)
	require.Equal(t, []int64{live}, ids(readRaw(t, pool, "det", 30, 10)), "the queue still works")

	_, err = pool.Exec(ctx, "SELECT pgmq.detach_archive('no_such_queue')")
	require.Error(t, err, "a queue without an archive cannot be detached")
}

func TestPGMQFormatTableName(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	for _, c := range []struct{ queue, prefix, want string }{
		{"orders", "q", "q_orders"},
		{"orders", "a", "a_orders"},
		{"worker_rust_e2e_linear_queue", "q", "q_worker_rust_e2e_linear_queue"},
	} {
		var got string
		require.NoError(t, pool.QueryRow(ctx, "SELECT pgmq.format_table_name($1, $2)", c.queue, c.prefix).Scan(&got))
		require.Equal(t, c.want, got)
	}
	_, err := pool.Exec(ctx, "SELECT pgmq.format_table_name($1, 'q')", "x; drop table y")
	require.Error(t, err, "both providers refuse a name that could end a statement")
}

func TestPGMQValidateQueueName(t *testing.T) {
	t.Parallel()
	pool, _, provider := migratedDB(t)
	ctx := testContext(t)
	_, err := pool.Exec(ctx, "SELECT pgmq.validate_queue_name($1)", strings.Repeat("v", 47))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "SELECT pgmq.validate_queue_name($1)", strings.Repeat("v", 48))
	require.Error(t, err, "48 characters is one too many for both providers")
	if provider == "compat" {
		require.ErrorContains(t, err, "at most 47 characters")
	}
}

func TestPGMQMetricsVisibleLength(t *testing.T) {
	t.Parallel()
	pool, _, _ := migratedDB(t)
	ctx := testContext(t)
	createQueue(t, pool, "vis")
	var length, visible int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT queue_length, queue_visible_length FROM pgmq.metrics('vis')").Scan(&length, &visible))
	require.Zero(t, length)
	require.Zero(t, visible)

	for range 3 {
		send(t, pool, "vis", `{}`)
	}
	_, err := pgmq.SendWithDelay(ctx, pool, "vis", json.RawMessage(`{}`), 3600)
	require.NoError(t, err)
	readRaw(t, pool, "vis", 30, 1)
	require.NoError(t, pool.QueryRow(ctx, "SELECT queue_length, queue_visible_length FROM pgmq.metrics('vis')").Scan(&length, &visible))
	require.EqualValues(t, 4, length, "every live message")
	require.EqualValues(t, 2, visible, "less the one being read and the delayed one")

	require.NoError(t, pool.QueryRow(ctx,
		"SELECT queue_visible_length FROM pgmq.metrics_all() WHERE queue_name = 'vis'").Scan(&visible))
	require.EqualValues(t, 2, visible)
}

// A database whose compatible schema predates pgmq 1.5.1's API (read without its condition,
// send's delay with a default, metrics without queue_visible_length) is brought up to date by
// Migrate, and keeps its queues and messages.
func TestMigrateUpgradesEarlierCompatSchema(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	pool := newPool(t, url)
	ctx := testContext(t)
	_, err := migrations.Migrate(ctx, pool, &migrations.Config{PGMQ: migrations.PGMQCompat})
	require.NoError(t, err)
	createQueue(t, pool, "kept")
	id := send(t, pool, "kept", `{"from":"before"}`)

	_, err = pool.Exec(ctx, `
		DROP FUNCTION pgmq.read(text, integer, integer, jsonb);
		CREATE FUNCTION pgmq.read(queue_name text, vt integer, qty integer)
		RETURNS SETOF pgmq.message_record LANGUAGE sql AS 'SELECT NULL::pgmq.message_record WHERE false';
		DROP FUNCTION pgmq.send(text, jsonb, integer);
		CREATE FUNCTION pgmq.send(queue_name text, msg jsonb, delay integer DEFAULT 0)
		RETURNS SETOF bigint LANGUAGE sql AS 'SELECT 0::bigint WHERE false';
		DROP FUNCTION pgmq.send_batch(text, jsonb[], integer);
		CREATE FUNCTION pgmq.send_batch(queue_name text, msgs jsonb[], delay integer DEFAULT 0)
		RETURNS SETOF bigint LANGUAGE sql AS 'SELECT 0::bigint WHERE false';
		ALTER TYPE pgmq.metrics_result DROP ATTRIBUTE queue_visible_length;
		DELETE FROM tasker.schema_migrations WHERE version = '003_pgmq_api_1_5_1'`)
	require.NoError(t, err)
	require.NotEmpty(t, apiDifferences(readAPIFile(t), installedAPI(t, pool)), "the simulated earlier schema differs")

	res, err := migrations.Migrate(ctx, pool, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"003_pgmq_api_1_5_1"}, res.Applied)
	diffs := apiDifferences(readAPIFile(t), installedAPI(t, pool))
	require.Empty(t, diffs, "after the upgrade:\n%s", strings.Join(diffs, "\n"))
	require.Equal(t, []int64{id}, ids(readRaw(t, pool, "kept", 30, 10)), "the queue kept its message")
	var visible int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT queue_visible_length FROM pgmq.metrics('kept')").Scan(&visible))
	require.Zero(t, visible)
}
