package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// dlqEnv starts an orchestrator whose staleness detector files a task in the DLQ 300 ms
// after it enters steps_in_process, and a worker that serves another namespace, so that
// rust_e2e_linear tasks go stale.
func dlqEnv(t *testing.T) *harness.Env {
	t.Helper()
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) { c.Namespaces = []string{"rust_e2e_retry"} }
	opts.Orchestrator = func(_ int, c *orchestrator.Config) {
		c.PollInterval = 100 * time.Millisecond
		c.Staleness = orchestrator.StalenessConfig{StepsInProcess: 300 * time.Millisecond}
	}
	return harness.New(t, cluster, opts)
}

// dlqStaleTask creates a rust_e2e_linear task and waits for the staleness detector to file it.
func dlqStaleTask(t *testing.T, ctx context.Context, env *harness.Env) string {
	t.Helper()
	created, done := runTask(ctx, t, env, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2}))
	require.Equal(t, "error", done.Status)
	return created.TaskUUID
}

// dlqCall sends a request to the orchestrator and returns the status and the body.
func dlqCall(t *testing.T, ctx context.Context, env *harness.Env, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, env.Orchestrators[0].URL()+path, rd)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, data
}

// dlqRequireError checks an error answer: status, code, and words its message contains.
func dlqRequireError(t *testing.T, status int, body []byte, wantStatus int, code string, words ...string) {
	t.Helper()
	require.Equal(t, wantStatus, status, string(body))
	var e api.ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	require.Equal(t, code, e.Error.Code, string(body))
	for _, w := range words {
		require.Contains(t, e.Error.Message, w)
	}
}

