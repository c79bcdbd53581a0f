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

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// stepsAPIOptions serves the shipped templates plus linear_fail (tasker_sim_test): a → b
// → c, where a fails for good on its only attempt; retries back off for a few ms.
func stepsAPIOptions(t *testing.T) harness.Options {
	t.Helper()
	linear, err := workflow.Parse([]byte(`{"name": "linear_fail", "namespace_name": "tasker_sim_test", "version": "1.0.0",
	  "steps": [
	    {"name": "a", "handler": {"callable": "test.fail_n_times", "initialization": {"fail_count": 10}},
	     "retry": {"retryable": true, "max_attempts": 1}},
	    {"name": "b", "dependencies": ["a"], "handler": {"callable": "test.fail_n_times"}},
	    {"name": "c", "dependencies": ["b"], "handler": {"callable": "test.fail_n_times"}}]}`))
	require.NoError(t, err)
	shipped, err := workflow.Embedded()
	require.NoError(t, err)
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) { c.Templates = append(shipped, linear) }
	opts.Orchestrator = func(_ int, c *orchestrator.Config) {
		c.PollInterval = 50 * time.Millisecond
		c.Backoff.Base, c.Backoff.Max = 10*time.Millisecond, 50*time.Millisecond
	}
	return opts
}

// settled creates a task and waits until it settles in want.
func settled(t *testing.T, ctx context.Context, env *harness.Env, req *api.TaskRequest, want string) *api.TaskResponse {
	t.Helper()
	_, done := runTask(ctx, t, env, req)
	require.Equal(t, want, done.Status)
	return done
}

// onlyStep returns a task's single step.
func onlyStep(t *testing.T, ctx context.Context, env *harness.Env, task string) api.StepResponse {
	t.Helper()
	steps, err := env.Client.Steps(ctx, task)
	require.NoError(t, err)
	require.Len(t, steps, 1)
	return steps[0]
}

// exhaustedTrail is the step trail of retry_exhaustion_test's step: three failed attempts.
func exhaustedTrail() []string {
	attempt := []string{"enqueued", "in_progress", "enqueued_as_error_for_orchestration"}
	out := append([]string{"pending"}, attempt...)
	for range 2 {
		out = append(out, "waiting_for_retry", "pending")
		out = append(out, attempt...)
	}
	return append(out, "error")
}

// requireOperatorRow checks that a transition row records an operator's action.
func requireOperatorRow(t *testing.T, row transitionRow, action, reason, by string) {
	t.Helper()
	require.Equal(t, "operator", row.Metadata["trigger"])
	require.Equal(t, action, row.Metadata["action"])
	require.Equal(t, reason, row.Metadata["reason"])
	require.Equal(t, by, row.Metadata["by"])
}

// tail returns the last n states of a trail.
func tail(rows []transitionRow, n int) []string {
	s := states(rows)
	return s[len(s)-n:]
}

