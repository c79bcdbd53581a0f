package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// coreFixtures is where tasker-core's own task templates are pinned.
const coreFixtures = "../pkg/workflow/testdata/tasker-core/rust"

// loadCoreFixtures parses the named tasker-core fixtures, unchanged: Rust ones by name,
// others as "ruby/<name>".
func loadCoreFixtures(t *testing.T, names ...string) []*workflow.Template {
	t.Helper()
	var ts []*workflow.Template
	for _, n := range names {
		path := filepath.Join(coreFixtures, n+".yaml")
		if dir, name, ok := strings.Cut(n, "/"); ok {
			path = filepath.Join(coreFixtures, "..", dir, name+".yaml")
		}
		doc, err := os.ReadFile(path)
		require.NoError(t, err)
		tmpl, err := workflow.ParseYAML(doc)
		require.NoError(t, err, n)
		ts = append(ts, tmpl)
	}
	return ts
}

// stepTrail is the states of a task's only step, in order, and the attempts it made.
func stepTrail(t *testing.T, env *harness.Env, task string) ([]string, int) {
	t.Helper()
	var step string
	var attempts int
	require.NoError(t, env.Pool.QueryRow(context.Background(),
		`SELECT workflow_step_uuid::text, attempts FROM tasker.workflow_steps WHERE task_uuid = $1`, task).Scan(&step, &attempts))
	rows := stepTransitions(t, env, step)
	requireWellFormedAudit(t, rows, legalStep)
	return states(rows), attempts
}

// TestBoundaryFixtures runs tasker-core's boundary_* templates, unchanged, with a
// simulated handler that always fails retryably (their NoOpHandler callable has no Go
// handler, and the namespace's profile says so): max_attempts 0 and 1 run once, 3 runs
// three times, and a step that is not retryable runs once whatever its max_attempts.
func TestBoundaryFixtures(t *testing.T) {
	t.Parallel()
	profiles, err := workflow.ParseSimulationProfiles(
		[]byte(`{"test_sql": {"latency_ms": 1, "error_rate": 1, "retryable_share": 1}}`))
	require.NoError(t, err)
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) {
		c.Templates = loadCoreFixtures(t, "boundary_max_attempts_zero", "boundary_max_attempts_one",
			"boundary_max_attempts_three", "boundary_non_retryable_first", "boundary_non_retryable_retries")
		c.SimulationProfiles = profiles
	}
	opts.Orchestrator = func(_ int, c *orchestrator.Config) {
		c.Backoff.Base, c.Backoff.Max = 10*time.Millisecond, 50*time.Millisecond
	}
	env := harness.New(t, cluster, opts)

	once := []string{"pending", "enqueued", "in_progress", "enqueued_as_error_for_orchestration", "error"}
	retry := []string{"pending", "enqueued", "in_progress", "enqueued_as_error_for_orchestration", "waiting_for_retry"}
	thrice := append(append(append([]string{}, retry...), retry...), once...)
	cases := []struct {
		template string
		attempts int
		trail    []string
	}{
		{"boundary_max_attempts_zero", 1, once},
		{"boundary_max_attempts_one", 1, once},
		{"boundary_max_attempts_three", 3, thrice},
		{"boundary_non_retryable_first", 1, once},
		{"boundary_non_retryable_retries", 1, once},
	}
	for _, tc := range cases {
		t.Run(tc.template, func(t *testing.T) {
			t.Parallel()
			ctx := ctxFor(t, 60*time.Second)
			created, done := runTask(ctx, t, env, request("test_sql", tc.template, map[string]any{}))
			require.Equal(t, "blocked_by_failures", done.Status, "a failed task waits for an operator, as in tasker-core")
			trail, attempts := stepTrail(t, env, created.TaskUUID)
			require.Equal(t, tc.attempts, attempts, "executions")
			require.Equal(t, tc.trail, trail)
		})
	}
}

