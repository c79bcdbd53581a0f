package api

import "time"

// TaskSummaryResponse is tasker-core's one-call view of a task (GET
// /v1/tasks/{uuid}/summary): the task with its counts, its template's steps, its steps as
// they stand, its pending DLQ entry and the routes that say more.
type TaskSummaryResponse struct {
	Task     TaskSummary     `json:"task"`
	Template SummaryTemplate `json:"template"`
	Steps    []StepSummary   `json:"steps"`
	Dlq      DlqSummary      `json:"dlq"`
	Links    SummaryLinks    `json:"links"`
}

// TaskSummary is the task part of a summary: GET /v1/tasks/{uuid}'s task without its
// context, tags, priority and steps. Status is the task's state.
type TaskSummary struct {
	TaskUUID          string     `json:"task_uuid"`
	Name              string     `json:"name"`
	Namespace         string     `json:"namespace"`
	Version           string     `json:"version"`
	Status            string     `json:"status"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	CompletedAt       *time.Time `json:"completed_at"`
	Initiator         string     `json:"initiator"`
	SourceSystem      string     `json:"source_system"`
	Reason            string     `json:"reason"`
	CorrelationID     string     `json:"correlation_id"`
	TotalSteps        int        `json:"total_steps"`
	PendingSteps      int        `json:"pending_steps"`
	InProgressSteps   int        `json:"in_progress_steps"`
	CompletedSteps    int        `json:"completed_steps"`
	FailedSteps       int        `json:"failed_steps"`
	CompletionPct     float64    `json:"completion_percentage"`
	HealthStatus      string     `json:"health_status"`
	ExecutionStatus   string     `json:"execution_status"`
	RecommendedAction *string    `json:"recommended_action"`
}

// SummaryTemplate lists the steps of the task's template, as registered.
type SummaryTemplate struct {
	Steps []SummaryTemplateStep `json:"steps"`
}

// SummaryTemplateStep is one step of a template: its type (standard when the template
// gives none), handler callable, dependencies and retry policy.
type SummaryTemplateStep struct {
	Name         string   `json:"name"`
	StepType     string   `json:"step_type"`
	Handler      string   `json:"handler"`
	Dependencies []string `json:"dependencies"`
	Retryable    bool     `json:"retryable"`
	MaxAttempts  int      `json:"max_attempts"`
}

// StepSummary is one step of the task as it stands, in creation order. CompletedAt is
// when it was processed. Error is the stored result's error, null when there is none.
type StepSummary struct {
	StepUUID              string            `json:"step_uuid"`
	Name                  string            `json:"name"`
	CurrentState          string            `json:"current_state"`
	CreatedAt             *time.Time        `json:"created_at"`
	CompletedAt           *time.Time        `json:"completed_at"`
	LastAttemptedAt       *time.Time        `json:"last_attempted_at"`
	Attempts              int               `json:"attempts"`
	MaxAttempts           int               `json:"max_attempts"`
	DependenciesSatisfied bool              `json:"dependencies_satisfied"`
	RetryEligible         bool              `json:"retry_eligible"`
	Error                 *StepErrorSummary `json:"error"`
}

// StepErrorSummary classifies a step's last error. StatusCode is the HTTP status an
// API-calling handler reported, null otherwise.
type StepErrorSummary struct {
	ErrorType  *string `json:"error_type"`
	Retryable  bool    `json:"retryable"`
	StatusCode *int    `json:"status_code"`
}

// DlqSummary says whether the task has a pending DLQ entry and why. Unlike the DLQ routes,
// DlqReason and ResolutionStatus are snake_case here (e.g. "staleness_timeout"), as
// tasker-core sends them; both are null when InDlq is false.
type DlqSummary struct {
	InDlq            bool    `json:"in_dlq"`
	DlqReason        *string `json:"dlq_reason"`
	ResolutionStatus *string `json:"resolution_status"`
}

// SummaryLinks are the routes that tell more about the task: itself, its steps, the DLQ.
type SummaryLinks struct {
	Task  string `json:"task"`
	Steps string `json:"steps"`
	Dlq   string `json:"dlq"`
}

// OrchestrationConfigResponse is tasker-core's GET /config: the orchestrator's
// configuration that is safe to show (no token, no database URL).
type OrchestrationConfigResponse struct {
	Metadata        ConfigMetadata      `json:"metadata"`
	Auth            SafeAuthConfig      `json:"auth"`
	CircuitBreakers SafeBreakerConfig   `json:"circuit_breakers"`
	DatabasePools   SafeDatabasePools   `json:"database_pools"`
	DeploymentMode  string              `json:"deployment_mode"`
	Messaging       SafeMessagingConfig `json:"messaging"`
}

// ConfigMetadata says when, where and which version answered.
type ConfigMetadata struct {
	Timestamp   string `json:"timestamp"`
	Environment string `json:"environment"`
	Version     string `json:"version"`
}

// SafeAuthConfig says whether and how requests are authenticated, never with what.
type SafeAuthConfig struct {
	Enabled bool `json:"enabled"`
	// VerificationMethod is "bearer_token" when a token is required, else "none".
	VerificationMethod string   `json:"verification_method"`
	JWTIssuer          string   `json:"jwt_issuer"`
	JWTAudience        string   `json:"jwt_audience"`
	APIKeyHeader       string   `json:"api_key_header"`
	APIKeyCount        int      `json:"api_key_count"`
	StrictValidation   bool     `json:"strict_validation"`
	AllowedAlgorithms  []string `json:"allowed_algorithms"`
}

// SafeBreakerConfig is the web database breaker's configuration.
type SafeBreakerConfig struct {
	Enabled          bool   `json:"enabled"`
	FailureThreshold uint32 `json:"failure_threshold"`
	TimeoutSeconds   uint32 `json:"timeout_seconds"`
	SuccessThreshold uint32 `json:"success_threshold"`
}

// SafeDatabasePools sizes the API's database pool.
type SafeDatabasePools struct {
	WebAPIPoolSize       int32 `json:"web_api_pool_size"`
	WebAPIMaxConnections int32 `json:"web_api_max_connections"`
}

// SafeMessagingConfig names the message backend and the queues the orchestrator owns.
type SafeMessagingConfig struct {
	Backend string   `json:"backend"`
	Queues  []string `json:"queues"`
}
