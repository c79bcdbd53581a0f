package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/cli"
	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
)

// fastRetries is a harness whose orchestrator retries failed steps after a few ms.
func fastRetries() harness.Options {
	return harness.Options{Orchestrator: func(_ int, c *orchestrator.Config) {
		c.PollInterval = 50 * time.Millisecond
		c.Backoff.Base, c.Backoff.Max = 10*time.Millisecond, 50*time.Millisecond
	}}
}

// blockedTask creates a retry_exhaustion_test task with taskerctl, which ends
// blocked_by_failures after three failed attempts, and returns its uuid and its step's.
func blockedTask(t *testing.T, url string) (task, step string) {
	t.Helper()
	out, err := taskerctl(t, url, "task", "create", "--namespace", "rust_e2e_retry", "--name", "retry_exhaustion_test",
		"--wait", "--timeout", "60s")
	require.ErrorContains(t, err, "ended blocked_by_failures", out)
	task = regexp.MustCompile(`Task UUID:\s+([0-9a-f-]{36})`).FindStringSubmatch(out)[1]
	out, err = taskerctl(t, url, "task", "steps", task, "-o", "json")
	require.NoError(t, err)
	var steps []api.StepResponse
	require.NoError(t, json.Unmarshal([]byte(out), &steps))
	require.Len(t, steps, 1)
	return task, steps[0].StepUUID
}

// execute runs taskerctl as main does and returns its exit status, stdout and stderr.
func execute(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := cli.Execute(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestStepCommands(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastRetries())
	url := env.Orchestrators[0].URL()

	t.Run("step, step-audit and reset-step", func(t *testing.T) {
		t.Parallel()
		task, step := blockedTask(t, url)
		out, err := taskerctl(t, url, "task", "step", task, step)
		require.NoError(t, err)
		require.Regexp(t, `Name:\s+always_fail\n`, out)
		require.Regexp(t, `State:\s+error\n`, out)
		require.Regexp(t, `Attempts:\s+3 of 3 \(retryable: true, retry eligible: false\)`, out)
		require.Regexp(t, `Error:\s+\{`, out, "the last failure's error")
		out, err = taskerctl(t, url, "task", "step", task, step, "-o", "json")
		require.NoError(t, err)
		var got api.StepResponse
		require.NoError(t, json.Unmarshal([]byte(out), &got))
		require.Equal(t, step, got.StepUUID)
		require.Equal(t, "error", got.CurrentState)

		out, err = taskerctl(t, url, "task", "step-audit", task, step)
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 4, out)
		require.Regexp(t, `^RECORDED AT\s+TO STATE\s+SUCCESS\s+WORKER\s+EXECUTION TIME MS$`, lines[0])
		for _, l := range lines[1:] {
			require.Regexp(t, `enqueued_as_error_for_orchestration\s+false\s+\S+\s+\d+$`, l)
		}
		out, err = taskerctl(t, url, "task", "step-audit", task, step, "-o", "json")
		require.NoError(t, err)
		var audit []api.StepAuditResponse
		require.NoError(t, json.Unmarshal([]byte(out), &audit))
		require.Len(t, audit, 3)

		out, err = taskerctl(t, url, "task", "reset-step", task, step, "--reason", "upstream fixed", "--by", "ops@example.com",
			"-o", "json")
		require.NoError(t, err, out)
		require.NoError(t, json.Unmarshal([]byte(out), &got))
		require.NotEqual(t, "error", got.CurrentState, "the step is pending or running again")
		require.LessOrEqual(t, got.Attempts, 1, "attempts start again from 0")
		done, err := env.Client.WaitTask(ctxFor(t), task)
		require.NoError(t, err)
		require.Equal(t, "blocked_by_failures", done.Status, "it fails three more times")
		out, err = taskerctl(t, url, "task", "step-audit", task, step, "-o", "json")
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal([]byte(out), &audit))
		require.Len(t, audit, 6)
	})

	t.Run("complete-step completes the task", func(t *testing.T) {
		t.Parallel()
		task, step := blockedTask(t, url)
		out, err := taskerctl(t, url, "task", "complete-step", task, step, "--result", `{"fixed": true}`,
			"--metadata", `{"ticket": "OPS-1"}`, "--reason", "done by hand", "--by", "ops")
		require.NoError(t, err, out)
		require.Regexp(t, `State:\s+complete\n`, out)
		require.Regexp(t, `Result:\s+\{"fixed":true\}\n`, out)
		require.Regexp(t, `Completed at:\s+\d{4}-`, out)
		out, err = taskerctl(t, url, "task", "get", task)
		require.NoError(t, err)
		require.Regexp(t, `Status:\s+complete\n`, out)
	})

	t.Run("resolve-step", func(t *testing.T) {
		t.Parallel()
		task, step := blockedTask(t, url)
		out, err := taskerctl(t, url, "task", "resolve-step", task, step, "--reason", "not needed", "--by", "ops")
		require.NoError(t, err, out)
		require.Regexp(t, `State:\s+resolved_manually\n`, out)
		_, err = env.Client.WaitTask(ctxFor(t), task)
		require.NoError(t, err)
	})

	t.Run("API errors", func(t *testing.T) {
		t.Parallel()
		task, step := blockedTask(t, url)
		unknown := uuid.NewString()
		code, _, errOut := execute("task", "step", "--url", url, task, unknown)
		require.Equal(t, 1, code)
		require.Regexp(t, `^taskerctl: orchestrator answered 404 \S+: .+\n$`, errOut)
		code, _, errOut = execute("task", "complete-step", "--url", url, unknown, step, "--result", "1",
			"--reason", "r", "--by", "b")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "orchestrator answered 404")
		// A complete step cannot be reset: the orchestrator refuses, and taskerctl says so.
		_, err := taskerctl(t, url, "task", "complete-step", task, step, "--result", "1", "--reason", "r", "--by", "b")
		require.NoError(t, err)
		code, _, errOut = execute("task", "reset-step", "--url", url, task, step, "--reason", "r", "--by", "b")
		require.Equal(t, 1, code)
		require.Regexp(t, `^taskerctl: orchestrator answered 4\d\d `, errOut)
	})
}

