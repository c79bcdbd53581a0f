package orchestrator

import (
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-sim/tasker-sim/pkg/api"
)

// stepRoutes registers the step routes of tasker-core's API: one step, its operator
// actions and its result audit.
func (o *Orchestrator) stepRoutes(_ routeFunc) {}

// stepSelect reads the steps of task $1 as StepResponse (scanStep); callers add a
// filter or an order.
const stepSelect = `
	SELECT r.workflow_step_uuid::text, r.task_uuid::text, r.name, ws.created_at, ws.updated_at, r.current_state,
	       r.dependencies_satisfied, r.retry_eligible, r.ready_for_execution, r.total_parents, r.completed_parents,
	       r.attempts, r.max_attempts, ws.processed_at, r.last_failure_at, r.next_retry_at, r.last_attempted_at,
	       ws.results,
	       coalesce((SELECT array_agg(pns.name::text ORDER BY pns.name)
	                   FROM tasker.workflow_step_edges AS e
	                   JOIN tasker.workflow_steps AS p ON p.workflow_step_uuid = e.from_step_uuid
	                   JOIN tasker.named_steps AS pns ON pns.named_step_uuid = p.named_step_uuid
	                  WHERE e.to_step_uuid = r.workflow_step_uuid), '{}'),
	       ws.retryable
	  FROM tasker.get_step_readiness_status($1) AS r
	  JOIN tasker.workflow_steps AS ws ON ws.workflow_step_uuid = r.workflow_step_uuid`

// scanStep reads one stepSelect row, times in UTC.
func scanStep(row pgx.Row) (api.StepResponse, error) {
	var s api.StepResponse
	err := row.Scan(&s.StepUUID, &s.TaskUUID, &s.Name, &s.CreatedAt, &s.UpdatedAt, &s.CurrentState,
		&s.DependenciesSatisfied, &s.RetryEligible, &s.ReadyForExecution, &s.TotalParents, &s.CompletedParents,
		&s.Attempts, &s.MaxAttempts, &s.CompletedAt, &s.LastFailureAt, &s.NextRetryAt, &s.LastAttemptedAt,
		&s.Results, &s.Dependencies, &s.Retryable)
	if s.Results == nil {
		s.Results = json.RawMessage("null")
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	for _, t := range []**time.Time{&s.CompletedAt, &s.LastFailureAt, &s.NextRetryAt, &s.LastAttemptedAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	return s, err
}
