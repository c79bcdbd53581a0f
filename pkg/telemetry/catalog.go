// Package telemetry is tasker-sim's single source of metric names, units and labels, and
// the code that turns them into OpenTelemetry instruments, providers and exporters.
//
// Every metric the simulator emits is an entry of Catalog. New walks the catalog once to
// build every instrument from the MeterProvider it is given; the rest of the code records
// through the typed methods of Instruments and never spells a metric name itself.
package telemetry

// Kind is an instrument kind.
type Kind string

// Instrument kinds.
const (
	// Counter is a monotonic sum (Prometheus counter).
	Counter Kind = "counter"
	// UpDownCounter goes up and down (Prometheus gauge).
	UpDownCounter Kind = "updowncounter"
	// Histogram records a distribution (Prometheus histogram: _bucket, _sum, _count).
	Histogram Kind = "histogram"
	// Gauge is a value observed when metrics are collected (Prometheus gauge).
	Gauge Kind = "gauge"
)

// Domain groups metrics as the reference does.
type Domain string

// Domains.
const (
	Orchestration Domain = "orchestration"
	Worker        Domain = "worker"
	Resilience    Domain = "resilience"
	Database      Domain = "database"
	Messaging     Domain = "messaging"
)

// Label keys.
const (
	LabelCorrelationID = "correlation_id"
	LabelTaskType      = "task_type"
	LabelNamespace     = "namespace"
	LabelStepName      = "step_name"
	LabelResultType    = "result_type"
	LabelFinalState    = "final_state"
	LabelState         = "state"
	LabelErrorType     = "error_type"
	LabelClaimMethod   = "claim_method"
	LabelResult        = "result"
	LabelHandlerType   = "handler_type"
	LabelComponent     = "component"
	LabelEndpoint      = "endpoint"
	LabelChannel       = "channel"
	LabelOperation     = "operation"
	LabelOutcome       = "outcome"
	LabelPool          = "pool"
	LabelQueue         = "queue"
)

// OpArchivePoison labels messages archived because they could never be processed (not
// JSON, missing ids, an unknown task or step): poison is counted apart from normal acks.
const OpArchivePoison = "archive_poison"

// Metric describes one catalog entry.
type Metric struct {
	// Name is the OpenTelemetry instrument name, exactly as the reference gives it.
	Name string
	// Kind is the instrument kind.
	Kind Kind
	// Float is true for float64 instruments, false for int64.
	Float bool
	// Unit is the UCUM unit ("ms", "%"), or "" when the name says it all.
	Unit string
	// Description is the instrument's description.
	Description string
	// Labels are the attribute keys recorded with it. correlation_id is dropped when
	// high-cardinality labels are switched off.
	Labels []string
	// Domain groups it as the reference does.
	Domain Domain
	// Series are the Prometheus series names it produces, as the reference's queries use them.
	Series []string
}

