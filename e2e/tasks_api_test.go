package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
)

// TestTaskRoutesSpeakCoresContract checks the task routes' parts of tasker-core's
// contract: requested_at and options are accepted, GET carries steps[], the listing
// filters by initiator and source_system with has_next/has_previous and 25 per page, and
// a malformed uuid is INVALID_UUID.
func TestTaskRoutesSpeakCoresContract(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastOptions())
	ctx := ctxFor(t, 60*time.Second)

	req := request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2})
	req.RequestedAt, req.Options = "2026-12-01T10:00:00", json.RawMessage(`{"priority_boost": true}`)
	created, err := env.Client.CreateTask(ctx, req)
	require.NoError(t, err, "a request as tasker-core's clients send it")
	done, err := env.Client.WaitTask(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Len(t, done.Steps, 4, "GET carries each step's readiness")
	for _, s := range done.Steps {
		require.Equal(t, "complete", s.CurrentState, s.Name)
		require.Equal(t, created.TaskUUID, s.TaskUUID)
	}

	for _, bad := range []struct{ field, body string }{
		{"requested_at", `"requested_at": "yesterday"`},
		{"options", `"options": [1]`},
	} {
		body := validBody(nil)
		body = []byte(strings.Replace(string(body), `"name":`, bad.body+`, "name":`, 1))
		status, e := post(t, env.Orchestrators[0].URL(), body)
		require.Equal(t, http.StatusBadRequest, status, bad.field)
		require.Equal(t, api.CodeBadRequest, e.Error.Code)
		require.Contains(t, e.Error.Message, bad.field)
	}

	for i := range 26 {
		r := request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2})
		r.Initiator, r.SourceSystem = "pager", "batch-"+map[bool]string{true: "a", false: "b"}[i%2 == 0]
		_, err := env.Client.CreateTask(ctx, r)
		require.NoError(t, err)
	}
	page, err := env.Client.ListTasks(ctx, client.ListOptions{Initiator: "pager"})
	require.NoError(t, err)
	require.Equal(t, 26, page.Pagination.TotalCount)
	require.Equal(t, 25, page.Pagination.PerPage, "tasker-core's default page size")
	require.Len(t, page.Tasks, 25)
	require.True(t, page.Pagination.HasNext)
	require.False(t, page.Pagination.HasPrevious)
	last, err := env.Client.ListTasks(ctx, client.ListOptions{Initiator: "pager", Page: 2})
	require.NoError(t, err)
	require.Len(t, last.Tasks, 1)
	require.False(t, last.Pagination.HasNext)
	require.True(t, last.Pagination.HasPrevious)
	half, err := env.Client.ListTasks(ctx, client.ListOptions{Initiator: "pager", SourceSystem: "batch-a"})
	require.NoError(t, err)
	require.Equal(t, 13, half.Pagination.TotalCount)
	for _, task := range half.Tasks {
		require.Equal(t, "batch-a", task.SourceSystem)
	}

	_, err = env.Client.GetTask(ctx, "not-a-uuid")
	var ae *client.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusBadRequest, ae.Status)
	require.Equal(t, api.CodeInvalidUUID, ae.Code)
	require.Contains(t, ae.Message, "not-a-uuid")
}

// TestAPIDocumentIsServed: each service serves its OpenAPI document, the one the suite
// checks every answer against (tasker-core's, corrected, with tasker-sim's own routes).
func TestAPIDocumentIsServed(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastOptions())
	for _, base := range []string{env.Orchestrators[0].URL(), "http://" + env.Workers[0].Addr()} {
		resp, err := http.Get(base + "/api-docs/openapi.json")
		require.NoError(t, err)
		var doc struct {
			OpenAPI string                    `json:"openapi"`
			Paths   map[string]map[string]any `json:"paths"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "3.1.0", doc.OpenAPI)
		require.Contains(t, doc.Paths, "/health/ready", "the corrected health paths")
		if base == env.Orchestrators[0].URL() {
			require.Contains(t, doc.Paths, "/v1/tasks/wait", "tasker-sim's own route is documented")
			require.Contains(t, doc.Paths["/v1/tasks"]["post"].(map[string]any)["responses"], "409")
		}
	}
}

// TestGlobalMessageReadyChannel: as in tasker-core, every queue message is also announced
// on the global pgmq_message_ready channel, beside its namespace's channel.
func TestGlobalMessageReadyChannel(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	// The only worker serves another namespace: nothing claims the step, so the
	// announcement is all there is to see.
	opts.Worker = func(_ int, c *worker.Config) { c.Namespaces = []string{"tasker_sim_test"} }
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 30*time.Second)
	conn, err := env.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "LISTEN pgmq_message_ready")
	require.NoError(t, err)
	created, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2}))
	require.NoError(t, err)
	n, err := conn.Conn().WaitForNotification(ctx)
	require.NoError(t, err)
	var event struct {
		EventType string `json:"event_type"`
		QueueName string `json:"queue_name"`
		Namespace string `json:"namespace"`
		Message   struct {
			TaskUUID string `json:"task_uuid"`
		} `json:"message"`
	}
	require.NoError(t, json.Unmarshal([]byte(n.Payload), &event))
	require.Equal(t, "message_with_payload", event.EventType)
	require.Equal(t, "worker_rust_e2e_linear_queue", event.QueueName)
	require.Equal(t, "rust_e2e_linear", event.Namespace)
	require.Equal(t, created.TaskUUID, event.Message.TaskUUID)
	_, err = conn.Exec(ctx, "UNLISTEN *")
	require.NoError(t, err)
}
