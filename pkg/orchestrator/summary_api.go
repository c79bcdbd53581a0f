package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
)

// summaryRoutes registers GET /v1/tasks/{uuid}/summary, tasker-core's one-call view of a
// task, its template, its steps and its DLQ state, and GET /config, the orchestrator's
// configuration that is safe to show. tasker-core mounts /config only when its
// config_endpoint_enabled is set; tasker-sim always serves it, behind the bearer token.
func (o *Orchestrator) summaryRoutes(route routeFunc) {
	route("GET", "/v1/tasks/{uuid}/summary", o.handleSummary)
	route("GET", "/config", o.handleConfig)
}

// handleSummary answers GET /v1/tasks/{uuid}/summary.
func (o *Orchestrator) handleSummary(w http.ResponseWriter, r *http.Request) {
	id, ok := parseTaskUUID(w, r)
	if !ok {
		return
	}
	s, err := o.TaskSummary(r.Context(), id)
	o.answer(w, r, s, err)
}

// summaryTaskSelect reads the task part of a summary and its named task.
const summaryTaskSelect = `
	SELECT t.task_uuid::text, nt.name, tn.name, nt.version, c.status, t.created_at, t.updated_at, t.completed_at,
	       coalesce(t.initiator, ''), coalesce(t.source_system, ''), coalesce(t.reason, ''), t.correlation_id::text,
	       c.total_steps, c.pending_steps, c.in_progress_steps, c.completed_steps, c.failed_steps,
	       c.completion_percentage::float8, c.health_status, c.execution_status, c.recommended_action,
	       t.named_task_uuid
	  FROM tasker.tasks AS t
	  JOIN tasker.named_tasks AS nt ON nt.named_task_uuid = t.named_task_uuid
	  JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
	  CROSS JOIN LATERAL tasker.get_task_execution_context(t.task_uuid) AS c
	 WHERE t.task_uuid = $1`

// summaryStepSelect reads the steps of a summary in creation order, each with the error of
// its stored result (error_type, or tasker-core's key type; retryable; status_code).
const summaryStepSelect = `
	SELECT r.workflow_step_uuid::text, r.name, r.current_state, ws.created_at, ws.processed_at, ws.last_attempted_at,
	       r.attempts, r.max_attempts, r.dependencies_satisfied, r.retry_eligible,
	       jsonb_typeof(ws.results -> 'error') = 'object',
	       coalesce(ws.results -> 'error' ->> 'error_type', ws.results -> 'error' ->> 'type'),
	       CASE WHEN jsonb_typeof(ws.results -> 'error' -> 'retryable') = 'boolean'
	            THEN (ws.results -> 'error' ->> 'retryable')::boolean END,
	       CASE WHEN jsonb_typeof(ws.results -> 'error' -> 'status_code') = 'number'
	            THEN trunc((ws.results -> 'error' ->> 'status_code')::numeric)::int END
	  FROM tasker.get_step_readiness_status($1) AS r
	  JOIN tasker.workflow_steps AS ws ON ws.workflow_step_uuid = r.workflow_step_uuid
	 ORDER BY ws.created_at, ws.workflow_step_uuid`

// summaryDlqSelect reads the task's pending DLQ entry (at most one), snake_case.
const summaryDlqSelect = `
	SELECT dlq_reason, resolution_status FROM tasker.tasks_dlq
	 WHERE task_uuid = $1 AND resolution_status = 'pending'`