func TestStepsAPIActions(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, stepsAPIOptions(t))

	t.Run("reset_for_retry runs an exhausted step again", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 60*time.Second)
		task := settled(t, ctx, env, request("rust_e2e_retry", "retry_exhaustion_test", map[string]any{}), "blocked_by_failures")
		step := onlyStep(t, ctx, env, task.TaskUUID)
		require.Equal(t, 3, step.Attempts)
		require.False(t, step.RetryEligible)

		got, err := env.Client.StepAction(ctx, task.TaskUUID, step.StepUUID, &api.StepManualAction{
			ActionType: "reset_for_retry", Reason: "upstream fixed", ResetBy: "ops@example.com"})
		require.NoError(t, err)
		require.NotEqual(t, "error", got.CurrentState, "the reset step was enqueued again in the same transaction")
		done, err := env.Client.WaitTask(ctx, task.TaskUUID)
		require.NoError(t, err)
		require.Equal(t, "blocked_by_failures", done.Status, "it fails three more times")
		again := onlyStep(t, ctx, env, task.TaskUUID)
		require.Equal(t, "error", again.CurrentState)
		require.Equal(t, 3, again.Attempts, "attempts were reset to 0, then three more ran")

		rows := stepTransitions(t, env, step.StepUUID)
		requireWellFormedAudit(t, rows, legalStep)
		want := exhaustedTrail()
		require.Equal(t, append(append(append([]string{}, want...), "pending"), want[1:]...), states(rows))
		requireOperatorRow(t, rows[len(want)], "reset_for_retry", "upstream fixed", "ops@example.com")
		taskRows := taskTransitions(t, env, task.TaskUUID)
		requireWellFormedAudit(t, taskRows, legalTask)
		require.Contains(t, strings.Join(states(taskRows), ","),
			"blocked_by_failures,evaluating_results,enqueuing_steps,steps_in_process")

		audit, err := env.Client.StepAudit(ctx, task.TaskUUID, step.StepUUID)
		require.NoError(t, err)
		require.Len(t, audit, 6, "six failed submissions")
		for i, a := range audit {
			require.False(t, a.Success)
			require.Equal(t, "enqueued_as_error_for_orchestration", a.ToState)
			require.Equal(t, i == 0, a.Result != nil, "only the newest row carries the step's results")
			if i > 0 {
				require.True(t, a.RecordedAt.Before(audit[i-1].RecordedAt) || a.RecordedAt.Equal(audit[i-1].RecordedAt), "newest first")
			}
		}
	})

	t.Run("complete_manually finishes a blocked task", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 60*time.Second)
		task := settled(t, ctx, env, request("rust_e2e_retry", "retry_exhaustion_test", map[string]any{}), "blocked_by_failures")
		step := onlyStep(t, ctx, env, task.TaskUUID)
		got, err := env.Client.StepAction(ctx, task.TaskUUID, step.StepUUID, &api.StepManualAction{
			ActionType: "complete_manually", Reason: "done by hand", CompletedBy: "ops",
			CompletionData: &api.ManualCompletionData{Result: json.RawMessage(`{"fixed":true}`),
				Metadata: json.RawMessage(`{"ticket":"OPS-1"}`)}})
		require.NoError(t, err)
		require.Equal(t, "complete", got.CurrentState)
		require.NotNil(t, got.CompletedAt)
		var res struct {
			StepUUID string          `json:"step_uuid"`
			Success  bool            `json:"success"`
			Status   string          `json:"status"`
			Result   json.RawMessage `json:"result"`
			Error    any             `json:"error"`
			Metadata struct {
				ExecutionTimeMS int            `json:"execution_time_ms"`
				Retryable       bool           `json:"retryable"`
				CompletedAt     string         `json:"completed_at"`
				Custom          map[string]any `json:"custom"`
			} `json:"metadata"`
		}
		require.NoError(t, json.Unmarshal(got.Results, &res))
		require.Equal(t, step.StepUUID, res.StepUUID)
		require.True(t, res.Success)
		require.Equal(t, "completed", res.Status)
		require.JSONEq(t, `{"fixed":true}`, string(res.Result))
		require.Nil(t, res.Error)
		require.NotEmpty(t, res.Metadata.CompletedAt)
		require.Equal(t, map[string]any{"ticket": "OPS-1", "manually_completed": true, "completed_by": "ops",
			"completion_reason": "done by hand"}, res.Metadata.Custom)

		now, err := env.Client.GetTask(ctx, task.TaskUUID)
		require.NoError(t, err)
		require.Equal(t, "complete", now.Status, "the task completed in the action's transaction")
		rows := stepTransitions(t, env, step.StepUUID)
		requireWellFormedAudit(t, rows, legalStep)
		require.Equal(t, append(exhaustedTrail(), "complete"), states(rows))
		requireOperatorRow(t, rows[len(rows)-1], "complete_manually", "done by hand", "ops")
		taskRows := taskTransitions(t, env, task.TaskUUID)
		requireWellFormedAudit(t, taskRows, legalTask)
		require.Equal(t, []string{"blocked_by_failures", "evaluating_results", "complete"}, tail(taskRows, 3))
		requireOperatorRow(t, taskRows[len(taskRows)-2], "complete_manually", "done by hand", "ops")
	})

	t.Run("resolve_manually unblocks the dependents", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 60*time.Second)
		task := settled(t, ctx, env, request("tasker_sim_test", "linear_fail", map[string]any{}), "blocked_by_failures")
		steps, err := env.Client.Steps(ctx, task.TaskUUID)
		require.NoError(t, err)
		require.Equal(t, []string{"a", "b", "c"}, []string{steps[0].Name, steps[1].Name, steps[2].Name}, "created_at order")
		require.Equal(t, []string{"error", "pending", "pending"},
			[]string{steps[0].CurrentState, steps[1].CurrentState, steps[2].CurrentState})
		got, err := env.Client.StepAction(ctx, task.TaskUUID, steps[0].StepUUID, &api.StepManualAction{
			ActionType: "resolve_manually", Reason: "not needed", ResolvedBy: "ops"})
		require.NoError(t, err)
		require.Equal(t, "resolved_manually", got.CurrentState)
		require.NotNil(t, got.CompletedAt)
		done, err := env.Client.WaitTask(ctx, task.TaskUUID)
		require.NoError(t, err)
		require.Equal(t, "complete", done.Status)
		require.Equal(t, 3, done.CompletedSteps)

		rows := stepTransitions(t, env, steps[0].StepUUID)
		requireWellFormedAudit(t, rows, legalStep)
		require.Equal(t, []string{"pending", "enqueued", "in_progress", "enqueued_as_error_for_orchestration", "error",
			"resolved_manually"}, states(rows))
		requireOperatorRow(t, rows[len(rows)-1], "resolve_manually", "not needed", "ops")
		for _, s := range steps[1:] {
			require.Equal(t, []string{"pending", "enqueued", "in_progress", "enqueued_for_orchestration", "complete"},
				states(stepTransitions(t, env, s.StepUUID)), s.Name)
		}
		requireWellFormedAudit(t, taskTransitions(t, env, task.TaskUUID), legalTask)
	})
}