// Metric names. They appear here and nowhere else in the code.
const (
	MetricTasksRequests          = "tasker.tasks.requests.total"
	MetricTasksCompletions       = "tasker.tasks.completions.total"
	MetricTasksFailures          = "tasker.tasks.failures.total"
	MetricStepsEnqueued          = "tasker.steps.enqueued.total"
	MetricStepResultsProcessed   = "tasker.step_results.processed.total"
	MetricTaskInitDuration       = "tasker.task.initialization.duration"
	MetricTaskFinalDuration      = "tasker.task.finalization.duration"
	MetricStepResultProcDuration = "tasker.step_result.processing.duration"
	MetricTasksActive            = "tasker.tasks.active"
	MetricStepsReady             = "tasker.steps.ready"

	MetricStepsExecutions          = "tasker.steps.executions.total"
	MetricStepsSuccesses           = "tasker.steps.successes.total"
	MetricStepsFailures            = "tasker.steps.failures.total"
	MetricStepsClaimed             = "tasker.steps.claimed.total"
	MetricStepsResultsSubmitted    = "tasker.steps.results_submitted.total"
	MetricStepExecutionDuration    = "tasker.step.execution.duration"
	MetricStepClaimDuration        = "tasker.step.claim.duration"
	MetricStepResultSubmitDuration = "tasker.step_result.submission.duration"
	MetricStepsActiveExecutions    = "tasker.steps.active_executions"
	MetricQueueDepth               = "tasker.queue.depth"

	MetricAPICircuitBreakerState = "api_circuit_breaker_state"
	MetricCircuitBreakerState    = "tasker_circuit_breaker_state"
	MetricAPIRequestsRejected    = "api_requests_rejected_total"
	MetricFFISlowSends           = "ffi_completion_slow_sends_total"
	MetricFFICircuitRejections   = "ffi_completion_circuit_open_rejections_total"
	MetricChannelUsagePercent    = "mpsc_channel_usage_percent"
	MetricChannelCapacity        = "mpsc_channel_capacity"
	MetricChannelFullEvents      = "mpsc_channel_full_events_total"

	MetricSQLQueries            = "tasker.sql.queries.total"
	MetricSQLQueryDuration      = "tasker.sql.query.duration"
	MetricPoolConnectionsActive = "tasker.db.pool.connections_active"
	MetricPoolConnectionsIdle   = "tasker.db.pool.connections_idle"
	MetricPoolWaitDuration      = "tasker.db.pool.wait_duration"
	MetricDBTransactions        = "tasker.db.transactions.total"
	MetricDBTransactionDuration = "tasker.db.transaction.duration"

	MetricQueueMessagesSent       = "tasker.queue.messages_sent.total"
	MetricQueueMessagesReceived   = "tasker.queue.messages_received.total"
	MetricQueueMessagesDeleted    = "tasker.queue.messages_deleted.total"
	MetricQueueSendDuration       = "tasker.queue.message_send.duration"
	MetricQueueReceiveDuration    = "tasker.queue.message_receive.duration"
	MetricQueueAgeSeconds         = "tasker.queue.age_seconds"
	MetricQueueVisibilityTimeouts = "tasker.queue.visibility_timeouts.total"
	MetricQueueErrors             = "tasker.queue.errors.total"
	MetricQueueRetryAttempts      = "tasker.queue.retry_attempts.total"
)

func counter(name, desc string, d Domain, series string, labels ...string) Metric {
	return Metric{Name: name, Kind: Counter, Description: desc, Labels: labels, Domain: d, Series: []string{series}}
}

func histogramMS(name, desc string, d Domain, base string, labels ...string) Metric {
	return Metric{Name: name, Kind: Histogram, Float: true, Unit: "ms", Description: desc, Labels: labels, Domain: d,
		Series: []string{base + "_bucket", base + "_sum", base + "_count"}}
}

func gauge(name, desc string, d Domain, float bool, unit, series string, labels ...string) Metric {
	return Metric{Name: name, Kind: Gauge, Float: float, Unit: unit, Description: desc, Labels: labels, Domain: d,
		Series: []string{series}}
}

