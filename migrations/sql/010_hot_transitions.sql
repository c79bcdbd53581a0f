-- Transitions that update in place (HOT). Every transition flips its predecessor's
-- most_recent to false. Two partial indexes per table named most_recent in their
-- predicate (the current row by entity, and current rows by state), so no flip could be
-- a heap-only update: each wrote new entries into every index of the table, and the
-- predecessor's entries stayed behind as dead ones to step over. Without them a flip
-- rewrites one row on its own page and touches no index, and the fill factor leaves room
-- on each page for that new version.
--
-- What they served is served otherwise:
--   * An entity's current state is its transition with the highest sort_key: one
--     backward probe of the (entity, sort_key) unique index. Queries that filter on
--     most_recent by entity still use that index, over the entity's few rows.
--   * "At most one most_recent per entity" holds by construction: a flip takes the
--     current row under compare-and-set (a concurrent flip waits for its row lock and
--     then finds it no longer current), and the (entity, sort_key) unique constraint
--     refuses a second successor.
--   * Current rows by state: the states that maintenance looks for belong to unfinished
--     tasks, read through idx_tasks_unfinished (tasker.unfinished_task_states below), so
--     their cost follows the tasks in flight, not the history.
DROP INDEX IF EXISTS tasker.idx_workflow_step_transitions_most_recent;
DROP INDEX IF EXISTS tasker.idx_workflow_step_transitions_current_state;
DROP INDEX IF EXISTS tasker.idx_task_transitions_most_recent;
DROP INDEX IF EXISTS tasker.idx_task_transitions_current_state;
ALTER TABLE tasker.workflow_step_transitions SET (fillfactor = 70);
ALTER TABLE tasker.task_transitions SET (fillfactor = 70);

-- The unfinished tasks, each with its current state and when it entered it.
CREATE VIEW tasker.unfinished_task_states AS
SELECT t.task_uuid, cur.to_state AS state, cur.created_at AS entered_at
  FROM tasker.tasks AS t
 CROSS JOIN LATERAL (SELECT tt.to_state::text AS to_state, tt.created_at
                       FROM tasker.task_transitions AS tt
                      WHERE tt.task_uuid = t.task_uuid
                      ORDER BY tt.sort_key DESC LIMIT 1) AS cur
 WHERE t.completed_at IS NULL;

CREATE OR REPLACE FUNCTION tasker.get_current_task_state(p_task_uuid uuid)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT t.to_state FROM tasker.task_transitions AS t WHERE t.task_uuid = p_task_uuid
     ORDER BY t.sort_key DESC LIMIT 1;
$$;

-- Readiness and the task-level summary read current states by backward probes. In
-- step_readiness each step's current state is also looked up once: its steps CTE was
-- inlined into the statements below it, and the correlated lookup ran once per reference,
-- five times per step (MATERIALIZED).
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
               (SELECT ns.name::text FROM tasker.named_steps AS ns WHERE ns.named_step_uuid = ws.named_step_uuid) AS name,
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
    SELECT j.workflow_step_uuid, j.task_uuid, j.named_step_uuid, j.name, j.current_state,
           j.deps_ok, j.retry_ok,
           (j.current_state IN ('pending', 'waiting_for_retry')
               AND NOT j.processed AND NOT j.in_process AND j.deps_ok AND j.retry_ok
               AND (j.next_retry_at IS NULL OR j.next_retry_at <= clock_timestamp())),
           j.last_failure_at, j.next_retry_at, j.total_parents, j.completed_parents,
           j.attempts, j.max_attempts, j.backoff_request_seconds, j.last_attempted_at
      FROM judged AS j;
$$;

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
LANGUAGE plpgsql STABLE ROWS 10 SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
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
                      WHERE tt.task_uuid = e.id ORDER BY tt.sort_key DESC LIMIT 1), 'pending')::text,
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
