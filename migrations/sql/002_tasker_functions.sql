-- Functions shared by orchestration and workers: sending with notification, the
-- state-guarded transitions, step readiness, task execution context, and the worker's
-- claim and result submission. Each is CREATE OR REPLACE, so re-running is harmless.

-- The namespace part of a queue name decides which LISTEN channel hears about it.
CREATE OR REPLACE FUNCTION tasker.extract_queue_namespace(queue_name text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN queue_name LIKE 'orchestration%' THEN 'orchestration'
        WHEN queue_name ~ '^worker_.+_queue$' THEN substring(queue_name FROM '^worker_(.+)_queue$')
        WHEN queue_name ~ '^.+_queue$' THEN substring(queue_name FROM '^(.+)_queue$')
        ELSE 'default'
    END;
$$;

-- Notifications carry the whole message when it is small, so a listener can act without
-- reading the queue; larger ones carry only the id.
CREATE OR REPLACE FUNCTION tasker.pgmq_payload_size_threshold()
RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT 7000 $$;

-- Send and notify in the caller's transaction: listeners hear about the message only when
-- the transaction that wrote it (and every state change beside it) has committed.
CREATE OR REPLACE FUNCTION tasker.pgmq_send_with_notify(queue_name text, message jsonb, delay_seconds integer DEFAULT 0)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id    bigint;
    ns        text := tasker.extract_queue_namespace(queue_name);
    body      text := message::text;
    ready_at  timestamptz := clock_timestamp() + make_interval(secs => greatest(delay_seconds, 0));
    event     jsonb;
BEGIN
    SELECT s INTO new_id FROM pgmq.send(queue_name, message, delay_seconds) AS s;
    -- Bytes, not characters: pg_notify refuses payloads of 8000 bytes or more.
    IF octet_length(body) < tasker.pgmq_payload_size_threshold() THEN
        event := jsonb_build_object('event_type', 'message_with_payload', 'msg_id', new_id,
            'queue_name', queue_name, 'namespace', ns, 'message', message,
            'ready_at', ready_at, 'delay_seconds', delay_seconds);
    END IF;
    IF event IS NULL OR octet_length(event::text) >= 7800 THEN
        event := jsonb_build_object('event_type', 'message_ready', 'msg_id', new_id,
            'queue_name', queue_name, 'namespace', ns, 'ready_at', ready_at,
            'delay_seconds', delay_seconds, 'payload_omitted', true);
    END IF;
    PERFORM pg_notify('pgmq_message_ready.' || ns, event::text);
    RETURN new_id;
END
$$;

-- Queue names become table names, so they must be plain identifiers. This guard is ours,
-- so it behaves the same on the pgmq extension and on the compatible schema.
CREATE OR REPLACE FUNCTION tasker.validate_queue_name(queue_name text)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF queue_name IS NULL OR queue_name !~ '^[a-z_][a-z0-9_]{0,47}$' THEN
        RAISE EXCEPTION 'invalid queue name %: must match ^[a-z_][a-z0-9_]{0,47}$', quote_literal(coalesce(queue_name, 'NULL'))
            USING ERRCODE = '22023';
    END IF;
END
$$;

-- Read one message by id, hiding it for vt seconds, only when it is visible now. Used when
-- a notification arrived without its payload.
CREATE OR REPLACE FUNCTION tasker.pgmq_read_specific_message(queue_name text, msg_id bigint, vt integer)
RETURNS SETOF pgmq.message_record LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tasker.validate_queue_name(queue_name);
    RETURN QUERY EXECUTE format(
        'UPDATE pgmq.%I AS q
            SET vt = clock_timestamp() + make_interval(secs => $2), read_ct = q.read_ct + 1
          WHERE q.msg_id = $1 AND q.vt <= clock_timestamp()
         RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.vt, q.message, q.headers',
        'q_' || queue_name) USING msg_id, vt;
END
$$;

-- Compare-and-set on a task's current state. The UPDATE of the most recent row is the
-- guard: a concurrent transition makes it match nothing, and then nothing is written.
CREATE OR REPLACE FUNCTION tasker.transition_task_state(
    p_task_uuid uuid, p_from text, p_to text, p_processor uuid, p_metadata jsonb)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    prev_key integer;
BEGIN
    UPDATE tasker.task_transitions AS t SET most_recent = false
     WHERE t.task_uuid = p_task_uuid AND t.most_recent AND t.to_state = p_from
    RETURNING t.sort_key INTO prev_key;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, metadata, sort_key, most_recent, processor_uuid)
    VALUES (p_task_uuid, p_from, p_to, coalesce(p_metadata, '{}'), prev_key + 1, true, p_processor);
    RETURN true;
