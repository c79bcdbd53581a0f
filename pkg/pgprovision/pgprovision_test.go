package pgprovision

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// unsetVar is an EnvVar nobody sets, so that tests which want a local
// cluster get one even where TASKER_TEST_DATABASE_URL points elsewhere.
const unsetVar = "TASKER_PGPROVISION_TEST_UNSET_VARIABLE"

// shared is the cluster from ForTestMain, for tests that only need some
// server rather than a fresh one of their own.
var shared *Cluster

type mainWithCluster struct{ m *testing.M }

func (w mainWithCluster) Run() int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, stop, err := ForTestMain(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	shared = c
	return w.m.Run()
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(mainWithCluster{m})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, ctx context.Context, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, ctx context.Context, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&s))
	return s
}

func TestLocalClusterLifecycle(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	t0 := time.Now()
	c, err := Start(ctx, Options{EnvVar: unsetVar, DisableContainer: true, Logf: t.Logf})
	require.NoError(t, err)
	t.Logf("Start (local cluster) took %s", time.Since(t0).Round(time.Millisecond))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })

	require.Equal(t, SourceLocal, c.Source())
	dir, port := c.local.dir, c.local.port
	require.DirExists(t, dir)
	require.Equal(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), c.AdminURL())

	admin := connect(t, ctx, c.AdminURL())
	require.Equal(t, "on", queryString(t, ctx, admin, "SHOW fsync"))
	require.Equal(t, "300", queryString(t, ctx, admin, "SHOW max_connections"))
	require.Equal(t, "UTF8", queryString(t, ctx, admin, "SHOW server_encoding"))
	require.Equal(t, "postgres", queryString(t, ctx, admin, "SELECT current_user"))

	dbURL, err := c.CreateDatabase(ctx, "lifecycle_db", "")
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/lifecycle_db?sslmode=disable", port), dbURL)
	db := connect(t, ctx, dbURL)
	require.Equal(t, "lifecycle_db", queryString(t, ctx, db, "SELECT current_database()"))
	_, err = db.Exec(ctx, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)")
	require.NoError(t, err)
	require.NoError(t, db.Close(ctx)) // a template must have no sessions

	_, err = c.CreateDatabase(ctx, "lifecycle_db", "")
	require.Error(t, err, "creating an existing database must fail")

	copyURL, err := c.CreateDatabase(ctx, "lifecycle_copy", "lifecycle_db")
	require.NoError(t, err)
	cp := connect(t, ctx, copyURL)
	var x int
	require.NoError(t, cp.QueryRow(ctx, "SELECT x FROM t").Scan(&x))
	require.Equal(t, 42, x, "the copy must carry its template's data")

	// WITH (FORCE): an open session does not block the drop; it is ended.
	require.NoError(t, c.DropDatabase(ctx, "lifecycle_copy"))
	require.Error(t, cp.Ping(ctx), "the dropped database's session must be gone")
	var n int
	require.NoError(t, admin.QueryRow(ctx,
		"SELECT count(*) FROM pg_database WHERE datname IN ('lifecycle_copy')").Scan(&n))
	require.Zero(t, n)
	require.NoError(t, c.DropDatabase(ctx, "lifecycle_copy"), "dropping a missing database is not an error")
	require.NoError(t, c.DropDatabase(ctx, "lifecycle_db"))
	require.NoError(t, admin.Close(ctx))

	t1 := time.Now()
	require.NoError(t, c.Stop(ctx))
	t.Logf("Stop took %s", time.Since(t1).Round(time.Millisecond))
	require.NoDirExists(t, dir)
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err == nil {
		conn.Close()
	}
	require.Error(t, err, "port %d must no longer accept connections", port)
	require.Error(t, pingURL(ctx, c.AdminURL()))

	require.NoError(t, c.Stop(ctx), "Stop is idempotent")
	_, err = c.CreateDatabase(ctx, "after_stop", "")
	require.ErrorContains(t, err, "stopped")
}

func TestLocalClusterExplicitDirAndPort(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	// Directly under the temp dir, so the postgres user can reach it when
	// the tests run as root (t.TempDir's parents are root-only).
	// The long name also forces the socket into a short directory of its
	// own, since a Unix socket path is limited to 107 bytes.
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("pgprovision-test-%d-%d-%s",
		os.Getpid(), time.Now().UnixNano(), strings.Repeat("long", 25)))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	port, err := FreeLoopbackPort(context.Background())
	require.NoError(t, err)

	c, err := Start(ctx, Options{EnvVar: unsetVar, DisableContainer: true, Dir: dir, Port: port})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	require.Equal(t, SourceLocal, c.Source())
	require.Equal(t, dir, c.local.dir)
	require.Contains(t, c.AdminURL(), fmt.Sprintf("127.0.0.1:%d/", port))
	require.FileExists(t, filepath.Join(dir, "data", "PG_VERSION"))
	require.NoError(t, pingURL(ctx, c.AdminURL()))
	sock := c.local.extraSockDir
	require.NotEmpty(t, sock)
	require.FileExists(t, filepath.Join(sock, fmt.Sprintf(".s.PGSQL.%d", port)))

	require.NoError(t, c.Stop(ctx))
	require.NoDirExists(t, dir)
	require.NoDirExists(t, sock)
}

