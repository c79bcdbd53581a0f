package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	pgmq "github.com/craigpastro/pgmq-go"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

func post(t *testing.T, url string, body []byte) (int, api.ErrorResponse) {
	t.Helper()
	resp, err := http.Post(url+"/v1/tasks", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var e api.ErrorResponse
	if resp.StatusCode >= 400 {
		require.NoError(t, json.Unmarshal(data, &e), string(data))
	}
	return resp.StatusCode, e
}

func validBody(mutate func(m map[string]any)) []byte {
	m := map[string]any{
		"name": "mathematical_sequence", "namespace": "rust_e2e_linear", "version": "1.0.0",
		"context": map[string]any{"even_number": 6}, "initiator": "e2e", "source_system": "go-test", "reason": "bad input",
	}
	if mutate != nil {
		mutate(m)
	}
	b, _ := json.Marshal(m)
	return b
}

func countRows(t *testing.T, env *harness.Env) (tasks, steps, transitions int) {
	t.Helper()
	require.NoError(t, env.Pool.QueryRow(context.Background(), `
		SELECT (SELECT count(*) FROM tasker.tasks), (SELECT count(*) FROM tasker.workflow_steps),
		       (SELECT count(*) FROM tasker.task_transitions)`).Scan(&tasks, &steps, &transitions))
	return tasks, steps, transitions
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastOptions())
	url := env.Orchestrators[0].URL()

	del := func(field string) func(m map[string]any) { return func(m map[string]any) { delete(m, field) } }
	set := func(field string, v any) func(m map[string]any) { return func(m map[string]any) { m[field] = v } }
	huge := strings.Repeat("x", 70_000)
	cases := []struct {
		name     string
		body     []byte
		status   int
		contains []string
	}{
		{"malformed JSON", []byte(`{"name": "mathematical_sequence",`), 400, []string{"malformed JSON"}},
		{"not an object", []byte(`[1,2,3]`), 400, []string{"malformed JSON"}},
		{"two documents", append(validBody(nil), []byte(` {}`)...), 400, []string{"exactly one JSON object"}},
		{"unknown field", validBody(set("template_name", "x")), 400, []string{"template_name"}},
		{"missing name", validBody(del("name")), 400, []string{"name: is required"}},
		{"missing namespace", validBody(del("namespace")), 400, []string{"namespace: is required"}},
		{"missing version", validBody(del("version")), 400, []string{"version: is required"}},
		{"missing context", validBody(del("context")), 400, []string{"context: is required"}},
		{"context not an object", validBody(set("context", "six")), 400, []string{"context: must be a JSON object"}},
		{"missing initiator", validBody(del("initiator")), 400, []string{"initiator: is required"}},
		{"missing source_system", validBody(del("source_system")), 400, []string{"source_system: is required"}},
		{"missing reason", validBody(del("reason")), 400, []string{"reason: is required"}},
		{"bad version", validBody(set("version", "one")), 400, []string{"version", "MAJOR.MINOR.PATCH"}},
		{"unknown namespace", validBody(set("namespace", "no_such_namespace")), 404, []string{"no_such_namespace", "not registered"}},
		{"unknown name", validBody(set("name", "no_such_task")), 404, []string{"no_such_task"}},
		{"unknown version", validBody(set("version", "9.9.9")), 404, []string{"9.9.9"}},
		{"odd even_number", validBody(set("context", map[string]any{"even_number": 7})), 400, []string{"context.even_number", "multiple"}},
		{"even_number too large", validBody(set("context", map[string]any{"even_number": 102})), 400, []string{"context.even_number", "100"}},
		{"even_number missing", validBody(set("context", map[string]any{})), 400, []string{"even_number"}},
		{"even_number a string", validBody(set("context", map[string]any{"even_number": "6"})), 400, []string{"context.even_number"}},
		{"oversized context", validBody(set("context", map[string]any{"even_number": 6, "pad": huge})), 400, []string{"context: must be at most"}},
		{"oversized body", validBody(set("reason", strings.Repeat("r", 1_100_000))), 413, []string{"request body"}},
		{"long reason", validBody(set("reason", strings.Repeat("r", 300))), 400, []string{"reason: must be at most 255"}},
		{"bad correlation id", validBody(set("correlation_id", "not-a-uuid")), 400, []string{"correlation_id: must be a UUID"}},
		{"priority out of range", validBody(set("priority", 500)), 400, []string{"priority"}},
		{"injection in namespace", validBody(set("namespace", "rust_e2e_linear'; DROP TABLE tasker.tasks; --")), 400, []string{"namespace", "must match"}},
		{"injection in name", validBody(set("name", `x" OR 1=1 --`)), 400, []string{"name", "must match"}},
		{"queue-breaking namespace", validBody(set("namespace", "Rust-E2E")), 400, []string{"namespace", "must match"}},
		{"NUL in a context string", validBody(set("context", map[string]any{"even_number": 6, "note": map[string]any{"lines": []any{"ok", "a\x00b"}}})),
			400, []string{"context.note.lines[1]", "NUL"}},
		{"NUL in a context key", validBody(set("context", map[string]any{"even_number": 6, "k\x00": 1})), 400, []string{"context (a key)", "NUL"}},
		{"NUL in reason", validBody(set("reason", "why\x00")), 400, []string{"reason", "NUL"}},
		{"NUL in a tag", validBody(set("tags", []string{"fine", "bad\x00"})), 400, []string{"tags[1]", "NUL"}},
	}
	// The group returns only when all its parallel cases have finished.
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				status, e := post(t, url, tc.body)
				require.Equal(t, tc.status, status, "%+v", e)
				for _, c := range tc.contains {
					require.Contains(t, e.Error.Message, c)
				}
			})
		}
	})
	t.Run("nothing half-written", func(t *testing.T) {
		tasks, steps, transitions := countRows(t, env)
		require.Zero(t, tasks)
		require.Zero(t, steps)
		require.Zero(t, transitions)
		var tables int
		require.NoError(t, env.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'tasker' AND table_name = 'tasks'`).Scan(&tables))
		require.Equal(t, 1, tables)
	})
}

func TestDuplicateIdentity(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastOptions())
	url := env.Orchestrators[0].URL()
	body := validBody(set2("context", map[string]any{"even_number": 8, "run": "dup"}))
	status, e := post(t, url, body)
	require.Equal(t, http.StatusCreated, status, "%+v", e)
	// Let the first task finish, so the counts below move only if the duplicate wrote.
	waitFor(t, 20*time.Second, "the first task to finish", func() bool {
		var open int
		require.NoError(t, env.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM tasker.tasks WHERE completed_at IS NULL`).Scan(&open))
		return open == 0
	})
	tasks, steps, transitions := countRows(t, env)

	// Same template and context, keys reordered: the same identity.
	reordered := []byte(`{"version":"1.0.0","namespace":"rust_e2e_linear","name":"mathematical_sequence",
		"context":{"run":"dup","even_number":8},"initiator":"someone else","source_system":"s","reason":"r"}`)
	status, e = post(t, url, reordered)
	require.Equal(t, http.StatusConflict, status, "%+v", e)
	require.Contains(t, e.Error.Message, "same identity")
	t2, s2, tr2 := countRows(t, env)
	require.Equal(t, []int{tasks, steps, transitions}, []int{t2, s2, tr2}, "a refused duplicate creates nothing")

	// An idempotency key decides identity instead of the context.
	keyed := validBody(func(m map[string]any) {
		m["idempotency_key"] = "order-42"
		m["context"] = map[string]any{"even_number": 2}
	})
	status, _ = post(t, url, keyed)
	require.Equal(t, http.StatusCreated, status)
	keyed2 := validBody(func(m map[string]any) {
		m["idempotency_key"] = "order-42"
		m["context"] = map[string]any{"even_number": 4}
	})
	status, _ = post(t, url, keyed2)
	require.Equal(t, http.StatusConflict, status)
}