END
$$;

-- Set-based compare-and-set for many steps at once; returns the steps that moved.
CREATE OR REPLACE FUNCTION tasker.transition_step_states(
    p_step_uuids uuid[], p_from text, p_to text, p_metadata jsonb)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
BEGIN
    -- PL/pgSQL rather than SQL so the plan is cached per session: this runs on every step.
    RETURN QUERY
    WITH prev AS (
        UPDATE tasker.workflow_step_transitions AS t SET most_recent = false
         WHERE t.workflow_step_uuid = ANY (p_step_uuids) AND t.most_recent AND t.to_state = p_from
        RETURNING t.workflow_step_uuid, t.sort_key)
    INSERT INTO tasker.workflow_step_transitions AS n (workflow_step_uuid, from_state, to_state, metadata, sort_key, most_recent)
    SELECT prev.workflow_step_uuid, p_from, p_to, coalesce(p_metadata, '{}'), prev.sort_key + 1, true FROM prev
    RETURNING n.workflow_step_uuid;
END
$$;

CREATE OR REPLACE FUNCTION tasker.get_current_task_state(p_task_uuid uuid)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT t.to_state FROM tasker.task_transitions AS t WHERE t.task_uuid = p_task_uuid AND t.most_recent;
$$;

-- Per-step readiness for one task. A step is ready when it is pending (or its retry
-- backoff has run out), every parent is complete, and it still has attempts left.
CREATE OR REPLACE FUNCTION tasker.get_step_readiness_status(p_task_uuid uuid)
RETURNS TABLE (
    workflow_step_uuid      uuid,
    task_uuid               uuid,
    named_step_uuid         uuid,
    name                    text,
    current_state           text,
    dependencies_satisfied  boolean,
    retry_eligible          boolean,
    ready_for_execution     boolean,
    last_failure_at         timestamptz,
    next_retry_at           timestamptz,
    total_parents           integer,
    completed_parents       integer,
    attempts                integer,
    max_attempts            integer,
    backoff_request_seconds double precision,
    last_attempted_at       timestamptz)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH steps AS (
        SELECT ws.workflow_step_uuid, ws.task_uuid, ws.named_step_uuid, ns.name::text AS name,
               coalesce(st.to_state, 'pending')::text AS current_state,
               ws.processed, ws.in_process, ws.retryable, ws.attempts, ws.max_attempts,
               ws.backoff_request_seconds, ws.last_attempted_at
          FROM tasker.workflow_steps AS ws
          JOIN tasker.named_steps AS ns ON ns.named_step_uuid = ws.named_step_uuid
          LEFT JOIN tasker.workflow_step_transitions AS st
                 ON st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent
         WHERE ws.task_uuid = p_task_uuid),
    parents AS (
        SELECT e.to_step_uuid,
               count(*)::integer AS total,
               (count(*) FILTER (WHERE p.current_state IN ('complete', 'resolved_manually')))::integer AS done
          FROM tasker.workflow_step_edges AS e
          JOIN steps AS p ON p.workflow_step_uuid = e.from_step_uuid
         GROUP BY e.to_step_uuid),
    failures AS (
        SELECT t.workflow_step_uuid, max(t.created_at) AS at
          FROM tasker.workflow_step_transitions AS t
          JOIN steps AS s ON s.workflow_step_uuid = t.workflow_step_uuid
         WHERE t.to_state IN ('error', 'waiting_for_retry')
         GROUP BY t.workflow_step_uuid),
    judged AS (
        SELECT s.*,
               coalesce(p.total, 0) AS total_parents,
               coalesce(p.done, 0) AS completed_parents,
               coalesce(p.total, 0) = coalesce(p.done, 0) AS deps_ok,
               (s.attempts = 0 OR (s.retryable AND s.attempts < s.max_attempts)) AS retry_ok,
               f.at AS last_failure_at,
               CASE WHEN s.current_state = 'waiting_for_retry'
                    THEN s.last_attempted_at + make_interval(secs => coalesce(s.backoff_request_seconds, 0))
               END AS next_retry_at
          FROM steps AS s
          LEFT JOIN parents AS p ON p.to_step_uuid = s.workflow_step_uuid
          LEFT JOIN failures AS f ON f.workflow_step_uuid = s.workflow_step_uuid)
    SELECT j.workflow_step_uuid, j.task_uuid, j.named_step_uuid, j.name, j.current_state,
           j.deps_ok, j.retry_ok,
           (j.current_state IN ('pending', 'waiting_for_retry')
               AND NOT j.processed AND NOT j.in_process AND j.deps_ok AND j.retry_ok
               AND (j.next_retry_at IS NULL OR j.next_retry_at <= clock_timestamp())),
           j.last_failure_at, j.next_retry_at, j.total_parents, j.completed_parents,
           j.attempts, j.max_attempts, j.backoff_request_seconds, j.last_attempted_at
      FROM judged AS j;