func TestStartFailureShowsLogTail(t *testing.T) {
	t.Parallel()
	// Hold the port, so the server cannot bind it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("pgprovision-test-busy-%d-%d", os.Getpid(), time.Now().UnixNano()))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })

	_, err = Start(testContext(t), Options{EnvVar: unsetVar, DisableContainer: true, Dir: dir, Port: port})
	require.Error(t, err)
	t.Logf("the error a failed start gives:\n%v", err)
	require.Contains(t, err.Error(), "tail of")
	require.Contains(t, err.Error(), "could not bind", "the server's own explanation is in the error")
	require.NotErrorIs(t, err, ErrNoPostgres, "a server that fails to start is not 'no server'")
	require.NoDirExists(t, dir, "a failed start leaves nothing behind")
}

func TestOptionsDirMustBeEmpty(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keep := filepath.Join(dir, "precious")
	require.NoError(t, os.WriteFile(keep, []byte("x"), 0o600))

	_, err := Start(testContext(t), Options{EnvVar: unsetVar, DisableContainer: true, Dir: dir})
	require.ErrorContains(t, err, "not empty")
	require.NotErrorIs(t, err, ErrNoPostgres)
	require.FileExists(t, keep, "a refused directory must be left alone")
}

func TestRootOnlyParentIsReported(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root runs the server as another user")
	}
	// t.TempDir's parent is mode 0700 and root's: postgres cannot enter.
	dir := filepath.Join(t.TempDir(), "cluster")
	_, err := Start(testContext(t), Options{EnvVar: unsetVar, DisableContainer: true, Dir: dir})
	require.ErrorContains(t, err, "cannot enter")
	require.NoDirExists(t, dir, "a failed start leaves nothing behind")
}

func TestDatabaseNameValidation(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	bad := []string{
		"",
		"Upper",
		"1starts_with_digit",
		"x; DROP DATABASE postgres",
		`x"; DROP DATABASE postgres; --`,
		"x'; DROP DATABASE postgres; --",
		"with space",
		"dash-name",
		"dot.name",
		"ünïcode",
		"nul\x00byte",
		"trailing_newline\n",
		strings.Repeat("a", 64),
	}
	for _, name := range bad {
		_, err := shared.CreateDatabase(ctx, name, "")
		require.ErrorContains(t, err, nameRule, "CreateDatabase(%q)", name)
		_, err = shared.CreateDatabase(ctx, "fine_name", name)
		if name != "" { // "" means the default template
			require.ErrorContains(t, err, nameRule, "CreateDatabase(template %q)", name)
		}
		require.ErrorContains(t, shared.DropDatabase(ctx, name), nameRule, "DropDatabase(%q)", name)
	}
	// Nothing above reached the server, and the admin database survived.
	require.NoError(t, pingURL(ctx, shared.AdminURL()))
	_ = shared.DropDatabase(ctx, "fine_name")

	for _, name := range []string{"a", "_", "a1_b2", strings.Repeat("z", 63)} {
		url, err := shared.CreateDatabase(ctx, name, "")
		require.NoError(t, err, name)
		conn := connect(t, ctx, url)
		require.Equal(t, name, queryString(t, ctx, conn, "SELECT current_database()"))
		require.NoError(t, conn.Close(ctx))
		require.NoError(t, shared.DropDatabase(ctx, name))
	}
}

func TestUnreachableURLNamesTheVariable(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	_, err := Start(testContext(t), Options{URL: "postgres://postgres:sekret@127.0.0.1:1/postgres?sslmode=disable"})
	require.Error(t, err)
	t.Logf("the error an unreachable URL gives: %v", err)
	require.Contains(t, err.Error(), DefaultEnvVar)
	require.NotContains(t, err.Error(), "sekret", "passwords stay out of errors")
	require.NotErrorIs(t, err, ErrNoPostgres, "a configured server that fails is not 'no server'")
	require.Less(t, time.Since(t0), 10*time.Second)
}

