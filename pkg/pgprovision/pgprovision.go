// Package pgprovision finds or makes a real PostgreSQL server for tests and
// for `make demo`, so that nothing in the project has to fake the database.
//
// Start tries, in order: a URL given by the caller or by the
// TASKER_TEST_DATABASE_URL variable (an already running server), a throwaway
// local cluster built with the initdb and pg_ctl binaries of an installed
// PostgreSQL, and a testcontainers container with the pinned pgmq image. The
// first that works wins; when none is available the error wraps
// ErrNoPostgres and says how to get one.
package pgprovision

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Source says where a Cluster came from, so callers can tell whether they own
// the server (local, container) or share one that someone else runs (env).
type Source string

const (
	// SourceEnv is a server named by TASKER_TEST_DATABASE_URL (or
	// Options.URL); pgprovision neither started it nor stops it.
	SourceEnv Source = "env"
	// SourceLocal is a throwaway cluster made with the local initdb and
	// pg_ctl; Stop shuts it down and deletes its files.
	SourceLocal Source = "local"
	// SourceContainer is a testcontainers container running the pinned pgmq
	// image; Stop terminates it.
	SourceContainer Source = "container"
)

// DefaultEnvVar is the variable Start consults first when Options.EnvVar is
// empty; it lets CI or a developer point every test at one existing server.
const DefaultEnvVar = "TASKER_TEST_DATABASE_URL"

// ErrNoPostgres is returned (wrapped) by Start when no way of getting a
// server is available on this machine, so that callers can tell "nothing to
// test against" apart from a server that exists but failed.
var ErrNoPostgres = errors.New("no PostgreSQL available")

// Options tunes Start. The zero value is the normal choice for tests.
type Options struct {
	// URL, when set, is used as-is (overrides the env var). It lets a caller
	// choose the server without touching the process environment.
	URL string
	// EnvVar names the variable consulted first; default
	// "TASKER_TEST_DATABASE_URL". Tests set it to isolate themselves.
	EnvVar string
	// Dir is where a local cluster is created; default a new os.MkdirTemp
	// directory. It must not exist or be empty, because it is removed on Stop.
	Dir string
	// Port for the local cluster; 0 means pick a free TCP port on 127.0.0.1,
	// which lets many clusters run side by side.
	Port int
	// Logf receives progress lines ("initdb …", "postgres ready on …");
	// nil means silent.
	Logf func(format string, args ...any)
	// DisableContainer skips the testcontainers step, for callers that would
	// rather fail than pull an image.
	DisableContainer bool
}

// Cluster is one running PostgreSQL server, whatever its Source. It is safe
// for concurrent use.
type Cluster struct {
	source   Source
	adminURL string
	logf     func(format string, args ...any)

	// stop releases whatever Start acquired; nil for SourceEnv.
	stop func(ctx context.Context) error

	mu      sync.Mutex
	stopped bool
	// local is set for SourceLocal, for tests that look at the directory.
	local *localCluster
}

// Start returns a running PostgreSQL, trying Options.URL or the env var, then
// a local throwaway cluster, then a container. The caller must call Stop.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	return start(ctx, opts, defaultEnvironment())
}

// environment holds how Start discovers what the machine has, so tests can
// check the "nothing available" path on a machine that has everything.
type environment struct {
	getenv      func(string) string
	lookPath    func(string) (string, error)
	debianGlob  string
	dockerProbe func(ctx context.Context) (bool, string)
}

func defaultEnvironment() environment {
	return environment{
		getenv:      os.Getenv,
		lookPath:    lookPathExec,
		debianGlob:  debianBinGlob,
		dockerProbe: dockerReachable,
	}
}

func start(ctx context.Context, opts Options, env environment) (*Cluster, error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	envVar := opts.EnvVar
	if envVar == "" {
		envVar = DefaultEnvVar
	}

	// 1. A server someone else runs. A URL that is set but does not work is
	// a configuration mistake: report it rather than quietly starting
	// something else.
	rawURL, origin := opts.URL, "Options.URL (which overrides "+envVar+")"
	if rawURL == "" {
		rawURL, origin = env.getenv(envVar), envVar
	}
	if rawURL != "" {
		logf("pgprovision: using the server from %s: %s", origin, redact(rawURL))
		if err := verifyURL(ctx, rawURL); err != nil {
			return nil, fmt.Errorf("pgprovision: cannot connect to the PostgreSQL named by %s (%s): %w; fix or unset %s",
				origin, redact(rawURL), err, envVar)
		}
		return &Cluster{source: SourceEnv, adminURL: rawURL, logf: logf}, nil
	}

	var unavailable []string

	// 2. A throwaway local cluster.
	bins, why := findBinaries(env.lookPath, env.debianGlob)
	if bins != nil {
		lc, err := startLocal(ctx, opts, bins, logf)
		if err == nil {
			return &Cluster{
				source:   SourceLocal,
				adminURL: lc.adminURL(),
				logf:     logf,
				stop:     lc.stop,
				local:    lc,
			}, nil
		}
		if !errors.Is(err, errLocalUnavailable) {
			// The binaries exist but the cluster failed: that is a real
			// failure, not "nothing to test against", so it must not be
			// mistaken for ErrNoPostgres (which callers may skip on).
			return nil, err
		}
		why = err.Error()
	}
	unavailable = append(unavailable, "local cluster: "+why)

	// 3. A container, only when a Docker engine answers.
	if opts.DisableContainer {
		unavailable = append(unavailable, "container: disabled by Options.DisableContainer")
	} else if ok, how := env.dockerProbe(ctx); !ok {
		unavailable = append(unavailable, "container: "+how)
	} else {
		logf("pgprovision: Docker reachable (%s); starting %s", how, containerImage)
		cc, err := startContainer(ctx, logf)
		if err != nil {
			return nil, err
		}
		return &Cluster{source: SourceContainer, adminURL: cc.adminURL, logf: logf, stop: cc.stop}, nil
	}

	// 4. Nothing: say how to get something.
	return nil, fmt.Errorf("pgprovision: %w: set %s=postgres://user@host:5432/postgres?sslmode=disable, "+
		"or install the server (apt-get install -y postgresql) so initdb and pg_ctl are found on PATH "+
		"or in /usr/lib/postgresql/<ver>/bin, or start Docker for testcontainers (tried: %s)",
		ErrNoPostgres, envVar, strings.Join(unavailable, "; "))
}

