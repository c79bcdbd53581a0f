package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"

	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// series is one sample: a name, its labels and its value. Histograms arrive as their
// _bucket, _sum and _count series.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

func verifyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Run the metrics reference's verification checklist; exit 1 if any row fails",
		Long: `Check that tasker-sim's metrics are there and sane, row by row as the metrics
reference's verification checklist has it, and print a ✓/✗ table.

The metrics come from a Prometheus server's HTTP API (--prometheus http://host:9090), or
straight from the processes' /metrics endpoints (--metrics-url, repeatable; default the
orchestrator at $TASKER_ORCHESTRATION_URL and the worker at $TASKER_WORKER_URL, else
127.0.0.1:8080 and :8081). With --correlation-id it also checks one task's flow:
requests 1 → enqueued N → executions N → successes N → submitted N → processed N → completions 1.`,
		Args: cobra.NoArgs,
		RunE: runVerify,
	}
	f := cmd.Flags()
	f.String("prometheus", "", "Prometheus base URL (uses its /api/v1/query)")
	f.StringArray("metrics-url", nil, "a /metrics URL to read (repeatable)")
	f.String("correlation-id", "", "check the flow invariant for this task's correlation id")
	f.Duration("timeout", 10*time.Second, "give up on a source after this long")
	f.Bool("strict", false, "also fail when any catalog series is missing")
	return cmd
}

func runVerify(cmd *cobra.Command, _ []string) error {
	f := cmd.Flags()
	prom, _ := f.GetString("prometheus")
	urls, _ := f.GetStringArray("metrics-url")
	corr, _ := f.GetString("correlation-id")
	strict, _ := f.GetBool("strict")
	timeout, _ := f.GetDuration("timeout")
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	var (
		all []series
		err error
	)
	if prom != "" {
		all, err = fromPrometheus(ctx, prom)
	} else {
		if len(urls) == 0 {
			worker := os.Getenv("TASKER_WORKER_URL")
			if worker == "" {
				worker = "http://127.0.0.1:8081"
			}
			urls = []string{strings.TrimRight(apiURL(cmd), "/") + "/metrics", strings.TrimRight(worker, "/") + "/metrics"}
		}
		all, err = fromMetricsURLs(ctx, urls)
	}
	if err != nil {
		return err
	}
	rows := checklist(all, corr)
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	failed := 0
	for _, r := range rows {
		mark := "✓"
		switch {
		case !r.ok && r.info && !strict:
			mark = "·"
		case !r.ok:
			mark, failed = "✗", failed+1
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", mark, r.name, r.detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d checks failed", failed, len(rows))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "all %d checks passed\n", len(rows))
	return nil
}

func fromMetricsURLs(ctx context.Context, urls []string) ([]series, error) {
	var out []series
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, fmt.Errorf("--metrics-url %q: %w", u, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", u, err)
		}
		fams, err := parseText(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", u, err)
		}
		out = append(out, fams...)
	}
	return out, nil
}

func parseText(r io.Reader) ([]series, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	var out []series
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch fam.GetType() {
			case dto.MetricType_COUNTER:
				out = append(out, series{name, labels, m.GetCounter().GetValue()})
			case dto.MetricType_GAUGE:
				out = append(out, series{name, labels, m.GetGauge().GetValue()})
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out = append(out, series{name + "_count", labels, float64(h.GetSampleCount())},
					series{name + "_sum", labels, h.GetSampleSum()})
				for _, b := range h.GetBucket() {
					out = append(out, series{name + "_bucket", labels, float64(b.GetCumulativeCount())})
				}
			default:
				out = append(out, series{name, labels, m.GetUntyped().GetValue()})
			}
		}
	}
	return out, nil
}