// Catalog lists every metric tasker-sim emits: the 44 names of the metrics reference.
var Catalog = []Metric{
	// Orchestration.
	counter(MetricTasksRequests, "Total number of task creation requests received", Orchestration,
		"tasker_tasks_requests_total", LabelCorrelationID, LabelTaskType, LabelNamespace),
	counter(MetricTasksCompletions, "Total number of tasks that completed successfully", Orchestration,
		"tasker_tasks_completions_total", LabelCorrelationID),
	counter(MetricTasksFailures, "Total number of tasks that failed", Orchestration,
		"tasker_tasks_failures_total", LabelCorrelationID),
	counter(MetricStepsEnqueued, "Total number of steps enqueued to worker queues", Orchestration,
		"tasker_steps_enqueued_total", LabelCorrelationID, LabelNamespace, LabelStepName),
	counter(MetricStepResultsProcessed, "Total number of step results processed from workers", Orchestration,
		"tasker_step_results_processed_total", LabelCorrelationID, LabelResultType),
	histogramMS(MetricTaskInitDuration, "Task initialization duration in milliseconds", Orchestration,
		"tasker_task_initialization_duration_milliseconds", LabelCorrelationID, LabelTaskType),
	histogramMS(MetricTaskFinalDuration, "Task finalization duration in milliseconds", Orchestration,
		"tasker_task_finalization_duration_milliseconds", LabelCorrelationID, LabelFinalState),
	histogramMS(MetricStepResultProcDuration, "Step result processing duration in milliseconds", Orchestration,
		"tasker_step_result_processing_duration_milliseconds", LabelCorrelationID, LabelResultType),
	gauge(MetricTasksActive, "Number of tasks currently being processed, by state", Orchestration, false, "",
		"tasker_tasks_active", LabelState),
	gauge(MetricStepsReady, "Number of steps ready for execution", Orchestration, false, "",
		"tasker_steps_ready", LabelNamespace),

	// Worker.
	counter(MetricStepsExecutions, "Total number of step executions attempted", Worker,
		"tasker_steps_executions_total", LabelCorrelationID),
	counter(MetricStepsSuccesses, "Total number of step executions that completed successfully", Worker,
		"tasker_steps_successes_total", LabelCorrelationID, LabelNamespace),
	counter(MetricStepsFailures, "Total number of step executions that failed", Worker,
		"tasker_steps_failures_total", LabelCorrelationID, LabelNamespace, LabelErrorType),
	counter(MetricStepsClaimed, "Total number of steps claimed from queues", Worker,
		"tasker_steps_claimed_total", LabelNamespace, LabelClaimMethod),
	counter(MetricStepsResultsSubmitted, "Total number of step results submitted to orchestration", Worker,
		"tasker_steps_results_submitted_total", LabelCorrelationID, LabelResultType),
	histogramMS(MetricStepExecutionDuration, "Step execution duration in milliseconds: the handler's own run time", Worker,
		"tasker_step_execution_duration_milliseconds", LabelCorrelationID, LabelNamespace, LabelResult),
	histogramMS(MetricStepClaimDuration, "Step claiming duration in milliseconds", Worker,
		"tasker_step_claim_duration_milliseconds", LabelNamespace, LabelClaimMethod),
	histogramMS(MetricStepResultSubmitDuration, "Step result submission duration in milliseconds", Worker,
		"tasker_step_result_submission_duration_milliseconds", LabelCorrelationID, LabelResultType),
	{Name: MetricStepsActiveExecutions, Kind: UpDownCounter, Description: "Number of steps currently being executed",
		Labels: []string{LabelNamespace, LabelHandlerType}, Domain: Worker, Series: []string{"tasker_steps_active_executions"}},
	gauge(MetricQueueDepth, "Current queue depth per queue (messages waiting)", Worker, false, "",
		"tasker_queue_depth", LabelNamespace, LabelQueue),

	// Resilience.
	gauge(MetricAPICircuitBreakerState, "Current state of the web API database circuit breaker (0 closed, 1 half-open, 2 open)",
		Resilience, false, "", "api_circuit_breaker_state"),
	gauge(MetricCircuitBreakerState, "Per-component circuit breaker state (0 closed, 1 half-open, 2 open)",
		Resilience, false, "", "tasker_circuit_breaker_state", LabelComponent),
	counter(MetricAPIRequestsRejected, "Total API requests rejected due to open circuit breaker", Resilience,
		"api_requests_rejected_total", LabelEndpoint),
	counter(MetricFFISlowSends, "FFI completion channel sends exceeding the latency threshold (100 ms default)", Resilience,
		"ffi_completion_slow_sends_total"),
	counter(MetricFFICircuitRejections, "FFI completion operations rejected due to open circuit breaker", Resilience,
		"ffi_completion_circuit_open_rejections_total"),
	gauge(MetricChannelUsagePercent, "Current fill percentage of a bounded channel", Resilience, true, "%",
		"mpsc_channel_usage_percent", LabelChannel, LabelComponent),
	gauge(MetricChannelCapacity, "Configured buffer capacity of a bounded channel", Resilience, false, "",
		"mpsc_channel_capacity", LabelChannel, LabelComponent),
	counter(MetricChannelFullEvents, "Count of channel overflow events (backpressure applied)", Resilience,
		"mpsc_channel_full_events_total", LabelChannel, LabelComponent),

	// Database.
	counter(MetricSQLQueries, "SQL statements executed, by operation and outcome", Database,
		"tasker_sql_queries_total", LabelOperation, LabelOutcome),
	histogramMS(MetricSQLQueryDuration, "SQL statement duration in milliseconds", Database,
		"tasker_sql_query_duration_milliseconds", LabelOperation),
	gauge(MetricPoolConnectionsActive, "Database pool connections in use", Database, false, "",
		"tasker_db_pool_connections_active", LabelPool),
	gauge(MetricPoolConnectionsIdle, "Database pool connections idle", Database, false, "",
		"tasker_db_pool_connections_idle", LabelPool),
	histogramMS(MetricPoolWaitDuration, "Time to acquire a pool connection, in milliseconds", Database,
		"tasker_db_pool_wait_duration_milliseconds", LabelPool),
	counter(MetricDBTransactions, "Explicit database transactions finished, by outcome", Database,
		"tasker_db_transactions_total", LabelOutcome),
	histogramMS(MetricDBTransactionDuration, "Explicit database transaction duration in milliseconds", Database,
		"tasker_db_transaction_duration_milliseconds", LabelOutcome),

	// Messaging.
	counter(MetricQueueMessagesSent, "PGMQ messages sent", Messaging, "tasker_queue_messages_sent_total", LabelQueue),
	counter(MetricQueueMessagesReceived, "PGMQ messages received (by notification or read)", Messaging,
		"tasker_queue_messages_received_total", LabelQueue, LabelClaimMethod),
	counter(MetricQueueMessagesDeleted, "PGMQ messages removed from a queue (archived or deleted)", Messaging,
		"tasker_queue_messages_deleted_total", LabelQueue, LabelOperation),
	histogramMS(MetricQueueSendDuration, "Duration of the statement that sent PGMQ messages, in milliseconds", Messaging,
		"tasker_queue_message_send_duration_milliseconds", LabelQueue),
	histogramMS(MetricQueueReceiveDuration, "Duration of a PGMQ read, in milliseconds", Messaging,
		"tasker_queue_message_receive_duration_milliseconds", LabelQueue),
	gauge(MetricQueueAgeSeconds, "Age of the oldest message in a queue, in seconds", Messaging, false, "",
		"tasker_queue_age_seconds", LabelQueue),
	counter(MetricQueueVisibilityTimeouts, "Messages delivered again after their visibility timeout ran out", Messaging,
		"tasker_queue_visibility_timeouts_total", LabelQueue),
	counter(MetricQueueErrors, "Failed PGMQ operations", Messaging, "tasker_queue_errors_total", LabelQueue, LabelOperation),
	counter(MetricQueueRetryAttempts, "PGMQ operations tried again after a failure", Messaging,
		"tasker_queue_retry_attempts_total", LabelOperation),
}

// Lookup returns the catalog entry for name, and whether there is one.
func Lookup(name string) (Metric, bool) {
	for _, m := range Catalog {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// Series returns the Prometheus series a metric is read through: its only series, or a
// histogram's _count series. It panics on a name outside the catalog, which is a
// programming error caught by any test that reaches the call.
func Series(name string) string {
	m, ok := Lookup(name)
	if !ok {
		panic("telemetry: " + name + " is not in the catalog")
	}
	for _, s := range m.Series {
		if m.Kind != Histogram || len(s) > len("_count") && s[len(s)-len("_count"):] == "_count" {
			return s
		}
	}
	return m.Series[0]
}
