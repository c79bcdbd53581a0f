// Package orchestrator is tasker-sim's orchestration process: the REST API that creates
// tasks, the result processor that finalizes steps and enqueues what became ready, and the
// background loops that retry, recover orphaned steps and catch missed notifications.
//
// cmd/orchestrator is a thin main over Run; tests and the harness call Start to run the
// real service in-process.
package orchestrator

import (
	"cmp"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/faults"
	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// Defaults for Config.
const (
	BindAddressDefault       = "127.0.0.1:8080"
	PollIntervalDefault      = time.Second
	ResultConcurrencyDefault = 1
	MaxRequestBytesDefault   = 1 << 20
	MaxContextBytesDefault   = 64 << 10
	VisibilityTimeoutDefault = 30 * time.Second
	ShutdownTimeoutDefault   = 5 * time.Second
	MaxConnsDefault          = 20
	resultChannelCapacity    = 1000
	maintenanceBatchSize     = 50
	pollBatchSize            = 50
	maxPerPage               = 100
	defaultPerPage           = 25
)

// Config configures an orchestrator. Zero fields take the documented defaults.
type Config struct {
	// DatabaseURL is the PostgreSQL URL (TASKER_DATABASE_URL). Required.
	DatabaseURL string
	// DatabaseWait is how long Start waits for the database to answer, retrying with
	// backoff and logging each try, before it gives up (TASKER_DATABASE_WAIT). Default
	// 60 s (dbwait.LimitDefault); a negative value tries once.
	DatabaseWait time.Duration
	// BindAddress is the REST listener (TASKER_WEB_BIND_ADDRESS). Default 127.0.0.1:8080;
	// use 127.0.0.1:0 for a free port.
	BindAddress string
	// ProcessorUUID identifies this orchestrator in transition audit rows. Default: random.
	ProcessorUUID uuid.UUID
	// PollInterval paces the fallback loops: reading missed results, re-enqueuing steps
	// whose retry backoff has run out, and recovering orphaned steps. Default 1 s.
	PollInterval time.Duration
	// ResultConcurrency is how many batches of step results are processed at once.
	// Default 1: results that arrive while a batch is being processed make the next batch,
	// and fewer, fuller batches cost the database less than many small ones (a 2000-task
	// burst ran at about 1,200-1,370 steps/s with 1, 1,150 with 2, 970 with 4).
	ResultConcurrency int
	// VisibilityTimeout is how long a polled result stays hidden from other pollers.
	// Default 30 s.
	VisibilityTimeout time.Duration
	// Backoff shapes retry delays; see lifecycle.BackoffConfig for its defaults.
	Backoff lifecycle.BackoffConfig
	// MaxRequestBytes caps a request body. Default 1 MiB.
	MaxRequestBytes int64
	// MaxContextBytes caps a task's context JSON. Default 64 KiB.
	MaxContextBytes int
	// MaxConns caps the database pool. Default 20.
	MaxConns int32
	// SkipMigrate skips running migrations at start (they are safe to run concurrently).
	SkipMigrate bool
	// PGMQMode picks the pgmq provider for migrations. Default auto.
	PGMQMode migrations.PGMQMode
	// ShutdownTimeout bounds a graceful stop. Default 5 s.
	ShutdownTimeout time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Telemetry supplies instruments, tracer and the /metrics handler. Default: disabled.
	Telemetry *telemetry.Providers
	// WebBreaker guards the API's database work: while open, task endpoints answer 503
	// with Retry-After. Defaults: 5 failures, 30 s open, 2 successes to close.
	WebBreaker resilience.BreakerConfig
	// ReadinessBreaker guards the fallback loops (retries, orphans); while open they skip.
	ReadinessBreaker resilience.BreakerConfig
	// PGMQBreaker guards the fallback reads of the results queue.
	PGMQBreaker resilience.BreakerConfig
	// Faults are injected from the start (TASKER_FAULTS); POST /admin/faults changes them.
	Faults faults.Faults
	// AuthToken, when set (TASKER_AUTH_TOKEN), is the bearer token the task API and the
	// admin endpoint require.
	AuthToken string
	// Staleness sets how long a task may sit in a waiting state before the staleness
	// detector files it in the DLQ and moves it to error.
	Staleness StalenessConfig
}

// StalenessConfig holds the staleness thresholds; tasker-core's defaults apply to zeros.
type StalenessConfig struct {
	// WaitingForDependencies defaults to 60 minutes.
	WaitingForDependencies time.Duration
	// WaitingForRetry defaults to 30 minutes.
	WaitingForRetry time.Duration
	// StepsInProcess defaults to 30 minutes.
	StepsInProcess time.Duration
}

func (c *Config) withDefaults() (*Config, error) {
	out := *c
	if out.DatabaseURL == "" {
		return nil, fmt.Errorf("orchestrator config: DatabaseURL (TASKER_DATABASE_URL) is required")
	}
	out.BindAddress = cmp.Or(out.BindAddress, BindAddressDefault)
	if out.ProcessorUUID == uuid.Nil {
		out.ProcessorUUID = uuid.New()
	}
	out.PollInterval = cmp.Or(out.PollInterval, PollIntervalDefault)
	out.ResultConcurrency = cmp.Or(out.ResultConcurrency, ResultConcurrencyDefault)
	out.VisibilityTimeout = cmp.Or(out.VisibilityTimeout, VisibilityTimeoutDefault)
	out.MaxRequestBytes = cmp.Or(out.MaxRequestBytes, MaxRequestBytesDefault)
	out.MaxContextBytes = cmp.Or(out.MaxContextBytes, MaxContextBytesDefault)
	out.MaxConns = cmp.Or(out.MaxConns, MaxConnsDefault)
	out.ShutdownTimeout = cmp.Or(out.ShutdownTimeout, ShutdownTimeoutDefault)
	out.Staleness.WaitingForDependencies = cmp.Or(out.Staleness.WaitingForDependencies, 60*time.Minute)
	out.Staleness.WaitingForRetry = cmp.Or(out.Staleness.WaitingForRetry, 30*time.Minute)
	out.Staleness.StepsInProcess = cmp.Or(out.Staleness.StepsInProcess, 30*time.Minute)
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.Telemetry == nil {
		out.Telemetry = telemetry.Disabled()
	}
	if err := out.Faults.Validate(); err != nil {
		return nil, fmt.Errorf("orchestrator config: faults: %w", err)
	}
	if out.PollInterval < 0 || out.ResultConcurrency < 0 || out.MaxConns < 0 {
		return nil, fmt.Errorf("orchestrator config: PollInterval, ResultConcurrency and MaxConns must not be negative")
	}
	return &out, nil
}