END
$$;

-- The task-level summary that finalization and the API both read. execution_status takes
-- the first match: blocked_by_failures, has_ready_steps, processing, all_complete,
-- waiting_for_dependencies.
CREATE OR REPLACE FUNCTION tasker.get_task_execution_context(p_task_uuid uuid)
RETURNS TABLE (
    task_uuid             uuid,
    status                text,
    total_steps           integer,
    pending_steps         integer,
    in_progress_steps     integer,
    completed_steps       integer,
    failed_steps          integer,
    ready_steps           integer,
    waiting_retry_steps   integer,
    execution_status      text,
    recommended_action    text,
    completion_percentage numeric,
    health_status         text,
    ready_step_uuids      uuid[])
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH r AS (SELECT * FROM tasker.get_step_readiness_status(p_task_uuid)),
    c AS (
        SELECT count(*)::integer AS total,
               (count(*) FILTER (WHERE current_state = 'pending'))::integer AS pending,
               (count(*) FILTER (WHERE current_state IN ('enqueued', 'in_progress',
                   'enqueued_for_orchestration', 'enqueued_as_error_for_orchestration')))::integer AS in_flight,
               (count(*) FILTER (WHERE current_state IN ('complete', 'resolved_manually')))::integer AS completed,
               (count(*) FILTER (WHERE current_state = 'error'))::integer AS failed,
               (count(*) FILTER (WHERE ready_for_execution))::integer AS ready,
               (count(*) FILTER (WHERE current_state = 'waiting_for_retry'))::integer AS waiting_retry,
               array_agg(workflow_step_uuid) FILTER (WHERE ready_for_execution) AS ready_ids
          FROM r),
    s AS (
        SELECT c.*,
               CASE WHEN c.failed > 0 THEN 'blocked_by_failures'
                    WHEN c.ready > 0 THEN 'has_ready_steps'
                    WHEN c.in_flight > 0 THEN 'processing'
                    WHEN c.total > 0 AND c.completed = c.total THEN 'all_complete'
                    ELSE 'waiting_for_dependencies'
               END AS execution_status
          FROM c)
    SELECT p_task_uuid,
           coalesce(tasker.get_current_task_state(p_task_uuid), 'pending'),
           s.total, s.pending, s.in_flight, s.completed, s.failed, s.ready, s.waiting_retry,
           s.execution_status,
           CASE s.execution_status
               WHEN 'blocked_by_failures' THEN 'handle_failures'
               WHEN 'has_ready_steps' THEN 'execute_ready_steps'
               WHEN 'processing' THEN 'wait_for_completion'
               WHEN 'all_complete' THEN 'finalize_task'
               ELSE 'wait_for_dependencies'
           END,
           CASE WHEN s.total = 0 THEN 0::numeric ELSE round(s.completed::numeric * 100 / s.total, 2) END,
           CASE WHEN s.failed > 0 THEN 'blocked'
                WHEN s.waiting_retry > 0 THEN 'recovering'
                WHEN s.total > 0 THEN 'healthy'
                ELSE 'unknown'
           END,
           coalesce(s.ready_ids, '{}')
      FROM s;
END
$$;

