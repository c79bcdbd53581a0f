package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// GaugeObserver reports gauge values from inside a collection callback. Each method
// names the gauge it sets, so callers never spell a metric name.
type GaugeObserver struct {
	in  *Instruments
	obs metric.Observer
}

func (g *GaugeObserver) int(name string, v int64, kv ...attribute.KeyValue) {
	g.obs.ObserveInt64(g.in.igauges[name], v, metric.WithAttributes(kv...))
}

// TasksActive reports how many tasks are in a non-terminal state.
func (g *GaugeObserver) TasksActive(state string, n int64) {
	g.int(MetricTasksActive, n, attribute.String(LabelState, state))
}

// StepsReady reports how many steps of a namespace are ready to run.
func (g *GaugeObserver) StepsReady(namespace string, n int64) {
	g.int(MetricStepsReady, n, attribute.String(LabelNamespace, namespace))
}

// QueueDepth reports how many messages wait in a queue.
func (g *GaugeObserver) QueueDepth(namespace, queue string, n int64) {
	g.int(MetricQueueDepth, n, attribute.String(LabelNamespace, namespace), attribute.String(LabelQueue, queue))
}

// QueueAge reports the age of a queue's oldest message, in seconds.
func (g *GaugeObserver) QueueAge(queue string, seconds int64) {
	g.int(MetricQueueAgeSeconds, seconds, attribute.String(LabelQueue, queue))
}

// PoolConnections reports a pool's connections in use and idle.
func (g *GaugeObserver) PoolConnections(pool string, active, idle int64) {
	g.int(MetricPoolConnectionsActive, active, attribute.String(LabelPool, pool))
	g.int(MetricPoolConnectionsIdle, idle, attribute.String(LabelPool, pool))
}

// Channel reports a bounded channel's fill level and capacity.
func (g *GaugeObserver) Channel(channel, component string, length, capacity int) {
	kv := metric.WithAttributes(attribute.String(LabelChannel, channel), attribute.String(LabelComponent, component))
	usage := 0.0
	if capacity > 0 {
		usage = float64(length) / float64(capacity) * 100
	}
	g.obs.ObserveFloat64(g.in.fgauges[MetricChannelUsagePercent], usage, kv)
	g.obs.ObserveInt64(g.in.igauges[MetricChannelCapacity], int64(capacity), kv)
}

// CircuitBreaker reports a breaker's state (0 closed, 1 half-open, 2 open). The web
// breaker is also reported as api_circuit_breaker_state.
func (g *GaugeObserver) CircuitBreaker(component string, state int64) {
	g.int(MetricCircuitBreakerState, state, attribute.String(LabelComponent, component))
	if component == BreakerWebDatabase {
		g.int(MetricAPICircuitBreakerState, state)
	}
}

// BreakerWebDatabase is the web API's database breaker component name.
const BreakerWebDatabase = "web_database"

// Observe registers fn to report gauges at every collection. Unregister the returned
// registration when the component stops.
func (in *Instruments) Observe(fn func(ctx context.Context, g *GaugeObserver) error) (metric.Registration, error) {
	all := make([]metric.Observable, 0, len(in.igauges)+len(in.fgauges))
	for _, g := range in.igauges {
		all = append(all, g)
	}
	for _, g := range in.fgauges {
		all = append(all, g)
	}
	return in.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		return fn(ctx, &GaugeObserver{in: in, obs: o})
	}, all...)
}
