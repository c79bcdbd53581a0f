-- Cheaper statements on the hot path.
--
-- JIT is off in the hot-path functions. Their plans are generic and made once per
-- session, some with sequential scans disabled; a plan whose estimate crosses
-- jit_above_cost (a disabled scan is enough) was compiled at every call, for about a
-- millisecond each time, on statements that run in well under one.
--
-- chain_task_transitions: the chain of moves is computed once (MATERIALIZED) and joined to
-- the flipped rows by position. Before, the planner inlined it into a nested loop that
-- re-ran its window functions and sort once per task, so a batch of n tasks cost n².
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
    WITH prev AS MATERIALIZED (
        UPDATE tasker.task_transitions AS t SET most_recent = false
         WHERE t.task_uuid = ANY (p_move_tasks) AND t.most_recent
           AND t.to_state = p_from[array_position(p_tasks, t.task_uuid)]
        RETURNING t.task_uuid, t.sort_key, p_from[array_position(p_tasks, t.task_uuid)] AS from_state),
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

ALTER FUNCTION tasker.task_execution_contexts(uuid[]) SET jit = off;
ALTER FUNCTION tasker.task_snapshots(uuid[]) SET jit = off;
ALTER FUNCTION tasker.transition_step_states_each(uuid[], text[], text[], jsonb[]) SET jit = off;
ALTER FUNCTION tasker.finalize_steps SET jit = off;
ALTER FUNCTION tasker.claim_archived_steps SET jit = off;
ALTER FUNCTION tasker.submit_step_results SET jit = off;
ALTER FUNCTION tasker.apply_task_plans SET jit = off;

-- apply_plans: apply_task_plans with each task's moves made in one chain, after the
-- enqueue of its ready steps. apply_task_plans chained the moves before the enqueue and
-- those after it separately, so each plan flipped its task's current transition twice.
-- The audit rows are the same, in the same order; within the transaction the task's rows
-- are now written after its steps' enqueue rows. Every move is still a compare-and-set:
-- a task not in its p_from state raises SQLSTATE TS001 and the transaction rolls back,
-- enqueue included. apply_task_plans stays for processes built before.
CREATE OR REPLACE FUNCTION tasker.apply_plans(
    p_tasks uuid[], p_from text[], p_move_tasks uuid[], p_move_to text[], p_move_meta jsonb[],
    p_ready uuid[], p_terminal uuid[], p_terminal_complete boolean[],
    p_processor uuid, p_retry_state text, p_pending_state text, p_enqueued_state text)
RETURNS SETOF uuid LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
    step_meta jsonb := jsonb_build_object('processor_uuid', p_processor);
    enqueued  uuid[] := '{}';
    n         integer;
BEGIN
    IF coalesce(cardinality(p_ready), 0) > 0 THEN
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
    PERFORM tasker.chain_task_transitions(p_tasks, p_from, p_move_tasks, p_move_to, p_move_meta, p_processor);
    IF coalesce(cardinality(p_terminal), 0) > 0 THEN
        UPDATE tasker.tasks AS t SET complete = f.complete, completed_at = now(), updated_at = now()
          FROM unnest(p_terminal, p_terminal_complete) AS f(id, complete)
         WHERE t.task_uuid = ANY (p_terminal) AND t.task_uuid = f.id;
        PERFORM pg_notify('tasker_task_finalized', f::text) FROM unnest(p_terminal) AS f;
    END IF;
    RETURN QUERY SELECT unnest(enqueued);
END
$$;
