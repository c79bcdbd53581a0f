package migrations_test

import (
	"context"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/pgprovision"
)

// cluster is the PostgreSQL server every test in this package shares; each test
// isolates itself in a database of its own (see newDatabase).
var cluster *pgprovision.Cluster

// allMigrations is what Migrate applies to a fresh database, in order.
var allMigrations = []string{"000_pgmq", "001_tasker_schema", "002_tasker_functions", "003_pgmq_api_1_5_1",
	"004_trace_context", "005_batch_hot_path", "006_batch_checkpoints", "007_dlq_api", "008_global_notify", "009_lean_transitions", "010_hot_transitions", "011_hot_step_claims", "012_sql_uuid_v7", "013_template_notify", "014_flip_arrays", "015_redefined_functions"}

func TestMain(m *testing.M) {
	os.Exit(pgprovision.RunTestMain(m, "migrations tests", func(c *pgprovision.Cluster) { cluster = c }))
}

// testContext bounds a test's database work so that a hang fails instead of
// stalling the whole run.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var unsafeNameChars = regexp.MustCompile(`[^a-z0-9_]+`)

// databaseName derives a valid, unique database name from the test's name.
func databaseName(t *testing.T) string {
	t.Helper()
	base := unsafeNameChars.ReplaceAllString(strings.ToLower(t.Name()), "_")
	base = strings.Trim(base, "_")
	if len(base) > 48 {
		base = base[:48]
	}
	if base == "" || (base[0] >= '0' && base[0] <= '9') {
		base = "t_" + base
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	suffix := make([]byte, 8)
	for i := range suffix {
		suffix[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return base + "_" + string(suffix)
}

// newDatabase creates an empty database for this test only and drops it when the
// test ends. It returns the database's URL.
func newDatabase(t *testing.T) string {
	t.Helper()
	name := databaseName(t)
	url, err := cluster.CreateDatabase(testContext(t), name, "")
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := cluster.DropDatabase(context.Background(), name); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return url
}

// newPool opens a pool on url that is closed when the test ends (before the
// database is dropped, as cleanups run last-in first-out).
func newPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = 12
	pool, err := pgxpool.NewWithConfig(testContext(t), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// newConn opens a single connection on url that is closed when the test ends.
func newConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testContext(t), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// extensionAvailable says whether the server could install the real pgmq.
func extensionAvailable(t *testing.T, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) bool {
	t.Helper()
	var ok bool
	require.NoError(t, db.QueryRow(testContext(t),
		"SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgmq')").Scan(&ok))
	return ok
}

// expectedProvider is what Migrate's auto mode must pick on this server.
func expectedProvider(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	if extensionAvailable(t, pool) {
		return "extension"
	}
	return "compat"
}

// suiteMode is the pgmq provider the behavioural suite runs on: TASKER_TEST_PGMQ_MODE
// (auto, compat or extension), auto when unset.
func suiteMode() migrations.PGMQMode {
	return migrations.PGMQMode(os.Getenv("TASKER_TEST_PGMQ_MODE"))
}

// migratedDB returns a pool on a fresh database that Migrate (in suiteMode) has
// brought up to date, and the pgmq provider it chose.
func migratedDB(t *testing.T) (*pgxpool.Pool, string, string) {
	t.Helper()
	url := newDatabase(t)
	pool := newPool(t, url)
	res, err := migrations.Migrate(testContext(t), pool, &migrations.Config{PGMQ: suiteMode()})
	require.NoError(t, err)
	return pool, url, res.PGMQProvider
}

type versionRow struct {
	Version string
	Detail  string
}

func versionRows(t *testing.T, pool *pgxpool.Pool) []versionRow {
	t.Helper()
	rows, err := pool.Query(testContext(t), "SELECT version, detail FROM tasker.schema_migrations ORDER BY version")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[versionRow])
	require.NoError(t, err)
	return got
}

func pgmqExtensionInstalled(t *testing.T, pool *pgxpool.Pool) bool {
	t.Helper()
	var ok bool
	require.NoError(t, pool.QueryRow(testContext(t),
		"SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgmq')").Scan(&ok))
	return ok
}

func TestMigrateFreshDatabase(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool := newPool(t, newDatabase(t))
	want := expectedProvider(t, pool)

	t0 := time.Now()
	res, err := migrations.Migrate(ctx, pool, nil)
	require.NoError(t, err)
	t.Logf("first Migrate (provider %s) took %s", res.PGMQProvider, time.Since(t0).Round(time.Millisecond))
	require.Equal(t, allMigrations, res.Applied)
	require.Equal(t, want, res.PGMQProvider)
	require.Equal(t, want == "extension", pgmqExtensionInstalled(t, pool),
		"the pgmq extension is installed exactly when it provides the API")

	rows := versionRows(t, pool)
	require.Len(t, rows, len(allMigrations))
	for i, r := range rows {
		require.Equal(t, allMigrations[i], r.Version)
	}
	require.Equal(t, want, rows[0].Detail, "000_pgmq records the provider it installed")

	// The API the rest of the project relies on is there, whoever provides it.
	for _, fn := range []string{
		"pgmq.create(text)", "pgmq.send(text,jsonb,integer)", "pgmq.read(text,integer,integer,jsonb)",
		"pgmq.archive(text,bigint)", "pgmq.delete(text,bigint)", "pgmq.metrics_all()",
		"tasker.pgmq_send_with_notify(text,jsonb,integer)", "tasker.extract_queue_namespace(text)",
		"tasker.pgmq_read_specific_message(text,bigint,integer)",
		"tasker.pgmq_send_with_notify(text,jsonb,integer,jsonb)",
		"tasker.claim_step(text,bigint,uuid,text,double precision,text,text,text)",
		"tasker.claim_step(text,bigint,uuid,text,double precision,text,text,text,jsonb)",
		"tasker.submit_step_result(uuid,integer,text,text,text,jsonb,text,jsonb)",
		"tasker.submit_step_result(uuid,integer,text,text,text,jsonb,text,jsonb,jsonb)",
		"tasker.apply_task_plan(uuid,text,text[],boolean,text[],text,uuid,uuid,jsonb,boolean,uuid[])",
		"tasker.apply_task_plan(uuid,text,text[],boolean,text[],text,uuid,uuid,jsonb,boolean,uuid[],jsonb)",
	} {
		var found bool
		require.NoError(t, pool.QueryRow(ctx, "SELECT to_regprocedure($1) IS NOT NULL", fn).Scan(&found))
		require.True(t, found, "function %s must exist after Migrate", fn)
	}
	var tables int
	require.NoError(t, pool.QueryRow(ctx,
		"SELECT count(*) FROM pg_tables WHERE schemaname = 'tasker' AND tablename IN ('tasks', 'workflow_steps')").Scan(&tables))
	require.Equal(t, 2, tables)
}

func TestMigrateSecondCallAppliesNothing(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool := newPool(t, newDatabase(t))

	first, err := migrations.Migrate(ctx, pool, &migrations.Config{})
	require.NoError(t, err)
	require.Equal(t, allMigrations, first.Applied)

	t0 := time.Now()
	second, err := migrations.Migrate(ctx, pool, &migrations.Config{})
	require.NoError(t, err)
	t.Logf("second Migrate took %s", time.Since(t0).Round(time.Millisecond))
	require.Empty(t, second.Applied)
	require.Equal(t, first.PGMQProvider, second.PGMQProvider)
	require.Len(t, versionRows(t, pool), len(allMigrations))
}

func TestMigrateConcurrentCallers(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	url := newDatabase(t)

	const callers = 8
	pools := make([]*pgxpool.Pool, callers)
	for i := range pools {
		pools[i] = newPool(t, url)
		// Connect now, so that the callers race on the migration itself and
		// not on connection setup.
		require.NoError(t, pools[i].Ping(ctx))
	}

	start := make(chan struct{})
	results := make([]*migrations.Result, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			<-start
			results[i], errs[i] = migrations.Migrate(ctx, pools[i], nil)
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d concurrent Migrate calls took %s", callers, time.Since(t0).Round(time.Millisecond))

	var applied []string
	for i := range callers {
		require.NoError(t, errs[i], "caller %d", i)
		require.Equal(t, results[0].PGMQProvider, results[i].PGMQProvider, "caller %d", i)
		applied = append(applied, results[i].Applied...)
	}
	slices.Sort(applied)
	require.Equal(t, allMigrations, applied, "each migration is applied by exactly one caller")
	require.Equal(t, expectedProvider(t, pools[0]), results[0].PGMQProvider)

	var n int
	require.NoError(t, pools[0].QueryRow(ctx, "SELECT count(*) FROM tasker.schema_migrations").Scan(&n))
	require.Equal(t, len(allMigrations), n)
}

func TestMigrateExtensionModeWithoutExtension(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool := newPool(t, newDatabase(t))

	res, err := migrations.Migrate(ctx, pool, &migrations.Config{PGMQ: migrations.PGMQExtension})
	if extensionAvailable(t, pool) {
		require.NoError(t, err)
		require.Equal(t, "extension", res.PGMQProvider)
		require.Equal(t, allMigrations, res.Applied)
		return
	}
	require.Error(t, err)
	require.ErrorIs(t, err, migrations.ErrPGMQUnavailable)
	require.Contains(t, err.Error(), `"extension"`, "the error names the requested mode")

	// Nothing was applied, so a later auto Migrate still starts from scratch.
	require.Empty(t, versionRows(t, pool))
	var pgmqSchema bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT to_regnamespace('pgmq') IS NOT NULL").Scan(&pgmqSchema))
	require.False(t, pgmqSchema, "a refused migration must not install the compatible schema")

	res, err = migrations.Migrate(ctx, pool, nil)
	require.NoError(t, err)
	require.Equal(t, allMigrations, res.Applied)
	require.Equal(t, "compat", res.PGMQProvider)
}

func TestMigrateCompatModeExplicit(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool := newPool(t, newDatabase(t))

	res, err := migrations.Migrate(ctx, pool, &migrations.Config{PGMQ: migrations.PGMQCompat})
	require.NoError(t, err)
	require.Equal(t, "compat", res.PGMQProvider, "compat mode installs the compatible schema even where the extension exists")
	require.Equal(t, allMigrations, res.Applied)
	require.False(t, pgmqExtensionInstalled(t, pool))
}

// Once a database has a provider, a later call keeps it, whatever mode it asks
// for: switching would orphan the queues.
func TestMigrateKeepsRecordedProvider(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool := newPool(t, newDatabase(t))

	first, err := migrations.Migrate(ctx, pool, &migrations.Config{PGMQ: migrations.PGMQCompat})
	require.NoError(t, err)
	require.Equal(t, "compat", first.PGMQProvider)

	again, err := migrations.Migrate(ctx, pool, &migrations.Config{PGMQ: migrations.PGMQAuto})
	require.NoError(t, err)
	require.Equal(t, "compat", again.PGMQProvider)
	require.Empty(t, again.Applied)
	require.False(t, pgmqExtensionInstalled(t, pool))
}

// PGMQExtension promises to fail when the extension is missing; a database that
// already runs on the compatible schema is exactly that case.
func TestMigrateExtensionModeOnCompatDatabase(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool := newPool(t, newDatabase(t))
	if extensionAvailable(t, pool) {
		t.Skip("the pgmq extension is available here; this checks the server without it")
	}

	_, err := migrations.Migrate(ctx, pool, nil)
	require.NoError(t, err)
	res, err := migrations.Migrate(ctx, pool, &migrations.Config{PGMQ: migrations.PGMQExtension})
	require.ErrorIs(t, err, migrations.ErrPGMQUnavailable, "got result %+v", res)
}

func TestMigrateInvalidMode(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool := newPool(t, newDatabase(t))

	res, err := migrations.Migrate(ctx, pool, &migrations.Config{PGMQ: "bogus_mode"})
	require.Error(t, err)
	require.Nil(t, res)
	require.NotErrorIs(t, err, migrations.ErrPGMQUnavailable)
	for _, want := range []string{`"bogus_mode"`, "auto", "extension", "compat"} {
		require.Contains(t, err.Error(), want)
	}

	// The mode is checked before anything touches the database.
	var versionTable bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT to_regclass('tasker.schema_migrations') IS NOT NULL").Scan(&versionTable))
	require.False(t, versionTable)
}

// migrationLockKey is the advisory lock key migrations.go serialises callers with
// ("tasker" in ASCII, then 1).
const migrationLockKey int64 = 0x7461736b65720001

// A caller that waits for another's migration lock gives up when its context
// ends, and the database stays migratable.
func TestMigrateWaitsForLockAndHonoursContext(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	url := newDatabase(t)
	pool := newPool(t, url)

	holder := newConn(t, url)
	_, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey)
	require.NoError(t, err)

	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err = migrations.Migrate(short, pool, nil)
	require.Error(t, err)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.GreaterOrEqual(t, time.Since(t0), 400*time.Millisecond, "Migrate must have waited for the lock")
	var versionTable bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT to_regclass('tasker.schema_migrations') IS NOT NULL").Scan(&versionTable))
	require.False(t, versionTable, "nothing may happen before the lock is held")

	_, err = holder.Exec(ctx, "SELECT pg_advisory_unlock($1)", migrationLockKey)
	require.NoError(t, err)
	res, err := migrations.Migrate(ctx, pool, nil)
	require.NoError(t, err)
	require.Equal(t, allMigrations, res.Applied)
}
