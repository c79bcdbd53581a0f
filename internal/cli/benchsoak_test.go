package cli_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/cli"
	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
)

// The soak's generated history must look like finished tasks to the engine: every copy of
// a complete mathematical_sequence task reads back through the API as complete, with the
// original's steps, dependencies and states, the same number of rows in every table, and
// one current transition per task and per step.
func TestHistoryCopiesAFinishedTask(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, harness.Options{Workers: 1})
	ctx := context.Background()
	body, _ := json.Marshal(map[string]any{"even_number": 6, "_run_id": uuid.NewString()})
	created, err := env.Client.CreateTask(ctx, &api.TaskRequest{Name: "mathematical_sequence", Namespace: "rust_e2e_linear",
		Version: "1.0.0", Context: body, Initiator: "test", SourceSystem: "go-test", Reason: "history template"})
	require.NoError(t, err)
	original, err := env.Client.WaitTask(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", original.Status)
	originalSteps, err := env.Client.Steps(ctx, original.TaskUUID)
	require.NoError(t, err)

	require.NoError(t, cli.FillHistory(ctx, env.DatabaseURL, 6))

	list, err := env.Client.ListTasks(ctx, client.ListOptions{PerPage: 100})
	require.NoError(t, err)
	require.Len(t, list.Tasks, 6)
	for _, task := range list.Tasks {
		require.Equal(t, "complete", task.Status, task.TaskUUID)
		require.Equal(t, original.TotalSteps, task.TotalSteps)
		require.Equal(t, original.CompletedSteps, task.CompletedSteps)
		require.Equal(t, original.Name, task.Name)
		if task.TaskUUID == original.TaskUUID {
			continue
		}
		require.NotEqual(t, original.CorrelationID, task.CorrelationID)
		require.True(t, task.CreatedAt.Before(original.CreatedAt), "copies are older than the original")
		steps, err := env.Client.Steps(ctx, task.TaskUUID)
		require.NoError(t, err)
		require.Len(t, steps, len(originalSteps))
		for i, s := range steps {
			o := originalSteps[i]
			require.Equal(t, [...]any{o.Name, o.CurrentState, o.Dependencies, o.Attempts}, [...]any{s.Name, s.CurrentState, s.Dependencies, s.Attempts})
			require.NotEqual(t, o.StepUUID, s.StepUUID)
		}
	}

	conn, err := pgx.Connect(ctx, env.DatabaseURL)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	var shapes, wrongResults, currentTasks, currentSteps int
	require.NoError(t, conn.QueryRow(ctx, `
		SELECT count(DISTINCT (steps, edges, task_transitions, step_transitions))
		  FROM (SELECT t.task_uuid,
		               (SELECT count(*) FROM tasker.workflow_steps s WHERE s.task_uuid = t.task_uuid) AS steps,
		               (SELECT count(*) FROM tasker.workflow_step_edges e JOIN tasker.workflow_steps s ON s.workflow_step_uuid = e.from_step_uuid
		                 WHERE s.task_uuid = t.task_uuid) AS edges,
		               (SELECT count(*) FROM tasker.task_transitions tt WHERE tt.task_uuid = t.task_uuid) AS task_transitions,
		               (SELECT count(*) FROM tasker.workflow_step_transitions st JOIN tasker.workflow_steps s USING (workflow_step_uuid)
		                 WHERE s.task_uuid = t.task_uuid) AS step_transitions
		          FROM tasker.tasks t) AS per_task`).Scan(&shapes))
	require.Equal(t, 1, shapes, "every task has as many rows in every table as the original")
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM tasker.workflow_steps
		WHERE results->>'step_uuid' IS DISTINCT FROM workflow_step_uuid::text`).Scan(&wrongResults))
	require.Zero(t, wrongResults, "each step's results name the step")
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM tasker.task_transitions WHERE most_recent AND to_state = 'complete'`).Scan(&currentTasks))
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM tasker.workflow_step_transitions WHERE most_recent AND to_state = 'complete'`).Scan(&currentSteps))
	require.Equal(t, [2]int{6, 6 * original.TotalSteps}, [2]int{currentTasks, currentSteps})
}
