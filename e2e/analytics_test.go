package e2e

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
)

// analyticsWorkload runs 5 linear tasks (4 steps each, all complete) and 2
// retry_exhaustion_test tasks (1 step that errors; the tasks end blocked_by_failures).
func analyticsWorkload(t *testing.T, env *harness.Env) {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	var ids []string
	for i := range 7 {
		req := request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2 * (i + 1)})
		if i >= 5 {
			req = request("rust_e2e_retry", "retry_exhaustion_test", map[string]any{})
		}
		created, err := env.Client.CreateTask(ctx, req)
		require.NoError(t, err)
		ids = append(ids, created.TaskUUID)
	}
	for i, id := range ids {
		done, err := env.Client.WaitTask(ctx, id)
		require.NoError(t, err)
		want := "complete"
		if i >= 5 {
			want = "blocked_by_failures"
		}
		require.Equal(t, want, done.Status)
	}
}

func TestAnalytics(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastRetryOptions())
	ctx := ctxFor(t, 30*time.Second)

	empty, err := env.Client.Performance(ctx, -1)
	require.NoError(t, err)
	require.Zero(t, empty.TotalTasks)
	require.Zero(t, empty.CompletionRate)
	require.InDelta(t, 1.0, empty.SystemHealthScore, 0, "no recent task: a healthy score, as core")
	none, err := env.Client.Bottlenecks(ctx, 0, 0)
	require.NoError(t, err)
	require.NotNil(t, none.SlowSteps)
	require.NotNil(t, none.SlowTasks)
	require.NotNil(t, none.Recommendations)

	analyticsWorkload(t, env)
	t.Run("performance", func(t *testing.T) { checkPerformance(t, env) })
	t.Run("bottlenecks", func(t *testing.T) { checkBottlenecks(t, env) })
	t.Run("bad parameters", func(t *testing.T) { checkAnalyticsParameters(t, env) })
}

func checkPerformance(t *testing.T, env *harness.Env) {
	ctx := ctxFor(t, 30*time.Second)
	m, err := env.Client.Performance(ctx, -1)
	require.NoError(t, err)
	require.Equal(t, int64(7), m.TotalTasks)
	require.Equal(t, int64(0), m.ActiveTasks, "blocked_by_failures tasks wait for an operator: not active")
	require.Equal(t, int64(5), m.CompletedTasks)
	require.Equal(t, int64(2), m.FailedTasks)
	require.InDelta(t, 71.43, m.CompletionRate, 1e-9)
	require.InDelta(t, 28.57, m.ErrorRate, 1e-9)
	require.EqualValues(t, 0, m.TasksPerHour, "7 tasks in 24 hours, rounded")
	require.EqualValues(t, 1, m.StepsPerHour, "22 steps in 24 hours, rounded")
	require.InDelta(t, 0.714, m.SystemHealthScore, 1e-9)
	require.Positive(t, m.AverageTaskDurationSeconds)
	require.Positive(t, m.AverageStepDurationSeconds)
	require.InDelta(t, 24*time.Hour, m.CalculatedAt.Sub(m.AnalysisPeriodStart), float64(time.Second))

	for _, hours := range []int{0, 1} {
		m, err := env.Client.Performance(ctx, hours)
		require.NoError(t, err)
		require.EqualValues(t, 7, m.TasksPerHour, "hours=%d", hours)
		require.EqualValues(t, 22, m.StepsPerHour, "hours=%d", hours)
		require.InDelta(t, time.Hour, m.CalculatedAt.Sub(m.AnalysisPeriodStart), float64(time.Second), "0 means 1 hour")
	}
}

