package api

import (
	"encoding/json"
	"time"
)

// StepResponse describes one workflow step, from GET /v1/tasks/{uuid}/workflow_steps and
// GET /v1/tasks/{uuid}/workflow_steps/{step_uuid}: tasker-core's StepResponse fields, plus
// the sim's dependencies and retryable.
type StepResponse struct {
	StepUUID     string    `json:"step_uuid"`
	TaskUUID     string    `json:"task_uuid"`
	Name         string    `json:"name"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	CurrentState string    `json:"current_state"`
	// DependenciesSatisfied: every parent is complete or resolved_manually.
	DependenciesSatisfied bool `json:"dependencies_satisfied"`
	// RetryEligible: attempts == 0, or the step is retryable with attempts < max_attempts.
	RetryEligible bool `json:"retry_eligible"`
	// ReadyForExecution: the step can be enqueued now.
	ReadyForExecution bool `json:"ready_for_execution"`
	TotalParents      int  `json:"total_parents"`
	CompletedParents  int  `json:"completed_parents"`
	Attempts          int  `json:"attempts"`
	MaxAttempts       int  `json:"max_attempts"`
	// CompletedAt is when the step was processed (complete or resolved_manually).
	CompletedAt     *time.Time `json:"completed_at"`
	LastFailureAt   *time.Time `json:"last_failure_at"`
	NextRetryAt     *time.Time `json:"next_retry_at"`
	LastAttemptedAt *time.Time `json:"last_attempted_at"`
	// Results is the stored StepExecutionResult, null when there is none.
	Results json.RawMessage `json:"results"`
	// Dependencies names the step's parents (sim extra).
	Dependencies []string `json:"dependencies"`
	// Retryable is the template's retry.retryable (sim extra).
	Retryable bool `json:"retryable"`
}

// The action_type values of StepManualAction.
const (
	ActionResetForRetry    = "reset_for_retry"
	ActionResolveManually  = "resolve_manually"
	ActionCompleteManually = "complete_manually"
)

// MaxStepActionBytes bounds the body of PATCH /v1/tasks/{uuid}/workflow_steps/{step_uuid}.
const MaxStepActionBytes = 1 << 20

// StepManualAction is the body of PATCH /v1/tasks/{uuid}/workflow_steps/{step_uuid},
// tagged by ActionType. Which of the other fields an action takes:
//
//	reset_for_retry:   reason, reset_by
//	resolve_manually:  reason, resolved_by
//	complete_manually: completion_data, reason, completed_by
type StepManualAction struct {
	ActionType     string                `json:"action_type"`
	Reason         string                `json:"reason"`
	ResetBy        string                `json:"reset_by,omitempty"`
	ResolvedBy     string                `json:"resolved_by,omitempty"`
	CompletedBy    string                `json:"completed_by,omitempty"`
	CompletionData *ManualCompletionData `json:"completion_data,omitempty"`
}

// ManualCompletionData is what an operator says a manually completed step produced.
type ManualCompletionData struct {
	// Result becomes the step's result, which its dependents read.
	Result json.RawMessage `json:"result"`
	// Metadata, optional, goes into the result's metadata.custom (a value that is not an
	// object goes under operator_metadata).
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// StepAuditResponse is one worker result submission of a step, from GET
// /v1/tasks/{uuid}/workflow_steps/{step_uuid}/audit. The optional fields are absent when
// unknown.
type StepAuditResponse struct {
	AuditUUID        string    `json:"audit_uuid"`
	WorkflowStepUUID string    `json:"workflow_step_uuid"`
	TransitionUUID   string    `json:"transition_uuid"`
	TaskUUID         string    `json:"task_uuid"`
	RecordedAt       time.Time `json:"recorded_at"`
	// WorkerUUID is the submitting worker's id (a string such as host-pid-random, not a
	// UUID, in the sim).
	WorkerUUID      *string         `json:"worker_uuid,omitempty"`
	CorrelationID   *string         `json:"correlation_id,omitempty"`
	Success         bool            `json:"success"`
	ExecutionTimeMS *int64          `json:"execution_time_ms,omitempty"`
	Result          json.RawMessage `json:"result,omitempty"`
	StepName        string          `json:"step_name"`
	FromState       *string         `json:"from_state,omitempty"`
	ToState         string          `json:"to_state"`
}