func set2(field string, v any) func(m map[string]any) { return func(m map[string]any) { m[field] = v } }

func TestReadEndpoints(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastOptions())
	url := env.Orchestrators[0].URL()
	ctx := ctxFor(t, 30*time.Second)
	for path, want := range map[string]int{
		"/v1/tasks/not-a-uuid":                                          400,
		"/v1/tasks/0199c3e0-ccdb-7581-87ab-3f67daeaa4a5":                404,
		"/v1/tasks/0199c3e0-ccdb-7581-87ab-3f67daeaa4a5/workflow_steps": 404,
		"/v1/tasks?per_page=1000":                                       400,
		"/v1/tasks?status=bogus":                                        400,
		"/v1/tasks/0199c3e0-ccdb-7581-87ab-3f67daeaa4a5?wait=forever":   400,
		"/health": 200, "/health/live": 200, "/health/ready": 200, "/health/detailed": 200,
	} {
		resp, err := http.Get(url + path)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, path)
	}
	created, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 4}))
	require.NoError(t, err)
	_, err = env.Client.WaitTask(ctx, created.TaskUUID)
	require.NoError(t, err)
	list, err := env.Client.ListTasks(ctx, clientList("rust_e2e_linear", "complete"))
	require.NoError(t, err)
	require.Equal(t, 1, list.Pagination.TotalCount)
	require.Equal(t, created.TaskUUID, list.Tasks[0].TaskUUID)
	list, err = env.Client.ListTasks(ctx, clientList("rust_e2e_tree", ""))
	require.NoError(t, err)
	require.Zero(t, list.Pagination.TotalCount)
}

