package dashboards

import (
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// Dashboard UIDs, stable: alerts link to them and Grafana keys provisioned files by them.
const (
	UIDOverview   = "tasker-overview"
	UIDWorkers    = "tasker-workers"
	UIDHealth     = "tasker-health"
	UIDResilience = "tasker-resilience"
	UIDDatabase   = "tasker-database"
	UIDMessaging  = "tasker-messaging"
)

// Phases of the built-in chaos scenario (load.Chaos) that fault-only panels depend on.
const (
	PhaseRetryableErrors = "retryable handler errors"
	PhasePermanentErrors = "permanent handler errors"
	PhaseAbandoned       = "messages abandoned before claim"
	PhaseSlowFFI         = "slow FFI completions"
	PhaseQueueReads      = "worker queue reads refused"
	PhaseAPIDatabase     = "API database unavailable"
	PhaseIntakeFlood     = "intake channel flood"
)

// Dashboards returns every dashboard, in file order.
func Dashboards() []Dashboard {
	return []Dashboard{overview(), workers(), health(), resilience(), database(), messaging()}
}

// Thresholds and mappings shared by panels.
var (
	breakerStates = []Mapping{{"0", "Closed", "green"}, {"1", "Half-Open", "yellow"}, {"2", "Open", "red"}}
	// successSteps are the reference's: green > 0.95, yellow > 0.90, red below.
	successSteps = []Step{{0, "red"}, {0.90, "yellow"}, {0.95, "green"}}
	// failureSteps mirror them for a failure ratio (the step failure alert is at 0.05).
	failureSteps = []Step{{0, "green"}, {0.05, "yellow"}, {0.10, "red"}}
	// channelSteps are the reference's channel saturation colors: green < 70, yellow < 90.
	channelSteps = []Step{{0, "green"}, {70, "yellow"}, {90, "red"}}
)

func overview() Dashboard {
	return Dashboard{UID: UIDOverview, Title: "Tasker / Task Execution Overview",
		Description: "Task throughput, outcomes and latency, and one task's flow picked by correlation_id.",
		Variables: []Variable{{Name: VarCorrelationID, Label: "correlation_id",
			Series: series(telemetry.MetricTasksRequests), LabelName: telemetry.LabelCorrelationID}},
		Rows: []Row{
			{Title: "Tasks", Panels: []Panel{
				{Title: "Task request rate", Viz: TimeSeries, Unit: "reqps",
					Queries: []Query{q(sumRate(telemetry.MetricTasksRequests, telemetry.LabelNamespace, telemetry.LabelTaskType), "{{namespace}}/{{task_type}}")}},
				{Title: "Task completion rate", Viz: TimeSeries, Unit: "ops",
					Queries: []Query{q(sumRate(telemetry.MetricTasksCompletions), "completions")}},
				{Title: "Task success/failure", Viz: TimeSeries, Unit: "ops", Stacked: true,
					Queries: []Query{q(sumRate(telemetry.MetricTasksCompletions), "completions"),
						q(sumRate(telemetry.MetricTasksFailures), "failures")}},
				{Title: "Task initialization latency", Viz: TimeSeries, Unit: "ms",
					Queries: []Query{q(quantile(0.50, telemetry.MetricTaskInitDuration), "p50"),
						q(quantile(0.95, telemetry.MetricTaskInitDuration), "p95"),
						q(quantile(0.99, telemetry.MetricTaskInitDuration), "p99")}},
				{Title: "Task finalization latency (p95) by final state", Viz: TimeSeries, Unit: "ms",
					Queries: []Query{q(quantile(0.95, telemetry.MetricTaskFinalDuration, telemetry.LabelFinalState), "{{final_state}}")}},
				{Title: "Active tasks by state", Viz: TimeSeries, Unit: "short", Stacked: true,
					Queries: []Query{q(aggregate("sum", series(telemetry.MetricTasksActive), telemetry.LabelState), "{{state}}")}},
			}},
			{Title: "Steps", Panels: []Panel{
				{Title: "Steps enqueued vs executed", Viz: TimeSeries, Unit: "ops",
					Queries: []Query{q(sumRate(telemetry.MetricStepsEnqueued), "enqueued"),
						q(sumRate(telemetry.MetricStepsExecutions), "executed")}},
				{Title: "Step results processed by result type", Viz: TimeSeries, Unit: "ops",
					Queries: []Query{q(sumRate(telemetry.MetricStepResultsProcessed, telemetry.LabelResultType), "{{result_type}}")}},
				{Title: "Steps ready by namespace", Viz: TimeSeries, Unit: "short",
					Queries: []Query{q(aggregate("sum", series(telemetry.MetricStepsReady), telemetry.LabelNamespace), "{{namespace}}")}},
			}},
			{Title: "Task flow for $" + VarCorrelationID, Panels: []Panel{taskFlow()}},
		}}
}

// taskFlow shows one task's counters in flow order; a complete flow reads
// 1 → N → N → N → N → N → 1, N being the task's number of steps.
func taskFlow() Panel {
	p := Panel{Title: "Task flow", Viz: BarGauge, Unit: "short", Width: 24,
		Description: "The selected task's counters in the order it goes through them. A complete flow reads " +
			"requests 1 → enqueued N → executions N → successes N → submitted N → processed N → completions 1, " +
			"N being its number of steps (as `taskerctl verify --correlation-id` checks)."}
	for i, m := range FlowMetrics {
		p.Queries = append(p.Queries, instant(flowCount(m), flowLegends[i]))
	}
	return p
}

// FlowMetrics are the counters of one task's flow in order, as `taskerctl verify` reads them.
var FlowMetrics = []string{telemetry.MetricTasksRequests, telemetry.MetricStepsEnqueued, telemetry.MetricStepsExecutions,
	telemetry.MetricStepsSuccesses, telemetry.MetricStepsResultsSubmitted, telemetry.MetricStepResultsProcessed,
	telemetry.MetricTasksCompletions}

var flowLegends = []string{"1 requests", "2 enqueued", "3 executions", "4 successes", "5 submitted", "6 processed", "7 completions"}

func workers() Dashboard {
	return Dashboard{UID: UIDWorkers, Title: "Tasker / Worker Performance",
		Description: "Step execution, claiming and result submission on the workers.",
		Rows: []Row{
			{Title: "Execution", Panels: []Panel{
				{Title: "Step execution throughput by namespace", Viz: TimeSeries, Unit: "ops",
					Description: "Executions counted by the execution-duration histogram, which carries the namespace.",
					Queries: []Query{q(aggregate("sum", rate(histogramSeries(telemetry.MetricStepExecutionDuration, "_count")), telemetry.LabelNamespace), "{{namespace}}"),
						q(sumRate(telemetry.MetricStepsExecutions), "all executions")}},
				{Title: "Step success rate", Viz: Gauge, Unit: "percentunit", Min: ptr(0.0), Max: ptr(1.0), Thresholds: successSteps,
					Queries: []Query{instant(stepSuccessRatio(), "success rate")}},
				{Title: "Step execution latency", Viz: TimeSeries, Unit: "ms",
					Queries: []Query{q(quantile(0.50, telemetry.MetricStepExecutionDuration), "p50"),
						q(quantile(0.95, telemetry.MetricStepExecutionDuration), "p95"),
						q(quantile(0.99, telemetry.MetricStepExecutionDuration), "p99")}},
				{Title: "Error distribution by type", Viz: PieChart, Unit: "ops",
					Queries: []Query{instant(sumRate(telemetry.MetricStepsFailures, telemetry.LabelErrorType), "{{error_type}}")}},
				{Title: "Active step executions", Viz: TimeSeries, Unit: "short", Stacked: true,
					Queries: []Query{q(aggregate("sum", series(telemetry.MetricStepsActiveExecutions), telemetry.LabelNamespace, telemetry.LabelHandlerType), "{{namespace}} ({{handler_type}})")}},
			}},
			{Title: "Claiming and results", Panels: []Panel{
				{Title: "Steps claimed by method", Viz: TimeSeries, Unit: "ops",
					Queries: []Query{q(sumRate(telemetry.MetricStepsClaimed, telemetry.LabelClaimMethod), "{{claim_method}}")}},
				{Title: "Step claiming latency (p95): event vs poll", Viz: TimeSeries, Unit: "ms",
					Queries: []Query{q(quantile(0.95, telemetry.MetricStepClaimDuration, telemetry.LabelClaimMethod), "{{claim_method}}")}},
				{Title: "Results submitted", Viz: TimeSeries, Unit: "ops",
					Queries: []Query{q(sumRate(telemetry.MetricStepsResultsSubmitted, telemetry.LabelResultType), "{{result_type}}")}},
				{Title: "Result submission latency (p95)", Viz: TimeSeries, Unit: "ms",
					Queries: []Query{q(quantile(0.95, telemetry.MetricStepResultSubmitDuration), "p95")}},
			}},
		}}
}

func health() Dashboard {
	return Dashboard{UID: UIDHealth, Title: "Tasker / System Health",
		Description: "Success and failure ratios, end-to-end duration and what is in flight.",
		Rows: []Row{{Title: "Health", Panels: []Panel{
			{Title: "Overall task success rate", Viz: Stat, Unit: "percentunit", Thresholds: successSteps,
				Queries: []Query{instant(taskSuccessRatio(), "success rate")}},
			{Title: "Task failure rate", Viz: Stat, Unit: "percentunit", Thresholds: failureSteps,
				Queries: []Query{instant(taskFailureRatio(), "failure rate")}},
			{Title: "Step failure rate", Viz: Stat, Unit: "percentunit", Thresholds: failureSteps,
				Queries: []Query{instant(stepFailureRatio(), "failure rate")}},
			{Title: "Average task end-to-end duration", Viz: TimeSeries, Unit: "ms", Stacked: true,
				Description: "Mean initialization, step execution and finalization, stacked.",
				Queries: []Query{q(mean(telemetry.MetricTaskInitDuration), "initialization"),
					q(mean(telemetry.MetricStepExecutionDuration), "step execution"),
					q(mean(telemetry.MetricTaskFinalDuration), "finalization")}},
			{Title: "Result processing latency", Viz: TimeSeries, Unit: "ms",
				Queries: []Query{q(mean(telemetry.MetricStepResultProcDuration), "mean"),
					q(quantile(0.95, telemetry.MetricStepResultProcDuration), "p95")}},
			{Title: "Active operations", Viz: TimeSeries, Unit: "short",
				Queries: []Query{q(aggregate("sum", series(telemetry.MetricTasksActive)), "tasks active"),
					q(aggregate("sum", series(telemetry.MetricStepsActiveExecutions)), "steps executing"),
					q(aggregate("sum", series(telemetry.MetricStepsReady)), "steps ready")}},
		}}}}
}
