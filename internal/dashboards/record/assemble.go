package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tasker-sim/tasker-sim/internal/dashboards/fixture"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// flowMetrics are the counters of one task's flow, in the order the task goes through
// them: requests 1 → enqueued N → executions N → successes N → submitted N → processed N
// → completions 1 (as `taskerctl verify --correlation-id` checks it).
var flowMetrics = []string{telemetry.MetricTasksRequests, telemetry.MetricStepsEnqueued, telemetry.MetricStepsExecutions,
	telemetry.MetricStepsSuccesses, telemetry.MetricStepsResultsSubmitted, telemetry.MetricStepResultsProcessed,
	telemetry.MetricTasksCompletions}

// keepIDs is how many tasks keep their correlation_id label.
const keepIDs = 2

// pickCorrelationIDs chooses, from the last round, tasks whose flow is complete: the one
// with the most steps, then one of another task type. Ties go to the smaller id, so a
// re-run over the same rounds picks the same tasks.
func pickCorrelationIDs(last round, targets []target) ([]string, error) {
	flows := map[string][]float64{}
	taskType := map[string]string{}
	for i, body := range last.bodies {
		samples, err := parse(body, targets[i])
		if err != nil {
			return nil, err
		}
		for _, s := range samples {
			id := s.labels[telemetry.LabelCorrelationID]
			step := slices.IndexFunc(flowMetrics, func(m string) bool { return telemetry.Series(m) == s.name })
			if id == "" || step < 0 {
				continue
			}
			if flows[id] == nil {
				flows[id] = make([]float64, len(flowMetrics))
			}
			flows[id][step] += s.value
			if t := s.labels[telemetry.LabelTaskType]; t != "" {
				taskType[id] = t
			}
		}
	}
	var complete []string
	for id, f := range flows {
		if completeFlow(f) {
			complete = append(complete, id)
		}
	}
	sort.Slice(complete, func(i, j int) bool {
		a, b := flows[complete[i]][1], flows[complete[j]][1]
		return a > b || a == b && complete[i] < complete[j]
	})
	keep := choose(complete, taskType)
	if len(keep) < keepIDs {
		return nil, fmt.Errorf("found %d tasks with a complete flow among %d correlation ids, need %d", len(complete), len(flows), keepIDs)
	}
	return keep, nil
}

// completeFlow is flowRow's invariant of internal/cli/verify.go.
func completeFlow(f []float64) bool {
	n := f[1]
	return f[0] == 1 && n > 0 && f[2] == n && f[3] == n && f[4] == n && f[5] == n && f[6] == 1
}

// choose takes the first id, then the first of another task type (else the next one).
func choose(ranked []string, taskType map[string]string) []string {
	if len(ranked) == 0 {
		return nil
	}
	keep := []string{ranked[0]}
	for _, id := range ranked[1:] {
		if taskType[id] != taskType[keep[0]] {
			return append(keep, id)
		}
	}
	if len(ranked) > 1 {
		keep = append(keep, ranked[1])
	}
	return keep
}

// tabulate reads every round into series of the catalog, dropping the correlation_id
// label except for the kept tasks and summing the series that then coincide.
func tabulate(rounds []round, targets []target, keep []string) ([]int64, []fixture.Series, error) {
	catalog := map[string]bool{}
	for _, m := range telemetry.Catalog {
		for _, s := range m.Series {
			catalog[s] = true
		}
	}
	table := map[string]*fixture.Series{}
	stamps := make([]int64, len(rounds))
	for i, r := range rounds {
		stamps[i] = r.at.UnixMilli()
		for j, body := range r.bodies {
			samples, err := parse(body, targets[j])
			if err != nil {
				return nil, nil, fmt.Errorf("round %d: %w", i, err)
			}
			for _, s := range samples {
				if catalog[s.name] {
					add(table, s, keep, i, len(rounds))
				}
			}
		}
	}
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]fixture.Series, 0, len(keys))
	for _, k := range keys {
		out = append(out, *table[k])
	}
	return stamps, out, nil
}

func add(table map[string]*fixture.Series, s sample, keep []string, round, rounds int) {
	labels := with(s.labels, "__name__", s.name) // a copy, safe to change
	if id, ok := labels[telemetry.LabelCorrelationID]; ok && !slices.Contains(keep, id) {
		delete(labels, telemetry.LabelCorrelationID)
	}
	key := canonical(labels)
	row := table[key]
	if row == nil {
		row = &fixture.Series{Labels: labels, Values: make([]*float64, rounds)}
		table[key] = row
	}
	if row.Values[round] == nil {
		row.Values[round] = new(float64)
	}
	*row.Values[round] += s.value
}

func canonical(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q,", k, labels[k])
	}
	return b.String()
}