-- The worker's claim, as one statement and so one transaction: archive the message (which
-- only one caller can do), take the step row, compare-and-set p_from -> p_to, count the
-- attempt and take the lease. The outcome tells the caller what happened:
--   claimed      the step is this worker's; the hydration columns are filled
--   message_gone someone else already archived the message; nothing changed
--   not_claimable the message was consumed, but the step was not in p_from (a duplicate
--                delivery, or a cancelled task); nothing else changed
--   unknown_step the message was consumed, but names no step: poison
CREATE OR REPLACE FUNCTION tasker.claim_step(
    p_queue text, p_msg_id bigint, p_step_uuid uuid, p_worker text, p_lease_seconds double precision,
    p_claim_method text, p_from text, p_to text)
RETURNS TABLE (
    outcome            text,
    task_uuid          uuid,
    step_name          text,
    attempts           integer,
    max_attempts       integer,
    retryable          boolean,
    task_name          text,
    namespace          text,
    version            text,
    context            jsonb,
    correlation_id     uuid,
    dependency_results jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    -- Asynchronous commit is safe here, by WAL order: anything that acts on this claim
    -- (the result, orchestration's durable commit) is written later, so flushing it
    -- flushes this too; a crash that loses the claim loses everything after it as well,
    -- and the step is simply enqueued again with its message.
    PERFORM set_config('synchronous_commit', 'off', true);
    IF NOT pgmq.archive(p_queue, p_msg_id) THEN
        outcome := 'message_gone';
        RETURN NEXT;
        RETURN;
    END IF;
    -- Lock order everywhere: the workflow_steps row before its transition rows.
    PERFORM 1 FROM tasker.workflow_steps AS ws WHERE ws.workflow_step_uuid = p_step_uuid FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'unknown_step'; -- poison: a message about a step that does not exist
        RETURN NEXT;
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM tasker.transition_step_states(ARRAY[p_step_uuid], p_from, p_to,
            jsonb_build_object('worker_id', p_worker, 'claim_method', p_claim_method, 'msg_id', p_msg_id))) THEN
        outcome := 'not_claimable';
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE tasker.workflow_steps AS ws
       SET attempts = ws.attempts + 1, last_attempted_at = now(), in_process = true,
           claimed_by = p_worker, claim_expires_at = now() + make_interval(secs => p_lease_seconds),
           updated_at = now()
     WHERE ws.workflow_step_uuid = p_step_uuid;
    RETURN QUERY
    SELECT 'claimed'::text, ws.task_uuid, ns.name::text, ws.attempts, ws.max_attempts, ws.retryable,
           nt.name::text, tn.name::text, nt.version::text, t.context, t.correlation_id,
           coalesce((SELECT jsonb_object_agg(pns.name, coalesce(p.results -> 'result', 'null'::jsonb))
                       FROM tasker.workflow_step_edges AS e
                       JOIN tasker.workflow_steps AS p ON p.workflow_step_uuid = e.from_step_uuid
                       JOIN tasker.named_steps AS pns ON pns.named_step_uuid = p.named_step_uuid
                      WHERE e.to_step_uuid = ws.workflow_step_uuid), '{}'::jsonb)
      FROM tasker.workflow_steps AS ws
      JOIN tasker.named_steps AS ns ON ns.named_step_uuid = ws.named_step_uuid
      JOIN tasker.tasks AS t ON t.task_uuid = ws.task_uuid
      JOIN tasker.named_tasks AS nt ON nt.named_task_uuid = t.named_task_uuid
      JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
     WHERE ws.workflow_step_uuid = p_step_uuid;
END
$$;

-- The worker's result, as one statement and so one transaction: only the holder of the
-- given attempt may finish it; it stores the result, moves the step p_from -> p_to and
-- sends the completion message. Returns the new message id, or NULL when the lease was
-- lost (orchestration recovered the step) or the step was no longer in p_from.
CREATE OR REPLACE FUNCTION tasker.submit_step_result(
    p_step_uuid uuid, p_attempt integer, p_worker text, p_from text, p_to text,
    p_results jsonb, p_queue text, p_message jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    -- Asynchronous commit, for the same reason as the claim: orchestration's durable
    -- commit of the outcome flushes this; if a crash loses it, the lease runs out and the
    -- step runs again. Nothing is lost, and only orchestration's commit waits for disk.
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM 1 FROM tasker.workflow_steps AS ws
     WHERE ws.workflow_step_uuid = p_step_uuid AND ws.attempts = p_attempt AND ws.claimed_by = p_worker
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM tasker.transition_step_states(ARRAY[p_step_uuid], p_from, p_to,
            jsonb_build_object('worker_id', p_worker, 'success', p_results -> 'success',
                               'execution_time_ms', p_results #> '{metadata,execution_time_ms}'))) THEN
        RETURN NULL;
    END IF;
    UPDATE tasker.workflow_steps AS ws
       SET results = p_results, in_process = false, claimed_by = NULL, claim_expires_at = NULL, updated_at = now()
     WHERE ws.workflow_step_uuid = p_step_uuid;
    RETURN tasker.pgmq_send_with_notify(p_queue, p_message, 0);
END
$$;

-- Apply a task plan decided in Go (lifecycle.Plan), in one round trip: the moves before
-- enqueueing, the enqueue of every ready step, the moves after it, and on a terminal state
-- the task's completion columns and the finalization notice. Each move is a
-- compare-and-set; the first that fails stops the function and returns NULL, and the
-- caller rolls its transaction back. Otherwise it returns the names of the steps it
-- enqueued (an empty array when it enqueued none).
DROP FUNCTION IF EXISTS tasker.apply_task_plan(uuid, text, text[], boolean, text[], text, uuid, uuid, jsonb, boolean, uuid[]);
CREATE OR REPLACE FUNCTION tasker.apply_task_plan(
    p_task_uuid uuid, p_from text, p_before text[], p_enqueue boolean, p_after text[],
    p_queue text, p_correlation_id uuid, p_processor uuid, p_metadata jsonb, p_terminal boolean,
    p_ready uuid[])
RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    cur       text := p_from;
    nxt       text;
    ready     uuid[];
    enqueued  uuid[] := '{}';
    step_meta jsonb := jsonb_build_object('processor_uuid', p_processor);
    n         integer := 0;
BEGIN
    FOREACH nxt IN ARRAY coalesce(p_before, '{}') LOOP
        IF NOT tasker.transition_task_state(p_task_uuid, cur, nxt, p_processor, p_metadata) THEN
            RETURN NULL;
        END IF;
        cur := nxt;
    END LOOP;
    IF p_enqueue THEN
        -- The caller read the ready steps in this transaction, under the task lock, so
        -- they are still ready: no second readiness query.
        ready := coalesce(p_ready, '{}');
        -- Those waiting for a retry first go back to pending; the rest are pending already.
        PERFORM tasker.transition_step_states(ready, 'waiting_for_retry', 'pending', step_meta);
        enqueued := ARRAY(SELECT tasker.transition_step_states(ready, 'pending', 'enqueued', step_meta));
        n := coalesce(array_length(enqueued, 1), 0);
        IF n > 0 THEN
            PERFORM tasker.pgmq_send_with_notify(p_queue,
                        jsonb_build_object('task_uuid', p_task_uuid, 'step_uuid', s, 'correlation_id', p_correlation_id), 0)
               FROM unnest(enqueued) AS s;
        END IF;
    END IF;
    FOREACH nxt IN ARRAY coalesce(p_after, '{}') LOOP
        IF NOT tasker.transition_task_state(p_task_uuid, cur, nxt,
                p_processor, p_metadata || jsonb_build_object('steps_enqueued', n)) THEN
            RETURN NULL;
        END IF;
        cur := nxt;
    END LOOP;
    IF p_terminal THEN
        UPDATE tasker.tasks SET complete = (cur = 'complete'), completed_at = now(), updated_at = now()
         WHERE task_uuid = p_task_uuid;
        PERFORM pg_notify('tasker_task_finalized', p_task_uuid::text);
    END IF;
    RETURN ARRAY(SELECT ns.name::text
                   FROM unnest(enqueued) AS e(id)
                   JOIN tasker.workflow_steps AS ws ON ws.workflow_step_uuid = e.id
                   JOIN tasker.named_steps AS ns ON ns.named_step_uuid = ws.named_step_uuid
                  ORDER BY ns.name);
END
$$;
