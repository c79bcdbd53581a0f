-- Functions of earlier migrations, redefined here rather than in those files, which
-- databases already carry.
--
-- chain_task_transitions: the flipped row's own state is the move's from state (the
-- WHERE clause checked it), so it is read from the row instead of a second search of
-- p_tasks; and the MATERIALIZED on the data-modifying CTE goes (such a CTE runs once
-- anyway).
CREATE OR REPLACE FUNCTION tasker.chain_task_transitions(
    p_tasks uuid[], p_from text[], p_move_tasks uuid[], p_move_to text[], p_move_meta jsonb[], p_processor uuid)
RETURNS integer LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
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
        RETURNING t.task_uuid, t.sort_key, t.to_state AS from_state),
    chain AS MATERIALIZED (
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


-- step_readiness: the step's name is looked up in the final SELECT, outside the
-- materialized steps, so callers that do not read it (the task-level summary in
-- task_execution_contexts) do not pay for it.
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
    WITH steps AS MATERIALIZED (
        SELECT ws.workflow_step_uuid, ws.task_uuid, ws.named_step_uuid,
               coalesce((SELECT st.to_state FROM tasker.workflow_step_transitions AS st
                          WHERE st.workflow_step_uuid = ws.workflow_step_uuid
                          ORDER BY st.sort_key DESC LIMIT 1), 'pending')::text AS current_state,
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
                                               WHERE pst.workflow_step_uuid = e.from_step_uuid
                                               ORDER BY pst.sort_key DESC LIMIT 1)
                                             IN ('complete', 'resolved_manually')))::integer AS done
                FROM tasker.workflow_step_edges AS e
               WHERE e.to_step_uuid = s.workflow_step_uuid) AS p)
    -- The name last, outside the materialized steps: callers that do not read it (the
    -- task-level summary) do not look it up.
    SELECT j.workflow_step_uuid, j.task_uuid, j.named_step_uuid,
           (SELECT ns.name::text FROM tasker.named_steps AS ns WHERE ns.named_step_uuid = j.named_step_uuid),
           j.current_state,
           j.deps_ok, j.retry_ok,
           (j.current_state IN ('pending', 'waiting_for_retry')
               AND NOT j.processed AND NOT j.in_process AND j.deps_ok AND j.retry_ok
               AND (j.next_retry_at IS NULL OR j.next_retry_at <= clock_timestamp())),
           j.last_failure_at, j.next_retry_at, j.total_parents, j.completed_parents,
           j.attempts, j.max_attempts, j.backoff_request_seconds, j.last_attempted_at
      FROM judged AS j;
$$;

-- transition_step_states (one from and to state for all the steps: cancellations and an
-- operator's step actions) becomes a call of flip_step_states, so the step flip is written
-- once.
CREATE OR REPLACE FUNCTION tasker.transition_step_states(
    p_step_uuids uuid[], p_from text, p_to text, p_metadata jsonb)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
DECLARE
    n integer := coalesce(cardinality(p_step_uuids), 0);
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT unnest(tasker.flip_step_states(p_step_uuids, array_fill(p_from, ARRAY[n]),
                                   array_fill(p_to, ARRAY[n]), array_fill(p_metadata, ARRAY[n])));
END
$$;
