package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Version is reported as service.version.
const Version = "0.1.0"

// Providers is one process's telemetry: instruments, tracer and the /metrics handler.
type Providers struct {
	// Instruments record every catalog metric.
	Instruments *Instruments
	// Tracer makes the lifecycle spans.
	Tracer trace.Tracer
	// MeterProvider is exposed for tests and extra readers.
	MeterProvider metric.MeterProvider
	// MetricsHandler serves Prometheus text on /metrics.
	MetricsHandler http.Handler
	// OTLPEnabled says whether metrics and traces are pushed over OTLP.
	OTLPEnabled bool
	shutdown    []func(context.Context) error
}

// Disabled returns providers that record nothing and serve an empty /metrics.
func Disabled() *Providers {
	return &Providers{Instruments: Noop(), Tracer: tracenoop.NewTracerProvider().Tracer(ScopeName),
		MeterProvider: noop.NewMeterProvider(), MetricsHandler: promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{})}
}

// Setup builds the providers cfg asks for: metrics always go to a Prometheus registry
// served by MetricsHandler, and, with OpenTelemetry enabled, also to an OTLP exporter
// (gRPC, or HTTP when OTEL_EXPORTER_OTLP_PROTOCOL says http/protobuf) every
// OTEL_METRIC_EXPORT_INTERVAL ms (60 s by default), with traces over OTLP as well. extra
// readers (tests use a ManualReader) are added to the MeterProvider.
func Setup(ctx context.Context, cfg Config, log *slog.Logger, extra ...sdkmetric.Reader) (*Providers, error) {
	if cfg.Enabled != nil && !*cfg.Enabled {
		log.Info("telemetry disabled: opentelemetry_enabled=false", "opentelemetry_enabled", false)
		return Disabled(), nil
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", Version),
		attribute.String("deployment.environment", envOr("DEPLOYMENT_ENVIRONMENT", "development")),
	}
	// Replicas of one service (docker compose up --scale worker=3) push under one
	// service.name; service.instance.id (Prometheus's instance label) keeps their series
	// apart. OTEL_RESOURCE_ATTRIBUTES may set it instead.
	if _, ok := resource.Default().Set().Value("service.instance.id"); !ok {
		attrs = append(attrs, attribute.String("service.instance.id", instanceID()))
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	p := &Providers{OTLPEnabled: cfg.OpenTelemetry.Enabled}
	// The SDK reports export and collection errors (a gauge query failing while the
	// database is down, a collector that is not there) through this handler.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("telemetry error", "error", err)
	}))
	reg := prometheus.NewRegistry()
	// The translation strategy is pinned so an exporter upgrade cannot rename series.
	promReader, err := otelprom.New(otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	p.MetricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	opts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promReader)}
	for _, r := range extra {
		opts = append(opts, sdkmetric.WithReader(r))
	}
	protocol := strings.ToLower(envOr("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", envOr("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")))
	if p.OTLPEnabled {
		var exp sdkmetric.Exporter
		switch protocol {
		case "grpc":
			exp, err = otlpmetricgrpc.New(ctx)
		case "http/protobuf", "http":
			exp, err = otlpmetrichttp.New(ctx)
		default:
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: must be grpc or http/protobuf", protocol)
		}
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp metric exporter: %w", err)
		}
		// NewPeriodicReader honours OTEL_METRIC_EXPORT_INTERVAL (default 60 s).
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	mp := sdkmetric.NewMeterProvider(opts...)
	p.MeterProvider = mp
	p.shutdown = append(p.shutdown, mp.Shutdown)
	if p.Instruments, err = New(mp, Options{DropHighCardinality: cfg.DropHighCardinalityLabels}); err != nil {
		return nil, err
	}

	if p.OTLPEnabled {
		var exp sdktrace.SpanExporter
		if protocol == "grpc" {
			exp, err = otlptracegrpc.New(ctx)
		} else {
			exp, err = otlptracehttp.New(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp trace exporter: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*cfg.SampleRate))))
		p.Tracer = tp.Tracer(ScopeName)
		p.shutdown = append(p.shutdown, tp.Shutdown)
		otel.SetTextMapPropagator(propagation.TraceContext{})
	} else {
		p.Tracer = tracenoop.NewTracerProvider().Tracer(ScopeName)
	}
	// The message repeats the flag as key=value, so `grep opentelemetry_enabled=true` works.
	log.Info(fmt.Sprintf("telemetry configured: opentelemetry_enabled=%t", p.OTLPEnabled), "opentelemetry_enabled", p.OTLPEnabled, "service_name", cfg.ServiceName,
		"otlp_protocol", protocol, "drop_high_cardinality_labels", cfg.DropHighCardinalityLabels)
	return p, nil
}

// Shutdown flushes and stops the exporters.
func (p *Providers) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range p.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// instanceID names this process among its service's replicas: the host name (a container's
// id under Docker) and the process id.
func instanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
