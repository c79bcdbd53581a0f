package api

import "time"

// PerformanceMetrics is the body of GET /v1/analytics/performance?hours=, in tasker-core's
// shape. The sim's definitions differ from core's where core's are odd; see the README.
type PerformanceMetrics struct {
	// TotalTasks counts every task, of any age.
	TotalTasks int64 `json:"total_tasks"`
	// ActiveTasks counts the tasks, of any age, not in a terminal state nor blocked_by_failures.
	ActiveTasks int64 `json:"active_tasks"`
	// CompletedTasks counts the tasks created in the window that are now complete.
	CompletedTasks int64 `json:"completed_tasks"`
	// FailedTasks counts the tasks created in the window now in error or blocked_by_failures.
	FailedTasks int64 `json:"failed_tasks"`
	// CompletionRate and ErrorRate are percentages of the tasks created in the window, 2 dp.
	CompletionRate float64 `json:"completion_rate"`
	ErrorRate      float64 `json:"error_rate"`
	// AverageTaskDurationSeconds is over the window's complete tasks: first transition to
	// the complete transition.
	AverageTaskDurationSeconds float64 `json:"average_task_duration_seconds"`
	// AverageStepDurationSeconds is over their complete steps: first enqueued transition to
	// the complete transition.
	AverageStepDurationSeconds float64 `json:"average_step_duration_seconds"`
	// TasksPerHour and StepsPerHour are the window's tasks and their steps divided by its
	// hours, rounded to whole numbers (the contract's type is an integer).
	TasksPerHour int64 `json:"tasks_per_hour"`
	StepsPerHour int64 `json:"steps_per_hour"`
	// SystemHealthScore is complete / (complete + failed) over the tasks created in the last
	// hour, 3 dp; 1 when there are none.
	SystemHealthScore   float64   `json:"system_health_score"`
	AnalysisPeriodStart time.Time `json:"analysis_period_start"`
	CalculatedAt        time.Time `json:"calculated_at"`
}

// BottleneckAnalysis is the body of GET /v1/analytics/bottlenecks?limit=&min_executions=.
type BottleneckAnalysis struct {
	SlowSteps           []SlowStep          `json:"slow_steps"`
	SlowTasks           []SlowTask          `json:"slow_tasks"`
	ResourceUtilization ResourceUtilization `json:"resource_utilization"`
	Recommendations     []string            `json:"recommendations"`
}

// SlowStep aggregates one template step's finished (complete or error) executions among
// the tasks created in the last 24 hours.
type SlowStep struct {
	NamespaceName          string  `json:"namespace_name"`
	TaskName               string  `json:"task_name"`
	Version                string  `json:"version"`
	StepName               string  `json:"step_name"`
	AverageDurationSeconds float64 `json:"average_duration_seconds"`
	MaxDurationSeconds     float64 `json:"max_duration_seconds"`
	ExecutionCount         int64   `json:"execution_count"`
	ErrorCount             int64   `json:"error_count"`
	// ErrorRate is ErrorCount / ExecutionCount, a fraction with 4 dp.
	ErrorRate      float64    `json:"error_rate"`
	LastExecutedAt *time.Time `json:"last_executed_at"`
}

// SlowTask aggregates one template's finished (complete, error or blocked_by_failures)
// tasks among those created in the last 24 hours.
type SlowTask struct {
	NamespaceName          string  `json:"namespace_name"`
	TaskName               string  `json:"task_name"`
	Version                string  `json:"version"`
	AverageDurationSeconds float64 `json:"average_duration_seconds"`
	MaxDurationSeconds     float64 `json:"max_duration_seconds"`
	ExecutionCount         int64   `json:"execution_count"`
	AverageStepCount       float64 `json:"average_step_count"`
	// ErrorCount counts the tasks that failed (error or blocked_by_failures).
	ErrorCount int64 `json:"error_count"`
	// ErrorRate is ErrorCount / ExecutionCount, a fraction with 4 dp.
	ErrorRate      float64    `json:"error_rate"`
	LastExecutedAt *time.Time `json:"last_executed_at"`
}

// ResourceUtilization is the database pool's use and the current state counts.
type ResourceUtilization struct {
	// DatabasePoolUtilization is the orchestrator pool's acquired / maximum connections.
	DatabasePoolUtilization float64            `json:"database_pool_utilization"`
	SystemHealth            SystemHealthCounts `json:"system_health"`
}

// SystemHealthCounts counts the tasks in each task state and the steps in each step
// state, all ages (tasker-core's get_system_health_counts).
type SystemHealthCounts struct {
	PendingTasks                         int64 `json:"pending_tasks"`
	InitializingTasks                    int64 `json:"initializing_tasks"`
	EnqueuingStepsTasks                  int64 `json:"enqueuing_steps_tasks"`
	StepsInProcessTasks                  int64 `json:"steps_in_process_tasks"`
	EvaluatingResultsTasks               int64 `json:"evaluating_results_tasks"`
	WaitingForDependenciesTasks          int64 `json:"waiting_for_dependencies_tasks"`
	WaitingForRetryTasks                 int64 `json:"waiting_for_retry_tasks"`
	BlockedByFailuresTasks               int64 `json:"blocked_by_failures_tasks"`
	CompleteTasks                        int64 `json:"complete_tasks"`
	ErrorTasks                           int64 `json:"error_tasks"`
	CancelledTasks                       int64 `json:"cancelled_tasks"`
	ResolvedManuallyTasks                int64 `json:"resolved_manually_tasks"`
	TotalTasks                           int64 `json:"total_tasks"`
	PendingSteps                         int64 `json:"pending_steps"`
	EnqueuedSteps                        int64 `json:"enqueued_steps"`
	InProgressSteps                      int64 `json:"in_progress_steps"`
	EnqueuedForOrchestrationSteps        int64 `json:"enqueued_for_orchestration_steps"`
	EnqueuedAsErrorForOrchestrationSteps int64 `json:"enqueued_as_error_for_orchestration_steps"`
	WaitingForRetrySteps                 int64 `json:"waiting_for_retry_steps"`
	CompleteSteps                        int64 `json:"complete_steps"`
	ErrorSteps                           int64 `json:"error_steps"`
	CancelledSteps                       int64 `json:"cancelled_steps"`
	ResolvedManuallySteps                int64 `json:"resolved_manually_steps"`
	TotalSteps                           int64 `json:"total_steps"`
}
