package load

import (
	"fmt"
	"strconv"
	"strings"
)

// Threshold is one pass/fail check on a run's figures, k6 style: "p99<500ms", "errors<1%".
type Threshold struct {
	Expr   string
	metric string
	op     string
	value  float64 // ms for latencies, percent for errors and misses
}

// thresholdMetrics are the figures a threshold can name, with the unit they take.
var thresholdMetrics = map[string]string{
	"p50": "ms", "p90": "ms", "p99": "ms", "p99.9": "ms", "max": "ms", "mean": "ms",
	"errors": "%", "misses": "%",
}

// ParseThresholds reads a comma-separated list of checks.
func ParseThresholds(spec string) ([]Threshold, error) {
	var out []Threshold
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		t, err := parseThreshold(part)
		if err != nil {
			return nil, fmt.Errorf("--threshold %q: %w", part, err)
		}
		out = append(out, t)
	}
	return out, nil
}

func parseThreshold(expr string) (Threshold, error) {
	i := strings.IndexAny(expr, "<>")
	if i <= 0 {
		return Threshold{}, fmt.Errorf("must be METRIC<VALUE or METRIC>VALUE, e.g. p99<500ms or errors<1%%")
	}
	t := Threshold{Expr: expr, metric: strings.TrimSpace(expr[:i]), op: expr[i : i+1]}
	rest := expr[i+1:]
	if strings.HasPrefix(rest, "=") {
		t.op += "="
		rest = rest[1:]
	}
	unit, ok := thresholdMetrics[t.metric]
	if !ok {
		return t, fmt.Errorf("unknown metric %q: use p50, p90, p99, p99.9, max, mean, errors or misses", t.metric)
	}
	v, err := parseThresholdValue(strings.TrimSpace(rest), unit)
	if err != nil {
		return t, err
	}
	t.value = v
	return t, nil
}

func parseThresholdValue(s, unit string) (float64, error) {
	scale := 1.0
	switch {
	case unit == "%" && strings.HasSuffix(s, "%"):
		s = strings.TrimSuffix(s, "%")
	case unit == "ms" && strings.HasSuffix(s, "ms"):
		s = strings.TrimSuffix(s, "ms")
	case unit == "ms" && strings.HasSuffix(s, "s"):
		s, scale = strings.TrimSuffix(s, "s"), 1000
	default:
		return 0, fmt.Errorf("value %q: must end in %s", s, map[string]string{"%": "%", "ms": "ms or s"}[unit])
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("value %q: must be a non-negative number", s)
	}
	return v * scale, nil
}

// errorPercent is the share of the measured window's arrivals that went wrong: refused by
// the API, lost, or ended in a state other than complete.
func errorPercent(r *Result) float64 {
	var bad int64
	for _, n := range r.HTTPErrors {
		bad += n
	}
	for state, n := range r.FinalStates {
		if state != "complete" {
			bad += n
		}
	}
	bad += int64(len(r.Unfinished))
	total := r.Created + sum(r.HTTPErrors)
	if total == 0 {
		return 0
	}
	return 100 * float64(bad) / float64(total)
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// evaluate checks t against the run's figures.
func (t Threshold) evaluate(r *Result) ThresholdResult {
	var actual float64
	switch t.metric {
	case "p50":
		actual = r.Overall.P50
	case "p90":
		actual = r.Overall.P90
	case "p99":
		actual = r.Overall.P99
	case "p99.9":
		actual = r.Overall.P999
	case "max":
		actual = r.Overall.Max
	case "mean":
		actual = r.Overall.Mean
	case "errors":
		actual = errorPercent(r)
	case "misses":
		if r.Arrivals > 0 {
			actual = 100 * float64(r.Missed) / float64(r.Arrivals)
		}
	}
	var ok bool
	switch t.op {
	case "<":
		ok = actual < t.value
	case "<=":
		ok = actual <= t.value
	case ">":
		ok = actual > t.value
	case ">=":
		ok = actual >= t.value
	}
	return ThresholdResult{Expr: t.Expr, Actual: actual, Passed: ok}
}
