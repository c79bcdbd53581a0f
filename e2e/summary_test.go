package e2e

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
)

// TestTaskSummary checks GET /v1/tasks/{uuid}/summary on a completed linear task, on a
// retry_exhaustion_test task left blocked_by_failures, on a task with a pending DLQ entry,
// and on an unknown and a malformed uuid.
func TestTaskSummary(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastRetryOptions())
	ctx := ctxFor(t, time.Minute)
	linear := summaryRun(t, ctx, env, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2}), "complete")
	summaryLinear(t, ctx, env, linear)
	failed := summaryRun(t, ctx, env, request("rust_e2e_retry", "retry_exhaustion_test", map[string]any{}), "blocked_by_failures")
	summaryFailed(t, ctx, env, failed)
	summaryDlq(t, ctx, env, linear)

	_, err := env.Client.TaskSummary(ctx, uuid.NewString())
	requireAPIError(t, err, http.StatusNotFound, api.CodeNotFound)
	_, err = env.Client.TaskSummary(ctx, "not-a-uuid")
	msg := requireAPIError(t, err, http.StatusBadRequest, api.CodeInvalidUUID)
	require.Contains(t, msg, "not-a-uuid")

	cfg, err := env.Client.Config(ctx)
	require.NoError(t, err)
	require.False(t, cfg.Auth.Enabled, "no token configured")
	require.Equal(t, "none", cfg.Auth.VerificationMethod)
}

// summaryRun creates a task, waits for it to settle in state want, and returns its uuid.
func summaryRun(t *testing.T, ctx context.Context, env *harness.Env, req *api.TaskRequest, want string) string {
	t.Helper()
	created, done := runTask(ctx, t, env, req)
	require.Equal(t, want, done.Status)
	return created.TaskUUID
}

// summaryLinear checks the summary of a completed mathematical_sequence task against GET
// /v1/tasks/{uuid} and its template.
func summaryLinear(t *testing.T, ctx context.Context, env *harness.Env, id string) {
	t.Helper()
	s, err := env.Client.TaskSummary(ctx, id)
	require.NoError(t, err)
	task, err := env.Client.GetTask(ctx, id)
	require.NoError(t, err)
	got := s.Task
	require.Equal(t, []string{task.TaskUUID, task.Name, task.Namespace, task.Version, task.CorrelationID, task.Initiator,
		task.SourceSystem, task.Reason}, []string{got.TaskUUID, got.Name, got.Namespace, got.Version, got.CorrelationID,
		got.Initiator, got.SourceSystem, got.Reason})
	require.Equal(t, "complete", got.Status)
	require.Equal(t, []int{4, 0, 0, 4, 0}, []int{got.TotalSteps, got.PendingSteps, got.InProgressSteps,
		got.CompletedSteps, got.FailedSteps})
	require.InDelta(t, 100.0, got.CompletionPct, 0)
	require.Equal(t, "healthy", got.HealthStatus)
	require.Equal(t, task.ExecutionStatus, got.ExecutionStatus)
	require.NotNil(t, got.RecommendedAction)
	require.Equal(t, task.RecommendedAction, *got.RecommendedAction)
	require.NotNil(t, got.CompletedAt, "a finished task has completed_at")

	require.Len(t, s.Template.Steps, 4)
	require.Equal(t, api.SummaryTemplateStep{Name: "linear_step_1", StepType: "standard",
		Handler: "math.square_even_number", Dependencies: []string{}, Retryable: true, MaxAttempts: 3}, s.Template.Steps[0])
	require.Equal(t, api.SummaryTemplateStep{Name: "linear_step_4", StepType: "standard",
		Handler: "math.square_parent_product", Dependencies: []string{"linear_step_3"}, Retryable: true, MaxAttempts: 3},
		s.Template.Steps[3])

	require.Len(t, s.Steps, 4)
	for i, st := range s.Steps {
		require.Equal(t, "linear_step_"+string(rune('1'+i)), st.Name, "steps in creation order")
		require.Equal(t, "complete", st.CurrentState)
		require.Equal(t, 1, st.Attempts)
		require.Equal(t, 3, st.MaxAttempts)
		require.True(t, st.DependenciesSatisfied)
		require.NotNil(t, st.CreatedAt)
		require.NotNil(t, st.CompletedAt)
		require.NotNil(t, st.LastAttemptedAt)
		require.Nil(t, st.Error, "a step that succeeded has no error")
	}
	require.Equal(t, api.DlqSummary{}, s.Dlq)
	require.Equal(t, api.SummaryLinks{Task: "/v1/tasks/" + id, Steps: "/v1/tasks/" + id + "/workflow_steps",
		Dlq: "/v1/dlq"}, s.Links)
}

