package envconfig_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/envconfig"
)

// These tests set process environment variables, so they do not run in parallel.

func TestOrchestratorFromEnv(t *testing.T) {
	t.Setenv(envconfig.DatabaseURL, "postgres://u@127.0.0.1:1/db")
	t.Setenv(envconfig.WebBindAddress, "127.0.0.1:9999")
	t.Setenv(envconfig.PollIntervalMS, "250")
	t.Setenv(envconfig.BackoffBaseMS, "20")
	cfg, err := envconfig.Orchestrator(nil)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9999", cfg.BindAddress)
	require.Equal(t, 250*time.Millisecond, cfg.PollInterval)
	require.Equal(t, 20*time.Millisecond, cfg.Backoff.Base)
}

func TestErrorsNameTheVariableAndRule(t *testing.T) {
	for _, tc := range []struct {
		name, value, want string
	}{
		{envconfig.PollIntervalMS, "soon", "TASKER_POLL_INTERVAL_MS=\"soon\": must be a positive whole number of milliseconds"},
		{envconfig.VisibilityTimeoutMS, "-5", "TASKER_VISIBILITY_TIMEOUT_MS"},
		{envconfig.PGMQMode, "magic", "TASKER_PGMQ_MODE=\"magic\": must be auto, extension or compat"},
		{envconfig.MaxHandlers, "0", "TASKER_MAX_CONCURRENT_HANDLERS=\"0\": must be a whole number from 1 to 1000"},
		{envconfig.TemplatePath, "/no/such/dir", "TASKER_TEMPLATE_PATH"},
		{envconfig.BreakerFailures, "0", "TASKER_CB_FAILURE_THRESHOLD=\"0\": must be a whole number from 1 to 1000"},
		{envconfig.FFIOverheadMS, "x", "TASKER_FFI_OVERHEAD_MS"},
		{envconfig.DatabaseWait, "60", "TASKER_DATABASE_WAIT=\"60\": must be a duration such as 60s or 2m (0 tries once)"},
		{envconfig.DatabaseWait, "-5s", "TASKER_DATABASE_WAIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envconfig.DatabaseURL, "postgres://u@127.0.0.1:1/db")
			t.Setenv(tc.name, tc.value)
			_, err := envconfig.Worker(nil)
			require.ErrorContains(t, err, tc.want)
		})
	}
	t.Run("missing database", func(t *testing.T) {
		t.Setenv(envconfig.DatabaseURL, "")
		_, err := envconfig.Orchestrator(nil)
		require.ErrorContains(t, err, "TASKER_DATABASE_URL is required")
		_, err = envconfig.Worker(nil)
		require.ErrorContains(t, err, "TASKER_DATABASE_URL is required")
	})
	t.Run("log level", func(t *testing.T) {
		t.Setenv(envconfig.LogLevel, "chatty")
		_, err := envconfig.Logger("x")
		require.ErrorContains(t, err, "LOG_LEVEL=\"chatty\"")
	})
}

func TestDatabaseWaitFromEnv(t *testing.T) {
	t.Setenv(envconfig.DatabaseURL, "postgres://u@127.0.0.1:1/db")
	for value, want := range map[string]time.Duration{"": 0, "90s": 90 * time.Second, "2m": 2 * time.Minute, "0": -1, "0s": -1} {
		t.Setenv(envconfig.DatabaseWait, value)
		o, err := envconfig.Orchestrator(nil)
		require.NoError(t, err)
		require.Equal(t, want, o.DatabaseWait, "orchestrator, %q", value)
		w, err := envconfig.Worker(nil)
		require.NoError(t, err)
		require.Equal(t, want, w.DatabaseWait, "worker, %q", value)
	}
}
