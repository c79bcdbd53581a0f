-- Schema `tasker`: templates, tasks, steps, the DAG and the append-only audit of every
-- state transition. A row's current state is its `most_recent` transition; nothing else
-- stores it, so there is one source of truth for every compare-and-set.

CREATE SCHEMA IF NOT EXISTS tasker;

CREATE TABLE IF NOT EXISTS tasker.task_namespaces (
    task_namespace_uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                varchar(64) NOT NULL UNIQUE,
    description         text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tasker.named_tasks (
    named_task_uuid     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task_namespace_uuid uuid NOT NULL REFERENCES tasker.task_namespaces,
    name                varchar(64) NOT NULL,
    version             varchar(16) NOT NULL DEFAULT '0.1.0',
    description         text,
    configuration       jsonb NOT NULL DEFAULT '{}',
    identity_strategy   text NOT NULL DEFAULT 'strict'
        CHECK (identity_strategy IN ('strict', 'caller_provided', 'always_unique')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_namespace_uuid, name, version)
);

CREATE TABLE IF NOT EXISTS tasker.named_steps (
    named_step_uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            varchar(128) NOT NULL UNIQUE,
    description     text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS tasker.named_tasks_named_steps (
    named_task_uuid      uuid NOT NULL REFERENCES tasker.named_tasks ON DELETE CASCADE,
    named_step_uuid      uuid NOT NULL REFERENCES tasker.named_steps,
    default_retryable    boolean NOT NULL DEFAULT true,
    default_max_attempts integer NOT NULL DEFAULT 3,
    PRIMARY KEY (named_task_uuid, named_step_uuid)
);

CREATE TABLE IF NOT EXISTS tasker.tasks (
    task_uuid             uuid PRIMARY KEY,
    named_task_uuid       uuid NOT NULL REFERENCES tasker.named_tasks,
    complete              boolean NOT NULL DEFAULT false,
    requested_at          timestamptz NOT NULL DEFAULT now(),
    completed_at          timestamptz,
    initiator             varchar(255),
    source_system         varchar(255),
    reason                varchar(255),
    tags                  jsonb NOT NULL DEFAULT '[]',
    context               jsonb NOT NULL DEFAULT '{}',
    identity_hash         varchar(128) NOT NULL,
    priority              integer NOT NULL DEFAULT 0,
    correlation_id        uuid NOT NULL,
    parent_correlation_id uuid,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_tasks_identity_hash ON tasker.tasks (identity_hash);
CREATE INDEX IF NOT EXISTS idx_tasks_correlation_id ON tasker.tasks (correlation_id);
CREATE INDEX IF NOT EXISTS idx_tasks_created_at ON tasker.tasks (created_at DESC);

CREATE TABLE IF NOT EXISTS tasker.workflow_steps (
    workflow_step_uuid      uuid PRIMARY KEY,
    task_uuid               uuid NOT NULL REFERENCES tasker.tasks ON DELETE CASCADE,
    named_step_uuid         uuid NOT NULL REFERENCES tasker.named_steps,
    retryable               boolean NOT NULL DEFAULT true,
    max_attempts            integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 0),
    in_process              boolean NOT NULL DEFAULT false,
    processed               boolean NOT NULL DEFAULT false,
    processed_at            timestamptz,
    attempts                integer NOT NULL DEFAULT 0,
    last_attempted_at       timestamptz,
    backoff_request_seconds double precision,
    inputs                  jsonb,
    results                 jsonb,
    priority                integer NOT NULL DEFAULT 0,
    -- The claim lease: which worker holds the step and until when. A lease that runs past
    -- its visibility timeout marks an orphan that orchestration hands to another worker.
    claimed_by              text,
    claim_expires_at        timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_uuid, named_step_uuid)
);
CREATE INDEX IF NOT EXISTS idx_workflow_steps_claim_expiry ON tasker.workflow_steps (claim_expires_at)
    WHERE in_process;

CREATE TABLE IF NOT EXISTS tasker.workflow_step_edges (
    workflow_step_edge_uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    from_step_uuid          uuid NOT NULL REFERENCES tasker.workflow_steps ON DELETE CASCADE,
    to_step_uuid            uuid NOT NULL REFERENCES tasker.workflow_steps ON DELETE CASCADE,
    name                    varchar(128) NOT NULL DEFAULT 'provides',
    created_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (from_step_uuid, to_step_uuid, name),
    CHECK (from_step_uuid <> to_step_uuid)
);
CREATE INDEX IF NOT EXISTS idx_workflow_step_edges_to ON tasker.workflow_step_edges (to_step_uuid);

CREATE TABLE IF NOT EXISTS tasker.task_transitions (
    task_transition_uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task_uuid            uuid NOT NULL REFERENCES tasker.tasks ON DELETE CASCADE,
    from_state           varchar(64),
    to_state             varchar(64) NOT NULL CHECK (to_state IN (
        'pending', 'initializing', 'enqueuing_steps', 'steps_in_process', 'evaluating_results',
        'waiting_for_dependencies', 'waiting_for_retry', 'blocked_by_failures',
        'complete', 'error', 'cancelled', 'resolved_manually')),
    metadata             jsonb NOT NULL DEFAULT '{}',
    sort_key             integer NOT NULL,
    most_recent          boolean NOT NULL,
    processor_uuid       uuid,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (task_uuid, sort_key)
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_task_transitions_most_recent ON tasker.task_transitions (task_uuid)
    WHERE most_recent;
CREATE INDEX IF NOT EXISTS idx_task_transitions_current_state ON tasker.task_transitions (to_state)
    WHERE most_recent;

CREATE TABLE IF NOT EXISTS tasker.workflow_step_transitions (
    workflow_step_transition_uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workflow_step_uuid            uuid NOT NULL REFERENCES tasker.workflow_steps ON DELETE CASCADE,
    from_state                    varchar(64),
    to_state                      varchar(64) NOT NULL CHECK (to_state IN (
        'pending', 'enqueued', 'in_progress', 'enqueued_for_orchestration',
        'enqueued_as_error_for_orchestration', 'waiting_for_retry',
        'complete', 'error', 'cancelled', 'resolved_manually')),
    metadata                      jsonb NOT NULL DEFAULT '{}',
    sort_key                      integer NOT NULL,
    most_recent                   boolean NOT NULL,
    created_at                    timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (workflow_step_uuid, sort_key)
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_workflow_step_transitions_most_recent
    ON tasker.workflow_step_transitions (workflow_step_uuid) WHERE most_recent;
CREATE INDEX IF NOT EXISTS idx_workflow_step_transitions_current_state
    ON tasker.workflow_step_transitions (to_state) WHERE most_recent;

CREATE TABLE IF NOT EXISTS tasker.tasks_dlq (
    dlq_entry_uuid    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task_uuid         uuid NOT NULL REFERENCES tasker.tasks ON DELETE CASCADE,
    original_state    varchar(64) NOT NULL,
    dlq_reason        text NOT NULL CHECK (dlq_reason IN (
        'staleness_timeout', 'max_retries_exceeded', 'dependency_cycle_detected',
        'worker_unavailable', 'manual_dlq')),
    dlq_timestamp     timestamptz NOT NULL DEFAULT now(),
    resolution_status text NOT NULL DEFAULT 'pending' CHECK (resolution_status IN (
        'pending', 'manually_resolved', 'permanently_failed', 'cancelled')),
    resolution_timestamp timestamptz,
    resolution_notes  text,
    resolved_by       text,
    task_snapshot     jsonb,
    metadata          jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_tasks_dlq_one_pending ON tasker.tasks_dlq (task_uuid)
    WHERE resolution_status = 'pending';