// TestRetryAfterReplacesBackoff fails a step once with a Retry-After of one second: the
// retry waits that second, exactly, where the orchestrator's own backoff would have
// waited about 10 ms.
func TestRetryAfterReplacesBackoff(t *testing.T) {
	t.Parallel()
	tmpl, err := workflow.Parse([]byte(`{"name": "retry_after_test", "namespace_name": "tasker_sim_test", "version": "1.0.0",
	  "steps": [{"name": "slow_down", "handler": {"callable": "test.fail_n_times",
	    "initialization": {"fail_count": 1, "retry_after_seconds": 1}}}]}`))
	require.NoError(t, err)
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) { c.Templates = []*workflow.Template{tmpl} }
	opts.Orchestrator = func(_ int, c *orchestrator.Config) {
		c.Backoff.Base, c.Backoff.Max = 10*time.Millisecond, 5*time.Second
	}
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 30*time.Second)
	created, done := runTask(ctx, t, env, request("tasker_sim_test", "retry_after_test", map[string]any{}))
	require.Equal(t, "complete", done.Status)

	var backoff, requested float64
	var waited time.Duration
	require.NoError(t, env.Pool.QueryRow(ctx, `
		SELECT (w.metadata ->> 'backoff_seconds')::float8, (w.metadata ->> 'retry_after_seconds')::float8,
		       (SELECT min(p.created_at) FROM tasker.workflow_step_transitions AS p
		         WHERE p.workflow_step_uuid = w.workflow_step_uuid AND p.sort_key > w.sort_key AND p.to_state = 'pending') - w.created_at
		  FROM tasker.workflow_step_transitions AS w
		  JOIN tasker.workflow_steps AS ws ON ws.workflow_step_uuid = w.workflow_step_uuid
		 WHERE ws.task_uuid = $1 AND w.to_state = 'waiting_for_retry'`, created.TaskUUID).Scan(&backoff, &requested, &waited))
	require.Equal(t, 1.0, requested)
	require.Equal(t, 1.0, backoff, "the handler's delay, without jitter")
	// The wait counts from the claim (last_attempted_at), a little before this row was
	// written; the backoff alone would have been about 10 ms.
	require.GreaterOrEqual(t, waited, 500*time.Millisecond, "the retry waited for the Retry-After")
}

// TestErrorScenarioFixtures runs tasker-core's three test_errors templates unchanged:
// success_only completes on its only run, retryable_error_only fails both of its two
// attempts, and permanent_error_only (max_attempts 0, not retryable) runs once.
func TestErrorScenarioFixtures(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) {
		c.Templates = loadCoreFixtures(t, "ruby/success_only", "ruby/retryable_error_only", "ruby/permanent_error_only")
	}
	opts.Orchestrator = func(_ int, c *orchestrator.Config) {
		c.Backoff.Base, c.Backoff.Max = 10*time.Millisecond, 50*time.Millisecond
	}
	env := harness.New(t, cluster, opts)
	once := []string{"pending", "enqueued", "in_progress", "enqueued_as_error_for_orchestration", "error"}
	cases := []struct {
		template, status string
		attempts         int
		trail            []string
	}{
		{"success_only", "complete", 1, []string{"pending", "enqueued", "in_progress", "enqueued_for_orchestration", "complete"}},
		{"retryable_error_only", "blocked_by_failures", 2, append([]string{"pending", "enqueued", "in_progress",
			"enqueued_as_error_for_orchestration", "waiting_for_retry"}, once...)},
		{"permanent_error_only", "blocked_by_failures", 1, once},
	}
	for _, tc := range cases {
		t.Run(tc.template, func(t *testing.T) {
			t.Parallel()
			ctx := ctxFor(t, 60*time.Second)
			created, done := runTask(ctx, t, env, request("test_errors", tc.template,
				map[string]any{"scenario_type": tc.template}))
			require.Equal(t, tc.status, done.Status)
			trail, attempts := stepTrail(t, env, created.TaskUUID)
			require.Equal(t, tc.attempts, attempts, "executions")
			require.Equal(t, tc.trail, trail)
		})
	}
}
