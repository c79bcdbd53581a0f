package e2e

import (
	"context"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
)

// taskSteps returns a task's steps by name, with their audit trails.
func taskSteps(t *testing.T, env *harness.Env, task string) map[string][]transitionRow {
	t.Helper()
	rows, err := env.Pool.Query(context.Background(), `
		SELECT ns.name, ws.workflow_step_uuid::text FROM tasker.workflow_steps AS ws
		  JOIN tasker.named_steps AS ns ON ns.named_step_uuid = ws.named_step_uuid
		 WHERE ws.task_uuid = $1`, task)
	require.NoError(t, err)
	ids := map[string]string{}
	for rows.Next() {
		var name, id string
		require.NoError(t, rows.Scan(&name, &id))
		ids[name] = id
	}
	require.NoError(t, rows.Err())
	out := map[string][]transitionRow{}
	for name, id := range ids {
		out[name] = stepTransitions(t, env, id)
	}
	return out
}

// parentsOf returns each step's parents by name.
func parentsOf(t *testing.T, env *harness.Env, task string) map[string][]string {
	t.Helper()
	rows, err := env.Pool.Query(context.Background(), `
		SELECT cn.name, pn.name
		  FROM tasker.workflow_step_edges AS e
		  JOIN tasker.workflow_steps AS c ON c.workflow_step_uuid = e.to_step_uuid
		  JOIN tasker.named_steps AS cn ON cn.named_step_uuid = c.named_step_uuid
		  JOIN tasker.workflow_steps AS p ON p.workflow_step_uuid = e.from_step_uuid
		  JOIN tasker.named_steps AS pn ON pn.named_step_uuid = p.named_step_uuid
		 WHERE c.task_uuid = $1`, task)
	require.NoError(t, err)
	out := map[string][]string{}
	for rows.Next() {
		var child, parent string
		require.NoError(t, rows.Scan(&child, &parent))
		out[child] = append(out[child], parent)
	}
	require.NoError(t, rows.Err())
	for _, ps := range out {
		sort.Strings(ps)
	}
	return out
}

// TestConditionalApproval runs tasker-core's conditional_approval_rust template,
// unchanged, on each of its routes: the decision creates only the chosen approvals, the
// convergence step waits for exactly those, and every created step has the full audit.
func TestConditionalApproval(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) { c.Templates = loadCoreFixtures(t, "conditional_approval_rust") }
	env := harness.New(t, cluster, opts)
	full := []string{"pending", "enqueued", "in_progress", "enqueued_for_orchestration", "complete"}
	cases := []struct {
		amount   int
		branches []string
		path     string
	}{
		{500, []string{"auto_approve"}, "auto"},
		{3000, []string{"manager_approval"}, "manager_only"},
		{10000, []string{"finance_review", "manager_approval"}, "dual_approval"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			ctx := ctxFor(t, 60*time.Second)
			created, err := env.Client.CreateTask(ctx, request("conditional_approval_rust", "approval_routing",
				map[string]any{"amount": tc.amount, "requester": "e2e", "purpose": "a test"}))
			require.NoError(t, err)
			require.Equal(t, 2, created.TotalSteps, "only validate_request and routing_decision exist at first")
			done, err := env.Client.WaitTask(ctx, created.TaskUUID)
			require.NoError(t, err)
			require.Equal(t, "complete", done.Status)

			steps := taskSteps(t, env, created.TaskUUID)
			want := append([]string{"finalize_approval", "routing_decision", "validate_request"}, tc.branches...)
			var got []string
			for name, trail := range steps {
				got = append(got, name)
				requireWellFormedAudit(t, trail, legalStep)
				require.Equal(t, full, states(trail), name)
			}
			require.ElementsMatch(t, want, got)
			parents := parentsOf(t, env, created.TaskUUID)
			require.Equal(t, tc.branches, parents["finalize_approval"], "convergence waits for the created branches only")
			for _, b := range tc.branches {
				require.Equal(t, []string{"routing_decision"}, parents[b])
			}
			results, _ := stepResults(t, env, created.TaskUUID)
			var final struct {
				Path string `json:"approval_path"`
			}
			require.NoError(t, json.Unmarshal([]byte(results["finalize_approval"]), &final))
			require.Equal(t, tc.path, final.Path)
		})
	}
}

// TestDynamicStepsFlowInvariant: the steps a decision or a batch creates count in the flow
// metrics like the others, so one task's journey still balances by its correlation_id.
func TestDynamicStepsFlowInvariant(t *testing.T) {
	t.Parallel()
	p := newTelemetry(t)
	opts := telemetryOptions(p)
	opts.Worker = func(_ int, c *worker.Config) {
		c.Templates = loadCoreFixtures(t, "conditional_approval_rust", "batch_processing_products_csv")
	}
	env := harness.New(t, cluster, opts)
	cases := []struct {
		name, corr string
		req        *api.TaskRequest
		steps      float64
	}{
		// validate_request, routing_decision, then manager_approval, finance_review and
		// finalize_approval, which the decision created.
		{"decision", "0199c3e0-ccdb-7581-87ab-3f67daeaa4b1", request("conditional_approval_rust", "approval_routing",
			map[string]any{"amount": 10000, "requester": "e2e", "purpose": "metrics"}), 5},
		// the analyzer, five workers, the aggregator
		{"batch", "0199c3e0-ccdb-7581-87ab-3f67daeaa4b2", request("csv_processing_rust", "csv_product_inventory_analyzer",
			map[string]any{"csv_file_path": productsCSV(t, "products.csv")}), 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxFor(t, 60*time.Second)
			tc.req.CorrelationID = tc.corr
			_, done := runTask(ctx, t, env, tc.req)
			require.Equal(t, "complete", done.Status)
			requireFlow(t, p, tc.req.CorrelationID, tc.steps)
		})
	}
}