// Source reports where the cluster came from.
func (c *Cluster) Source() Source { return c.source }

// AdminURL is the URL of a database on the cluster usable for CREATE
// DATABASE: .../postgres for local and container clusters, the given URL as-is
// for SourceEnv.
func (c *Cluster) AdminURL() string { return c.adminURL }

// nameRule is the one rule every database name must follow. It keeps names
// unquoted-identifier-shaped (no case folding surprises, nothing to inject)
// and within PostgreSQL's 63-byte identifier limit.
const nameRule = `^[a-z_][a-z0-9_]{0,62}$`

var namePattern = regexp.MustCompile(nameRule)

func validateName(what, name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("pgprovision: invalid %s %q: it must match %s "+
			"(a lowercase letter or underscore, then at most 62 lowercase letters, digits or underscores)",
			what, name, nameRule)
	}
	return nil
}

// CreateDatabase creates database name (from template, or PostgreSQL's
// default template when template is "") and returns its URL. Names must match
// ^[a-z_][a-z0-9_]{0,62}$ so that they survive being put in a URL unchanged.
func (c *Cluster) CreateDatabase(ctx context.Context, name string, template string) (string, error) {
	if err := validateName("database name", name); err != nil {
		return "", err
	}
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		if err := validateName("template name", template); err != nil {
			return "", err
		}
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	dbURL, err := databaseURL(c.adminURL, name)
	if err != nil {
		return "", err
	}
	if err := c.admin(ctx, sql); err != nil {
		return "", fmt.Errorf("pgprovision: create database %s: %w", name, err)
	}
	return dbURL, nil
}

// DropDatabase drops database name if it exists, disconnecting its sessions
// first (WITH (FORCE)) so that a test's leftover pool cannot block cleanup.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	if err := validateName("database name", name); err != nil {
		return err
	}
	if err := c.admin(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgprovision: drop database %s: %w", name, err)
	}
	return nil
}

// admin runs one statement on the admin database over a fresh connection;
// CREATE/DROP DATABASE cannot run inside a transaction or a pool's session
// state, and these calls are rare.
func (c *Cluster) admin(ctx context.Context, sql string) error {
	c.mu.Lock()
	stopped := c.stopped
	c.mu.Unlock()
	if stopped {
		return errors.New("cluster already stopped")
	}
	conn, err := pgx.Connect(ctx, c.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop shuts down a local cluster (pg_ctl stop -m fast) and removes its
// directory, or terminates a container; for SourceEnv it does nothing. Calling
// it again after a success is a no-op; after a failure it retries.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	if c.stop != nil {
		if err := c.stop(ctx); err != nil {
			return err
		}
	}
	c.stopped = true
	return nil
}

// verifyURL proves a URL reaches a server, with a short timeout so a wrong
// URL fails fast instead of hanging a test run.
func verifyURL(ctx context.Context, rawURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return err
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 5*time.Second {
		cfg.ConnectTimeout = 5 * time.Second
	}
	return pingConfig(ctx, cfg)
}

func pingURL(ctx context.Context, rawURL string) error {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return err
	}
	return pingConfig(ctx, cfg)
}

func pingConfig(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// waitReady polls until a connection to rawURL succeeds or timeout passes.
// The server may accept TCP before it accepts logins, so only a real login
// counts as ready.
func waitReady(ctx context.Context, rawURL string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		err := pingURL(attempt, rawURL)
		cancelAttempt()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server not accepting connections after %s: %w", timeout, err)
		case <-tick.C:
		}
	}
}

// databaseURL returns adminURL pointed at database name. Both URL and
// keyword/value connection strings are accepted, as pgx accepts both.
func databaseURL(adminURL, name string) (string, error) {
	if strings.HasPrefix(adminURL, "postgres://") || strings.HasPrefix(adminURL, "postgresql://") {
		u, err := url.Parse(adminURL)
		if err != nil {
			return "", fmt.Errorf("pgprovision: parse admin URL: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// Keyword/value form: a later keyword overrides an earlier one.
	return strings.TrimSpace(adminURL) + " dbname=" + name, nil
}

// redact hides a password in a URL so errors and logs can show the rest.
func redact(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.Scheme != "" {
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	if strings.Contains(rawURL, "password") {
		return "(connection string with a password, not shown)"
	}
	return rawURL
}

// ErrCannotRestart is returned by Pause and Resume for a cluster this package does not run.
var ErrCannotRestart = errors.New("only a local throwaway cluster can be paused and resumed")

// Pause takes a local cluster down (fast shutdown) without removing it: a real outage for
// reliability tests. Resume brings it back on the same port.
func (c *Cluster) Pause(ctx context.Context) error {
	if c.local == nil {
		return ErrCannotRestart
	}
	return c.local.pause(ctx)
}

// Resume restarts a paused local cluster and waits until it accepts connections.
func (c *Cluster) Resume(ctx context.Context) error {
	if c.local == nil {
		return ErrCannotRestart
	}
	return c.local.resume(ctx)
}