func checkBottlenecks(t *testing.T, env *harness.Env) {
	ctx := ctxFor(t, 30*time.Second)
	b, err := env.Client.Bottlenecks(ctx, 100, 1)
	require.NoError(t, err)
	require.Len(t, b.SlowSteps, 5, "four linear steps and always_fail")
	require.True(t, slices.IsSortedFunc(b.SlowSteps, func(x, y api.SlowStep) int {
		return cmp.Compare(y.AverageDurationSeconds, x.AverageDurationSeconds)
	}), "slowest first")
	for _, s := range b.SlowSteps {
		require.NotNil(t, s.LastExecutedAt)
		require.Equal(t, "1.0.0", s.Version)
		if s.StepName == "always_fail" {
			require.Equal(t, api.SlowStep{NamespaceName: "rust_e2e_retry", TaskName: "retry_exhaustion_test", Version: "1.0.0",
				StepName: "always_fail", ExecutionCount: 2, ErrorCount: 2, ErrorRate: 1}, zeroTimes(s))
			continue
		}
		require.Equal(t, "mathematical_sequence", s.TaskName)
		require.Equal(t, int64(5), s.ExecutionCount)
		require.Zero(t, s.ErrorCount)
		require.Positive(t, s.AverageDurationSeconds)
		require.GreaterOrEqual(t, s.MaxDurationSeconds, s.AverageDurationSeconds)
	}
	require.Len(t, b.SlowTasks, 2)
	for _, s := range b.SlowTasks {
		switch s.TaskName {
		case "mathematical_sequence":
			require.Equal(t, []any{int64(5), 4.0, int64(0), 0.0}, []any{s.ExecutionCount, s.AverageStepCount, s.ErrorCount, s.ErrorRate})
		default:
			require.Equal(t, []any{int64(2), 1.0, int64(2), 1.0}, []any{s.ExecutionCount, s.AverageStepCount, s.ErrorCount, s.ErrorRate})
		}
	}
	h := b.ResourceUtilization.SystemHealth
	require.Equal(t, api.SystemHealthCounts{CompleteTasks: 5, BlockedByFailuresTasks: 2, TotalTasks: 7,
		CompleteSteps: 20, ErrorSteps: 2, TotalSteps: 22}, h)
	require.GreaterOrEqual(t, b.ResourceUtilization.DatabasePoolUtilization, 0.0)
	require.LessOrEqual(t, b.ResourceUtilization.DatabasePoolUtilization, 1.0)
	require.Contains(t, b.Recommendations, "High error rate detected (100.0%). Review error handling and retry logic.")

	def, err := env.Client.Bottlenecks(ctx, 0, 0)
	require.NoError(t, err)
	require.Len(t, def.SlowSteps, 4, "min_executions defaults to 5: always_fail ran twice")
	require.Len(t, def.SlowTasks, 1)
	require.Empty(t, def.Recommendations)
	one, err := env.Client.Bottlenecks(ctx, 1, 1)
	require.NoError(t, err)
	require.Len(t, one.SlowSteps, 1)
	require.Equal(t, b.SlowSteps[0], one.SlowSteps[0])
}

func checkAnalyticsParameters(t *testing.T, env *harness.Env) {
	ctx := ctxFor(t, 30*time.Second)
	for _, hours := range []int{8761, 100000} {
		_, err := env.Client.Performance(ctx, hours)
		require.True(t, strings.HasPrefix(requireAPIError(t, err, http.StatusBadRequest, api.CodeBadRequest), "hours: "))
	}
	for _, tc := range []struct{ limit, minExec int }{{101, 1}, {-1, 1}, {10, -3}} {
		_, err := env.Client.Bottlenecks(ctx, tc.limit, tc.minExec)
		field := "limit: "
		if tc.limit > 0 && tc.limit <= 100 {
			field = "min_executions: "
		}
		require.True(t, strings.HasPrefix(requireAPIError(t, err, http.StatusBadRequest, api.CodeBadRequest), field))
	}
	base := env.Orchestrators[0].URL()
	for query, field := range map[string]string{
		"/v1/analytics/performance?hours=-1":           "hours: ",
		"/v1/analytics/performance?hours=abc":          "hours: ",
		"/v1/analytics/bottlenecks?limit=0":            "limit: ",
		"/v1/analytics/bottlenecks?limit=ten":          "limit: ",
		"/v1/analytics/bottlenecks?min_executions=0":   "min_executions: ",
		"/v1/analytics/bottlenecks?min_executions=1.5": "min_executions: ",
	} {
		status, body := rawJSON(t, base+query, "")
		require.Equal(t, http.StatusBadRequest, status, query)
		e, _ := body["error"].(map[string]any)
		require.Equal(t, api.CodeBadRequest, e["code"], query)
		msg, _ := e["message"].(string)
		require.True(t, strings.HasPrefix(msg, field), "%s: %s", query, msg)
	}
}

// zeroTimes clears what a test cannot predict: durations and times.
func zeroTimes(s api.SlowStep) api.SlowStep {
	s.AverageDurationSeconds, s.MaxDurationSeconds, s.LastExecutedAt = 0, 0, nil
	return s
}
