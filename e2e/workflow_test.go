package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/harness"
)

func stepResults(t *testing.T, env *harness.Env, task string) (map[string]string, map[string]string) {
	t.Helper()
	steps, err := env.Client.Steps(context.Background(), task)
	require.NoError(t, err)
	values, ids := map[string]string{}, map[string]string{}
	for _, s := range steps {
		var r struct {
			Success bool            `json:"success"`
			Result  json.RawMessage `json:"result"`
		}
		require.NoError(t, json.Unmarshal(s.Results, &r), s.Name)
		require.True(t, r.Success, s.Name)
		values[s.Name] = string(r.Result)
		ids[s.Name] = s.StepUUID
		require.Equal(t, "complete", s.CurrentState, s.Name)
		require.Equal(t, 1, s.Attempts, s.Name)
	}
	return values, ids
}

func TestWorkflowShapes(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastOptions())

	n16, n8, n4, n2 := pow(6, 16), pow(6, 8), pow(6, 4), pow(6, 2)
	cases := []struct {
		namespace, name string
		want            map[string]string
	}{
		{"rust_e2e_linear", "mathematical_sequence", map[string]string{
			"linear_step_1": "36", "linear_step_2": "1296", "linear_step_3": "1679616", "linear_step_4": "2821109907456"}},
		{"rust_e2e_diamond", "diamond_pattern", map[string]string{
			"diamond_start": n2, "diamond_branch_b": n4, "diamond_branch_c": n4, "diamond_end": n16}},
		{"rust_e2e_mixed_dag", "complex_dag", map[string]string{
			"dag_init": n2, "dag_process_left": n4, "dag_process_right": n4, "dag_validate": n16,
			"dag_transform": n8, "dag_analyze": n8, "dag_finalize": pow(6, 64)}},
		{"rust_e2e_tree", "hierarchical_tree", map[string]string{
			"tree_root": n2, "tree_branch_left": n4, "tree_branch_right": n4, "tree_leaf_d": n8, "tree_leaf_e": n8,
			"tree_leaf_f": n8, "tree_leaf_g": n8, "tree_final_convergence": pow(6, 64)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxFor(t, 30*time.Second)
			created, err := env.Client.CreateTask(ctx, request(tc.namespace, tc.name, map[string]any{"even_number": 6}))
			require.NoError(t, err)
			require.NotEmpty(t, created.CorrelationID)
			require.Equal(t, len(tc.want), created.TotalSteps)

			done, err := env.Client.WaitTask(ctx, created.TaskUUID)
			require.NoError(t, err)
			require.Equal(t, "complete", done.Status)
			require.Equal(t, "all_complete", done.ExecutionStatus)
			require.Equal(t, len(tc.want), done.CompletedSteps)
			require.InDelta(t, 100.0, done.CompletionPct, 0.001)
			require.NotNil(t, done.CompletedAt)

			got, ids := stepResults(t, env, created.TaskUUID)
			require.Equal(t, tc.want, got)

			// Audit: every step walked the happy path once; the task's trail is legal and
			// starts and ends as the lifecycle says.
			for name, id := range ids {
				rows := stepTransitions(t, env, id)
				requireWellFormedAudit(t, rows, legalStep)
				require.Equal(t, []string{"pending", "enqueued", "in_progress", "enqueued_for_orchestration", "complete"},
					states(rows), name)
			}
			rows := taskTransitions(t, env, created.TaskUUID)
			requireWellFormedAudit(t, rows, legalTask)
			s := states(rows)
			require.Equal(t, []string{"pending", "initializing", "enqueuing_steps", "steps_in_process"}, s[:4])
			require.Equal(t, []string{"evaluating_results", "complete"}, s[len(s)-2:])
			if tc.name == "mathematical_sequence" {
				// 15 rows: 4 to start, 3 per intermediate step result, 2 to finish.
				require.Equal(t, []string{"pending", "initializing", "enqueuing_steps", "steps_in_process",
					"evaluating_results", "enqueuing_steps", "steps_in_process",
					"evaluating_results", "enqueuing_steps", "steps_in_process",
					"evaluating_results", "enqueuing_steps", "steps_in_process",
					"evaluating_results", "complete"}, s)
			}
		})
	}
}

// TestArbitraryPrecision runs the largest allowed input, whose results overflow 64 bits.
func TestArbitraryPrecision(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastOptions())
	ctx := ctxFor(t, 30*time.Second)
	created, done := runTask(ctx, t, env, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 100}))
	require.Equal(t, "complete", done.Status)
	got, _ := stepResults(t, env, created.TaskUUID)
	require.Equal(t, pow(100, 16), got["linear_step_4"])
}

// TestIntegralNumberWrittenAsDecimal runs {"even_number": 6.0}: the input schema's
// "integer" accepts it at creation, and the steps read it as 6.
func TestIntegralNumberWrittenAsDecimal(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastOptions())
	ctx := ctxFor(t, 30*time.Second)
	req := request("rust_e2e_linear", "mathematical_sequence", map[string]any{})
	req.Context = json.RawMessage(`{"even_number": 6.0, "_run_id": "` + uuid.NewString() + `"}`)
	created, done := runTask(ctx, t, env, req)
	require.Equal(t, "complete", done.Status)
	got, _ := stepResults(t, env, created.TaskUUID)
	require.Equal(t, pow(6, 16), got["linear_step_4"])
}
