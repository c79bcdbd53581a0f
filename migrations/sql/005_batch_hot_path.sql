-- The hot path, set-based: a worker claims and submits many steps per statement, and
-- orchestration finalizes many results and applies many task plans per transaction. Each
-- function takes parallel arrays (one element per message, step or task), writes the
-- same audit rows the one-at-a-time functions of 002/004 write, and keeps their
-- compare-and-set rules. The one-at-a-time functions stay, for processes built before.
--
-- Readiness is now read through indexes only (a task's steps, their incoming edges, each
-- step's own transitions), so its cost does not grow with the history of finished tasks.
--
-- Plans: each hot-path function is PL/pgSQL with a forced generic plan, so a session
-- plans each statement once (re-planning cost more than running them), and with
-- sequential scans, hash joins and merge joins off, so that plan is nested index lookups
-- driven by the few rows asked for, even when it was made while the tables were empty: a
-- plan cached then must still be right at a million rows.

-- Per-step readiness for many tasks at once. Same columns and rules as
-- tasker.get_step_readiness_status, which now wraps it.
CREATE OR REPLACE FUNCTION tasker.step_readiness(p_task_uuids uuid[])
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
-- SQL, so that it is inlined into its (PL/pgSQL) callers and planned once with them.
LANGUAGE sql STABLE ROWS 20 AS $$
    -- Every per-step lookup is a correlated subquery on the step's own key, so the only
    -- plan for it is an index probe: a join could be planned as a scan of every current
    -- transition, which is cheap on the empty tables a session may first plan on.
    WITH steps AS (
        SELECT ws.workflow_step_uuid, ws.task_uuid, ws.named_step_uuid,
               (SELECT ns.name::text FROM tasker.named_steps AS ns WHERE ns.named_step_uuid = ws.named_step_uuid) AS name,
               coalesce((SELECT st.to_state FROM tasker.workflow_step_transitions AS st
                          WHERE st.workflow_step_uuid = ws.workflow_step_uuid AND st.most_recent), 'pending')::text AS current_state,
               ws.processed, ws.in_process, ws.retryable, ws.attempts, ws.max_attempts,
               ws.backoff_request_seconds, ws.last_attempted_at
          FROM tasker.workflow_steps AS ws
         WHERE ws.task_uuid = ANY (p_task_uuids)),
    judged AS (
        SELECT s.*, p.total AS total_parents, p.done AS completed_parents,
               p.total = p.done AS deps_ok,
               (s.attempts = 0 OR (s.retryable AND s.attempts < s.max_attempts)) AS retry_ok,
               -- A step never attempted has never failed: skip the lookup.
               CASE WHEN s.attempts > 0 THEN
                   (SELECT max(t.created_at) FROM tasker.workflow_step_transitions AS t
                     WHERE t.workflow_step_uuid = s.workflow_step_uuid
                       AND t.to_state IN ('error', 'waiting_for_retry'))
               END AS last_failure_at,
               CASE WHEN s.current_state = 'waiting_for_retry'
                    THEN s.last_attempted_at + make_interval(secs => coalesce(s.backoff_request_seconds, 0))
               END AS next_retry_at
          FROM steps AS s
          CROSS JOIN LATERAL (
              SELECT count(*)::integer AS total,
                     (count(*) FILTER (WHERE (SELECT pst.to_state FROM tasker.workflow_step_transitions AS pst
                                               WHERE pst.workflow_step_uuid = e.from_step_uuid AND pst.most_recent)
                                             IN ('complete', 'resolved_manually')))::integer AS done
                FROM tasker.workflow_step_edges AS e
               WHERE e.to_step_uuid = s.workflow_step_uuid) AS p)
    SELECT j.workflow_step_uuid, j.task_uuid, j.named_step_uuid, j.name, j.current_state,
           j.deps_ok, j.retry_ok,
           (j.current_state IN ('pending', 'waiting_for_retry')
               AND NOT j.processed AND NOT j.in_process AND j.deps_ok AND j.retry_ok
               AND (j.next_retry_at IS NULL OR j.next_retry_at <= clock_timestamp())),
           j.last_failure_at, j.next_retry_at, j.total_parents, j.completed_parents,
           j.attempts, j.max_attempts, j.backoff_request_seconds, j.last_attempted_at
      FROM judged AS j;
$$;

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
LANGUAGE sql STABLE AS $$
    SELECT * FROM tasker.step_readiness(ARRAY[p_task_uuid]);
$$;

-- The task-level summary for many tasks at once, one row per task asked for (also for a
-- task with no steps). Same columns and rules as tasker.get_task_execution_context,
-- which now wraps it.
CREATE OR REPLACE FUNCTION tasker.task_execution_contexts(p_task_uuids uuid[])
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
-- ROWS: the planner's guess for a call (a batch of tasks), so statements that join it stay
-- far below jit_above_cost.
LANGUAGE plpgsql STABLE ROWS 10 SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH c AS (
        SELECT r.task_uuid,
               count(*)::integer AS total,
               (count(*) FILTER (WHERE r.current_state = 'pending'))::integer AS pending,
               (count(*) FILTER (WHERE r.current_state IN ('enqueued', 'in_progress',
                   'enqueued_for_orchestration', 'enqueued_as_error_for_orchestration')))::integer AS in_flight,
               (count(*) FILTER (WHERE r.current_state IN ('complete', 'resolved_manually')))::integer AS completed,
               (count(*) FILTER (WHERE r.current_state = 'error'))::integer AS failed,
               (count(*) FILTER (WHERE r.ready_for_execution))::integer AS ready,
               (count(*) FILTER (WHERE r.current_state = 'waiting_for_retry'))::integer AS waiting_retry,
               array_agg(r.workflow_step_uuid ORDER BY r.workflow_step_uuid) FILTER (WHERE r.ready_for_execution) AS ready_ids
          FROM tasker.step_readiness(p_task_uuids) AS r
         GROUP BY r.task_uuid),
    s AS (
        SELECT q.id, coalesce(c.total, 0) AS total, coalesce(c.pending, 0) AS pending,
               coalesce(c.in_flight, 0) AS in_flight, coalesce(c.completed, 0) AS completed,
               coalesce(c.failed, 0) AS failed, coalesce(c.ready, 0) AS ready,
               coalesce(c.waiting_retry, 0) AS waiting_retry, c.ready_ids
          FROM (SELECT DISTINCT u AS id FROM unnest(p_task_uuids) AS u) AS q
          LEFT JOIN c ON c.task_uuid = q.id),
    e AS (
        SELECT s.*,
               CASE WHEN s.failed > 0 THEN 'blocked_by_failures'
                    WHEN s.ready > 0 THEN 'has_ready_steps'
                    WHEN s.in_flight > 0 THEN 'processing'
                    WHEN s.total > 0 AND s.completed = s.total THEN 'all_complete'
                    ELSE 'waiting_for_dependencies'
               END AS execution_status
          FROM s)
    SELECT e.id,
           coalesce((SELECT tt.to_state FROM tasker.task_transitions AS tt
                      WHERE tt.task_uuid = e.id AND tt.most_recent), 'pending')::text,
           e.total, e.pending, e.in_flight, e.completed, e.failed, e.ready, e.waiting_retry,
           e.execution_status,
           CASE e.execution_status
               WHEN 'blocked_by_failures' THEN 'handle_failures'
               WHEN 'has_ready_steps' THEN 'execute_ready_steps'
               WHEN 'processing' THEN 'wait_for_completion'
               WHEN 'all_complete' THEN 'finalize_task'
               ELSE 'wait_for_dependencies'
           END,
           CASE WHEN e.total = 0 THEN 0::numeric ELSE round(e.completed::numeric * 100 / e.total, 2) END,
           CASE WHEN e.failed > 0 THEN 'blocked'
                WHEN e.waiting_retry > 0 THEN 'recovering'
                WHEN e.total > 0 THEN 'healthy'
                ELSE 'unknown'
           END,
           coalesce(e.ready_ids, '{}')
      FROM e;
END
$$;

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
LANGUAGE sql STABLE AS $$
    SELECT * FROM tasker.task_execution_contexts(ARRAY[p_task_uuid]);
$$;

-- Compare-and-set for many steps, each with its own edge and audit metadata: every step
-- whose current state is its p_from moves to its p_to. Returns the steps that moved.
CREATE OR REPLACE FUNCTION tasker.transition_step_states_each(
    p_step_uuids uuid[], p_from text[], p_to text[], p_metadata jsonb[])
RETURNS SETOF uuid LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    RETURN QUERY
    -- Each row finds its own edge by its position in the arrays: no join, so the only
    -- plan is the index probe on the step keys.
    WITH prev AS (
        UPDATE tasker.workflow_step_transitions AS t SET most_recent = false
         WHERE t.workflow_step_uuid = ANY (p_step_uuids) AND t.most_recent
           AND t.to_state = p_from[array_position(p_step_uuids, t.workflow_step_uuid)]
        RETURNING t.workflow_step_uuid, t.sort_key, array_position(p_step_uuids, t.workflow_step_uuid) AS i)
    INSERT INTO tasker.workflow_step_transitions AS n (workflow_step_uuid, from_state, to_state, metadata, sort_key, most_recent)
    SELECT prev.workflow_step_uuid, p_from[prev.i], p_to[prev.i], coalesce(p_metadata[prev.i], '{}'), prev.sort_key + 1, true
      FROM prev
    RETURNING n.workflow_step_uuid;
END
$$;

-- Chains of task transitions for many tasks: each task listed in p_move_tasks must be in
-- its p_from state (p_tasks and p_from are parallel), and then makes its moves in the
-- order listed, one audit row each, the last one most recent. A task whose state is not
-- its p_from fails the whole call (SQLSTATE TS001), so the caller's transaction rolls
-- back rather than half-moving a batch.
CREATE OR REPLACE FUNCTION tasker.chain_task_transitions(
    p_tasks uuid[], p_from text[], p_move_tasks uuid[], p_move_to text[], p_move_meta jsonb[], p_processor uuid)
RETURNS integer LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    want  integer;
    moved integer;
BEGIN
    SELECT count(DISTINCT m) INTO want FROM unnest(p_move_tasks) AS m;
    IF want = 0 THEN
        RETURN 0;
    END IF;
    WITH prev AS (
        UPDATE tasker.task_transitions AS t SET most_recent = false
         WHERE t.task_uuid = ANY (p_move_tasks) AND t.most_recent
           AND t.to_state = p_from[array_position(p_tasks, t.task_uuid)]
        RETURNING t.task_uuid, t.sort_key, p_from[array_position(p_tasks, t.task_uuid)] AS from_state),
    chain AS (
        SELECT m.task, m.to_state, m.meta, m.ord,
               row_number() OVER w AS k,
               count(*) OVER (PARTITION BY m.task) AS n,
               lag(m.to_state) OVER w AS prev_state
          FROM unnest(p_move_tasks, p_move_to, p_move_meta) WITH ORDINALITY AS m(task, to_state, meta, ord)
        WINDOW w AS (PARTITION BY m.task ORDER BY m.ord)),
    ins AS (
        INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, metadata, sort_key, most_recent, processor_uuid)
        SELECT c.task, coalesce(c.prev_state, prev.from_state), c.to_state, coalesce(c.meta, '{}'),
               prev.sort_key + c.k, c.k = c.n, p_processor
          FROM chain AS c
          JOIN prev ON prev.task_uuid = c.task
         ORDER BY c.ord)
    SELECT count(*) INTO moved FROM prev;
    IF moved <> want THEN
        RAISE EXCEPTION 'stale task state: % of % tasks were in the expected state', moved, want
            USING ERRCODE = 'TS001';
    END IF;
    RETURN moved;