// TestStepsAPIWaitingForRetry completes, by hand, a step whose retry waits an hour: the
// task does not wait for the retry, it completes.
func TestStepsAPIWaitingForRetry(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Orchestrator = func(_ int, c *orchestrator.Config) { c.Backoff.Base, c.Backoff.Max = time.Hour, time.Hour }
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 60*time.Second)
	created, err := env.Client.CreateTask(ctx, request("rust_e2e_retry", "retry_mechanics_test", map[string]any{}))
	require.NoError(t, err)
	waitFor(t, 20*time.Second, "the task to wait for its retry", func() bool {
		task, err := env.Client.GetTask(ctx, created.TaskUUID)
		return err == nil && task.Status == "waiting_for_retry"
	})
	step := onlyStep(t, ctx, env, created.TaskUUID)
	require.Equal(t, "waiting_for_retry", step.CurrentState)
	require.NotNil(t, step.NextRetryAt)
	require.NotNil(t, step.LastFailureAt)

	got, err := env.Client.StepAction(ctx, created.TaskUUID, step.StepUUID, &api.StepManualAction{
		ActionType: "complete_manually", Reason: "no time to wait", CompletedBy: "ops",
		CompletionData: &api.ManualCompletionData{Result: json.RawMessage(`42`), Metadata: json.RawMessage(`"note"`)}})
	require.NoError(t, err)
	require.Equal(t, "complete", got.CurrentState)
	require.JSONEq(t, `42`, string(mustField(t, got.Results, "result")))
	require.JSONEq(t, `"note"`, string(mustField(t, mustField(t, mustField(t, got.Results, "metadata"), "custom"), "operator_metadata")))
	task, err := env.Client.GetTask(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", task.Status)
	rows := stepTransitions(t, env, step.StepUUID)
	requireWellFormedAudit(t, rows, legalStep)
	require.Equal(t, []string{"pending", "enqueued", "in_progress", "enqueued_as_error_for_orchestration",
		"waiting_for_retry", "complete"}, states(rows))
	taskRows := taskTransitions(t, env, created.TaskUUID)
	requireWellFormedAudit(t, taskRows, legalTask)
	require.Equal(t, []string{"waiting_for_retry", "evaluating_results", "complete"}, tail(taskRows, 3))
}