// summaryFailed checks the summary of a retry_exhaustion_test task: its one step ran out
// of attempts, and its error block classifies the last failure.
func summaryFailed(t *testing.T, ctx context.Context, env *harness.Env, id string) {
	t.Helper()
	s, err := env.Client.TaskSummary(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "blocked_by_failures", s.Task.Status)
	require.Equal(t, "blocked_by_failures", s.Task.ExecutionStatus)
	require.Equal(t, "blocked", s.Task.HealthStatus)
	require.NotNil(t, s.Task.RecommendedAction)
	require.Equal(t, "handle_failures", *s.Task.RecommendedAction)
	require.Equal(t, []int{1, 0, 1}, []int{s.Task.TotalSteps, s.Task.CompletedSteps, s.Task.FailedSteps})
	require.Nil(t, s.Task.CompletedAt, "blocked_by_failures is not terminal")
	require.Equal(t, []api.SummaryTemplateStep{{Name: "always_fail", StepType: "standard", Handler: "test.fail_n_times",
		Dependencies: []string{}, Retryable: true, MaxAttempts: 3}}, s.Template.Steps)

	require.Len(t, s.Steps, 1)
	st := s.Steps[0]
	require.Equal(t, "always_fail", st.Name)
	require.Equal(t, "error", st.CurrentState)
	require.Equal(t, 3, st.Attempts)
	require.False(t, st.RetryEligible, "out of attempts")
	require.Nil(t, st.CompletedAt)
	require.NotNil(t, st.Error, "the failed step's error block")
	require.NotNil(t, st.Error.ErrorType)
	require.Equal(t, "PlannedFailure", *st.Error.ErrorType)
	require.True(t, st.Error.Retryable)
	require.Nil(t, st.Error.StatusCode, "the handler called no HTTP API")
	require.False(t, s.Dlq.InDlq)
}

// summaryDlq files a pending DLQ entry for a task and checks that the summary shows it in
// snake_case, and that a resolved entry no longer counts.
func summaryDlq(t *testing.T, ctx context.Context, env *harness.Env, id string) {
	t.Helper()
	_, err := env.Pool.Exec(ctx, `INSERT INTO tasker.tasks_dlq (task_uuid, original_state, dlq_reason, task_snapshot)
		VALUES ($1, 'steps_in_process', 'staleness_timeout', '{}')`, id)
	require.NoError(t, err)
	s, err := env.Client.TaskSummary(ctx, id)
	require.NoError(t, err)
	require.True(t, s.Dlq.InDlq)
	require.NotNil(t, s.Dlq.DlqReason)
	require.Equal(t, "staleness_timeout", *s.Dlq.DlqReason, "snake_case, unlike the DLQ routes")
	require.NotNil(t, s.Dlq.ResolutionStatus)
	require.Equal(t, "pending", *s.Dlq.ResolutionStatus)

	_, err = env.Pool.Exec(ctx, `UPDATE tasker.tasks_dlq SET resolution_status = 'manually_resolved' WHERE task_uuid = $1`, id)
	require.NoError(t, err)
	s, err = env.Client.TaskSummary(ctx, id)
	require.NoError(t, err)
	require.Equal(t, api.DlqSummary{}, s.Dlq, "only a pending entry puts the task in the DLQ")
}

// TestConfigEndpoint checks GET /config behind a bearer token: tasker-core's shape, the
// breaker and pool settings the orchestrator runs with, and no secret in the body.
func TestConfigEndpoint(t *testing.T) {
	t.Parallel()
	const token = "c0nfig-t0ken-n0t-t0-be-sh0wn"
	opts := fastOptions()
	opts.Orchestrator = func(_ int, c *orchestrator.Config) {
		c.AuthToken = token
		c.MaxConns = 12
		c.WebBreaker = resilience.BreakerConfig{FailureThreshold: 7, OpenTimeout: 45 * time.Second, SuccessThreshold: 3}
	}
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 20*time.Second)

	_, err := env.Client.Config(ctx)
	requireAPIError(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
	cfg, err := env.Client.WithToken(token).Config(ctx)
	require.NoError(t, err)
	require.Equal(t, api.SafeAuthConfig{Enabled: true, VerificationMethod: "bearer_token", APIKeyHeader: "X-API-Key",
		AllowedAlgorithms: []string{}}, cfg.Auth)
	require.Equal(t, api.SafeBreakerConfig{Enabled: true, FailureThreshold: 7, TimeoutSeconds: 45, SuccessThreshold: 3},
		cfg.CircuitBreakers)
	require.Equal(t, api.SafeDatabasePools{WebAPIPoolSize: 12, WebAPIMaxConnections: 12}, cfg.DatabasePools)
	require.Equal(t, "Hybrid", cfg.DeploymentMode)
	require.Equal(t, "pgmq", cfg.Messaging.Backend)
	require.ElementsMatch(t, messaging.OrchestrationQueues, cfg.Messaging.Queues)
	require.Equal(t, api.Environment(), cfg.Metadata.Environment)
	require.Equal(t, api.Version(), cfg.Metadata.Version)
	_, err = time.Parse(time.RFC3339Nano, cfg.Metadata.Timestamp)
	require.NoError(t, err)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.Orchestrators[0].URL()+"/config", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	status, body := summaryDo(t, req)
	require.Equal(t, http.StatusOK, status)
	require.NotContains(t, body, token, "the token is never shown")
	require.NotContains(t, body, env.DatabaseURL, "nor the database URL")
	require.NotContains(t, body, "postgres://")
}

// summaryDo sends req and returns the status and the body.
func summaryDo(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}
