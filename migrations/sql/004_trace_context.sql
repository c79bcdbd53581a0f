-- W3C trace context through the queues, so one task is one trace. Every message tasker-sim
-- sends carries its sender's span context in pgmq's message headers ({"traceparent": …,
-- "tracestate": …}); the receiver's span continues the sender's trace. Rows keep the last
-- span context that acted on them, so a later span can link to it: a step enqueued by the
-- result of its last parent links to the other parents, a retry to the attempt before it,
-- and a maintenance span to the task's create_task span.
--
-- The old signatures stay: each becomes a thin wrapper that sends no headers, so a process
-- built before this migration keeps working beside one built after it.

ALTER TABLE tasker.tasks ADD COLUMN IF NOT EXISTS trace_context jsonb;
ALTER TABLE tasker.workflow_steps ADD COLUMN IF NOT EXISTS trace_context jsonb;

COMMENT ON COLUMN tasker.tasks.trace_context IS
    'Message headers ({"traceparent", "tracestate"}) of the create_task span: the root of the task''s trace.';
COMMENT ON COLUMN tasker.workflow_steps.trace_context IS
    'Message headers of the last span that worked on the step: its claim, then its execution.';

-- Send with headers and notify. The notification carries the headers beside the message
-- when it carries the message, so a listener never has to read the queue for them.
CREATE OR REPLACE FUNCTION tasker.pgmq_send_with_notify(
    queue_name text, message jsonb, delay_seconds integer, headers jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_id     bigint;
    ns         text := tasker.extract_queue_namespace(queue_name);
    body_bytes integer := octet_length(message::text) + coalesce(octet_length(headers::text), 0);
    ready_at   timestamptz := clock_timestamp() + make_interval(secs => greatest(delay_seconds, 0));
    event      jsonb;
BEGIN
    SELECT s INTO new_id FROM pgmq.send(queue_name, message, headers, delay_seconds) AS s;
    -- Bytes, not characters: pg_notify refuses payloads of 8000 bytes or more.
    IF body_bytes < tasker.pgmq_payload_size_threshold() THEN
        event := jsonb_build_object('event_type', 'message_with_payload', 'msg_id', new_id,
            'queue_name', queue_name, 'namespace', ns, 'message', message,
            'ready_at', ready_at, 'delay_seconds', delay_seconds);
        IF headers IS NOT NULL THEN
            event := event || jsonb_build_object('headers', headers);
        END IF;
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

CREATE OR REPLACE FUNCTION tasker.pgmq_send_with_notify(queue_name text, message jsonb, delay_seconds integer DEFAULT 0)
RETURNS bigint LANGUAGE sql AS $$
    SELECT tasker.pgmq_send_with_notify(queue_name, message, delay_seconds, NULL::jsonb);
$$;

-- The worker's claim (see 002_tasker_functions.sql), which also records p_trace, the claim
-- span's context, as the step's trace_context: if the worker dies, the step's recovery
-- links to the attempt it lost.
CREATE OR REPLACE FUNCTION tasker.claim_step(
    p_queue text, p_msg_id bigint, p_step_uuid uuid, p_worker text, p_lease_seconds double precision,
    p_claim_method text, p_from text, p_to text, p_trace jsonb)
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
           trace_context = coalesce(p_trace, ws.trace_context), updated_at = now()
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
LANGUAGE sql AS $$
    SELECT * FROM tasker.claim_step(p_queue, p_msg_id, p_step_uuid, p_worker, p_lease_seconds,
                                    p_claim_method, p_from, p_to, NULL::jsonb);
$$;

-- The worker's result (see 002_tasker_functions.sql). p_headers, the context of the span
-- that ran the step, rides on the completion message and becomes the step's trace_context,
-- which a child step with several parents links to.
CREATE OR REPLACE FUNCTION tasker.submit_step_result(
    p_step_uuid uuid, p_attempt integer, p_worker text, p_from text, p_to text,
    p_results jsonb, p_queue text, p_message jsonb, p_headers jsonb)
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
       SET results = p_results, in_process = false, claimed_by = NULL, claim_expires_at = NULL,
           trace_context = coalesce(p_headers, ws.trace_context), updated_at = now()
     WHERE ws.workflow_step_uuid = p_step_uuid;
    RETURN tasker.pgmq_send_with_notify(p_queue, p_message, 0, p_headers);
END
$$;

CREATE OR REPLACE FUNCTION tasker.submit_step_result(
    p_step_uuid uuid, p_attempt integer, p_worker text, p_from text, p_to text,
    p_results jsonb, p_queue text, p_message jsonb)
RETURNS bigint LANGUAGE sql AS $$
    SELECT tasker.submit_step_result(p_step_uuid, p_attempt, p_worker, p_from, p_to,
                                     p_results, p_queue, p_message, NULL::jsonb);
$$;

-- Apply a task plan (see 002_tasker_functions.sql); every step message it sends carries
-- p_headers, the context of the span that decided the plan.
CREATE OR REPLACE FUNCTION tasker.apply_task_plan(
    p_task_uuid uuid, p_from text, p_before text[], p_enqueue boolean, p_after text[],
    p_queue text, p_correlation_id uuid, p_processor uuid, p_metadata jsonb, p_terminal boolean,
    p_ready uuid[], p_headers jsonb)
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
                        jsonb_build_object('task_uuid', p_task_uuid, 'step_uuid', s, 'correlation_id', p_correlation_id),
                        0, p_headers)
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

CREATE OR REPLACE FUNCTION tasker.apply_task_plan(
    p_task_uuid uuid, p_from text, p_before text[], p_enqueue boolean, p_after text[],
    p_queue text, p_correlation_id uuid, p_processor uuid, p_metadata jsonb, p_terminal boolean,
    p_ready uuid[])
RETURNS text[] LANGUAGE sql AS $$
    SELECT tasker.apply_task_plan(p_task_uuid, p_from, p_before, p_enqueue, p_after, p_queue,
                                  p_correlation_id, p_processor, p_metadata, p_terminal, p_ready, NULL::jsonb);
$$;