func TestUnreachableEnvVar(t *testing.T) {
	// t.Setenv rules out t.Parallel; this is the one test that must use the
	// real environment.
	const v = "TASKER_PGPROVISION_TEST_URL"
	t.Setenv(v, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	_, err := Start(testContext(t), Options{EnvVar: v})
	require.Error(t, err)
	require.Contains(t, err.Error(), v)
}

func TestEnvSourceUsesTheGivenServer(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c, err := Start(ctx, Options{URL: shared.AdminURL()})
	require.NoError(t, err)
	require.Equal(t, SourceEnv, c.Source())
	require.Equal(t, shared.AdminURL(), c.AdminURL())

	url, err := c.CreateDatabase(ctx, "env_source_db", "")
	require.NoError(t, err)
	require.NoError(t, pingURL(ctx, url))
	require.NoError(t, c.DropDatabase(ctx, "env_source_db"))

	require.NoError(t, c.Stop(ctx))
	require.NoError(t, pingURL(ctx, shared.AdminURL()), "stopping an env cluster must not touch the server")
}

func TestNothingAvailable(t *testing.T) {
	t.Parallel()
	env := environment{
		getenv:      func(string) string { return "" },
		lookPath:    func(string) (string, error) { return "", errors.New("not found") },
		debianGlob:  filepath.Join(t.TempDir(), "*", "bin"),
		dockerProbe: func(context.Context) (bool, string) { return false, "no Docker engine" },
	}
	_, err := start(testContext(t), Options{}, env)
	require.ErrorIs(t, err, ErrNoPostgres)
	t.Logf("the error when nothing is available: %v", err)
	for _, want := range []string{DefaultEnvVar + "=postgres://", "apt-get install -y postgresql", "/usr/lib/postgresql/<ver>/bin", "Docker"} {
		require.Contains(t, err.Error(), want)
	}

	_, err = start(testContext(t), Options{EnvVar: "MY_DB_URL", DisableContainer: true}, env)
	require.ErrorIs(t, err, ErrNoPostgres)
	require.Contains(t, err.Error(), "MY_DB_URL=")
	require.Contains(t, err.Error(), "DisableContainer")
}

func TestFindBinariesPicksHighestDebianVersion(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, v := range []string{"9.6", "16", "13"} {
		bin := filepath.Join(root, v, "bin")
		require.NoError(t, os.MkdirAll(bin, 0o755))
		for _, name := range []string{"initdb", "pg_ctl"} {
			require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), 0o755))
		}
	}
	// A newer directory without pg_ctl is not a usable installation.
	require.NoError(t, os.MkdirAll(filepath.Join(root, "17", "bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "17", "bin", "initdb"), []byte("#!/bin/sh\n"), 0o755))

	notFound := func(string) (string, error) { return "", errors.New("not found") }
	bins, why := findBinaries(notFound, filepath.Join(root, "*", "bin"))
	require.NotNil(t, bins, why)
	require.Equal(t, filepath.Join(root, "16", "bin", "initdb"), bins.initdb)
	require.Equal(t, filepath.Join(root, "16", "bin", "pg_ctl"), bins.pgCtl)

	// PATH wins over the Debian directories.
	onPath := func(name string) (string, error) { return filepath.Join(root, "13", "bin", name), nil }
	bins, _ = findBinaries(onPath, filepath.Join(root, "*", "bin"))
	require.Equal(t, filepath.Join(root, "13", "bin", "pg_ctl"), bins.pgCtl)

	bins, why = findBinaries(notFound, filepath.Join(t.TempDir(), "*", "bin"))
	require.Nil(t, bins)
	require.Contains(t, why, "initdb and pg_ctl not found")
}

func TestDockerProbeIsQuick(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	ok, why := dockerReachable(testContext(t))
	t.Logf("docker reachable=%v (%s) in %s", ok, why, time.Since(t0))
	require.Less(t, time.Since(t0), 3*dockerProbeTimeout)
}

func TestDatabaseURL(t *testing.T) {
	t.Parallel()
	got, err := databaseURL("postgres://u:p@h:5/postgres?sslmode=disable", "x_1")
	require.NoError(t, err)
	require.Equal(t, "postgres://u:p@h:5/x_1?sslmode=disable", got)

	got, err = databaseURL("postgresql://h", "x")
	require.NoError(t, err)
	require.Equal(t, "postgresql://h/x", got)

	got, err = databaseURL("host=h port=5 dbname=postgres", "x")
	require.NoError(t, err)
	cfg, err := pgx.ParseConfig(got)
	require.NoError(t, err)
	require.Equal(t, "x", cfg.Database)
}

func TestForTestMainReturnsTheSameCluster(t *testing.T) {
	t.Parallel()
	c, _, err := ForTestMain(testContext(t))
	require.NoError(t, err)
	require.Same(t, shared, c)
}
