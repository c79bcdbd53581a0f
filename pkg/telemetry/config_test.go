package telemetry_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tasker.toml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

// These tests set environment variables, so they do not run in parallel.

func TestLoadConfigFileThenEnv(t *testing.T) {
	path := writeConfig(t, `
[telemetry]
enabled = true
service_name = "tasker-core-dev"
sample_rate = 0.5

[telemetry.opentelemetry]
enabled = true
`)
	c, err := telemetry.LoadConfig(path, "fallback")
	require.NoError(t, err)
	require.True(t, *c.Enabled)
	require.True(t, c.OpenTelemetry.Enabled)
	require.Equal(t, "tasker-core-dev", c.ServiceName)
	require.InDelta(t, 0.5, *c.SampleRate, 1e-9)

	t.Setenv(telemetry.EnvOTLPEnabled, "false")
	t.Setenv(telemetry.EnvServiceName, "from-env")
	t.Setenv(telemetry.EnvSampleRate, "0.25")
	t.Setenv(telemetry.EnvDropCardinality, "true")
	c, err = telemetry.LoadConfig(path, "fallback")
	require.NoError(t, err)
	require.False(t, c.OpenTelemetry.Enabled, "the environment overrides the file")
	require.Equal(t, "from-env", c.ServiceName)
	require.InDelta(t, 0.25, *c.SampleRate, 1e-9)
	require.True(t, c.DropHighCardinalityLabels)
}

func TestLoadConfigDefaultsAndErrors(t *testing.T) {
	c, err := telemetry.LoadConfig("", "tasker-worker")
	require.NoError(t, err)
	require.True(t, *c.Enabled)
	require.False(t, c.OpenTelemetry.Enabled)
	require.Equal(t, "tasker-worker", c.ServiceName)

	_, err = telemetry.LoadConfig(writeConfig(t, "[telemetry]\nenabeld = true\n"), "x")
	require.ErrorContains(t, err, "unknown key telemetry.enabeld")
	_, err = telemetry.LoadConfig(writeConfig(t, "[telemetry]\nsample_rate = 2.0\n"), "x")
	require.ErrorContains(t, err, "telemetry.sample_rate 2: must be from 0 to 1")
	_, err = telemetry.LoadConfig(filepath.Join(t.TempDir(), "missing.toml"), "x")
	require.Error(t, err)
	t.Setenv(telemetry.EnvEnabled, "maybe")
	_, err = telemetry.LoadConfig("", "x")
	require.ErrorContains(t, err, `TELEMETRY_ENABLED="maybe": must be true or false`)
}
