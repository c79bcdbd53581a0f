// Package harness starts a whole tasker-sim (orchestrators and workers on one database)
// inside a Go process, for integration tests, here and in other modules, and for tools.
//
//	cluster, stop, err := pgprovision.ForTestMain(ctx) // in TestMain
//	env := harness.New(t, cluster, harness.Options{})  // in a test
//	task, err := env.Client.CreateTask(ctx, req)
package harness

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/pgprovision"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
)

// Options shapes an Env. Zero values give one orchestrator and one worker.
type Options struct {
	// Orchestrators to start. Default 1.
	Orchestrators int
	// Workers to start. Default 1; -1 starts none.
	Workers int
	// Orchestrator, when set, adjusts each orchestrator's config before it starts.
	Orchestrator func(i int, cfg *orchestrator.Config)
	// Worker, when set, adjusts each worker's config before it starts.
	Worker func(i int, cfg *worker.Config)
	// PGMQMode picks the pgmq provider. Default auto.
	PGMQMode migrations.PGMQMode
	// Logger for every component. Default: discard.
	Logger *slog.Logger
	// Telemetry, when set, is shared by every component, so one registry (and one
	// /metrics) holds what all of them recorded. Default: telemetry disabled.
	Telemetry *telemetry.Providers
	// HTTPClient is the Client's HTTP client, e.g. one whose transport checks every answer
	// against an API contract. Default: the client package's own.
	HTTPClient *http.Client
}

// Env is a running tasker-sim.
type Env struct {
	DatabaseURL   string
	Pool          *pgxpool.Pool
	Orchestrators []*orchestrator.Orchestrator
	Workers       []*worker.Worker
	// Client talks to the first orchestrator.
	Client *client.Client
	opts   Options
}

// Start migrates databaseURL and starts the components.
func Start(ctx context.Context, databaseURL string, opts Options) (_ *Env, err error) {
	opts.Orchestrators = cmp.Or(opts.Orchestrators, 1)
	opts.Workers = cmp.Or(opts.Workers, 1)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("harness: connect: %w", err)
	}
	env := &Env{DatabaseURL: databaseURL, Pool: pool, opts: opts}
	defer func() {
		if err != nil {
			env.Stop()
		}
	}()
	if _, err := migrations.Migrate(ctx, pool, &migrations.Config{PGMQ: opts.PGMQMode}); err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	// Workers first: they register the templates orchestration needs.
	for range max(opts.Workers, 0) {
		if _, err := env.AddWorker(ctx, nil); err != nil {
			return nil, err
		}
	}
	for i := range opts.Orchestrators {
		cfg := &orchestrator.Config{DatabaseURL: databaseURL, BindAddress: "127.0.0.1:0", SkipMigrate: true,
			PGMQMode: opts.PGMQMode, Logger: opts.Logger.With("orchestrator", i), Telemetry: opts.Telemetry}
		if opts.Orchestrator != nil {
			opts.Orchestrator(i, cfg)
		}
		o, err := orchestrator.Start(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("harness: orchestrator %d: %w", i, err)
		}
		env.Orchestrators = append(env.Orchestrators, o)
	}
	if env.Client, err = client.New(env.Orchestrators[0].URL(), opts.HTTPClient); err != nil {
		return nil, err
	}
	return env, nil
}

// AddWorker starts one more worker; modify, when set, adjusts its config first (after
// Options.Worker).
func (e *Env) AddWorker(ctx context.Context, modify func(cfg *worker.Config)) (*worker.Worker, error) {
	i := len(e.Workers)
	cfg := worker.Config{DatabaseURL: e.DatabaseURL, BindAddress: "127.0.0.1:0", SkipMigrate: true,
		PGMQMode: e.opts.PGMQMode, Logger: e.opts.Logger.With("worker", i), Telemetry: e.opts.Telemetry}
	if e.opts.Worker != nil {
		e.opts.Worker(i, &cfg)
	}
	if modify != nil {
		modify(&cfg)
	}
	w, err := worker.Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("harness: worker %d: %w", i, err)
	}
	e.Workers = append(e.Workers, w)
	return w, nil
}

// Stop stops every component and closes the pool.
func (e *Env) Stop() {
	var errs []error
	for _, o := range e.Orchestrators {
		errs = append(errs, o.Stop())
	}
	for _, w := range e.Workers {
		errs = append(errs, w.Stop())
	}
	e.Pool.Close()
	_ = errors.Join(errs...)
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates a database for this test on cluster and drops it when the test
// ends. The name is derived from the test's name, so a leftover is easy to trace.
func NewDatabase(t testing.TB, cluster *pgprovision.Cluster) string {
	t.Helper()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	base := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(base) > 40 {
		base = base[:40]
	}
	name := "t_" + base + "_" + hex.EncodeToString(suffix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, err := cluster.CreateDatabase(ctx, name, "")
	if err != nil {
		t.Fatalf("harness: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cluster.DropDatabase(ctx, name); err != nil {
			t.Logf("harness: drop database %s: %v", name, err)
		}
	})
	return url
}

// New creates a database for this test, starts an Env on it, and stops it when the test
// ends.
func New(t testing.TB, cluster *pgprovision.Cluster, opts Options) *Env {
	t.Helper()
	url := NewDatabase(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env, err := Start(ctx, url, opts)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(env.Stop)
	return env
}
