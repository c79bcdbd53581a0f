package api

import (
	"encoding/json"
	"time"
)

// The resolution (investigation) statuses of a DLQ entry, as tasker-core puts them on the
// wire (PascalCase; the database stores them in snake_case).
const (
	DlqPending           = "Pending"
	DlqManuallyResolved  = "ManuallyResolved"
	DlqPermanentlyFailed = "PermanentlyFailed"
	DlqCancelled         = "Cancelled"
)

// The reasons a task is filed in the DLQ, as tasker-core puts them on the wire.
const (
	DlqStalenessTimeout        = "StalenessTimeout"
	DlqMaxRetriesExceeded      = "MaxRetriesExceeded"
	DlqDependencyCycleDetected = "DependencyCycleDetected"
	DlqWorkerUnavailable       = "WorkerUnavailable"
	DlqManualDlq               = "ManualDlq"
)

// The staleness classes of GET /v1/dlq/staleness (lowercase, as in tasker-core).
const (
	StalenessHealthy = "healthy"
	StalenessWarning = "warning"
	StalenessStale   = "stale"
)

// DlqEntry is one DLQ investigation record (GET /v1/dlq, GET /v1/dlq/task/{task_uuid}).
// Timestamps are RFC 3339 with an offset (tasker-core sends them without one).
type DlqEntry struct {
	DlqEntryUUID        string     `json:"dlq_entry_uuid"`
	TaskUUID            string     `json:"task_uuid"`
	OriginalState       string     `json:"original_state"`
	DlqReason           string     `json:"dlq_reason"`
	DlqTimestamp        time.Time  `json:"dlq_timestamp"`
	ResolutionStatus    string     `json:"resolution_status"`
	ResolutionTimestamp *time.Time `json:"resolution_timestamp"`
	ResolutionNotes     *string    `json:"resolution_notes"`
	ResolvedBy          *string    `json:"resolved_by"`
	// TaskSnapshot is the task as it was when it was filed (any JSON, null if none).
	TaskSnapshot json.RawMessage `json:"task_snapshot"`
	// Metadata is free-form JSON: how the entry was detected, or what an operator set.
	Metadata  json.RawMessage `json:"metadata"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// UpdateInvestigationRequest is the body of PATCH /v1/dlq/entry/{dlq_entry_uuid}. Each
// field given (not null) overwrites the entry's; at least one must be given.
type UpdateInvestigationRequest struct {
	// ResolutionStatus is one of the Dlq* resolution statuses (PascalCase).
	ResolutionStatus *string `json:"resolution_status,omitempty"`
	ResolutionNotes  *string `json:"resolution_notes,omitempty"`
	ResolvedBy       *string `json:"resolved_by,omitempty"`
	// Metadata is any JSON value; it replaces the entry's metadata.
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// UpdateInvestigationResponse is the 200 body of PATCH /v1/dlq/entry/{dlq_entry_uuid}.
type UpdateInvestigationResponse struct {
	Success      bool   `json:"success"`
	Message      string `json:"message"`
	DlqEntryUUID string `json:"dlq_entry_uuid"`
}

// DlqStats counts the DLQ entries of one reason (GET /v1/dlq/stats).
type DlqStats struct {
	DlqReason         string     `json:"dlq_reason"`
	TotalEntries      int64      `json:"total_entries"`
	Pending           int64      `json:"pending"`
	ManuallyResolved  int64      `json:"manually_resolved"`
	PermanentFailures int64      `json:"permanent_failures"`
	Cancelled         int64      `json:"cancelled"`
	OldestEntry       *time.Time `json:"oldest_entry"`
	NewestEntry       *time.Time `json:"newest_entry"`
	// AvgResolutionTimeMinutes averages, over every entry of the reason, the time from
	// filing to resolution, counting an unresolved entry up to now (as tasker-core does).
	AvgResolutionTimeMinutes *float64 `json:"avg_resolution_time_minutes"`
}

// DlqInvestigationQueueEntry is one pending DLQ entry in triage order
// (GET /v1/dlq/investigation-queue).
type DlqInvestigationQueueEntry struct {
	DlqEntryUUID       string    `json:"dlq_entry_uuid"`
	TaskUUID           string    `json:"task_uuid"`
	OriginalState      string    `json:"original_state"`
	DlqReason          string    `json:"dlq_reason"`
	DlqTimestamp       time.Time `json:"dlq_timestamp"`
	MinutesInDlq       float64   `json:"minutes_in_dlq"`
	NamespaceName      *string   `json:"namespace_name"`
	TaskName           *string   `json:"task_name"`
	CurrentState       *string   `json:"current_state"`
	TimeInStateMinutes *int      `json:"time_in_state_minutes"`
	// PriorityScore is a base by reason (dependency cycle 1000, max retries 500, staleness
	// 100, worker unavailable 50, else 10) plus MinutesInDlq; higher is more urgent.
	PriorityScore float64 `json:"priority_score"`
}

// StalenessMonitoring is one unfinished task in a waiting state and how close it is to its
// staleness threshold (GET /v1/dlq/staleness).
type StalenessMonitoring struct {
	TaskUUID      string `json:"task_uuid"`
	NamespaceName string `json:"namespace_name"`
	TaskName      string `json:"task_name"`
	CurrentState  string `json:"current_state"`
	// The minutes are whole (rounded down), as in tasker-core's integer fields.
	TimeInStateMinutes        int `json:"time_in_state_minutes"`
	TaskAgeMinutes            int `json:"task_age_minutes"`
	StalenessThresholdMinutes int `json:"staleness_threshold_minutes"`
	// TimeInStateSeconds and StalenessThresholdSeconds are exact (a tasker-sim extra:
	// its thresholds can be shorter than a minute); HealthStatus is computed from them.
	TimeInStateSeconds        float64 `json:"time_in_state_seconds"`
	StalenessThresholdSeconds float64 `json:"staleness_threshold_seconds"`
	// HealthStatus is stale at 100 % of the threshold, warning at 80 %, else healthy.
	HealthStatus string `json:"health_status"`
	Priority     int    `json:"priority"`
}
