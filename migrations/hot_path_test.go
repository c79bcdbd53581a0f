package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// A transition flips its predecessor's most_recent, and a claim sets and clears a step's
// lease (in_process, claim_expires_at). Those updates stay heap-only, touching no index,
// only while no index of their table names the columns they change, in its key or its
// predicate. This pins that, and shows the flips are in fact heap-only.
func TestHotPathUpdatesStayHeapOnly(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool, _, _ := migratedDB(t)

	rows, err := pool.Query(ctx, `
		SELECT c.relname || '.' || i.relname || ': ' || pg_get_indexdef(x.indexrelid)
		  FROM pg_index AS x
		  JOIN pg_class AS i ON i.oid = x.indexrelid
		  JOIN pg_class AS c ON c.oid = x.indrelid
		  JOIN pg_namespace AS n ON n.oid = c.relnamespace
		 WHERE n.nspname = 'tasker'
		   AND ((c.relname IN ('task_transitions', 'workflow_step_transitions')
		         AND pg_get_indexdef(x.indexrelid) LIKE '%most_recent%')
		     OR (c.relname = 'workflow_steps'
		         AND pg_get_indexdef(x.indexrelid) ~ '(in_process|claim_expires_at|claimed_by|attempts|results|processed)'))`)
	require.NoError(t, err)
	var offending []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		offending = append(offending, s)
	}
	require.NoError(t, rows.Err())
	require.Empty(t, offending, "indexes that make the hot path's updates write every index")

	// A step's four flips are heap-only updates (the statistics of this transaction).
	ns, named, step, task, ws := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO tasker.task_namespaces (task_namespace_uuid, name) VALUES ($1, 'hot')`, []any{ns}},
		{`INSERT INTO tasker.named_tasks (named_task_uuid, task_namespace_uuid, name) VALUES ($1, $2, 'hot')`, []any{named, ns}},
		{`INSERT INTO tasker.named_steps (named_step_uuid, name) VALUES ($1, 'hot')`, []any{step}},
		{`INSERT INTO tasker.tasks (task_uuid, named_task_uuid, identity_hash, correlation_id) VALUES ($1, $2, $3, $1)`,
			[]any{task, named, task.String()}},
		{`INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid) VALUES ($1, $2, $3)`,
			[]any{ws, task, step}},
		{`INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, to_state, sort_key, most_recent)
		  VALUES ($1, 'pending', 0, true)`, []any{ws}},
	} {
		_, err := tx.Exec(ctx, q.sql, q.args...)
		require.NoError(t, err, q.sql)
	}
	states := []string{"pending", "enqueued", "in_progress", "enqueued_for_orchestration", "complete"}
	for i := range 4 {
		var moved int
		require.NoError(t, tx.QueryRow(ctx, `SELECT cardinality(tasker.flip_step_states($1, $2, $3, $4))`,
			[]uuid.UUID{ws}, []string{states[i]}, []string{states[i+1]}, []string{"{}"}).Scan(&moved))
		require.Equal(t, 1, moved, "%s -> %s", states[i], states[i+1])
	}
	var updates, hot int64
	require.NoError(t, tx.QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables
		WHERE schemaname = 'tasker' AND relname = 'workflow_step_transitions'`).Scan(&updates, &hot))
	require.Equal(t, int64(4), updates)
	require.Equal(t, updates, hot, "flips that were not heap-only")
	var current string
	require.NoError(t, tx.QueryRow(ctx, `SELECT to_state FROM tasker.workflow_step_transitions
		WHERE workflow_step_uuid = $1 AND most_recent`, ws).Scan(&current))
	require.Equal(t, "complete", current)
}

// The audit rows' ids are UUIDv7: time-ordered (the first 48 bits are Unix milliseconds),
// version 7, RFC 4122 variant, and distinct.
func TestAuditIDsAreUUIDv7(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool, _, _ := migratedDB(t)
	before := time.Now().UnixMilli()
	rows, err := pool.Query(ctx, `SELECT tasker.uuid_v7() FROM generate_series(1, 1000)`)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	after := time.Now().UnixMilli()
	seen := map[uuid.UUID]bool{}
	for _, id := range ids {
		require.Equal(t, uuid.Version(7), id.Version(), id.String())
		require.Equal(t, uuid.RFC4122, id.Variant(), id.String())
		ms := int64(id[0])<<40 | int64(id[1])<<32 | int64(id[2])<<24 | int64(id[3])<<16 | int64(id[4])<<8 | int64(id[5])
		require.GreaterOrEqual(t, ms, before-1000, id.String())
		require.LessOrEqual(t, ms, after+1000, id.String())
		require.False(t, seen[id], "a repeated id")
		seen[id] = true
	}
}