END
$$;

-- The event a message's notification carries: the message itself when small enough,
-- else only its id (pg_notify refuses payloads of 8000 bytes or more).
CREATE OR REPLACE FUNCTION tasker.message_ready_event(
    queue_name text, ns text, msg_id bigint, message jsonb, headers jsonb, delay_seconds integer)
RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$ -- it reads the clock
DECLARE
    body_bytes integer := octet_length(message::text) + coalesce(octet_length(headers::text), 0);
    ready_at   timestamptz := clock_timestamp() + make_interval(secs => greatest(delay_seconds, 0));
    event      jsonb;
BEGIN
    -- 7000 is tasker.pgmq_payload_size_threshold(), written out: a call to that SQL
    -- function from here would parse and plan its body for every message.
    IF body_bytes < 7000 THEN
        event := jsonb_build_object('event_type', 'message_with_payload', 'msg_id', msg_id,
            'queue_name', queue_name, 'namespace', ns, 'message', message,
            'ready_at', ready_at, 'delay_seconds', delay_seconds);
        IF headers IS NOT NULL AND headers <> 'null'::jsonb THEN
            event := event || jsonb_build_object('headers', headers);
        END IF;
    END IF;
    IF event IS NULL OR octet_length(event::text) >= 7800 THEN
        event := jsonb_build_object('event_type', 'message_ready', 'msg_id', msg_id,
            'queue_name', queue_name, 'namespace', ns, 'ready_at', ready_at,
            'delay_seconds', delay_seconds, 'payload_omitted', true);
    END IF;
    RETURN event;
