package dashboards

import (
	"time"

	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// Panel titles that alerts point at.
const (
	PanelBreakerState     = "Circuit breaker state"
	PanelBreakersOpen     = "Open circuit breakers"
	PanelAPIRejections    = "API requests rejected by endpoint"
	PanelFFISlowSends     = "FFI completion slow sends"
	PanelFFIRejections    = "FFI completion circuit-open rejections"
	PanelChannelMax       = "Channel saturation"
	PanelChannelUsage     = "Channel usage by channel"
	PanelBackpressure     = "Backpressure events"
	PanelQueueDepth       = "Queue depth"
	PanelQueueAge         = "Oldest message age"
	PanelTaskFailureRate  = "Task failure rate"
	PanelStepFailureRate  = "Step failure rate"
	PanelQueueErrors      = "Queue errors"
	PanelVisibilityExpiry = "Visibility timeouts"
)

// visibilitySettle is how late visibility timeouts show after messages were abandoned:
// the 30 s visibility timeout, then the next read and scrape.
const visibilitySettle = 45 * time.Second

func resilience() Dashboard {
	return Dashboard{UID: UIDResilience, Title: "Tasker / Resilience",
		Description: "Circuit breakers, FFI completion health and bounded-channel backpressure.",
		Rows: []Row{
			{Title: "Circuit breakers", Panels: []Panel{
				{Title: PanelBreakerState, Viz: StateTimeline, Width: 16, Mappings: breakerStates,
					Description: "0 Closed, 1 Half-Open, 2 Open: the web API's database breaker and each component's.",
					Queries: []Query{q(aggregate("max", series(telemetry.MetricAPICircuitBreakerState)), "api"),
						q(aggregate("max", series(telemetry.MetricCircuitBreakerState), telemetry.LabelComponent), "{{component}}")}},
				{Title: PanelBreakersOpen, Viz: Stat, Mappings: breakerStates, NoValue: "none open", Fault: during(PhaseSlowFFI),
					Description: "The breakers open right now, by component and instance (web_database is the API's).",
					Queries:     []Query{instant(aggregate("max", series(telemetry.MetricCircuitBreakerState), "instance", telemetry.LabelComponent)+" == 2", "{{component}} on {{instance}}")}},
				{Title: PanelAPIRejections, Viz: TimeSeries, Unit: "reqps", Fault: during(PhaseAPIDatabase),
					Queries: []Query{q(sumRate(telemetry.MetricAPIRequestsRejected, telemetry.LabelEndpoint), "{{endpoint}}")}},
			}},
			{Title: "Events", Panels: []Panel{resilienceEvents()}},
			{Title: "FFI completion health", Panels: []Panel{
				{Title: PanelFFISlowSends, Viz: TimeSeries, Unit: "ops", Width: 12, Fault: during(PhaseSlowFFI),
					Description: "Completion sends slower than the threshold (100 ms); the alert fires above 10/s for 2 min.",
					Queries:     []Query{q(aggregate("sum", rate(series(telemetry.MetricFFISlowSends)), "instance"), "{{instance}}")}},
				{Title: PanelFFIRejections, Viz: TimeSeries, Unit: "ops", Width: 12, Fault: during(PhaseSlowFFI),
					Queries: []Query{q(aggregate("sum", rate(series(telemetry.MetricFFICircuitRejections)), "instance"), "{{instance}}")}},
			}},
			{Title: "Channels", Panels: []Panel{
				{Title: PanelChannelMax, Viz: Gauge, Unit: "percent", Min: ptr(0.0), Max: ptr(100.0), Thresholds: channelSteps,
					Queries: []Query{instant(aggregate("max", series(telemetry.MetricChannelUsagePercent)), "highest channel")}},
				{Title: PanelChannelUsage, Viz: TimeSeries, Unit: "percent",
					Queries: []Query{q(aggregate("max", series(telemetry.MetricChannelUsagePercent), telemetry.LabelChannel, telemetry.LabelComponent), "{{component}}/{{channel}}")}},
				{Title: "Messages buffered", Viz: TimeSeries, Unit: "short",
					Description: "Usage times capacity: how many messages wait in each channel.",
					Queries: []Query{q(aggregate("max", series(telemetry.MetricChannelUsagePercent)+" / 100 * "+series(telemetry.MetricChannelCapacity),
						telemetry.LabelChannel, telemetry.LabelComponent), "{{component}}/{{channel}}"),
						q(aggregate("max", series(telemetry.MetricChannelCapacity), telemetry.LabelChannel, telemetry.LabelComponent), "capacity {{component}}/{{channel}}")}},
				{Title: PanelBackpressure, Viz: TimeSeries, Unit: "ops", Width: 24, Fault: during(PhaseIntakeFlood),
					Description: "Channel full events: any at all means backpressure was applied.",
					Queries:     []Query{q(sumRate(telemetry.MetricChannelFullEvents, telemetry.LabelChannel, telemetry.LabelComponent), "{{component}}/{{channel}}")}},
			}},
		}}
}

func database() Dashboard {
	return Dashboard{UID: UIDDatabase, Title: "Tasker / Database",
		Description: "SQL statements, transactions and the connection pools.",
		Rows: []Row{
			{Title: "Statements and transactions", Panels: []Panel{
				{Title: "SQL statements by operation", Viz: TimeSeries, Unit: "ops",
					Queries: []Query{q(sumRate(telemetry.MetricSQLQueries, telemetry.LabelOperation), "{{operation}}")}},
				{Title: "SQL statements by outcome", Viz: TimeSeries, Unit: "ops", Stacked: true,
					Queries: []Query{q(sumRate(telemetry.MetricSQLQueries, telemetry.LabelOutcome), "{{outcome}}")}},
				{Title: "SQL statement latency (p95) by operation", Viz: TimeSeries, Unit: "ms",
					Queries: []Query{q(quantile(0.95, telemetry.MetricSQLQueryDuration, telemetry.LabelOperation), "{{operation}}")}},
				{Title: "Transactions by outcome", Viz: TimeSeries, Unit: "ops", Stacked: true,
					Queries: []Query{q(sumRate(telemetry.MetricDBTransactions, telemetry.LabelOutcome), "{{outcome}}")}},
				{Title: "Transaction latency (p95) by outcome", Viz: TimeSeries, Unit: "ms",
					Queries: []Query{q(quantile(0.95, telemetry.MetricDBTransactionDuration, telemetry.LabelOutcome), "{{outcome}}")}},
			}},
			{Title: "Connection pools", Panels: []Panel{
				{Title: "Pool connections", Viz: TimeSeries, Unit: "short",
					Queries: []Query{q(aggregate("sum", series(telemetry.MetricPoolConnectionsActive), "job", telemetry.LabelPool), "active {{job}}/{{pool}}"),
						q(aggregate("sum", series(telemetry.MetricPoolConnectionsIdle), "job", telemetry.LabelPool), "idle {{job}}/{{pool}}")}},
				{Title: "Pool wait (p95)", Viz: TimeSeries, Unit: "ms",
					Queries: []Query{q(quantile(0.95, telemetry.MetricPoolWaitDuration, telemetry.LabelPool), "{{pool}}")}},
			}},
		}}
}

func messaging() Dashboard {
	return Dashboard{UID: UIDMessaging, Title: "Tasker / Messaging",
		Description: "PGMQ queues: traffic, latency, backlog and failures.",
		Rows: []Row{
			{Title: "Traffic", Panels: []Panel{
				{Title: "Messages sent by queue", Viz: TimeSeries, Unit: "ops",
					Queries: []Query{q(sumRate(telemetry.MetricQueueMessagesSent, telemetry.LabelQueue), "{{queue}}")}},
				{Title: "Messages received by claim method", Viz: TimeSeries, Unit: "ops",
					Queries: []Query{q(sumRate(telemetry.MetricQueueMessagesReceived, telemetry.LabelClaimMethod), "{{claim_method}}")}},
				{Title: "Messages removed by operation", Viz: TimeSeries, Unit: "ops",
					Queries: []Query{q(sumRate(telemetry.MetricQueueMessagesDeleted, telemetry.LabelOperation), "{{operation}}")}},
				{Title: "Send latency (p95) by queue", Viz: TimeSeries, Unit: "ms",
					Queries: []Query{q(quantile(0.95, telemetry.MetricQueueSendDuration, telemetry.LabelQueue), "{{queue}}")}},
				{Title: "Receive latency (p95) by queue", Viz: TimeSeries, Unit: "ms",
					Queries: []Query{q(quantile(0.95, telemetry.MetricQueueReceiveDuration, telemetry.LabelQueue), "{{queue}}")}},
			}},
			{Title: "Backlog", Panels: []Panel{
				{Title: PanelQueueDepth, Viz: TimeSeries, Unit: "short",
					Queries: []Query{q(aggregate("max", series(telemetry.MetricQueueDepth), telemetry.LabelQueue), "{{queue}}")}},
				{Title: PanelQueueAge, Viz: TimeSeries, Unit: "s",
					Queries: []Query{q(aggregate("max", series(telemetry.MetricQueueAgeSeconds), telemetry.LabelQueue), "{{queue}}")}},
			}},
			{Title: "Failures", Panels: []Panel{
				{Title: PanelVisibilityExpiry, Viz: TimeSeries, Unit: "ops", Fault: &Fault{Phase: PhaseAbandoned, After: visibilitySettle},
					Description: "Messages delivered again because their visibility timeout ran out before they were acknowledged.",
					Queries:     []Query{q(sumRate(telemetry.MetricQueueVisibilityTimeouts, telemetry.LabelQueue), "{{queue}}")}},
				{Title: PanelQueueErrors, Viz: TimeSeries, Unit: "ops", Fault: during(PhaseQueueReads),
					Queries: []Query{q(sumRate(telemetry.MetricQueueErrors, telemetry.LabelQueue, telemetry.LabelOperation), "{{queue}} {{operation}}")}},
				{Title: "Retry attempts by operation", Viz: TimeSeries, Unit: "ops", Fault: during(PhaseQueueReads),
					Queries: []Query{q(sumRate(telemetry.MetricQueueRetryAttempts, telemetry.LabelOperation), "{{operation}}")}},
			}},
		}}
}

// resilienceEvents counts each resilience event since its process started. Those
// counters appear only with their first event, so rate() cannot see the first burst:
// the totals show it.
func resilienceEvents() Panel {
	total := func(metric string) string { return aggregate("sum", series(metric)) }
	return Panel{Title: "Resilience events since start", Viz: Stat, Unit: "short", Width: 24, NoValue: "0",
		Description: "Totals since each process started. These counters appear with their first event, which a rate over them misses.",
		Queries: []Query{instant(total(telemetry.MetricAPIRequestsRejected), "API requests rejected"),
			instant(total(telemetry.MetricFFISlowSends), "FFI slow sends"),
			instant(total(telemetry.MetricFFICircuitRejections), "FFI circuit-open rejections"),
			instant(total(telemetry.MetricChannelFullEvents), "channel full events")}}
}
