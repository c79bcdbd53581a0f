package dashboards

import (
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// Alert is one Prometheus alerting rule, with the promtool unit test that proves it.
type Alert struct {
	// Name is the alert name.
	Name string
	// Severity is "warning" or "critical".
	Severity string
	// Signal is the quantity the rule compares (an expression that returns data whenever
	// the metrics are there, healthy or not).
	Signal string
	// Expr is the rule's expression: Signal against its threshold.
	Expr string
	// For is how long Expr must hold before the alert fires.
	For time.Duration
	// Dashboard is the UID of the dashboard that shows it, and Panel the panel's title.
	Dashboard, Panel string
	// Summary is the summary's first part; it may use {{ $labels.NAME }}, and the panel
	// it relates to is appended.
	Summary string
	// Description says what it means and what to look at.
	Description string
	// Test is the promtool unit test.
	Test AlertTest
	// Fault, when set, is the chaos phase during which the recorded run crosses the
	// threshold: the fixture test checks that Expr is empty before it and not during it.
	Fault *Fault
}

// AlertTest holds the series of a promtool unit test, at one sample a minute.
type AlertTest struct {
	// Firing are cases in which the alert fires at EvalAt.
	Firing []FiringCase
	// Healthy are series on which it stays silent.
	Healthy []InputSeries
}

// FiringCase is a set of series and the labels of the alert they fire.
type FiringCase struct {
	// Series are the input series.
	Series []InputSeries
	// Labels are the fired alert's labels besides alertname and severity.
	Labels map[string]string
}

// fires is a FiringCase.
func fires(labels map[string]string, in ...InputSeries) []FiringCase {
	return []FiringCase{{Series: in, Labels: labels}}
}

// InputSeries is a promtool input series: a selector and its values in promtool's
// expanding notation ("0+60x30": from 0, up 60 a sample, 30 more samples).
type InputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

// EvalAt is when the unit test looks: five minutes past For, so rate windows are full.
func (a Alert) EvalAt() time.Duration { return a.For + 5*time.Minute }

// input builds an input series of a catalog metric.
func input(metricSeries, values string, matchers ...string) InputSeries {
	return InputSeries{Series: sel(metricSeries, matchers...), Values: values}
}

// compare is "signal op threshold".
func compare(signal, op string, threshold float64) string {
	return signal + " " + op + " " + strconv.FormatFloat(threshold, 'f', -1, 64)
}

func duration(d time.Duration) string { return model.Duration(d).String() }

const (
	orchestrator = `instance="orchestrator:8080"`
	ffiWorker    = `instance="ffi-worker:8081"`
)

// Alerts returns every alert rule, in file order.
func Alerts() []Alert {
	return append(append(breakerAlerts(), channelAlerts()...), failureAlerts()...)
}

func breakerAlerts() []Alert {
	api := aggregate("max", series(telemetry.MetricAPICircuitBreakerState), "instance")
	component := aggregate("max", series(telemetry.MetricCircuitBreakerState), "instance", telemetry.LabelComponent)
	slow := aggregate("sum", rate(series(telemetry.MetricFFISlowSends)), "instance")
	return []Alert{
		{Name: "TaskerAPICircuitBreakerOpen", Severity: "critical", Signal: api, Expr: compare(api, "==", 2), For: time.Minute,
			Dashboard: UIDResilience, Panel: PanelBreakerState, Fault: during(PhaseAPIDatabase),
			Summary:     "The web API's database circuit breaker is open on {{ $labels.instance }}",
			Description: "The API refuses requests (503) instead of waiting on a database it cannot reach; rejections show per endpoint.",
			Test: AlertTest{
				Firing:  fires(map[string]string{"instance": "orchestrator:8080"}, input(series(telemetry.MetricAPICircuitBreakerState), "0x3 2x10", orchestrator)),
				Healthy: []InputSeries{input(series(telemetry.MetricAPICircuitBreakerState), "0x3 1x2 0x8", orchestrator)}}},
		{Name: "TaskerCircuitBreakerOpen", Severity: "critical", Signal: component, Expr: compare(component, "==", 2), For: time.Minute,
			Dashboard: UIDResilience, Panel: PanelBreakerState, Fault: during(PhaseSlowFFI),
			Summary:     "Circuit breaker {{ $labels.component }} is open on {{ $labels.instance }}",
			Description: "A component stopped calling a dependency that keeps failing; it probes again when the breaker half-opens.",
			Test: AlertTest{
				Firing:  fires(map[string]string{"instance": "ffi-worker:8081", telemetry.LabelComponent: "ffi_completion"}, input(series(telemetry.MetricCircuitBreakerState), "0x3 2x10", ffiWorker, `component="ffi_completion"`)),
				Healthy: []InputSeries{input(series(telemetry.MetricCircuitBreakerState), "0x13", ffiWorker, `component="ffi_completion"`)}}},
		{Name: "TaskerFFICompletionSlowSends", Severity: "warning", Signal: slow, Expr: compare(slow, ">", 10), For: 2 * time.Minute,
			Dashboard: UIDResilience, Panel: PanelFFISlowSends,
			Summary:     "FFI completion sends slower than 100 ms exceed 10/s on {{ $labels.instance }}",
			Description: "The FFI worker's completion channel is slow to accept results; its breaker opens if it goes on.",
			Test: AlertTest{
				Firing:  fires(map[string]string{"instance": "ffi-worker:8081"}, input(series(telemetry.MetricFFISlowSends), "0+900x12", ffiWorker)),
				Healthy: []InputSeries{input(series(telemetry.MetricFFISlowSends), "0+300x12", ffiWorker)}}},
	}
}

func channelAlerts() []Alert {
	byChannel := []string{"instance", telemetry.LabelComponent, telemetry.LabelChannel}
	usage := aggregate("max", series(telemetry.MetricChannelUsagePercent), byChannel...)
	full := series(telemetry.MetricChannelFullEvents)
	newEvents := aggregate("sum", increase(full), byChannel...)
	// A counter first scraped after its first events has no earlier sample to increase
	// from, so a channel's first full events show as a series that was not there 5m ago.
	firstEvents := aggregate("sum", full+" unless "+full+" offset "+Window, byChannel...)
	labels := map[string]string{"instance": "orchestrator:8080", telemetry.LabelComponent: "orchestration",
		telemetry.LabelChannel: "orchestration_step_results"}
	channel := []string{orchestrator, `component="orchestration"`, `channel="orchestration_step_results"`}
	// The chaos flood fills a channel for a moment only, which a scrape may or may not
	// catch: the saturation alerts are proved by their unit tests, not by the recording.
	return []Alert{
		{Name: "TaskerChannelSaturated", Severity: "warning", Signal: usage, Expr: compare(usage, ">", 80), For: 15 * time.Minute,
			Dashboard: UIDResilience, Panel: PanelChannelUsage,
			Summary:     "Channel {{ $labels.component }}/{{ $labels.channel }} is over 80 % full on {{ $labels.instance }}",
			Description: "A bounded channel stays nearly full: its consumer cannot keep up, and senders will soon block.",
			Test: AlertTest{
				Firing:  fires(labels, input(series(telemetry.MetricChannelUsagePercent), "85x25", channel...)),
				Healthy: []InputSeries{input(series(telemetry.MetricChannelUsagePercent), "60x25", channel...)}}},
		{Name: "TaskerChannelSaturationCritical", Severity: "critical", Signal: usage, Expr: compare(usage, ">", 90), For: 5 * time.Minute,
			Dashboard: UIDResilience, Panel: PanelChannelUsage,
			Summary:     "Channel {{ $labels.component }}/{{ $labels.channel }} is over 90 % full on {{ $labels.instance }}",
			Description: "A bounded channel is about to apply backpressure to its senders.",
			Test: AlertTest{
				Firing:  fires(labels, input(series(telemetry.MetricChannelUsagePercent), "95x15", channel...)),
				Healthy: []InputSeries{input(series(telemetry.MetricChannelUsagePercent), "85x15", channel...)}}},
		{Name: "TaskerChannelBackpressure", Severity: "warning", Signal: newEvents,
			Expr:      compare(newEvents, ">", 0) + " or " + compare(firstEvents, ">", 0),
			Dashboard: UIDResilience, Panel: PanelBackpressure, Fault: during(PhaseIntakeFlood),
			Summary:     "Backpressure on channel {{ $labels.component }}/{{ $labels.channel }} on {{ $labels.instance }}",
			Description: "A bounded channel was full within the last 5 minutes and a sender had to wait: any such event is worth a look.",
			Test: AlertTest{
				// The counter rises; and the counter appears, already past its first events.
				Firing: append(fires(labels, input(full, "0x3 0+50x6", channel...)),
					fires(labels, input(full, "_x3 972x6", channel...))...),
				Healthy: []InputSeries{input(full, "3x9", channel...)}}},
	}
}

func failureAlerts() []Alert {
	tasks, steps := taskFailureRatio(), stepFailureRatio()
	depth := aggregate("max", series(telemetry.MetricQueueDepth), telemetry.LabelQueue)
	age := aggregate("max", series(telemetry.MetricQueueAgeSeconds), telemetry.LabelQueue)
	completions, taskFailures := series(telemetry.MetricTasksCompletions), series(telemetry.MetricTasksFailures)
	executions, stepFailures := series(telemetry.MetricStepsExecutions), series(telemetry.MetricStepsFailures)
	queue := `queue="worker_rust_e2e_linear_queue"`
	return []Alert{
		{Name: "TaskerTaskFailureRatioHigh", Severity: "critical", Signal: tasks, Expr: compare(tasks, ">", 0.10), For: 5 * time.Minute,
			Dashboard: UIDHealth, Panel: PanelTaskFailureRate, Fault: during(PhasePermanentErrors),
			Summary:     "More than 10 % of finished tasks failed over 5 minutes",
			Description: "The task success rate is below the reference's red line (0.90); the worker dashboard shows the errors by type.",
			Test: AlertTest{
				Firing:  fires(map[string]string{}, input(completions, "0+60x12", orchestrator), input(taskFailures, "0+20x12", orchestrator)),
				Healthy: []InputSeries{input(completions, "0+60x12", orchestrator), input(taskFailures, "0+1x12", orchestrator)}}},
		{Name: "TaskerStepFailureRatioHigh", Severity: "warning", Signal: steps, Expr: compare(steps, ">", 0.10), For: 5 * time.Minute,
			Dashboard: UIDHealth, Panel: PanelStepFailureRate, Fault: during(PhaseRetryableErrors),
			Summary:     "More than 10 % of step executions failed over 5 minutes",
			Description: "Handlers fail more than usual (retried steps included); see the error distribution on the worker dashboard.",
			Test: AlertTest{
				Firing:  fires(map[string]string{}, input(executions, "0+600x12", ffiWorker), input(stepFailures, "0+120x12", ffiWorker)),
				Healthy: []InputSeries{input(executions, "0+600x12", ffiWorker), input(stepFailures, "0+30x12", ffiWorker)}}},
		{Name: "TaskerQueueBacklog", Severity: "warning", Signal: depth, Expr: compare(depth, ">", 1000), For: 10 * time.Minute,
			Dashboard: UIDMessaging, Panel: PanelQueueDepth,
			Summary:     "Queue {{ $labels.queue }} holds more than 1000 messages",
			Description: "Messages arrive faster than they are consumed: are the queue's workers running and healthy?",
			Test: AlertTest{
				Firing:  fires(map[string]string{telemetry.LabelQueue: "worker_rust_e2e_linear_queue"}, input(series(telemetry.MetricQueueDepth), "1500x20", orchestrator, queue)),
				Healthy: []InputSeries{input(series(telemetry.MetricQueueDepth), "50x20", orchestrator, queue)}}},
		{Name: "TaskerQueueOldestMessageStale", Severity: "warning", Signal: age, Expr: compare(age, ">", 300), For: 5 * time.Minute,
			Dashboard: UIDMessaging, Panel: PanelQueueAge,
			Summary:     "The oldest message in queue {{ $labels.queue }} is more than 5 minutes old",
			Description: "Nothing consumes the queue, or its messages keep failing and coming back after their visibility timeout.",
			Test: AlertTest{
				Firing:  fires(map[string]string{telemetry.LabelQueue: "worker_rust_e2e_linear_queue"}, input(series(telemetry.MetricQueueAgeSeconds), "400+60x15", orchestrator, queue)),
				Healthy: []InputSeries{input(series(telemetry.MetricQueueAgeSeconds), "40x15", orchestrator, queue)}}},
	}
}
