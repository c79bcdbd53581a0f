package dashboards

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// Window is the range of every rate and increase, as the reference's queries have it.
const Window = "5m"

// The helpers below build PromQL from catalog metric names (telemetry.Metric*
// constants): the series name always comes from the catalog, so a renamed metric renames
// every panel and alert with it. They panic on a name outside the catalog, which the
// tests reach at once.

// series is a counter's or gauge's only series, or a histogram's _count series.
func series(metric string) string { return telemetry.Series(metric) }

// histogramSeries is a histogram's series with the given suffix (_bucket, _sum, _count).
func histogramSeries(metric, suffix string) string {
	m, ok := telemetry.Lookup(metric)
	if !ok || m.Kind != telemetry.Histogram {
		panic(fmt.Sprintf("dashboards: %s is not a histogram of the catalog", metric))
	}
	for _, s := range m.Series {
		if strings.HasSuffix(s, suffix) {
			return s
		}
	}
	panic(fmt.Sprintf("dashboards: histogram %s has no %s series", metric, suffix))
}

// sel is a selector of a series with optional matchers, e.g. sel(m, `outcome="error"`).
func sel(name string, matchers ...string) string {
	if len(matchers) == 0 {
		return name
	}
	return name + "{" + strings.Join(matchers, ", ") + "}"
}

// by renders an aggregation's grouping, or nothing.
func by(labels []string) string {
	if len(labels) == 0 {
		return ""
	}
	return " by (" + strings.Join(labels, ", ") + ")"
}

// rate is rate(selector[Window]).
func rate(selector string) string { return "rate(" + selector + "[" + Window + "])" }

// increase is increase(selector[Window]).
func increase(selector string) string { return "increase(" + selector + "[" + Window + "])" }

// sumRate is the per-second rate of a counter summed by the labels given.
func sumRate(metric string, labels ...string) string {
	return "sum" + by(labels) + " (" + rate(series(metric)) + ")"
}

// aggregate is op by (labels) (selector), e.g. max by (queue) (tasker_queue_depth).
func aggregate(op, selector string, labels ...string) string {
	return op + by(labels) + " (" + selector + ")"
}

// quantile is a histogram's q-quantile over Window, by the labels given.
func quantile(q float64, metric string, labels ...string) string {
	return "histogram_quantile(" + strconv.FormatFloat(q, 'f', -1, 64) + ", " +
		aggregate("sum", rate(histogramSeries(metric, "_bucket")), append([]string{"le"}, labels...)...) + ")"
}

// mean is a histogram's mean over Window, by the labels given: sum(rate(_sum)) / sum(rate(_count)).
func mean(metric string, labels ...string) string {
	return aggregate("sum", rate(histogramSeries(metric, "_sum")), labels...) + " / " +
		aggregate("sum", rate(histogramSeries(metric, "_count")), labels...)
}

// orZero makes an expression that is empty before its first event read as 0.
func orZero(expr string) string { return "(" + expr + " or vector(0))" }

// taskFailureRatio is failures / (completions + failures) over Window.
func taskFailureRatio() string {
	return orZero(sumRate(telemetry.MetricTasksFailures)) + " / (" + sumRate(telemetry.MetricTasksCompletions) +
		" + " + orZero(sumRate(telemetry.MetricTasksFailures)) + ")"
}

// taskSuccessRatio is completions / (completions + failures) over Window.
func taskSuccessRatio() string {
	return sumRate(telemetry.MetricTasksCompletions) + " / (" + sumRate(telemetry.MetricTasksCompletions) +
		" + " + orZero(sumRate(telemetry.MetricTasksFailures)) + ")"
}

// stepFailureRatio is step failures / step executions over Window.
func stepFailureRatio() string {
	return orZero(sumRate(telemetry.MetricStepsFailures)) + " / " + sumRate(telemetry.MetricStepsExecutions)
}

// stepSuccessRatio is step successes / step executions over Window.
func stepSuccessRatio() string {
	return sumRate(telemetry.MetricStepsSuccesses) + " / " + sumRate(telemetry.MetricStepsExecutions)
}

// flowCount is one counter's total for the dashboard's correlation_id.
func flowCount(metric string) string {
	return aggregate("sum", sel(series(metric), telemetry.LabelCorrelationID+`="$`+VarCorrelationID+`"`))
}
