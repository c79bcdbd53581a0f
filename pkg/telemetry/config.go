package telemetry

import (
	"cmp"
	"fmt"
	"os"
	"strconv"

	"github.com/BurntSushi/toml"
)

// Config is the telemetry part of the TOML configuration (TASKER_CONFIG_PATH), with the
// metrics reference's keys:
//
//	[telemetry]
//	enabled = true
//	service_name = "tasker-orchestration"
//	sample_rate = 1.0
//	drop_high_cardinality_labels = false
//
//	[telemetry.opentelemetry]
//	enabled = true
//
// Environment variables override the file: TELEMETRY_ENABLED, OTEL_SERVICE_NAME,
// TELEMETRY_SAMPLE_RATE, TELEMETRY_DROP_HIGH_CARDINALITY and TELEMETRY_OTLP_ENABLED.
type Config struct {
	// Enabled records metrics and serves them on /metrics. Default true.
	Enabled *bool `toml:"enabled"`
	// ServiceName is the resource's service.name. Default: the process's own name.
	ServiceName string `toml:"service_name"`
	// SampleRate is the fraction of traces kept, 0 to 1. Default 1.
	SampleRate *float64 `toml:"sample_rate"`
	// DropHighCardinalityLabels leaves correlation_id off metrics (not off spans or logs).
	DropHighCardinalityLabels bool `toml:"drop_high_cardinality_labels"`
	// OpenTelemetry configures the OTLP push of metrics and traces.
	OpenTelemetry struct {
		// Enabled pushes metrics and traces over OTLP (OTEL_EXPORTER_OTLP_* decide where).
		Enabled bool `toml:"enabled"`
	} `toml:"opentelemetry"`
}

type file struct {
	Telemetry Config `toml:"telemetry"`
}

// Environment variables that override the file.
const (
	EnvEnabled         = "TELEMETRY_ENABLED"
	EnvOTLPEnabled     = "TELEMETRY_OTLP_ENABLED"
	EnvServiceName     = "OTEL_SERVICE_NAME"
	EnvSampleRate      = "TELEMETRY_SAMPLE_RATE"
	EnvDropCardinality = "TELEMETRY_DROP_HIGH_CARDINALITY"
)

// LoadConfig reads path (when not empty) and applies the environment overrides.
func LoadConfig(path, defaultService string) (Config, error) {
	var f file
	if path != "" {
		md, err := toml.DecodeFile(path, &f)
		if err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
		if undecoded := md.Undecoded(); len(undecoded) > 0 {
			return Config{}, fmt.Errorf("config %s: unknown key %s", path, undecoded[0])
		}
	}
	c := f.Telemetry
	if err := envBool(EnvEnabled, func(b bool) { c.Enabled = &b }); err != nil {
		return c, err
	}
	if err := envBool(EnvOTLPEnabled, func(b bool) { c.OpenTelemetry.Enabled = b }); err != nil {
		return c, err
	}
	if err := envBool(EnvDropCardinality, func(b bool) { c.DropHighCardinalityLabels = b }); err != nil {
		return c, err
	}
	if v := os.Getenv(EnvSampleRate); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return c, fmt.Errorf("%s=%q: must be a number from 0 to 1", EnvSampleRate, v)
		}
		c.SampleRate = &r
	}
	c.ServiceName = cmp.Or(os.Getenv(EnvServiceName), c.ServiceName, defaultService)
	if c.Enabled == nil {
		t := true
		c.Enabled = &t
	}
	if c.SampleRate == nil {
		one := 1.0
		c.SampleRate = &one
	}
	if *c.SampleRate < 0 || *c.SampleRate > 1 {
		return c, fmt.Errorf("telemetry.sample_rate %v: must be from 0 to 1", *c.SampleRate)
	}
	return c, nil
}

func envBool(name string, set func(bool)) error {
	v := os.Getenv(name)
	if v == "" {
		return nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("%s=%q: must be true or false", name, v)
	}
	set(b)
	return nil
}