// TestPoisonMessages puts undecodable messages on a worker queue and the results queue:
// they are archived, and the processes keep working.
func TestPoisonMessages(t *testing.T) {
	t.Parallel()
	p := newTelemetry(t)
	opts := fastOptions()
	opts.Telemetry = p
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 30*time.Second)
	queue := workflow.WorkerQueue("rust_e2e_linear")
	var ids []int64
	for _, m := range []string{`{"foo": 1}`, `"just a string"`, `{"task_uuid": "x", "step_uuid": "y"}`,
		`{"task_uuid": "0199c3e0-ccdb-7581-87ab-3f67daeaa4a5", "step_uuid": "0199c3e0-ccdb-7581-87ab-3f67daeaa4a6"}`} {
		id, err := pgmq.Send(ctx, env.Pool, queue, json.RawMessage(m))
		require.NoError(t, err)
		ids = append(ids, id)
		rid, err := pgmq.Send(ctx, env.Pool, "orchestration_step_results", json.RawMessage(m))
		require.NoError(t, err)
		ids = append(ids, -rid)
	}
	waitFor(t, 15*time.Second, "poison messages archived by the fallback pollers", func() bool {
		var live int
		require.NoError(t, env.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pgmq.q_worker_rust_e2e_linear_queue)
			+ (SELECT count(*) FROM pgmq.q_orchestration_step_results)`).Scan(&live))
		return live == 0
	})
	var archived int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pgmq.a_worker_rust_e2e_linear_queue)
		+ (SELECT count(*) FROM pgmq.a_orchestration_step_results)`).Scan(&archived))
	require.Equal(t, len(ids), archived)
	waitFor(t, 5*time.Second, "the poison counters", func() bool {
		s := scrapeSamples(t, p)
		return total(s, "tasker_queue_messages_deleted_total", map[string]string{"operation": "archive_poison",
			"queue": "worker_rust_e2e_linear_queue"}) == 4 &&
			total(s, "tasker_queue_messages_deleted_total", map[string]string{"operation": "archive_poison",
				"queue": "orchestration_step_results"}) == 4
	})

	_, done := runTask(ctx, t, env, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 6}))
	require.Equal(t, "complete", done.Status)
}

func clientList(namespace, status string) client.ListOptions {
	return client.ListOptions{Namespace: namespace, Status: status}
}

// TestBearerToken: with a token configured, the task API and the admin endpoints refuse
// requests without it; health and metrics stay open.
func TestBearerToken(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Orchestrator = func(_ int, c *orchestrator.Config) { c.AuthToken = "s3cret" }
	opts.Worker = func(_ int, c *worker.Config) { c.AuthToken = "s3cret" }
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 20*time.Second)
	_, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2}))
	require.True(t, client.IsStatus(err, 401), "%v", err)
	_, err = env.Client.WithToken("wrong").ListTasks(ctx, client.ListOptions{})
	require.True(t, client.IsStatus(err, 401), "%v", err)
	authed := env.Client.WithToken("s3cret")
	created, err := authed.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2}))
	require.NoError(t, err)
	done, err := authed.WaitTask(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", done.Status)
	for _, u := range []string{env.Orchestrators[0].URL() + "/health/ready", env.Orchestrators[0].URL() + "/metrics"} {
		resp, err := http.Get(u)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, u)
	}
	for _, u := range []string{env.Orchestrators[0].URL(), "http://" + env.Workers[0].Addr()} {
		resp, err := http.Get(u + "/admin/faults")
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, u)
	}
}