// rawCall sends a request to the orchestrator and returns the status and the decoded
// error body (if there is one).
func rawCall(t *testing.T, ctx context.Context, env *harness.Env, method, path string, body []byte) (int, api.ErrorDetail) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, env.Orchestrators[0].URL()+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var e api.ErrorResponse
	if resp.StatusCode >= 400 {
		require.NoError(t, json.Unmarshal(data, &e), "error body %s", data)
	}
	return resp.StatusCode, e.Error
}

func transitionCount(t *testing.T, env *harness.Env) int {
	t.Helper()
	var n int
	require.NoError(t, env.Pool.QueryRow(context.Background(),
		`SELECT (SELECT count(*) FROM tasker.workflow_step_transitions) + (SELECT count(*) FROM tasker.task_transitions)`).Scan(&n))
	return n
}

// TestStepsAPIBadInput sends every kind of bad request to the step routes: each gets its
// status, code and a message naming the field and the rule, and nothing is written.
func TestStepsAPIBadInput(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, stepsAPIOptions(t))
	ctx := ctxFor(t, 60*time.Second)
	blocked := settled(t, ctx, env, request("tasker_sim_test", "linear_fail", map[string]any{}), "blocked_by_failures")
	complete := settled(t, ctx, env, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2}), "complete")
	bs, err := env.Client.Steps(ctx, blocked.TaskUUID)
	require.NoError(t, err)
	cs, err := env.Client.Steps(ctx, complete.TaskUUID)
	require.NoError(t, err)
	failed, pending, done := bs[0].StepUUID, bs[1].StepUUID, cs[0].StepUUID
	path := func(task, step string) string { return "/v1/tasks/" + task + "/workflow_steps/" + step }
	reset := `{"action_type":"reset_for_retry","reason":"r","reset_by":"ops"}`
	big := `{"action_type":"reset_for_retry","reason":"` + strings.Repeat("x", api.MaxStepActionBytes) + `","reset_by":"ops"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		code, message            string
	}{
		{"get: bad task uuid", "GET", path("nope", failed), "", 400, "INVALID_UUID", `task uuid: must be a UUID, got "nope"`},
		{"get: bad step uuid", "GET", path(blocked.TaskUUID, "nope"), "", 400, "INVALID_UUID", `step uuid: must be a UUID, got "nope"`},
		{"get: unknown step", "GET", path(blocked.TaskUUID, "00000000-0000-0000-0000-000000000001"), "", 404, "NOT_FOUND", "step 00000000-0000-0000-0000-000000000001: not found"},
		{"get: unknown task", "GET", path("00000000-0000-0000-0000-000000000001", failed), "", 404, "NOT_FOUND", "task 00000000-0000-0000-0000-000000000001: not found"},
		{"get: foreign step", "GET", path(complete.TaskUUID, failed), "", 404, "NOT_FOUND", "does not belong to task " + complete.TaskUUID},
		{"audit: foreign step", "GET", path(complete.TaskUUID, failed) + "/audit", "", 404, "NOT_FOUND", "does not belong to task"},
		{"audit: bad step uuid", "GET", path(complete.TaskUUID, "x") + "/audit", "", 400, "INVALID_UUID", "step uuid"},
		{"patch: bad task uuid", "PATCH", path("nope", failed), reset, 400, "INVALID_UUID", "task uuid"},
		{"patch: bad step uuid", "PATCH", path(blocked.TaskUUID, "nope"), reset, 400, "INVALID_UUID", "step uuid"},
		{"patch: foreign step", "PATCH", path(complete.TaskUUID, failed), reset, 404, "NOT_FOUND", "does not belong to task"},
		{"patch: unknown action", "PATCH", path(blocked.TaskUUID, failed), `{"action_type":"retry","reason":"r"}`, 400, "BAD_REQUEST", `action_type: must be one of reset_for_retry, resolve_manually, complete_manually, got "retry"`},
		{"patch: no action", "PATCH", path(blocked.TaskUUID, failed), `{"reason":"r","reset_by":"ops"}`, 400, "BAD_REQUEST", "action_type: is required"},
		{"patch: missing reason", "PATCH", path(blocked.TaskUUID, failed), `{"action_type":"reset_for_retry","reset_by":"ops"}`, 400, "BAD_REQUEST", "reason: is required for action_type reset_for_retry"},
		{"patch: empty by", "PATCH", path(blocked.TaskUUID, failed), `{"action_type":"resolve_manually","reason":"r","resolved_by":" "}`, 400, "BAD_REQUEST", "resolved_by: must not be empty"},
		{"patch: wrong type", "PATCH", path(blocked.TaskUUID, failed), `{"action_type":"resolve_manually","reason":7,"resolved_by":"o"}`, 400, "BAD_REQUEST", "reason: must be a string"},
		{"patch: field of another action", "PATCH", path(blocked.TaskUUID, failed), `{"action_type":"reset_for_retry","reason":"r","reset_by":"o","resolved_by":"o"}`, 400, "BAD_REQUEST", "resolved_by: is not a field of action_type reset_for_retry"},
		{"patch: array body", "PATCH", path(blocked.TaskUUID, failed), `[]`, 400, "BAD_REQUEST", "request body: must be a JSON object"},
		{"patch: empty body", "PATCH", path(blocked.TaskUUID, failed), ``, 400, "BAD_REQUEST", "request body: must be a JSON object"},
		{"patch: malformed", "PATCH", path(blocked.TaskUUID, failed), `{"action_type":`, 400, "BAD_REQUEST", "request body: must be a JSON object: malformed JSON"},
		{"patch: too big", "PATCH", path(blocked.TaskUUID, failed), big, 400, "BAD_REQUEST", "request body: must be at most 1048576 bytes"},
		{"patch: no completion_data", "PATCH", path(blocked.TaskUUID, failed), `{"action_type":"complete_manually","reason":"r","completed_by":"o"}`, 400, "BAD_REQUEST", "completion_data: is required"},
		{"patch: no result", "PATCH", path(blocked.TaskUUID, failed), `{"action_type":"complete_manually","completion_data":{},"reason":"r","completed_by":"o"}`, 400, "BAD_REQUEST", "completion_data.result: is required"},
		{"patch: completion_data extra", "PATCH", path(blocked.TaskUUID, failed), `{"action_type":"complete_manually","completion_data":{"result":1,"x":2},"reason":"r","completed_by":"o"}`, 400, "BAD_REQUEST", "completion_data.x: is not a field"},
		{"patch: completion_data not an object", "PATCH", path(blocked.TaskUUID, failed), `{"action_type":"complete_manually","completion_data":5,"reason":"r","completed_by":"o"}`, 400, "BAD_REQUEST", "completion_data: must be a JSON object"},
		{"patch: reset a pending step", "PATCH", path(blocked.TaskUUID, pending), reset, 400, "BAD_REQUEST", "cannot reset_for_retry a step in pending: only a step in error can be reset"},
		{"patch: step of a finished task", "PATCH", path(complete.TaskUUID, done), `{"action_type":"resolve_manually","reason":"r","resolved_by":"o"}`, 400, "BAD_REQUEST", "is complete: the steps of a finished task cannot be changed"},
	}
	before := transitionCount(t, env)
	for _, tc := range cases {
		status, e := rawCall(t, ctx, env, tc.method, tc.path, []byte(tc.body))
		require.Equal(t, tc.status, status, tc.name)
		require.Equal(t, tc.code, e.Code, tc.name)
		require.Contains(t, e.Message, tc.message, tc.name)
	}
	require.Equal(t, before, transitionCount(t, env), "a refused request writes nothing")
	// Resolving the failed step then leaves no step to act on twice.
	_, err = env.Client.StepAction(ctx, blocked.TaskUUID, failed, &api.StepManualAction{ActionType: "resolve_manually", Reason: "r", ResolvedBy: "o"})
	require.NoError(t, err)
	_, err = env.Client.StepAction(ctx, blocked.TaskUUID, failed, &api.StepManualAction{ActionType: "resolve_manually", Reason: "r", ResolvedBy: "o"})
	require.True(t, client.IsStatus(err, 400), "%v", err)
}

// TestStepsAPIShapes reads one step and its audit in tasker-core's shapes.
func TestStepsAPIShapes(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastOptions())
	ctx := ctxFor(t, 60*time.Second)
	task := settled(t, ctx, env, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2}), "complete")
	steps, err := env.Client.Steps(ctx, task.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, []string{"linear_step_1", "linear_step_2", "linear_step_3", "linear_step_4"},
		[]string{steps[0].Name, steps[1].Name, steps[2].Name, steps[3].Name})
	second := steps[1]

	status, _ := rawCall(t, ctx, env, "GET", "/v1/tasks/"+task.TaskUUID+"/workflow_steps/"+second.StepUUID, nil)
	require.Equal(t, 200, status)
	got, err := env.Client.GetStep(ctx, task.TaskUUID, second.StepUUID)
	require.NoError(t, err)
	require.Equal(t, second, *got)
	require.Equal(t, "complete", got.CurrentState)
	require.Equal(t, []int{1, 1, 1}, []int{got.TotalParents, got.CompletedParents, got.Attempts})
	require.Equal(t, []string{"linear_step_1"}, got.Dependencies)
	require.True(t, got.DependenciesSatisfied)
	require.True(t, got.RetryEligible)
	require.False(t, got.ReadyForExecution)
	require.NotNil(t, got.CompletedAt)
	require.NotNil(t, got.LastAttemptedAt)
	require.Nil(t, got.LastFailureAt)
	require.Nil(t, got.NextRetryAt)
	require.False(t, got.UpdatedAt.Before(got.CreatedAt))

	// Every field of core's StepResponse is there.
	var raw map[string]json.RawMessage
	resp, err := http.Get(env.Orchestrators[0].URL() + "/v1/tasks/" + task.TaskUUID + "/workflow_steps/" + second.StepUUID)
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&raw))
	require.NoError(t, resp.Body.Close())
	for _, k := range []string{"step_uuid", "task_uuid", "name", "created_at", "updated_at", "current_state",
		"dependencies_satisfied", "retry_eligible", "ready_for_execution", "total_parents", "completed_parents",
		"attempts", "max_attempts", "completed_at", "last_failure_at", "next_retry_at", "last_attempted_at", "results"} {
		require.Contains(t, raw, k)
	}

	audit, err := env.Client.StepAudit(ctx, task.TaskUUID, second.StepUUID)
	require.NoError(t, err)
	require.Len(t, audit, 1)
	a := audit[0]
	require.Equal(t, a.AuditUUID, a.TransitionUUID)
	require.Equal(t, []string{second.StepUUID, task.TaskUUID, "linear_step_2", "enqueued_for_orchestration"},
		[]string{a.WorkflowStepUUID, a.TaskUUID, a.StepName, a.ToState})
	require.True(t, a.Success)
	require.NotNil(t, a.FromState)
	require.Equal(t, "in_progress", *a.FromState)
	require.NotNil(t, a.WorkerUUID)
	require.Equal(t, mustWorker(t, got.Results), *a.WorkerUUID)
	require.NotNil(t, a.CorrelationID)
	require.Equal(t, task.CorrelationID, *a.CorrelationID)
	require.NotNil(t, a.ExecutionTimeMS)
	require.JSONEq(t, string(got.Results), string(a.Result))
}
