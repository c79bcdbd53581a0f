-- The step flips return their moved steps as an array (tasker.flip_step_states), so the
-- hot-path functions take them by assignment instead of collecting a set-returning call
-- through ARRAY(SELECT ...) or SELECT ... FROM: one executor run and one materialized set
-- fewer per flip. In a single task's path each such wrapper cost about 0.07-0.14 ms
-- (pg_stat_statements, track = all), against 0.15 ms for the flip itself. apply_plans also
-- skips the waiting_for_retry -> pending flip when the caller says (a NULL p_retry_state)
-- that no ready step waits for retry; it found nothing to move on nearly every call. For
-- the same reason set_config and chain_task_transitions are assignments, not PERFORMs (a
-- PERFORM is a query of its own). The functions are those of migrations 005 and 009
-- otherwise, line for line.

-- Compare-and-set for many steps, each with its own edge and audit metadata: every step
-- whose current state is its p_from moves to its p_to. Returns the steps that moved ('{}'
-- for none). Each row finds its own edge by its position in the arrays: no join, so the
-- only plan is the index probe on the step keys.
CREATE OR REPLACE FUNCTION tasker.flip_step_states(
    p_step_uuids uuid[], p_from text[], p_to text[], p_metadata jsonb[])
RETURNS uuid[] LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
    moved uuid[];
BEGIN
    WITH prev AS (
        UPDATE tasker.workflow_step_transitions AS t SET most_recent = false
         WHERE t.workflow_step_uuid = ANY (p_step_uuids) AND t.most_recent
           AND t.to_state = p_from[array_position(p_step_uuids, t.workflow_step_uuid)]
        RETURNING t.workflow_step_uuid, t.sort_key, t.to_state AS from_state,
                  array_position(p_step_uuids, t.workflow_step_uuid) AS i),
    ins AS (
        INSERT INTO tasker.workflow_step_transitions AS n (workflow_step_uuid, from_state, to_state, metadata, sort_key, most_recent)
        SELECT prev.workflow_step_uuid, prev.from_state, p_to[prev.i], coalesce(p_metadata[prev.i], '{}'), prev.sort_key + 1, true
          FROM prev
        RETURNING n.workflow_step_uuid)
    SELECT coalesce(array_agg(ins.workflow_step_uuid), '{}') INTO moved FROM ins;
    RETURN moved;
END
$$;

-- The set-returning form stays for callers built before; its flip is flip_step_states',
-- which brings its own planner settings, so this wrapper sets none.
CREATE OR REPLACE FUNCTION tasker.transition_step_states_each(
    p_step_uuids uuid[], p_from text[], p_to text[], p_metadata jsonb[])
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT unnest(tasker.flip_step_states(p_step_uuids, p_from, p_to, p_metadata));
END
$$;

CREATE OR REPLACE FUNCTION tasker.claim_archived_steps(
    p_archived bigint[], p_msg_ids bigint[], p_step_uuids uuid[], p_methods text[], p_traces jsonb[],
    p_worker text, p_lease_seconds double precision, p_from text, p_to text)
