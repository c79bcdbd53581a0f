// Package envconfig reads the processes' configuration from environment variables (the
// interface the README's configuration table documents) and builds their loggers. Every
// error names the variable and the rule it broke.
package envconfig

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/faults"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// Variables read by the processes.
const (
	DatabaseURL         = "TASKER_DATABASE_URL"
	WebBindAddress      = "TASKER_WEB_BIND_ADDRESS"
	WorkerBindAddress   = "TASKER_WORKER_BIND_ADDRESS"
	PollIntervalMS      = "TASKER_POLL_INTERVAL_MS"
	VisibilityTimeoutMS = "TASKER_VISIBILITY_TIMEOUT_MS"
	PGMQMode            = "TASKER_PGMQ_MODE"
	BackoffBaseMS       = "TASKER_BACKOFF_BASE_MS"
	BackoffMaxMS        = "TASKER_BACKOFF_MAX_MS"
	WorkerID            = "TASKER_WORKER_ID"
	WorkerNamespaces    = "TASKER_WORKER_NAMESPACES"
	TemplatePath        = "TASKER_TEMPLATE_PATH"
	MaxHandlers         = "TASKER_MAX_CONCURRENT_HANDLERS"
	LogLevel            = "LOG_LEVEL"
	ConfigPath          = "TASKER_CONFIG_PATH"
	HandlerType         = "TASKER_HANDLER_TYPE"
	FFIOverheadMS       = "TASKER_FFI_OVERHEAD_MS"
	BreakerFailures     = "TASKER_CB_FAILURE_THRESHOLD"
	BreakerOpenMS       = "TASKER_CB_OPEN_TIMEOUT_MS"
	BreakerSuccesses    = "TASKER_CB_SUCCESS_THRESHOLD"
	Faults              = "TASKER_FAULTS"
	FFISlowSendMS       = "TASKER_FFI_SLOW_SEND_MS"
	AuthToken           = "TASKER_AUTH_TOKEN"
	DatabaseWait        = "TASKER_DATABASE_WAIT"
)

// DatabaseWaitLimit reads TASKER_DATABASE_WAIT: how long a process waits at start for its
// database, as a Go duration (60s, 2m). 0 tries once; unset keeps the default (60 s).
func DatabaseWaitLimit() (time.Duration, error) {
	v := os.Getenv(DatabaseWait)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: must be a duration such as 60s or 2m (0 tries once)", DatabaseWait, v)
	}
	if d == 0 {
		return -1, nil // the processes' configs read a negative limit as "try once"
	}
	return d, nil
}

func processFaults() (faults.Faults, error) {
	f, err := faults.Parse([]byte(os.Getenv(Faults)))
	if err != nil {
		return f, fmt.Errorf("%s: %w", Faults, err)
	}
	return f, nil
}

// breaker reads the circuit breaker thresholds shared by a process's breakers.
func breaker() (resilience.BreakerConfig, error) {
	var c resilience.BreakerConfig
	for _, v := range []struct {
		name string
		dst  *uint32
	}{{BreakerFailures, &c.FailureThreshold}, {BreakerSuccesses, &c.SuccessThreshold}} {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil || n == 0 || n > 1000 {
				return c, fmt.Errorf("%s=%q: must be a whole number from 1 to 1000", v.name, s)
			}
			*v.dst = uint32(n)
		}
	}
	return c, duration(BreakerOpenMS, &c.OpenTimeout)
}

// Telemetry reads the [telemetry] section of TASKER_CONFIG_PATH (when set), applies the
// environment overrides and builds the process's telemetry providers.
func Telemetry(ctx context.Context, service string, log *slog.Logger) (*telemetry.Providers, error) {
	cfg, err := telemetry.LoadConfig(os.Getenv(ConfigPath), service)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ConfigPath, err)
	}
	return telemetry.Setup(ctx, cfg, log)
}

// Logger returns a JSON slog logger on stderr at LOG_LEVEL (debug, info, warn, error;
// default info).
func Logger(service string) (*slog.Logger, error) {
	var level slog.Level
	if v := os.Getenv(LogLevel); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			return nil, fmt.Errorf("%s=%q: must be debug, info, warn or error", LogLevel, v)
		}
	}
	h := slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	return slog.New(h).With("service", service), nil
}

func duration(name string, dst *time.Duration) error {
	v := os.Getenv(name)
	if v == "" {
		return nil
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return fmt.Errorf("%s=%q: must be a positive whole number of milliseconds", name, v)
	}
	*dst = time.Duration(ms) * time.Millisecond
	return nil
}

