-- The DLQ routes of the orchestration API (GET /v1/dlq, /v1/dlq/task/{uuid}) read the
-- investigation trail newest first: all of it, one resolution status of it, or one task's.
-- These indexes serve those orders, the uuid breaking ties, without sorting the table. The staleness route
-- needs none: it starts from idx_task_transitions_current_state (most recent rows by
-- state, in 001).
CREATE INDEX IF NOT EXISTS idx_tasks_dlq_timestamp ON tasker.tasks_dlq (dlq_timestamp DESC, dlq_entry_uuid DESC);
CREATE INDEX IF NOT EXISTS idx_tasks_dlq_status_timestamp ON tasker.tasks_dlq (resolution_status, dlq_timestamp DESC, dlq_entry_uuid DESC);
CREATE INDEX IF NOT EXISTS idx_tasks_dlq_task_timestamp ON tasker.tasks_dlq (task_uuid, dlq_timestamp DESC, dlq_entry_uuid DESC);
