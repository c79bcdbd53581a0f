package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
)

// Analytics are computed on each request from the audit tables, uncached; every query is
// bounded by its window on tasks.created_at (idx_tasks_created_at) and reaches steps and
// transitions through their task and step keys, except the state counts (healthCounts),
// which read every current transition.

// The query parameters' defaults and bounds, as tasker-core's where it has them.
const (
	defaultAnalyticsHours   = 24
	maxAnalyticsHours       = 8760 // a year
	defaultBottleneckLimit  = 10
	maxBottleneckLimit      = 100
	defaultMinExecutions    = 5
	maxMinExecutions        = math.MaxInt32
	bottleneckWindow        = 24 * time.Hour
	healthScoreWindow       = time.Hour
	highErrorRateThreshold  = 0.2
	highPoolUseThreshold    = 0.8
	slowStepThresholdSecond = 30.0
)

// analyticsRoutes registers the analytics routes of tasker-core's API.
func (o *Orchestrator) analyticsRoutes(route routeFunc) {
	route("GET", "/v1/analytics/performance", o.handlePerformance)
	route("GET", "/v1/analytics/bottlenecks", o.handleBottlenecks)
}

// analyticsParam reads an integer query parameter: def when absent, else a value in
// [lo, hi]. A bad value gives a message naming the parameter.
func analyticsParam(r *http.Request, name string, def, lo, hi int) (int, string) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, ""
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Sprintf("%s: must be an integer from %d to %d", name, lo, hi)
	}
	return n, ""
}

// handlePerformance answers GET /v1/analytics/performance?hours= (default 24; 0 means 1,
// as in tasker-core).
func (o *Orchestrator) handlePerformance(w http.ResponseWriter, r *http.Request) {
	hours, msg := analyticsParam(r, "hours", defaultAnalyticsHours, 0, maxAnalyticsHours)
	if msg != "" {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, msg+" (0 means 1)")
		return
	}
	m, err := o.Performance(r.Context(), max(hours, 1))
	o.answer(w, r, m, err)
}

// handleBottlenecks answers GET /v1/analytics/bottlenecks?limit=&min_executions= over the
// tasks created in the last 24 hours.
func (o *Orchestrator) handleBottlenecks(w http.ResponseWriter, r *http.Request) {
	limit, msg := analyticsParam(r, "limit", defaultBottleneckLimit, 1, maxBottleneckLimit)
	if msg == "" {
		var minExec int
		minExec, msg = analyticsParam(r, "min_executions", defaultMinExecutions, 1, maxMinExecutions)
		if msg == "" {
			b, err := o.Bottlenecks(r.Context(), limit, minExec)
			o.answer(w, r, b, err)
			return
		}
	}
	writeError(w, http.StatusBadRequest, api.CodeBadRequest, msg)
}