func required(name string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s is required: set it to a PostgreSQL URL such as postgres://user@127.0.0.1:5432/tasker", name)
	}
	return v, nil
}

func pgmqMode() (migrations.PGMQMode, error) {
	m := migrations.PGMQMode(os.Getenv(PGMQMode))
	switch m {
	case "", migrations.PGMQAuto, migrations.PGMQExtension, migrations.PGMQCompat:
		return m, nil
	}
	return "", fmt.Errorf("%s=%q: must be auto, extension or compat", PGMQMode, m)
}

// Orchestrator builds an orchestrator config from the environment.
func Orchestrator(log *slog.Logger) (*orchestrator.Config, error) {
	url, err := required(DatabaseURL)
	if err != nil {
		return nil, err
	}
	cfg := &orchestrator.Config{DatabaseURL: url, BindAddress: os.Getenv(WebBindAddress), Logger: log,
		AuthToken: os.Getenv(AuthToken)}
	if cfg.DatabaseWait, err = DatabaseWaitLimit(); err != nil {
		return nil, err
	}
	if cfg.PGMQMode, err = pgmqMode(); err != nil {
		return nil, err
	}
	b, err := breaker()
	if err != nil {
		return nil, err
	}
	cfg.WebBreaker, cfg.ReadinessBreaker, cfg.PGMQBreaker = b, b, b
	if cfg.Faults, err = processFaults(); err != nil {
		return nil, err
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{
		{PollIntervalMS, &cfg.PollInterval},
		{VisibilityTimeoutMS, &cfg.VisibilityTimeout},
		{BackoffBaseMS, &cfg.Backoff.Base},
		{BackoffMaxMS, &cfg.Backoff.Max},
	} {
		if err := duration(d.name, d.dst); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// workerTemplates adds to cfg the templates of TASKER_TEMPLATE_PATH (beside the embedded
// ones) and the simulation profiles of TASKER_SIMULATION_PROFILES.
func workerTemplates(cfg *worker.Config) error {
	var err error
	if cfg.SimulationProfiles, err = workflow.LoadSimulationProfiles(os.Getenv(workflow.SimulationProfilesEnv)); err != nil {
		return err
	}
	dir := os.Getenv(TemplatePath)
	if dir == "" {
		return nil
	}
	extra, err := workflow.LoadDir(dir)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", TemplatePath, dir, err)
	}
	embedded, err := workflow.Embedded()
	if err != nil {
		return err
	}
	cfg.Templates = append(embedded, extra...)
	return nil
}

// Worker builds a worker config from the environment.
func Worker(log *slog.Logger) (*worker.Config, error) {
	url, err := required(DatabaseURL)
	if err != nil {
		return nil, err
	}
	cfg := &worker.Config{DatabaseURL: url, BindAddress: os.Getenv(WorkerBindAddress), WorkerID: os.Getenv(WorkerID),
		HandlerType: os.Getenv(HandlerType), Logger: log, AuthToken: os.Getenv(AuthToken)}
	if cfg.DatabaseWait, err = DatabaseWaitLimit(); err != nil {
		return nil, err
	}
	if cfg.PGMQMode, err = pgmqMode(); err != nil {
		return nil, err
	}
	b, err := breaker()
	if err != nil {
		return nil, err
	}
	cfg.FFIBreaker, cfg.PGMQBreaker = b, b
	if cfg.Faults, err = processFaults(); err != nil {
		return nil, err
	}
	if err := duration(FFIOverheadMS, &cfg.FFIOverhead); err != nil {
		return nil, err
	}
	if err := duration(FFISlowSendMS, &cfg.SlowSendThreshold); err != nil {
		return nil, err
	}
	if v := os.Getenv(WorkerNamespaces); v != "" {
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				cfg.Namespaces = append(cfg.Namespaces, ns)
			}
		}
	}
	if err := workerTemplates(cfg); err != nil {
		return nil, err
	}
	if v := os.Getenv(MaxHandlers); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, fmt.Errorf("%s=%q: must be a whole number from 1 to 1000", MaxHandlers, v)
		}
		cfg.Concurrency = n
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{
		{PollIntervalMS, &cfg.PollInterval},
		{VisibilityTimeoutMS, &cfg.VisibilityTimeout},
	} {
		if err := duration(d.name, d.dst); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}