// TaskSummary returns tasker-core's TaskSummaryResponse of a task: the task, its steps and
// its pending DLQ entry are read in one round trip, the template from the cache.
func (o *Orchestrator) TaskSummary(ctx context.Context, id uuid.UUID) (*api.TaskSummaryResponse, error) {
	out := &api.TaskSummaryResponse{Steps: []api.StepSummary{}, Template: api.SummaryTemplate{Steps: []api.SummaryTemplateStep{}}}
	var named uuid.UUID
	found := false
	b := &pgx.Batch{}
	b.Queue(summaryTaskSelect, id).QueryRow(func(row pgx.Row) error {
		err := scanTaskSummary(row, &out.Task, &named)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	b.Queue(summaryStepSelect, id).Query(func(rows pgx.Rows) error {
		steps, err := pgx.CollectRows(rows, scanStepSummary)
		out.Steps = append(out.Steps, steps...)
		return err
	})
	b.Queue(summaryDlqSelect, id).QueryRow(func(row pgx.Row) error {
		var reason, status string
		err := row.Scan(&reason, &status)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		out.Dlq = api.DlqSummary{InDlq: err == nil, DlqReason: &reason, ResolutionStatus: &status}
		return err
	})
	if err := o.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	nt, err := o.templateByID(ctx, named)
	if err != nil {
		return nil, err
	}
	for _, s := range nt.template.Steps {
		out.Template.Steps = append(out.Template.Steps, api.SummaryTemplateStep{Name: s.Name,
			StepType: cmp.Or(string(s.Type), "standard"), Handler: cmp.Or(s.Handler.Callable, "unknown"),
			Dependencies: append([]string{}, s.Dependencies...), Retryable: s.Retry.IsRetryable(),
			MaxAttempts: s.Retry.Attempts()})
	}
	task := "/v1/tasks/" + out.Task.TaskUUID
	out.Links = api.SummaryLinks{Task: task, Steps: task + "/workflow_steps", Dlq: "/v1/dlq"}
	return out, nil
}

// scanTaskSummary reads one summaryTaskSelect row, times in UTC.
func scanTaskSummary(row pgx.Row, t *api.TaskSummary, named *uuid.UUID) error {
	err := row.Scan(&t.TaskUUID, &t.Name, &t.Namespace, &t.Version, &t.Status, &t.CreatedAt, &t.UpdatedAt,
		&t.CompletedAt, &t.Initiator, &t.SourceSystem, &t.Reason, &t.CorrelationID, &t.TotalSteps, &t.PendingSteps,
		&t.InProgressSteps, &t.CompletedSteps, &t.FailedSteps, &t.CompletionPct, &t.HealthStatus,
		&t.ExecutionStatus, &t.RecommendedAction, named)
	t.CreatedAt, t.UpdatedAt, t.CompletedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC(), utcPtr(t.CompletedAt)
	return err
}

// scanStepSummary reads one summaryStepSelect row, times in UTC; the error block is null
// when the stored result has no error object.
func scanStepSummary(row pgx.CollectableRow) (api.StepSummary, error) {
	var s api.StepSummary
	var hasError *bool
	var errType *string
	var retryable *bool
	var status *int
	err := row.Scan(&s.StepUUID, &s.Name, &s.CurrentState, &s.CreatedAt, &s.CompletedAt, &s.LastAttemptedAt,
		&s.Attempts, &s.MaxAttempts, &s.DependenciesSatisfied, &s.RetryEligible, &hasError, &errType, &retryable, &status)
	s.CreatedAt, s.CompletedAt, s.LastAttemptedAt = utcPtr(s.CreatedAt), utcPtr(s.CompletedAt), utcPtr(s.LastAttemptedAt)
	if hasError != nil && *hasError {
		s.Error = &api.StepErrorSummary{ErrorType: errType, Retryable: retryable != nil && *retryable, StatusCode: status}
	}
	return s, err
}

// handleConfig answers GET /config with tasker-core's OrchestrationConfigResponse: never
// the token itself nor the database URL.
func (o *Orchestrator) handleConfig(w http.ResponseWriter, _ *http.Request) {
	auth := api.SafeAuthConfig{VerificationMethod: "none", APIKeyHeader: "X-API-Key", AllowedAlgorithms: []string{}}
	if o.cfg.AuthToken != "" {
		auth.Enabled, auth.VerificationMethod = true, "bearer_token"
	}
	b := o.cfg.WebBreaker
	maxConns := o.pool.Config().MaxConns
	api.WriteJSON(w, http.StatusOK, api.OrchestrationConfigResponse{
		Metadata: api.ConfigMetadata{Timestamp: api.CoreTimestamp(), Environment: api.Environment(), Version: api.Version()},
		Auth:     auth,
		CircuitBreakers: api.SafeBreakerConfig{Enabled: true,
			FailureThreshold: cmp.Or(b.FailureThreshold, resilience.FailureThresholdDefault),
			TimeoutSeconds:   uint32(o.web.RetryAfter() / time.Second),
			SuccessThreshold: cmp.Or(b.SuccessThreshold, resilience.SuccessThresholdDefault)},
		DatabasePools:  api.SafeDatabasePools{WebAPIPoolSize: maxConns, WebAPIMaxConnections: maxConns},
		DeploymentMode: "Hybrid", // LISTEN/NOTIFY plus the fallback poll
		Messaging: api.SafeMessagingConfig{Backend: "pgmq", Queues: []string{messaging.QueueTaskRequests,
			messaging.QueueTaskFinalizations, messaging.QueueStepResults}},
	})
}