// analyticsRound rounds x to places decimal places.
func analyticsRound(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

// analyticsRatio returns n/d, or 0 when d is 0.
func analyticsRatio(n, d int64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// The duration expressions the analytics queries share. A task runs from its first
// transition; a step from its first enqueued transition (so retries and their backoff count).
const (
	taskStartSQL = `(SELECT f.created_at FROM tasker.task_transitions AS f
	                   WHERE f.task_uuid = t.task_uuid ORDER BY f.sort_key LIMIT 1)`
	stepStartSQL = `(SELECT min(e.created_at) FROM tasker.workflow_step_transitions AS e
	                   WHERE e.workflow_step_uuid = ws.workflow_step_uuid AND e.to_state = 'enqueued')`
	failedTaskStatesSQL = `('error', 'blocked_by_failures')`
)

// Performance computes the performance metrics of the tasks created in the last hours.
func (o *Orchestrator) Performance(ctx context.Context, hours int) (*api.PerformanceMetrics, error) {
	now := time.Now().UTC()
	m := &api.PerformanceMetrics{CalculatedAt: now, AnalysisPeriodStart: now.Add(-time.Duration(hours) * time.Hour)}
	counts, err := o.healthCounts(ctx)
	if err != nil {
		return nil, err
	}
	m.TotalTasks = counts.TotalTasks
	m.ActiveTasks = counts.TotalTasks - counts.CompleteTasks - counts.ErrorTasks - counts.CancelledTasks -
		counts.ResolvedManuallyTasks - counts.BlockedByFailuresTasks
	var inWindow, recentDone, recentFailed, steps int64
	if err := o.pool.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE tt.to_state = 'complete'),
		       count(*) FILTER (WHERE tt.to_state IN `+failedTaskStatesSQL+`),
		       count(*) FILTER (WHERE t.created_at >= $2 AND tt.to_state = 'complete'),
		       count(*) FILTER (WHERE t.created_at >= $2 AND tt.to_state IN `+failedTaskStatesSQL+`),
		       COALESCE(avg(CASE WHEN tt.to_state = 'complete'
		                    THEN EXTRACT(EPOCH FROM tt.created_at - `+taskStartSQL+`) END), 0)::float8
		  FROM tasker.tasks AS t
		  JOIN tasker.task_transitions AS tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
		 WHERE t.created_at >= $1`, m.AnalysisPeriodStart, now.Add(-healthScoreWindow)).Scan(
		&inWindow, &m.CompletedTasks, &m.FailedTasks, &recentDone, &recentFailed, &m.AverageTaskDurationSeconds); err != nil {
		return nil, err
	}
	if err := o.pool.QueryRow(ctx, `
		SELECT count(*), COALESCE(avg(CASE WHEN st.to_state = 'complete'
		                          THEN EXTRACT(EPOCH FROM st.created_at - `+stepStartSQL+`) END), 0)::float8
		  FROM tasker.tasks AS t
		  JOIN tasker.workflow_steps AS ws ON ws.task_uuid = t.task_uuid
		  JOIN tasker.workflow_step_transitions AS st ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
		 WHERE t.created_at >= $1`, m.AnalysisPeriodStart).Scan(&steps, &m.AverageStepDurationSeconds); err != nil {
		return nil, err
	}
	m.CompletionRate = analyticsRound(100*analyticsRatio(m.CompletedTasks, inWindow), 2)
	m.ErrorRate = analyticsRound(100*analyticsRatio(m.FailedTasks, inWindow), 2)
	m.TasksPerHour = int64(math.Round(float64(inWindow) / float64(hours)))
	m.StepsPerHour = int64(math.Round(float64(steps) / float64(hours)))
	m.SystemHealthScore = 1
	if recentDone+recentFailed > 0 {
		m.SystemHealthScore = analyticsRound(analyticsRatio(recentDone, recentDone+recentFailed), 3)
	}
	m.AverageTaskDurationSeconds = analyticsRound(m.AverageTaskDurationSeconds, 3)
	m.AverageStepDurationSeconds = analyticsRound(m.AverageStepDurationSeconds, 3)
	return m, nil
}

// healthCounts counts the tasks and steps in each state: one pass over each transitions
// table, counting the current rows (its cost follows the history; it serves an on-demand
// report, not the hot path).
func (o *Orchestrator) healthCounts(ctx context.Context) (api.SystemHealthCounts, error) {
	var c api.SystemHealthCounts
	byKey := map[string]int64{}
	for _, s := range lifecycle.TaskStates {
		byKey[string(s)+"_tasks"] = 0
	}
	for _, s := range lifecycle.StepStates {
		byKey[string(s)+"_steps"] = 0
	}
	rows, err := o.pool.Query(ctx, `
		SELECT to_state || '_tasks', count(*) FROM tasker.task_transitions WHERE most_recent GROUP BY to_state
		UNION ALL
		SELECT to_state || '_steps', count(*) FROM tasker.workflow_step_transitions WHERE most_recent GROUP BY to_state`)
	if err != nil {
		return c, err
	}
	var key string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&key, &n}, func() error {
		byKey[key] = n
		if len(key) > 6 && key[len(key)-6:] == "_tasks" {
			byKey["total_tasks"] += n
		} else {
			byKey["total_steps"] += n
		}
		return nil
	}); err != nil {
		return c, err
	}
	doc, err := json.Marshal(byKey)
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(doc, &c)
}

// Bottlenecks finds the slowest template steps and templates among the tasks created in
// the last 24 hours, with at least minExecutions finished executions, at most limit of each.
func (o *Orchestrator) Bottlenecks(ctx context.Context, limit, minExecutions int) (*api.BottleneckAnalysis, error) {
	since := time.Now().Add(-bottleneckWindow)
	b := &api.BottleneckAnalysis{Recommendations: []string{}}
	var err error
	if b.SlowSteps, err = o.slowSteps(ctx, since, limit, minExecutions); err != nil {
		return nil, err
	}
	if b.SlowTasks, err = o.slowTasks(ctx, since, limit, minExecutions); err != nil {
		return nil, err
	}
	if b.ResourceUtilization.SystemHealth, err = o.healthCounts(ctx); err != nil {
		return nil, err
	}
	st := o.pool.Stat()
	if st.MaxConns() > 0 {
		b.ResourceUtilization.DatabasePoolUtilization = analyticsRound(
			float64(st.AcquiredConns())/float64(st.MaxConns()), 4)
	}
	b.Recommendations = analyticsRecommendations(b)
	return b, nil
}

// slowSteps aggregates the finished (complete or error) steps of the tasks created since,
// by template step; a step's duration runs from its first enqueued transition.
func (o *Orchestrator) slowSteps(ctx context.Context, since time.Time, limit, minExecutions int) ([]api.SlowStep, error) {
	rows, err := o.pool.Query(ctx, `
		SELECT tn.name, nt.name, nt.version, ns.name,
		       COALESCE(avg(d.dur), 0)::float8, COALESCE(max(d.dur), 0)::float8,
		       count(*), count(*) FILTER (WHERE st.to_state = 'error'), max(st.created_at)
		  FROM tasker.tasks AS t
		  JOIN tasker.named_tasks AS nt ON nt.named_task_uuid = t.named_task_uuid
		  JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
		  JOIN tasker.workflow_steps AS ws ON ws.task_uuid = t.task_uuid
		  JOIN tasker.named_steps AS ns ON ns.named_step_uuid = ws.named_step_uuid
		  JOIN tasker.workflow_step_transitions AS st ON st.workflow_step_uuid = ws.workflow_step_uuid
		       AND st.most_recent AND st.to_state IN ('complete', 'error')
		 CROSS JOIN LATERAL (SELECT EXTRACT(EPOCH FROM st.created_at - `+stepStartSQL+`) AS dur) AS d
		 WHERE t.created_at >= $1
		 GROUP BY tn.name, nt.name, nt.version, ns.name
		HAVING count(*) >= $2
		 ORDER BY 5 DESC, 1, 2, 3, 4
		 LIMIT $3`, since, minExecutions, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.SlowStep, error) {
		var s api.SlowStep
		err := row.Scan(&s.NamespaceName, &s.TaskName, &s.Version, &s.StepName, &s.AverageDurationSeconds,
			&s.MaxDurationSeconds, &s.ExecutionCount, &s.ErrorCount, &s.LastExecutedAt)
		s.AverageDurationSeconds = analyticsRound(s.AverageDurationSeconds, 3)
		s.MaxDurationSeconds = analyticsRound(s.MaxDurationSeconds, 3)
		s.ErrorRate = analyticsRound(analyticsRatio(s.ErrorCount, s.ExecutionCount), 4)
		return s, err
	})
}

// slowTasks aggregates the finished (complete, error or blocked_by_failures) tasks created
// since, by template; a task's duration runs from its first transition to its last.
func (o *Orchestrator) slowTasks(ctx context.Context, since time.Time, limit, minExecutions int) ([]api.SlowTask, error) {
	rows, err := o.pool.Query(ctx, `
		SELECT tn.name, nt.name, nt.version,
		       COALESCE(avg(d.dur), 0)::float8, COALESCE(max(d.dur), 0)::float8, count(*),
		       avg(d.steps)::float8, count(*) FILTER (WHERE tt.to_state IN `+failedTaskStatesSQL+`),
		       max(tt.created_at)
		  FROM tasker.tasks AS t
		  JOIN tasker.named_tasks AS nt ON nt.named_task_uuid = t.named_task_uuid
		  JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
		  JOIN tasker.task_transitions AS tt ON tt.task_uuid = t.task_uuid AND tt.most_recent
		       AND tt.to_state IN ('complete', 'error', 'blocked_by_failures')
		 CROSS JOIN LATERAL (
		       SELECT EXTRACT(EPOCH FROM tt.created_at - `+taskStartSQL+`) AS dur,
		              (SELECT count(*) FROM tasker.workflow_steps AS s WHERE s.task_uuid = t.task_uuid) AS steps) AS d
		 WHERE t.created_at >= $1
		 GROUP BY tn.name, nt.name, nt.version
		HAVING count(*) >= $2
		 ORDER BY 4 DESC, 1, 2, 3
		 LIMIT $3`, since, minExecutions, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.SlowTask, error) {
		var s api.SlowTask
		err := row.Scan(&s.NamespaceName, &s.TaskName, &s.Version, &s.AverageDurationSeconds, &s.MaxDurationSeconds,
			&s.ExecutionCount, &s.AverageStepCount, &s.ErrorCount, &s.LastExecutedAt)
		s.AverageDurationSeconds = analyticsRound(s.AverageDurationSeconds, 3)
		s.MaxDurationSeconds = analyticsRound(s.MaxDurationSeconds, 3)
		s.AverageStepCount = analyticsRound(s.AverageStepCount, 2)
		s.ErrorRate = analyticsRound(analyticsRatio(s.ErrorCount, s.ExecutionCount), 4)
		return s, err
	})
}

// analyticsRecommendations applies tasker-core's three rules: a slow step erring more than 20% of
// the time, a pool more than 80% in use, and a slowest step averaging over 30 s.
func analyticsRecommendations(b *api.BottleneckAnalysis) []string {
	out := []string{}
	highest := 0.0
	for _, s := range b.SlowSteps {
		highest = max(highest, s.ErrorRate)
	}
	if highest > highErrorRateThreshold {
		out = append(out, fmt.Sprintf("High error rate detected (%.1f%%). Review error handling and retry logic.",
			highest*100))
	}
	if u := b.ResourceUtilization.DatabasePoolUtilization; u > highPoolUseThreshold {
		out = append(out, fmt.Sprintf(
			"Database pool utilization is high (%.0f%%). Consider increasing pool size or optimizing queries.", u*100))
	}
	if len(b.SlowSteps) > 0 && b.SlowSteps[0].AverageDurationSeconds > slowStepThresholdSecond {
		s := b.SlowSteps[0]
		out = append(out, fmt.Sprintf("Step '%s/%s@%s::%s' averages %.1fs. Consider optimization or timeout adjustment.",
			s.NamespaceName, s.TaskName, s.Version, s.StepName, s.AverageDurationSeconds))
	}
	return out
}
