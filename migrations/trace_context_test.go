package migrations_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// The headers 004_trace_context.sql carries: a W3C traceparent and a tracestate.
const (
	traceHeaders  = `{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "k=v"}`
	claimHeaders  = `{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"}`
	resultHeaders = `{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-2222222222222222-01"}`
)

// headersOf reads the headers of a queue's message by id (the row, whoever hides it).
func headersOf(t *testing.T, pool *pgxpool.Pool, queue string, msgID int64) []byte {
	t.Helper()
	var h []byte
	require.NoError(t, pool.QueryRow(testContext(t),
		"SELECT headers FROM pgmq.q_"+queue+" WHERE msg_id = $1", msgID).Scan(&h))
	return h
}

// A send with headers stores them on the message and carries them in the notification
// beside the message; reads by id return them. A send without them (the old three-argument
// form, or NULL) leaves both out.
func TestSendWithNotifyCarriesHeaders(t *testing.T) {
	t.Parallel()
	pool, url, _ := migratedDB(t)
	ctx := testContext(t)
	const queue, channel = "worker_tc_queue", "pgmq_message_ready.tc"
	createQueue(t, pool, queue)
	listener := listen(t, url, channel)

	var id int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT tasker.pgmq_send_with_notify($1, $2::jsonb, 0, $3::jsonb)",
		queue, `{"m":1}`, traceHeaders).Scan(&id))
	ev, fields := nextNotification(t, listener, channel)
	require.Equal(t, "message_with_payload", ev.EventType)
	require.Equal(t, id, ev.MsgID)
	require.JSONEq(t, traceHeaders, string(fields["headers"]))
	var got []byte
	require.NoError(t, pool.QueryRow(ctx, "SELECT headers FROM tasker.pgmq_read_specific_message($1, $2, 30)",
		queue, id).Scan(&got))
	require.JSONEq(t, traceHeaders, string(got))

	for _, sql := range []string{
		"SELECT tasker.pgmq_send_with_notify($1, $2::jsonb, 0)",
		"SELECT tasker.pgmq_send_with_notify($1, $2::jsonb)",
		"SELECT tasker.pgmq_send_with_notify($1, $2::jsonb, 0, NULL)",
	} {
		require.NoError(t, pool.QueryRow(ctx, sql, queue, `{"m":2}`).Scan(&id), sql)
		ev, fields = nextNotification(t, listener, channel)
		require.Equal(t, "message_with_payload", ev.EventType, sql)
		require.NotContains(t, fields, "headers", sql)
		require.Nil(t, headersOf(t, pool, queue, id), sql)
	}

	// The headers count towards the payload threshold: a message that fits alone but not
	// with them goes without its payload, and a read by id returns both.
	body := `{"blob":"` + strings.Repeat("x", 6950) + `"}`
	require.NoError(t, pool.QueryRow(ctx, "SELECT tasker.pgmq_send_with_notify($1, $2::jsonb, 0, $3::jsonb)",
		queue, body, traceHeaders).Scan(&id))
	ev, fields = nextNotification(t, listener, channel)
	require.Equal(t, "message_ready", ev.EventType)
	require.True(t, ev.PayloadOmitted)
	require.NotContains(t, fields, "headers")
	require.JSONEq(t, traceHeaders, string(headersOf(t, pool, queue, id)))
}