END
$$;

CREATE OR REPLACE FUNCTION tasker.pgmq_send_with_notify(
    queue_name text, message jsonb, delay_seconds integer, headers jsonb)
RETURNS bigint LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    new_id bigint;
    ns     text := tasker.extract_queue_namespace(queue_name);
BEGIN
    SELECT s INTO new_id FROM pgmq.send(queue_name, message, headers, delay_seconds) AS s;
    PERFORM pg_notify('pgmq_message_ready.' || ns,
        tasker.message_ready_event(queue_name, ns, new_id, message, headers, delay_seconds)::text);
    RETURN new_id;
END
$$;

-- The worker's claim of many messages of one queue, in one statement and so one
-- transaction. The caller's statement archives the messages first (which only one caller
-- can do) and passes the ids it archived as p_archived; for each step named by an
-- archived message this takes the row, moves it p_from -> p_to under
-- compare-and-set, counts the attempt, takes the lease and records the claim span's
-- context (p_traces). One row per message, in p_msg_ids' order, with its outcome:
--   claimed        the step is this worker's; the hydration columns are filled
--   message_gone   someone else archived the message first; nothing changed
--   not_claimable  the message was consumed, but its step was not in p_from (a duplicate
--                  delivery, a second message for the same step, or a cancelled task)
--   unknown_step   the message was consumed, but names no step: poison
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
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
DECLARE
    archived bigint[];
    existing uuid[];
    claim_ids bigint[];
    moved    uuid[];
