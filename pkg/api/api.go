// Package api defines the JSON bodies of the orchestration REST API, shared by the server
// (pkg/orchestrator) and the client (pkg/client).
package api

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"time"
)

// TaskRequest is the body of POST /v1/tasks.
type TaskRequest struct {
	Name          string          `json:"name"`
	Namespace     string          `json:"namespace"`
	Version       string          `json:"version"`
	Context       json.RawMessage `json:"context"`
	Initiator     string          `json:"initiator"`
	SourceSystem  string          `json:"source_system"`
	Reason        string          `json:"reason"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	// ParentCorrelationID links a nested workflow to the one that started it.
	ParentCorrelationID string `json:"parent_correlation_id,omitempty"`
	// Priority is in [-100, 100]; default 0.
	Priority *int `json:"priority,omitempty"`
	// IdempotencyKey, when set, replaces the context in the task's identity.
	IdempotencyKey string   `json:"idempotency_key,omitempty"`
	Tags           []string `json:"tags,omitempty"`
	// RequestedAt is when the client asked, as tasker-core's clients send it; like
	// tasker-core, the task records the time it was created instead.
	RequestedAt string `json:"requested_at,omitempty"`
	// Options are tasker-core's per-request overrides of template defaults: a JSON object,
	// accepted and kept out of the task (tasker-sim applies none).
	Options json.RawMessage `json:"options,omitempty"`
}

// TaskResponse describes a task and the state of its steps.
type TaskResponse struct {
	TaskUUID            string          `json:"task_uuid"`
	Name                string          `json:"name"`
	Namespace           string          `json:"namespace"`
	Version             string          `json:"version"`
	Status              string          `json:"status"`
	CorrelationID       string          `json:"correlation_id"`
	ParentCorrelationID *string         `json:"parent_correlation_id"`
	Context             json.RawMessage `json:"context"`
	Initiator           string          `json:"initiator"`
	SourceSystem        string          `json:"source_system"`
	Reason              string          `json:"reason"`
	Priority            int             `json:"priority"`
	Tags                []string        `json:"tags"`
	CreatedAt           time.Time       `json:"created_at"`
	UpdatedAt           time.Time       `json:"updated_at"`
	CompletedAt         *time.Time      `json:"completed_at"`
	TotalSteps          int             `json:"total_steps"`
	PendingSteps        int             `json:"pending_steps"`
	InProgressSteps     int             `json:"in_progress_steps"`
	CompletedSteps      int             `json:"completed_steps"`
	FailedSteps         int             `json:"failed_steps"`
	ReadySteps          int             `json:"ready_steps"`
	ExecutionStatus     string          `json:"execution_status"`
	RecommendedAction   string          `json:"recommended_action"`
	CompletionPct       float64         `json:"completion_percentage"`
	HealthStatus        string          `json:"health_status"`
	// Steps is each step's readiness; GET fills it, a listing leaves it empty (as
	// tasker-core does).
	Steps []StepReadiness `json:"steps"`
}

// StepReadiness is one step of a task as its readiness is computed.
type StepReadiness struct {
	WorkflowStepUUID      string     `json:"workflow_step_uuid"`
	TaskUUID              string     `json:"task_uuid"`
	NamedStepUUID         string     `json:"named_step_uuid"`
	Name                  string     `json:"name"`
	CurrentState          string     `json:"current_state"`
	DependenciesSatisfied bool       `json:"dependencies_satisfied"`
	RetryEligible         bool       `json:"retry_eligible"`
	ReadyForExecution     bool       `json:"ready_for_execution"`
	TotalParents          int        `json:"total_parents"`
	CompletedParents      int        `json:"completed_parents"`
	Attempts              int        `json:"attempts"`
	MaxAttempts           int        `json:"max_attempts"`
	BackoffRequestSeconds *int64     `json:"backoff_request_seconds"` // whole seconds, rounded up
	LastAttemptedAt       *time.Time `json:"last_attempted_at"`
	LastFailureAt         *time.Time `json:"last_failure_at"`
	NextRetryAt           *time.Time `json:"next_retry_at"`
}

// TaskList is the body of GET /v1/tasks.
type TaskList struct {
	Tasks      []TaskResponse `json:"tasks"`
	Pagination Pagination     `json:"pagination"`
}

// Pagination describes one page of a listing.
type Pagination struct {
	Page        int  `json:"page"`
	PerPage     int  `json:"per_page"`
	TotalCount  int  `json:"total_count"`
	TotalPages  int  `json:"total_pages"`
	HasNext     bool `json:"has_next"`
	HasPrevious bool `json:"has_previous"`
}

// ErrorResponse is the body of every 4xx and 5xx answer, in tasker-core's shape:
// {"error": {"code": "BAD_REQUEST", "message": "..."}}.
type ErrorResponse struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is what went wrong.
type ErrorDetail struct {
	// Code is tasker-core's error code (the Code* constants).
	Code string `json:"code"`
	// Message says what was wrong; for validation it names the field and the rule.
	Message string `json:"message"`
}

// The error codes, as tasker-core spells them.
const (
	CodeBadRequest         = "BAD_REQUEST"
	CodeInvalidUUID        = "INVALID_UUID"
	CodeNotFound           = "NOT_FOUND"
	CodeConflict           = "CONFLICT"
	CodePayloadTooLarge    = "PAYLOAD_TOO_LARGE"
	CodeUnauthorized       = "UNAUTHORIZED"
	CodeServiceUnavailable = "SERVICE_UNAVAILABLE"
	CodeDatabaseError      = "DATABASE_ERROR"
	CodeInternal           = "INTERNAL_ERROR"
)

// ServiceHeader names the service that answered: "orchestrator" or "worker". Contract
// checks pick the API document by it.
const ServiceHeader = "X-Tasker-Service"

// Service sets ServiceHeader on every answer of h.
func Service(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(ServiceHeader, name)
		h.ServeHTTP(w, r)
	})
}

// WriteError writes an error answer in tasker-core's shape.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	WriteJSON(w, status, ErrorResponse{Error: ErrorDetail{Code: code, Message: message}})
}

// Check is one of the sim's finer health checks (a breaker, a queue, a channel); the
// health routes fold them into tasker-core's HealthChecks (see Fold).
type Check struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	// DurationMS is how long the check took, in milliseconds.
	DurationMS float64 `json:"duration_ms"`
}

// RequireBearer wraps h so that, when token is not empty, a request must carry
// "Authorization: Bearer <token>"; otherwise it gets 401. An empty token leaves h open,
// which is the default: the servers bind to loopback.
func RequireBearer(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tasker-sim"`)
			WriteError(w, http.StatusUnauthorized, CodeUnauthorized,
				"Authorization: a valid bearer token (TASKER_AUTH_TOKEN) is required")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// WriteJSON writes body as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// MaxWaitTasks bounds the task_uuids of one POST /v1/tasks/wait.
const MaxWaitTasks = 10000

// MaxWaitTimeoutMS bounds WaitRequest.TimeoutMS.
const MaxWaitTimeoutMS = 60000

// WaitRequest is the body of POST /v1/tasks/wait: watch many tasks with one long poll.
type WaitRequest struct {
	// TaskUUIDs are the tasks to watch, at most MaxWaitTasks.
	TaskUUIDs []string `json:"task_uuids"`
	// TimeoutMS is how long to wait for at least one of them to finish, 0 to
	// MaxWaitTimeoutMS; 0 answers at once.
	TimeoutMS int `json:"timeout_ms"`
}

// WaitResponse answers a WaitRequest with the watched tasks that are terminal (possibly
// none, when the timeout passed first) and those that do not exist.
type WaitResponse struct {
	Finished []FinishedTask `json:"finished"`
	NotFound []string       `json:"not_found"`
}

// FinishedTask is a watched task in a terminal state.
type FinishedTask struct {
	TaskUUID string `json:"task_uuid"`
	Status   string `json:"status"`
}