// traceFixture creates one task with one pending step and the queues the functions send
// to; it returns the task's, the step's and the correlation uuids.
func traceFixture(t *testing.T, pool *pgxpool.Pool, queue string) (task, step, corr uuid.UUID) {
	t.Helper()
	ctx := testContext(t)
	task, step, corr = uuid.New(), uuid.New(), uuid.New()
	createQueue(t, pool, queue)
	createQueue(t, pool, "orchestration_step_results")
	_, err := pool.Exec(ctx, `
		WITH ns AS (INSERT INTO tasker.task_namespaces (name) VALUES ($4::text) RETURNING task_namespace_uuid),
		     nt AS (INSERT INTO tasker.named_tasks (task_namespace_uuid, name)
		            SELECT task_namespace_uuid, 'traced' FROM ns RETURNING named_task_uuid),
		     st AS (INSERT INTO tasker.named_steps (name) VALUES ($4 || '_step') RETURNING named_step_uuid),
		     tk AS (INSERT INTO tasker.tasks (task_uuid, named_task_uuid, identity_hash, correlation_id)
		            SELECT $1::uuid, named_task_uuid, $1::uuid::text, $3::uuid FROM nt RETURNING task_uuid),
		     ws AS (INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid)
		            SELECT $2::uuid, tk.task_uuid, st.named_step_uuid FROM tk, st RETURNING workflow_step_uuid)
		INSERT INTO tasker.task_transitions (task_uuid, to_state, sort_key, most_recent)
		SELECT task_uuid, 'pending', 0, true FROM tk`, task, step, corr, strings.TrimSuffix(queue, "_queue"))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, to_state, sort_key, most_recent)
		VALUES ($1, 'pending', 0, true)`, step)
	require.NoError(t, err)
	return task, step, corr
}

// traceRun is one pass of a step through the three functions that send: apply_task_plan
// enqueues it, claim_step claims it, submit_step_result reports it.
type traceRun struct {
	plan, claim, submit string // the calls, with or without their headers argument
	planArgs            []any  // extra arguments of each call: the headers, or none
	claimArgs           []any
	submitArgs          []any
}

// runTraced passes the fixture's step through r and returns the step message's headers,
// the step's trace_context after the claim, the result message's headers and the step's
// trace_context after the submit.
func runTraced(t *testing.T, pool *pgxpool.Pool, queue string, r traceRun) (stepMsg, claimed, resultMsg, submitted []byte) {
	t.Helper()
	ctx := testContext(t)
	task, step, corr := traceFixture(t, pool, queue)
	var enqueued []string
	require.NoError(t, pool.QueryRow(ctx, r.plan, append([]any{task, "pending", []string{"initializing", "enqueuing_steps"},
		true, []string{"steps_in_process"}, queue, corr, uuid.New(), "{}", false, []uuid.UUID{step}}, r.planArgs...)...).Scan(&enqueued))
	require.Len(t, enqueued, 1)
	msgs := readRaw(t, pool, queue, 30, 10)
	require.Len(t, msgs, 1)
	stepMsg = headersOf(t, pool, queue, msgs[0].MsgID)

	var outcome string
	require.NoError(t, pool.QueryRow(ctx, r.claim, append([]any{queue, msgs[0].MsgID, step, "w1", 30.0, "poll",
		"enqueued", "in_progress"}, r.claimArgs...)...).Scan(&outcome))
	require.Equal(t, "claimed", outcome)
	require.NoError(t, pool.QueryRow(ctx, "SELECT trace_context FROM tasker.workflow_steps WHERE workflow_step_uuid = $1",
		step).Scan(&claimed))

	msg, err := json.Marshal(map[string]any{"task_uuid": task, "step_uuid": step, "correlation_id": corr})
	require.NoError(t, err)
	var resultID *int64
	require.NoError(t, pool.QueryRow(ctx, r.submit, append([]any{step, 1, "w1", "in_progress", "enqueued_for_orchestration",
		`{"success": true}`, "orchestration_step_results", msg}, r.submitArgs...)...).Scan(&resultID))
	require.NotNil(t, resultID, "the submit was accepted")
	resultMsg = headersOf(t, pool, "orchestration_step_results", *resultID)
	require.NoError(t, pool.QueryRow(ctx, "SELECT trace_context FROM tasker.workflow_steps WHERE workflow_step_uuid = $1",
		step).Scan(&submitted))
	return stepMsg, claimed, resultMsg, submitted
}

// The new signatures carry headers on every message they send and keep the step's trace
// context; the old ones still work, and send no headers.
func TestTraceContextThroughTheStepFunctions(t *testing.T) {
	t.Parallel()
	t.Run("with headers", func(t *testing.T) {
		t.Parallel()
		pool, _, _ := migratedDB(t)
		stepMsg, claimed, resultMsg, submitted := runTraced(t, pool, "worker_traced_queue", traceRun{
			plan:     "SELECT tasker.apply_task_plan($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
			claim:    "SELECT outcome FROM tasker.claim_step($1, $2, $3, $4, $5, $6, $7, $8, $9)",
			submit:   "SELECT tasker.submit_step_result($1, $2, $3, $4, $5, $6, $7, $8, $9)",
			planArgs: []any{traceHeaders}, claimArgs: []any{claimHeaders}, submitArgs: []any{resultHeaders},
		})
		require.JSONEq(t, traceHeaders, string(stepMsg), "the step message carries the plan's headers")
		require.JSONEq(t, claimHeaders, string(claimed), "the claim records its span")
		require.JSONEq(t, resultHeaders, string(resultMsg), "the result message carries the submitter's headers")
		require.JSONEq(t, resultHeaders, string(submitted), "and the step keeps them")
	})
	t.Run("old signatures", func(t *testing.T) {
		t.Parallel()
		pool, _, _ := migratedDB(t)
		stepMsg, claimed, resultMsg, submitted := runTraced(t, pool, "worker_untraced_queue", traceRun{
			plan:   "SELECT tasker.apply_task_plan($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
			claim:  "SELECT outcome FROM tasker.claim_step($1, $2, $3, $4, $5, $6, $7, $8)",
			submit: "SELECT tasker.submit_step_result($1, $2, $3, $4, $5, $6, $7, $8)",
		})
		require.Nil(t, stepMsg)
		require.Nil(t, claimed)
		require.Nil(t, resultMsg)
		require.Nil(t, submitted)
	})
}