var dlqRFC3339 = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$`)

// TestDLQRoutes files four stale tasks in the DLQ and exercises every DLQ route on them.
func TestDLQRoutes(t *testing.T) {
	t.Parallel()
	env := dlqEnv(t)
	ctx := ctxFor(t, time.Minute)
	tasks := make([]string, 4)
	for i := range tasks {
		tasks[i] = dlqStaleTask(t, ctx, env)
	}
	entries := dlqListAndGet(t, ctx, env, tasks)
	dlqPatch(t, ctx, env, entries)
	dlqQueueAndStats(t, ctx, env, tasks, entries)
}

// dlqListAndGet checks listing, filtering, paging and the lookup by task. It returns the
// tasks' entries in the tasks' order.
func dlqListAndGet(t *testing.T, ctx context.Context, env *harness.Env, tasks []string) []api.DlqEntry {
	t.Helper()
	all, err := env.Client.ListDlq(ctx, client.DlqListOptions{})
	require.NoError(t, err)
	require.Len(t, all, 4)
	for i, e := range all {
		require.Equal(t, tasks[3-i], e.TaskUUID, "newest first")
		require.Equal(t, api.DlqStalenessTimeout, e.DlqReason)
		require.Equal(t, api.DlqPending, e.ResolutionStatus)
		require.Equal(t, "steps_in_process", e.OriginalState)
		require.Nil(t, e.ResolutionTimestamp)
		require.Contains(t, string(e.TaskSnapshot), e.TaskUUID)
	}
	status, body := dlqCall(t, ctx, env, "GET", "/v1/dlq?limit=1", "")
	require.Equal(t, http.StatusOK, status)
	var raw []map[string]any
	require.NoError(t, json.Unmarshal(body, &raw))
	for _, k := range []string{"dlq_timestamp", "created_at", "updated_at"} {
		require.Regexp(t, dlqRFC3339, raw[0][k], k)
	}

	page := func(o client.DlqListOptions) []string {
		got, err := env.Client.ListDlq(ctx, o)
		require.NoError(t, err)
		ids := []string{}
		for _, e := range got {
			ids = append(ids, e.TaskUUID)
		}
		return ids
	}
	require.Equal(t, []string{tasks[3], tasks[2]}, page(client.DlqListOptions{Limit: 2}))
	require.Equal(t, []string{tasks[1], tasks[0]}, page(client.DlqListOptions{Limit: 2, Offset: 2}))
	require.Empty(t, page(client.DlqListOptions{Offset: 4}))
	require.Len(t, page(client.DlqListOptions{ResolutionStatus: api.DlqPending}), 4)
	require.Empty(t, page(client.DlqListOptions{ResolutionStatus: api.DlqCancelled}))
	status, body = dlqCall(t, ctx, env, "GET", "/v1/dlq?resolution_status=Cancelled", "")
	require.Equal(t, "[]", strings.TrimSpace(string(body)), "an empty list is [], not null (%d)", status)

	for q, field := range map[string]string{"resolution_status=pending": "resolution_status", "limit=abc": "limit",
		"limit=0": "limit", "limit=1001": "limit", "offset=-1": "offset", "offset=x": "offset"} {
		status, body := dlqCall(t, ctx, env, "GET", "/v1/dlq?"+q, "")
		dlqRequireError(t, status, body, http.StatusBadRequest, api.CodeBadRequest, field)
	}
	status, body = dlqCall(t, ctx, env, "GET", "/v1/dlq?resolution_status=pending", "")
	dlqRequireError(t, status, body, http.StatusBadRequest, api.CodeBadRequest, "Pending", "ManuallyResolved",
		"PermanentlyFailed", "Cancelled")

	out := make([]api.DlqEntry, len(tasks))
	for i, id := range tasks {
		e, err := env.Client.GetDlqEntryForTask(ctx, id)
		require.NoError(t, err)
		require.Equal(t, all[3-i], *e)
		out[i] = *e
	}
	unknown := uuid.NewString()
	status, body = dlqCall(t, ctx, env, "GET", "/v1/dlq/task/"+unknown, "")
	dlqRequireError(t, status, body, http.StatusNotFound, api.CodeNotFound, "DLQ entry not found for task "+unknown)
	status, body = dlqCall(t, ctx, env, "GET", "/v1/dlq/task/not-a-uuid", "")
	dlqRequireError(t, status, body, http.StatusBadRequest, api.CodeInvalidUUID, "not-a-uuid")
	return out
}

// dlqPatch updates the entries field by field, rejects bad bodies without writing, and
// leaves entries 0, 2 and 3 ManuallyResolved, Cancelled and PermanentlyFailed.
func dlqPatch(t *testing.T, ctx context.Context, env *harness.Env, entries []api.DlqEntry) {
	t.Helper()
	id := entries[0].DlqEntryUUID
	get := func(task string) api.DlqEntry {
		e, err := env.Client.GetDlqEntryForTask(ctx, task)
		require.NoError(t, err)
		return *e
	}
	patch := func(req api.UpdateInvestigationRequest) {
		res, err := env.Client.UpdateDlqInvestigation(ctx, id, &req)
		require.NoError(t, err)
		require.Equal(t, api.UpdateInvestigationResponse{Success: true, Message: "Investigation status updated successfully",
			DlqEntryUUID: id}, *res)
	}
	str := func(s string) *string { return &s }
	task := entries[0].TaskUUID

	patch(api.UpdateInvestigationRequest{ResolutionNotes: str("looked at it")})
	e := get(task)
	require.Equal(t, "looked at it", *e.ResolutionNotes)
	require.Nil(t, e.ResolvedBy)
	require.Equal(t, api.DlqPending, e.ResolutionStatus)
	require.Nil(t, e.ResolutionTimestamp, "only a new status sets the resolution time")
	require.True(t, e.UpdatedAt.After(entries[0].UpdatedAt))

	patch(api.UpdateInvestigationRequest{ResolvedBy: str("operator@example.com")})
	patch(api.UpdateInvestigationRequest{Metadata: json.RawMessage(`{"ticket":"OPS-1"}`)})
	e = get(task)
	require.Equal(t, "looked at it", *e.ResolutionNotes, "a field not given is kept")
	require.Equal(t, "operator@example.com", *e.ResolvedBy)
	require.JSONEq(t, `{"ticket":"OPS-1"}`, string(e.Metadata))

	patch(api.UpdateInvestigationRequest{ResolutionStatus: str(api.DlqManuallyResolved)})
	e = get(task)
	require.Equal(t, api.DlqManuallyResolved, e.ResolutionStatus)
	require.NotNil(t, e.ResolutionTimestamp)
	require.Equal(t, "operator@example.com", *e.ResolvedBy)

	dlqPatchRejects(t, ctx, env, id, e)

	for i, s := range map[int]string{2: api.DlqCancelled, 3: api.DlqPermanentlyFailed} {
		_, err := env.Client.UpdateDlqInvestigation(ctx, entries[i].DlqEntryUUID, &api.UpdateInvestigationRequest{ResolutionStatus: &s})
		require.NoError(t, err)
	}
}

// dlqPatchRejects sends bad PATCH bodies and paths; none of them changes the entry.
func dlqPatchRejects(t *testing.T, ctx context.Context, env *harness.Env, id string, before api.DlqEntry) {
	t.Helper()
	for body, words := range map[string][]string{
		`{}`:                                 {"request body", "at least one"},
		`{"resolution_notes":null}`:          {"request body", "at least one"},
		`{"resolution_status":"pending"}`:    {"resolution_status", "ManuallyResolved"},
		`{"resolution_status":3}`:            {"resolution_status", "Cancelled"},
		`{"resolution_notes":5}`:             {"resolution_notes", "string"},
		`{"resolved_by":["a"]}`:              {"resolved_by", "string"},
		`{"resolution_notes":"x","extra":1}`: {"extra", "unknown field"},
		`[]`:                                 {"request body", "JSON object"},
		`"Pending"`:                          {"request body", "JSON object"},
		`{"resolution_notes":"x"} {}`:        {"request body", "JSON object"},
		`not json`:                           {"request body", "JSON object"},
		``:                                   {"request body", "JSON object"},
		`{"resolution_notes":"` + strings.Repeat("a", 65<<10) + `"}`: {"request body", "65536 bytes"},
		`{"resolution_notes":"nul \u0000"}`:                          {"NUL"},
	} {
		status, resp := dlqCall(t, ctx, env, "PATCH", "/v1/dlq/entry/"+id, body)
		dlqRequireError(t, status, resp, http.StatusBadRequest, api.CodeBadRequest, words...)
	}
	after, err := env.Client.GetDlqEntryForTask(ctx, before.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, before, *after, "a rejected update writes nothing")

	unknown := uuid.NewString()
	status, resp := dlqCall(t, ctx, env, "PATCH", "/v1/dlq/entry/"+unknown, `{"resolution_notes":"x"}`)
	dlqRequireError(t, status, resp, http.StatusNotFound, api.CodeNotFound, "DLQ entry not found: "+unknown)
	status, resp = dlqCall(t, ctx, env, "PATCH", "/v1/dlq/entry/nope", `{"resolution_notes":"x"}`)
	dlqRequireError(t, status, resp, http.StatusBadRequest, api.CodeInvalidUUID, "nope")
}

// dlqQueueAndStats adds two pending entries (task 0 filed by hand, and task 3 with a
// dependency cycle ten minutes old), then checks the 409 for a second pending entry, the
// investigation queue's order and scores, and the stats.
func dlqQueueAndStats(t *testing.T, ctx context.Context, env *harness.Env, tasks []string, entries []api.DlqEntry) {
	t.Helper()
	_, err := env.Pool.Exec(ctx, `INSERT INTO tasker.tasks_dlq (task_uuid, original_state, dlq_reason) VALUES ($1, 'steps_in_process', 'manual_dlq')`, tasks[0])
	require.NoError(t, err)
	_, err = env.Pool.Exec(ctx, `INSERT INTO tasker.tasks_dlq (task_uuid, original_state, dlq_reason, dlq_timestamp, metadata)
		VALUES ($1, 'waiting_for_dependencies', 'dependency_cycle_detected', now() - interval '10 minutes', '{"time_in_state_minutes": 7}')`, tasks[3])
	require.NoError(t, err)

	pending := api.DlqPending
	_, err = env.Client.UpdateDlqInvestigation(ctx, entries[0].DlqEntryUUID, &api.UpdateInvestigationRequest{ResolutionStatus: &pending})
	require.True(t, client.IsStatus(err, http.StatusConflict), "%v", err)
	var ae *client.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, api.CodeConflict, ae.Code)
	require.Contains(t, ae.Message, "only one")
	e, err := env.Client.GetDlqEntryForTask(ctx, tasks[0])
	require.NoError(t, err)
	require.Equal(t, api.DlqManualDlq, e.DlqReason, "the newest entry of task 0 is the one filed by hand")

	queue, err := env.Client.DlqInvestigationQueue(ctx, 0)
	require.NoError(t, err)
	require.Len(t, queue, 3)
	wantOrder := []struct {
		task, reason string
		base         float64
	}{{tasks[3], api.DlqDependencyCycleDetected, 1000}, {tasks[1], api.DlqStalenessTimeout, 100}, {tasks[0], api.DlqManualDlq, 10}}
	for i, w := range wantOrder {
		q := queue[i]
		require.Equal(t, w.task, q.TaskUUID)
		require.Equal(t, w.reason, q.DlqReason)
		require.InDelta(t, w.base, q.PriorityScore-q.MinutesInDlq, 1e-6)
		require.Equal(t, "rust_e2e_linear", *q.NamespaceName)
		require.Equal(t, "mathematical_sequence", *q.TaskName)
		require.Equal(t, "error", *q.CurrentState)
	}
	require.InDelta(t, 10, queue[0].MinutesInDlq, 0.5)
	require.Equal(t, 7, *queue[0].TimeInStateMinutes, "from the entry's metadata")
	require.Equal(t, 0, *queue[1].TimeInStateMinutes, "from the task's transitions: 300 ms")
	one, err := env.Client.DlqInvestigationQueue(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, []string{tasks[3]}, []string{one[0].TaskUUID})
	status, body := dlqCall(t, ctx, env, "GET", "/v1/dlq/investigation-queue?limit=-5", "")
	dlqRequireError(t, status, body, http.StatusBadRequest, api.CodeBadRequest, "limit")

	dlqStats(t, ctx, env)
}

// dlqStats checks the per-reason counts and times after dlqQueueAndStats's changes.
func dlqStats(t *testing.T, ctx context.Context, env *harness.Env) {
	t.Helper()
	all, err := env.Client.ListDlq(ctx, client.DlqListOptions{})
	require.NoError(t, err)
	before := time.Now()
	stats, err := env.Client.DlqStats(ctx)
	require.NoError(t, err)
	byReason := map[string]api.DlqStats{}
	for _, s := range stats {
		byReason[s.DlqReason] = s
	}
	require.Len(t, byReason, 3)
	st := byReason[api.DlqStalenessTimeout]
	require.Equal(t, []int64{4, 1, 1, 1, 1}, []int64{st.TotalEntries, st.Pending, st.ManuallyResolved, st.PermanentFailures, st.Cancelled})
	var sum float64
	var oldest, newest time.Time
	for _, e := range all {
		if e.DlqReason != api.DlqStalenessTimeout {
			continue
		}
		end := before
		if e.ResolutionTimestamp != nil {
			end = *e.ResolutionTimestamp
		}
		sum += end.Sub(e.DlqTimestamp).Minutes()
		if oldest.IsZero() || e.DlqTimestamp.Before(oldest) {
			oldest = e.DlqTimestamp
		}
		if e.DlqTimestamp.After(newest) {
			newest = e.DlqTimestamp
		}
	}
	require.InDelta(t, sum/4, *st.AvgResolutionTimeMinutes, 0.05, "averaged over all entries, unresolved ones up to now")
	require.True(t, oldest.Equal(*st.OldestEntry))
	require.True(t, newest.Equal(*st.NewestEntry))
	cycle := byReason[api.DlqDependencyCycleDetected]
	require.Equal(t, []int64{1, 1, 0, 0, 0}, []int64{cycle.TotalEntries, cycle.Pending, cycle.ManuallyResolved, cycle.PermanentFailures, cycle.Cancelled})
	require.InDelta(t, 10, *cycle.AvgResolutionTimeMinutes, 0.5)
	require.Equal(t, int64(1), byReason[api.DlqManualDlq].Pending)
}

// TestDLQStalenessMonitoring leaves tasks in steps_in_process with no worker for their
// namespace and no staleness detector (a poll interval of an hour), with a 4 s threshold,
// and watches them turn from healthy to warning to stale. A template's lifecycle
// threshold overrides the orchestrator's.
func TestDLQStalenessMonitoring(t *testing.T) {
	t.Parallel()
	templates, err := workflow.Embedded()
	require.NoError(t, err)
	probe, err := workflow.Parse([]byte(`{"name": "lifecycle_probe", "namespace_name": "dlq_e2e", "version": "1.0.0",
		"lifecycle": {"max_steps_in_process_minutes": 600},
		"steps": [{"name": "probe_step", "handler": {"callable": "math.square_even_number"}, "dependencies": []}]}`))
	require.NoError(t, err)
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) {
		c.Templates = append(templates, probe)
		c.Namespaces = []string{"rust_e2e_retry"}
	}
	opts.Orchestrator = func(_ int, c *orchestrator.Config) {
		c.PollInterval = time.Hour
		c.Staleness = orchestrator.StalenessConfig{StepsInProcess: 4 * time.Second}
	}
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, time.Minute)

	status, body := dlqCall(t, ctx, env, "GET", "/v1/dlq/staleness", "")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "[]", strings.TrimSpace(string(body)))

	class := func() map[string]api.StalenessMonitoring {
		list, err := env.Client.DlqStaleness(ctx, 0)
		require.NoError(t, err)
		out := map[string]api.StalenessMonitoring{}
		for _, s := range list {
			out[s.TaskUUID] = s
		}
		return out
	}
	start := func(namespace, name string) string {
		created, err := env.Client.CreateTask(ctx, request(namespace, name, map[string]any{"even_number": 2}))
		require.NoError(t, err)
		waitFor(t, 10*time.Second, "task in steps_in_process", func() bool { _, ok := class()[created.TaskUUID]; return ok })
		return created.TaskUUID
	}
	stale1 := start("rust_e2e_linear", "mathematical_sequence")
	stale2 := start("rust_e2e_linear", "mathematical_sequence")
	probeTask := start("dlq_e2e", "lifecycle_probe")
	waitFor(t, 10*time.Second, "the second task's warning", func() bool { return class()[stale2].HealthStatus == api.StalenessWarning })
	warn := start("rust_e2e_linear", "mathematical_sequence")
	waitFor(t, 10*time.Second, "a task's warning", func() bool { return class()[warn].HealthStatus == api.StalenessWarning })
	healthy := start("rust_e2e_linear", "mathematical_sequence")

	want := []string{stale1, stale2, warn, probeTask, healthy}
	wantClass := []string{api.StalenessStale, api.StalenessStale, api.StalenessWarning, api.StalenessHealthy, api.StalenessHealthy}
	var list []api.StalenessMonitoring
	waitFor(t, 10*time.Second, "stale, warning and healthy tasks at once", func() bool {
		list, err = env.Client.DlqStaleness(ctx, 0)
		require.NoError(t, err)
		if len(list) != len(want) {
			return false
		}
		for i, s := range list {
			if s.TaskUUID != want[i] || s.HealthStatus != wantClass[i] {
				return false
			}
		}
		return true
	})
	for _, s := range list {
		require.Equal(t, "steps_in_process", s.CurrentState)
		require.GreaterOrEqual(t, s.TaskAgeMinutes, s.TimeInStateMinutes)
		if s.TaskUUID == probeTask {
			require.Equal(t, []any{"dlq_e2e", "lifecycle_probe", 600, 36000.0}, []any{s.NamespaceName, s.TaskName,
				s.StalenessThresholdMinutes, s.StalenessThresholdSeconds}, "the template's lifecycle wins")
			continue
		}
		require.Equal(t, []any{"rust_e2e_linear", "mathematical_sequence", 0, 4.0}, []any{s.NamespaceName, s.TaskName,
			s.StalenessThresholdMinutes, s.StalenessThresholdSeconds}, "the orchestrator's threshold")
	}
	limited, err := env.Client.DlqStaleness(ctx, 2)
	require.NoError(t, err)
	require.Len(t, limited, 2)
	status, body = dlqCall(t, ctx, env, "GET", "/v1/dlq/staleness?limit=1001", "")
	dlqRequireError(t, status, body, http.StatusBadRequest, api.CodeBadRequest, "limit")
}