BEGIN
    -- Asynchronous commit is safe, by WAL order: anything that acts on this claim (the
    -- result, orchestration's durable commit) is written later, so flushing it flushes
    -- this too; a crash that loses the claim loses everything after it as well, and the
    -- step is simply enqueued again with its message.
    PERFORM set_config('synchronous_commit', 'off', true);
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
    moved := ARRAY(
        SELECT tasker.transition_step_states_each(array_agg(m.step), array_agg(p_from), array_agg(p_to),
                   array_agg(jsonb_build_object('worker_id', p_worker, 'claim_method', m.method, 'msg_id', m.id)))
          FROM unnest(p_msg_ids, p_step_uuids, p_methods) AS m(id, step, method)
         WHERE m.id = ANY (claim_ids));
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

-- The worker's results for many steps, in one statement and so one transaction. Only the
-- holder of each given attempt may finish it: the step moves p_from -> p_ok_to (success)
-- or p_err_to, its result is stored, its lease released, and the completion messages go
-- to orchestration_step_results with one insert (p_messages and p_headers, one per step),
-- written against the queue's table so that its plan is made once per session. One row per step, in
-- p_step_uuids' order: the new message id, or NULL when the lease was lost
-- (orchestration recovered the step) or the step was no longer in p_from.
CREATE OR REPLACE FUNCTION tasker.submit_step_results(
    p_step_uuids uuid[], p_attempts integer[], p_success boolean[], p_results jsonb[],
    p_messages jsonb[], p_headers jsonb[], p_worker text, p_from text, p_ok_to text, p_err_to text)
RETURNS TABLE (step_uuid uuid, msg_id bigint)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
DECLARE
    held  uuid[];
    moved uuid[];
    sent  bigint[];
BEGIN
    -- Asynchronous commit, as for the claim: orchestration's durable commit of the outcome
    -- flushes this; if a crash loses it, the lease runs out and the step runs again.
    PERFORM set_config('synchronous_commit', 'off', true);
    held := ARRAY(
        SELECT ws.workflow_step_uuid
          FROM tasker.workflow_steps AS ws
          JOIN unnest(p_step_uuids, p_attempts) AS m(step, attempt)
            ON ws.workflow_step_uuid = m.step AND ws.attempts = m.attempt
         WHERE ws.workflow_step_uuid = ANY (p_step_uuids) AND ws.claimed_by = p_worker
         ORDER BY ws.workflow_step_uuid
           FOR UPDATE OF ws);
    moved := ARRAY(
        SELECT tasker.transition_step_states_each(array_agg(m.step), array_agg(p_from),
                   array_agg(CASE WHEN m.ok THEN p_ok_to ELSE p_err_to END),
                   array_agg(jsonb_build_object('worker_id', p_worker, 'success', m.res -> 'success',
                             'execution_time_ms', m.res #> '{metadata,execution_time_ms}')))
          FROM unnest(p_step_uuids, p_success, p_results) AS m(step, ok, res)
         WHERE m.step = ANY (held));
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

-- Orchestration's finalization of many step results: each step moves p_from -> p_to
-- under compare-and-set, with its audit metadata; a step that moved is marked processed
-- (p_processed), gets its retry backoff (p_backoff, NULL for none; the attempt time is
-- then now), releases its claim lease (p_release, for a recovered orphan) and stores
-- p_results when given. Returns the steps that moved.
CREATE OR REPLACE FUNCTION tasker.finalize_steps(
    p_step_uuids uuid[], p_from text[], p_to text[], p_metadata jsonb[], p_processed boolean[],
    p_backoff double precision[], p_release boolean[], p_results jsonb[])
RETURNS SETOF uuid LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    moved uuid[];
BEGIN
    moved := ARRAY(SELECT tasker.transition_step_states_each(p_step_uuids, p_from, p_to, p_metadata));
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

-- Apply many task plans decided in Go (lifecycle.Plan), in one round trip:
--   1. each task's moves before its enqueue (chain_task_transitions, from p_from);
--   2. the enqueue of the ready steps: those in p_retry_state go back to p_pending_state,
--      then all move p_pending_state -> p_enqueued_state (the caller sends their
--      messages in the same transaction, after this);
--   3. each task's moves after its enqueue (from p_mid_states, parallel to p_tasks);
--   4. for tasks that reached a terminal state, the completion columns and the
--      finalization notice.
-- Every move is a compare-and-set; the first that fails raises SQLSTATE TS001 and the
-- caller's transaction rolls back. Returns the steps it enqueued.
CREATE OR REPLACE FUNCTION tasker.apply_task_plans(
    p_tasks uuid[], p_from text[], p_mid_states text[],
    p_before_tasks uuid[], p_before_to text[], p_before_meta jsonb[],
    p_after_tasks uuid[], p_after_to text[], p_after_meta jsonb[],
    p_ready uuid[], p_terminal uuid[], p_terminal_complete boolean[],
    p_processor uuid, p_retry_state text, p_pending_state text, p_enqueued_state text)
RETURNS SETOF uuid LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    step_meta jsonb := jsonb_build_object('processor_uuid', p_processor);
    enqueued  uuid[] := '{}';
    n         integer;
BEGIN
    PERFORM tasker.chain_task_transitions(p_tasks, p_from, p_before_tasks, p_before_to, p_before_meta, p_processor);
    IF coalesce(cardinality(p_ready), 0) > 0 THEN
        -- transition_step_states_each, not transition_step_states: a state given as a
        -- parameter lets a generic plan pick the index of every current state (all the
        -- pending steps of every task in flight) over the probe by step.
        n := cardinality(p_ready);
        PERFORM tasker.transition_step_states_each(p_ready, array_fill(p_retry_state, ARRAY[n]),
                    array_fill(p_pending_state, ARRAY[n]), array_fill(step_meta, ARRAY[n]));
        enqueued := ARRAY(SELECT tasker.transition_step_states_each(p_ready, array_fill(p_pending_state, ARRAY[n]),
                    array_fill(p_enqueued_state, ARRAY[n]), array_fill(step_meta, ARRAY[n])));
        IF cardinality(enqueued) <> cardinality(p_ready) THEN
            RAISE EXCEPTION 'stale step state: % of % ready steps could be enqueued',
                cardinality(enqueued), cardinality(p_ready) USING ERRCODE = 'TS001';
        END IF;
    END IF;
    PERFORM tasker.chain_task_transitions(p_tasks, p_mid_states, p_after_tasks, p_after_to, p_after_meta, p_processor);
    IF coalesce(cardinality(p_terminal), 0) > 0 THEN
        UPDATE tasker.tasks AS t SET complete = f.complete, completed_at = now(), updated_at = now()
          FROM unnest(p_terminal, p_terminal_complete) AS f(id, complete)
         WHERE t.task_uuid = ANY (p_terminal) AND t.task_uuid = f.id;
        PERFORM pg_notify('tasker_task_finalized', f::text) FROM unnest(p_terminal) AS f;
    END IF;
    RETURN QUERY SELECT unnest(enqueued);
END
$$;

-- What orchestration decides plans from, for many tasks at once: each task's execution
-- context, the names of its ready steps (in the order of ready_step_uuids), and the
-- trace contexts enqueueing them links to, as a JSON array of {step, from, kind, trace}:
-- those stored on the ready steps' parents (kind "dependency") and on the ready steps
-- themselves, an earlier attempt's (kind "previous_attempt").
CREATE OR REPLACE FUNCTION tasker.task_snapshots(p_task_uuids uuid[])
RETURNS TABLE (
    task_uuid           uuid,
    execution_status    text,
    waiting_retry_steps integer,
    ready_step_uuids    uuid[],
    ready_step_names    text[],
    links               jsonb)
LANGUAGE plpgsql STABLE ROWS 10 SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH c AS (SELECT x.task_uuid, x.execution_status, x.waiting_retry_steps, x.ready_step_uuids
                 FROM tasker.task_execution_contexts(p_task_uuids) AS x),
         r AS (SELECT c.task_uuid, s.step FROM c, unnest(c.ready_step_uuids) AS s(step)),
         -- Per ready step, correlated subqueries on its own key: index probes, whatever
         -- the statistics were when the plan was made.
         l AS (SELECT r.task_uuid, r.step,
                      (SELECT ns.name::text FROM tasker.workflow_steps AS ws
                         JOIN tasker.named_steps AS ns ON ns.named_step_uuid = ws.named_step_uuid
                        WHERE ws.workflow_step_uuid = r.step) AS name,
                      coalesce((SELECT jsonb_agg(jsonb_build_object('step', r.step, 'from', p.workflow_step_uuid,
                                                 'kind', 'dependency', 'trace', p.trace_context))
                                  FROM tasker.workflow_step_edges AS e
                                  JOIN tasker.workflow_steps AS p ON p.workflow_step_uuid = e.from_step_uuid
                                 WHERE e.to_step_uuid = r.step AND p.trace_context IS NOT NULL), '[]')
                      || coalesce((SELECT jsonb_build_array(jsonb_build_object('step', r.step, 'from', r.step,
                                                 'kind', 'previous_attempt', 'trace', ws.trace_context))
                                     FROM tasker.workflow_steps AS ws
                                    WHERE ws.workflow_step_uuid = r.step AND ws.trace_context IS NOT NULL), '[]') AS links
                 FROM r),
         n AS (SELECT l.task_uuid, array_agg(l.name ORDER BY l.step) AS names FROM l GROUP BY l.task_uuid),
         k AS (SELECT l.task_uuid, jsonb_agg(x.v) AS links
                 FROM l CROSS JOIN LATERAL jsonb_array_elements(l.links) AS x(v)
                GROUP BY l.task_uuid)
    SELECT c.task_uuid, c.execution_status, c.waiting_retry_steps, c.ready_step_uuids, coalesce(n.names, '{}'), k.links
      FROM c LEFT JOIN n ON n.task_uuid = c.task_uuid LEFT JOIN k ON k.task_uuid = c.task_uuid;
END
$$;

-- Time-ordered ids for the audit rows (the UUID version 7 layout: 48 bits of Unix
-- milliseconds, then random bits). With random ids every insert lands on a random page of
-- the primary key, so the cost of writing an audit row grew with the history; ordered ids
-- append at the right edge of the index instead.
CREATE OR REPLACE FUNCTION tasker.uuid_v7()
RETURNS uuid LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ms    bigint := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    bytes bytea := uuid_send(gen_random_uuid());
BEGIN
    FOR i IN 0..5 LOOP
        bytes := set_byte(bytes, i, ((ms >> ((5 - i) * 8)) & 255)::integer);
    END LOOP;
    -- version 7 in the high nibble of byte 6; the variant bits of byte 8 stay those of
    -- gen_random_uuid (RFC 4122).
    bytes := set_byte(bytes, 6, (get_byte(bytes, 6) & 15) | 112);
    RETURN encode(bytes, 'hex')::uuid;
END
$$;

ALTER TABLE tasker.task_transitions ALTER COLUMN task_transition_uuid SET DEFAULT tasker.uuid_v7();
ALTER TABLE tasker.workflow_step_transitions ALTER COLUMN workflow_step_transition_uuid SET DEFAULT tasker.uuid_v7();
ALTER TABLE tasker.workflow_step_edges ALTER COLUMN workflow_step_edge_uuid SET DEFAULT tasker.uuid_v7();

-- The unfinished tasks, which the ready-steps gauge reads at every collection: without
-- this it read every task ever created.
CREATE INDEX IF NOT EXISTS idx_tasks_unfinished ON tasker.tasks (named_task_uuid) WHERE completed_at IS NULL;