// fromPrometheus asks a Prometheus server for every tasker-sim series at once.
func fromPrometheus(ctx context.Context, base string) ([]series, error) {
	var names []string
	for _, m := range telemetry.Catalog {
		names = append(names, m.Series...)
	}
	q := url.Values{"query": {`{__name__=~"` + strings.Join(names, "|") + `"}`}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/api/v1/query?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("--prometheus %q: %w", base, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", base, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %s: %w", base, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s %s", base, body.Status, body.Error)
	}
	var out []series
	for _, r := range body.Data.Result {
		name := r.Metric["__name__"]
		delete(r.Metric, "__name__")
		s, _ := r.Value[1].(string)
		var v float64
		if _, err := fmt.Sscan(s, &v); err != nil {
			return nil, fmt.Errorf("query %s: value %q of %s: %w", base, s, name, err)
		}
		out = append(out, series{name, r.Metric, v})
	}
	if len(out) == 0 {
		return nil, errors.New("prometheus holds no tasker-sim series: is it scraping the processes?")
	}
	return out, nil
}

type checkRow struct {
	name   string
	ok     bool
	detail string
	// info rows are shown but fail the run only with --strict.
	info bool
}

func sum(all []series, name string, match map[string]string) (float64, bool) {
	var total float64
	found := false
next:
	for _, s := range all {
		if s.name != name {
			continue
		}
		for k, v := range match {
			if s.labels[k] != v {
				continue next
			}
		}
		total += s.value
		found = true
	}
	return total, found
}

func maxOf(all []series, name string) (float64, bool) {
	m, found := math.Inf(-1), false
	for _, s := range all {
		if s.name == name {
			m, found = math.Max(m, s.value), true
		}
	}
	return m, found
}

// checklist turns the reference's verification checklist into rows.
func checklist(all []series, corr string) []checkRow {
	var rows []checkRow
	nonZero := func(name, what string) {
		v, _ := sum(all, name, nil)
		rows = append(rows, checkRow{name: name, ok: v > 0, detail: fmt.Sprintf("%s: %g", what, v)})
	}
	nonZero(telemetry.Series(telemetry.MetricTasksRequests), "task requests")
	nonZero(telemetry.Series(telemetry.MetricStepsEnqueued), "steps enqueued")
	nonZero(telemetry.Series(telemetry.MetricStepResultsProcessed), "results processed")
	nonZero(telemetry.Series(telemetry.MetricTasksCompletions), "tasks completed")
	nonZero(telemetry.Series(telemetry.MetricTaskInitDuration), "initializations in the histogram")
	nonZero(telemetry.Series(telemetry.MetricStepsExecutions), "step executions")
	nonZero(telemetry.Series(telemetry.MetricStepsSuccesses), "step successes")
	nonZero(telemetry.Series(telemetry.MetricStepsClaimed), "claims")
	nonZero(telemetry.Series(telemetry.MetricStepsResultsSubmitted), "results submitted")
	nonZero(telemetry.Series(telemetry.MetricStepExecutionDuration), "executions in the histogram")

	state, found := sum(all, telemetry.Series(telemetry.MetricAPICircuitBreakerState), nil)
	rows = append(rows, checkRow{name: telemetry.Series(telemetry.MetricAPICircuitBreakerState), ok: found && state == 0, detail: map[bool]string{true: fmt.Sprintf("state %g (0 closed, 1 half-open, 2 open)", state), false: "not reported"}[found]})
	usage, found := maxOf(all, telemetry.Series(telemetry.MetricChannelUsagePercent))
	rows = append(rows, checkRow{name: telemetry.Series(telemetry.MetricChannelUsagePercent), ok: found && usage < 80, detail: map[bool]string{true: fmt.Sprintf("highest channel at %.1f%% (must stay under 80%%)", usage), false: "not reported"}[found]})
	claims, _ := sum(all, telemetry.Series(telemetry.MetricStepsClaimed), nil)
	full, _ := sum(all, telemetry.Series(telemetry.MetricChannelFullEvents), nil)
	rows = append(rows, checkRow{name: telemetry.Series(telemetry.MetricChannelFullEvents), ok: full <= math.Max(1, claims/100), detail: fmt.Sprintf("%g full events for %g claims (at most 1%%)", full, claims)})
	execs, _ := sum(all, telemetry.Series(telemetry.MetricStepsExecutions), nil)
	slow, _ := sum(all, telemetry.Series(telemetry.MetricFFISlowSends), nil)
	rows = append(rows, checkRow{name: telemetry.Series(telemetry.MetricFFISlowSends), ok: slow <= math.Max(1, execs/100), detail: fmt.Sprintf("%g slow sends for %g executions (at most 1%%)", slow, execs)})

	withCorr := 0
	for _, s := range all {
		if s.name == telemetry.Series(telemetry.MetricTasksRequests) && s.labels[telemetry.LabelCorrelationID] != "" {
			withCorr++
		}
	}
	rows = append(rows, checkRow{name: "correlation_id labels", ok: withCorr > 0, detail: fmt.Sprintf("%d request series carry correlation_id", withCorr)})

	have := map[string]bool{}
	for _, s := range all {
		have[s.name] = true
	}
	var missing []string
	for _, m := range telemetry.Catalog {
		for _, s := range m.Series {
			if !have[s] {
				missing = append(missing, s)
			}
		}
	}
	detail := fmt.Sprintf("all %d catalog metrics present", len(telemetry.Catalog))
	if len(missing) > 0 {
		detail = "missing: " + strings.Join(missing, ", ")
	}
	// Counters appear once their event has happened, so on a young system this row only
	// informs, unless --strict asks for every series.
	rows = append(rows, checkRow{name: "catalog coverage", ok: len(missing) == 0, detail: detail, info: true})

	if corr != "" {
		rows = append(rows, flowRow(all, corr))
	}
	return rows
}

// flowRow checks the reference's flow invariant for one correlation id.
func flowRow(all []series, corr string) checkRow {
	by := map[string]string{telemetry.LabelCorrelationID: corr}
	get := func(name string) float64 { v, _ := sum(all, name, by); return v }
	req, enq := get(telemetry.Series(telemetry.MetricTasksRequests)), get(telemetry.Series(telemetry.MetricStepsEnqueued))
	exe, suc := get(telemetry.Series(telemetry.MetricStepsExecutions)), get(telemetry.Series(telemetry.MetricStepsSuccesses))
	sub, pro := get(telemetry.Series(telemetry.MetricStepsResultsSubmitted)), get(telemetry.Series(telemetry.MetricStepResultsProcessed))
	done := get(telemetry.Series(telemetry.MetricTasksCompletions))
	ok := req == 1 && enq > 0 && exe == enq && suc == enq && sub == enq && pro == enq && done == 1
	return checkRow{name: "flow " + corr, ok: ok, detail: fmt.Sprintf("requests %g → enqueued %g → executions %g → successes %g → submitted %g → processed %g → completions %g",
		req, enq, exe, suc, sub, pro, done)}
}