// ctxFor is a context that ends with the test or after a minute.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestStepCommandErrors(t *testing.T) {
	t.Parallel()
	id := uuid.NewString()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"task", "step", "nope", id}, `TASK_UUID "nope": must be a UUID`},
		{[]string{"task", "step", id, "bad"}, `STEP_UUID "bad": must be a UUID`},
		{[]string{"task", "step", id}, "takes 2 argument(s), TASK_UUID STEP_UUID; got 1"},
		{[]string{"task", "step", id, id, "-o", "yaml"}, `--output "yaml": must be text or json`},
		{[]string{"task", "step-audit", id, "x"}, `STEP_UUID "x"`},
		{[]string{"task", "reset-step", id, id, "--by", "b"}, `"reason" not set`},
		{[]string{"task", "reset-step", id, id, "--reason", " ", "--by", "b"}, "--reason: must not be empty"},
		{[]string{"task", "resolve-step", id, id, "--reason", "r", "--by", ""}, "--by: must not be empty"},
		{[]string{"task", "resolve-step", "x", id, "--reason", "r", "--by", "b"}, `TASK_UUID "x"`},
		{[]string{"task", "complete-step", id, id, "--reason", "r", "--by", "b"}, `"result" not set`},
		{[]string{"task", "complete-step", id, id, "--result", "{bad", "--reason", "r", "--by", "b"},
			`--result "{bad": must be valid JSON`},
		{[]string{"task", "complete-step", id, id, "--result", "{}", "--metadata", "nope", "--reason", "r", "--by", "b"},
			`--metadata "nope": must be valid JSON`},
	} {
		// Nothing listens at port 1: each error comes before any request.
		_, err := taskerctl(t, "http://127.0.0.1:1", tc.args...)
		require.ErrorContains(t, err, tc.want, tc.args)
	}
}