RETURNS TABLE (
    msg_id             bigint,
    outcome            text,
    step_uuid          uuid,
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
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
#variable_conflict use_column
DECLARE
    archived bigint[];
    existing uuid[];
    claim_ids bigint[];
    moved    uuid[];
    setting  text;
BEGIN
    -- Asynchronous commit is safe, by WAL order: anything that acts on this claim (the
    -- result, orchestration's durable commit) is written later, so flushing it flushes
    -- this too; a crash that loses the claim loses everything after it as well, and the
    -- step is simply enqueued again with its message.
    setting := set_config('synchronous_commit', 'off', true);
    archived := coalesce(p_archived, '{}');
    -- Lock order everywhere: workflow_steps rows (in uuid order) before their transitions.
    existing := ARRAY(
        SELECT ws.workflow_step_uuid FROM tasker.workflow_steps AS ws
         WHERE ws.workflow_step_uuid = ANY (ARRAY(SELECT m.step FROM unnest(p_msg_ids, p_step_uuids) AS m(id, step)
                                                   WHERE m.id = ANY (archived)))
         ORDER BY ws.workflow_step_uuid
           FOR UPDATE);
    -- One claim per step: the lowest archived message that names it.
    claim_ids := ARRAY(
        SELECT DISTINCT ON (m.step) m.id FROM unnest(p_msg_ids, p_step_uuids) AS m(id, step)
         WHERE m.id = ANY (archived) AND m.step = ANY (existing)
         ORDER BY m.step, m.id);
    SELECT tasker.flip_step_states(array_agg(m.step), array_agg(p_from), array_agg(p_to),
               array_agg(jsonb_build_object('worker_id', p_worker, 'claim_method', m.method, 'msg_id', m.id)))
      INTO moved
      FROM unnest(p_msg_ids, p_step_uuids, p_methods) AS m(id, step, method)
     WHERE m.id = ANY (claim_ids);
    UPDATE tasker.workflow_steps AS ws
       SET attempts = ws.attempts + 1, last_attempted_at = now(), in_process = true,
           claimed_by = p_worker, claim_expires_at = now() + make_interval(secs => p_lease_seconds),
           trace_context = coalesce(m.trace, ws.trace_context), updated_at = now()
      FROM unnest(p_msg_ids, p_step_uuids, p_traces) AS m(id, step, trace)
     WHERE ws.workflow_step_uuid = ANY (moved) AND ws.workflow_step_uuid = m.step AND m.id = ANY (claim_ids);
    -- A message listed twice is archived once: only its first listing can claim; a later
    -- one reports message_gone, as a second delivery does.
    RETURN QUERY
    SELECT m.id,
           CASE WHEN NOT m.id = ANY (archived) OR m.ord > array_position(p_msg_ids, m.id) THEN 'message_gone'
                WHEN NOT m.step = ANY (existing) THEN 'unknown_step'
                WHEN m.id = ANY (claim_ids) AND m.step = ANY (moved) THEN 'claimed'
                ELSE 'not_claimable'
           END,
           m.step, h.task_uuid, h.step_name, h.attempts, h.max_attempts, h.retryable,
           h.task_name, h.namespace, h.version, h.context, h.correlation_id, h.dependency_results
      FROM unnest(p_msg_ids, p_step_uuids) WITH ORDINALITY AS m(id, step, ord)
      LEFT JOIN LATERAL (
          SELECT ws.task_uuid, ns.name::text AS step_name, ws.attempts, ws.max_attempts, ws.retryable,
                 nt.name::text AS task_name, tn.name::text AS namespace, nt.version::text AS version,
                 t.context, t.correlation_id,
                 coalesce((SELECT jsonb_object_agg(pns.name, coalesce(p.results -> 'result', 'null'::jsonb))
                             FROM tasker.workflow_step_edges AS e
                             JOIN tasker.workflow_steps AS p ON p.workflow_step_uuid = e.from_step_uuid
                             JOIN tasker.named_steps AS pns ON pns.named_step_uuid = p.named_step_uuid
                            WHERE e.to_step_uuid = ws.workflow_step_uuid), '{}'::jsonb) AS dependency_results
            FROM tasker.workflow_steps AS ws
            JOIN tasker.named_steps AS ns ON ns.named_step_uuid = ws.named_step_uuid
            JOIN tasker.tasks AS t ON t.task_uuid = ws.task_uuid
            JOIN tasker.named_tasks AS nt ON nt.named_task_uuid = t.named_task_uuid
            JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
           WHERE ws.workflow_step_uuid = m.step
          OFFSET 0) AS h -- a fence: probe by key per claimed message, never a join over the table
        ON m.id = ANY (claim_ids) AND m.step = ANY (moved) AND m.ord = array_position(p_msg_ids, m.id)
     ORDER BY m.ord;
END
$$;

CREATE OR REPLACE FUNCTION tasker.submit_step_results(
    p_step_uuids uuid[], p_attempts integer[], p_success boolean[], p_results jsonb[],
    p_messages jsonb[], p_headers jsonb[], p_worker text, p_from text, p_ok_to text, p_err_to text)
RETURNS TABLE (step_uuid uuid, msg_id bigint)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
#variable_conflict use_column
DECLARE
    held    uuid[];
    moved   uuid[];
    sent    bigint[];
    setting text;
BEGIN
    -- Asynchronous commit, as for the claim: orchestration's durable commit of the outcome
    -- flushes this; if a crash loses it, the lease runs out and the step runs again.
    setting := set_config('synchronous_commit', 'off', true);
    held := ARRAY(
        SELECT ws.workflow_step_uuid
          FROM tasker.workflow_steps AS ws
          JOIN unnest(p_step_uuids, p_attempts) AS m(step, attempt)
            ON ws.workflow_step_uuid = m.step AND ws.attempts = m.attempt
         WHERE ws.workflow_step_uuid = ANY (p_step_uuids) AND ws.claimed_by = p_worker
         ORDER BY ws.workflow_step_uuid
           FOR UPDATE OF ws);
    SELECT tasker.flip_step_states(array_agg(m.step), array_agg(p_from),
               array_agg(CASE WHEN m.ok THEN p_ok_to ELSE p_err_to END),
               array_agg(jsonb_build_object('worker_id', p_worker, 'success', m.res -> 'success',
                         'execution_time_ms', m.res #> '{metadata,execution_time_ms}')))
      INTO moved
      FROM unnest(p_step_uuids, p_success, p_results) AS m(step, ok, res)
     WHERE m.step = ANY (held);
    UPDATE tasker.workflow_steps AS ws
       SET results = m.res, in_process = false, claimed_by = NULL, claim_expires_at = NULL,
           trace_context = coalesce(m.hdr, ws.trace_context), updated_at = now()
      FROM unnest(p_step_uuids, p_results, p_headers) AS m(step, res, hdr)
     WHERE ws.workflow_step_uuid = ANY (moved) AND ws.workflow_step_uuid = m.step;
    WITH ins AS (
        INSERT INTO pgmq.q_orchestration_step_results (vt, message, headers)
        SELECT clock_timestamp(), m.msg, m.hdr
          FROM unnest(p_step_uuids, p_messages, p_headers) WITH ORDINALITY AS m(step, msg, hdr, ord)
         WHERE m.step = ANY (moved)
         ORDER BY m.ord
        RETURNING q_orchestration_step_results.msg_id, message, headers)
    SELECT array_agg(ins.msg_id ORDER BY ins.msg_id) INTO sent FROM ins
     CROSS JOIN LATERAL (SELECT pg_notify('pgmq_message_ready.orchestration',
            tasker.message_ready_event('orchestration_step_results', 'orchestration', ins.msg_id,
                                       ins.message, ins.headers, 0)::text)) AS n;
    RETURN QUERY
    SELECT s.step, s.id
      FROM (SELECT m.step, m.ord, sent[row_number() OVER (ORDER BY m.ord)] AS id
              FROM unnest(p_step_uuids) WITH ORDINALITY AS m(step, ord)
             WHERE m.step = ANY (moved)
            UNION ALL
            SELECT m.step, m.ord, NULL
              FROM unnest(p_step_uuids) WITH ORDINALITY AS m(step, ord)
             WHERE NOT m.step = ANY (moved)) AS s
     ORDER BY s.ord;
END
$$;

CREATE OR REPLACE FUNCTION tasker.finalize_steps(
    p_step_uuids uuid[], p_from text[], p_to text[], p_metadata jsonb[], p_processed boolean[],
    p_backoff double precision[], p_release boolean[], p_results jsonb[])
RETURNS SETOF uuid LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
    moved uuid[];
BEGIN
    moved := tasker.flip_step_states(p_step_uuids, p_from, p_to, p_metadata);
    UPDATE tasker.workflow_steps AS ws
       SET processed = ws.processed OR f.processed,
           processed_at = CASE WHEN f.processed THEN now() ELSE ws.processed_at END,
           backoff_request_seconds = coalesce(f.backoff, ws.backoff_request_seconds),
           last_attempted_at = CASE WHEN f.backoff IS NOT NULL THEN now() ELSE ws.last_attempted_at END,
           in_process = ws.in_process AND NOT f.release,
           claimed_by = CASE WHEN f.release THEN NULL ELSE ws.claimed_by END,
           claim_expires_at = CASE WHEN f.release THEN NULL ELSE ws.claim_expires_at END,
           results = coalesce(f.results, ws.results),
           updated_at = now()
      FROM unnest(p_step_uuids, p_processed, p_backoff, p_release, p_results) AS f(step, processed, backoff, release, results)
     WHERE ws.workflow_step_uuid = ANY (moved) AND ws.workflow_step_uuid = f.step;
    RETURN QUERY SELECT unnest(moved);
END
$$;

CREATE OR REPLACE FUNCTION tasker.apply_plans(
    p_tasks uuid[], p_from text[], p_move_tasks uuid[], p_move_to text[], p_move_meta jsonb[],
    p_ready uuid[], p_terminal uuid[], p_terminal_complete boolean[],
    p_processor uuid, p_retry_state text, p_pending_state text, p_enqueued_state text)
RETURNS SETOF uuid LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
    step_meta jsonb := jsonb_build_object('processor_uuid', p_processor);
    enqueued  uuid[] := '{}';
    retried   uuid[];
    n         integer;
    chained   integer;
BEGIN
    IF coalesce(cardinality(p_ready), 0) > 0 THEN
        n := cardinality(p_ready);
        -- A NULL p_retry_state says no ready step waits for retry: nothing to move back.
        IF p_retry_state IS NOT NULL THEN
            retried := tasker.flip_step_states(p_ready, array_fill(p_retry_state, ARRAY[n]),
                           array_fill(p_pending_state, ARRAY[n]), array_fill(step_meta, ARRAY[n]));
        END IF;
        enqueued := tasker.flip_step_states(p_ready, array_fill(p_pending_state, ARRAY[n]),
                        array_fill(p_enqueued_state, ARRAY[n]), array_fill(step_meta, ARRAY[n]));
        IF cardinality(enqueued) <> cardinality(p_ready) THEN
            RAISE EXCEPTION 'stale step state: % of % ready steps could be enqueued',
                cardinality(enqueued), cardinality(p_ready) USING ERRCODE = 'TS001';
        END IF;
    END IF;
    chained := tasker.chain_task_transitions(p_tasks, p_from, p_move_tasks, p_move_to, p_move_meta, p_processor);
    IF coalesce(cardinality(p_terminal), 0) > 0 THEN
        UPDATE tasker.tasks AS t SET complete = f.complete, completed_at = now(), updated_at = now()
          FROM unnest(p_terminal, p_terminal_complete) AS f(id, complete)
         WHERE t.task_uuid = ANY (p_terminal) AND t.task_uuid = f.id;
        PERFORM pg_notify('tasker_task_finalized', f::text) FROM unnest(p_terminal) AS f;
    END IF;
    RETURN QUERY SELECT unnest(enqueued);
END
$$;
