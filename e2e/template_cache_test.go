package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// The orchestrator resolves a task request's template from its cache, without a
// statement; a template registered again (here with two of its four steps) reaches the
// next tasks once its registration's notification is heard, without a restart.
func TestReregisteredTemplateReachesTheNextTasks(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastOptions())
	ctx := ctxFor(t, 60*time.Second)
	// The orchestrator's listener drops the cache when it connects: wait until its last
	// LISTEN has finished, so the creates below fill the cache for good (a registration's
	// notification is then the only thing that can empty it within the test).
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var n int
		assert.NoError(c, env.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state = 'idle' AND query = $1`,
			`LISTEN "`+messaging.TemplateRegisteredChannel+`"`).Scan(&n))
		assert.Positive(c, n)
	}, 10*time.Second, 10*time.Millisecond, "the orchestrator listens for registrations")
	first := createLinearTasks(ctx, t, env, 2)
	var steps int
	require.NoError(t, env.Pool.QueryRow(ctx, `SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = $1`,
		first[1]).Scan(&steps))
	require.Equal(t, 4, steps)

	all, err := workflow.Embedded()
	require.NoError(t, err)
	var linear *workflow.Template
	for _, tmpl := range all {
		if tmpl.NamespaceName == "rust_e2e_linear" && tmpl.Name == "mathematical_sequence" {
			linear = tmpl
		}
	}
	require.NotNil(t, linear)
	shorter := *linear
	shorter.Steps = linear.Steps[:2] // linear_step_2 depends on linear_step_1 only
	require.NoError(t, workflow.Register(ctx, env.Pool, []*workflow.Template{&shorter}))

	var later []string
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		created, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence",
			map[string]any{"even_number": 2}))
		if !assert.NoError(c, err) {
			return
		}
		later = append(later, created.TaskUUID)
		var n int
		assert.NoError(c, env.Pool.QueryRow(ctx, `SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = $1`,
			created.TaskUUID).Scan(&n))
		assert.Equal(c, 2, n)
	}, 5*time.Second, 20*time.Millisecond, "a task created after the registration has the new template's steps (well before templateNameTTL)")
	requireComplete(ctx, t, env, append(first, later...))
}
