package workflow_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

func names(steps []*workflow.StepTemplate) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Name
	}
	return out
}

func present(ns ...[]string) map[string]bool {
	out := map[string]bool{}
	for _, n := range ns {
		for _, s := range n {
			out[s] = true
		}
	}
	return out
}

func TestDecisionBranches(t *testing.T) {
	t.Parallel()
	ca := loadFixtures(t)["conditional_approval_rust"]
	initial := names(ca.InitialSteps())
	require.Equal(t, []string{"validate_request", "routing_decision"}, initial,
		"a decision's descendants and convergence steps wait for the decision")
	require.Equal(t, []workflow.Edge{{From: "validate_request", To: "routing_decision"}},
		ca.EdgesAmong(ca.InitialSteps(), present(initial), ""))

	cases := []struct {
		chosen []string
		steps  []string
		edges  []workflow.Edge
	}{
		{[]string{"auto_approve"}, []string{"finalize_approval", "auto_approve"}, []workflow.Edge{
			{From: "auto_approve", To: "finalize_approval"}, {From: "routing_decision", To: "auto_approve"}}},
		{[]string{"manager_approval"}, []string{"finalize_approval", "manager_approval"}, []workflow.Edge{
			{From: "manager_approval", To: "finalize_approval"}, {From: "routing_decision", To: "manager_approval"}}},
		{[]string{"manager_approval", "finance_review"}, []string{"finalize_approval", "manager_approval", "finance_review"},
			[]workflow.Edge{{From: "manager_approval", To: "finalize_approval"}, {From: "finance_review", To: "finalize_approval"},
				{From: "routing_decision", To: "manager_approval"}, {From: "routing_decision", To: "finance_review"}}},
	}
	for _, tc := range cases {
		branch, err := ca.Branch("routing_decision", workflow.DecisionOutcome{Type: workflow.OutcomeCreateSteps,
			StepNames: tc.chosen}, present(initial))
		require.NoError(t, err)
		require.Equal(t, tc.steps, names(branch), "chosen %v", tc.chosen)
		require.Equal(t, tc.edges, ca.EdgesAmong(branch, present(initial, names(branch)), "routing_decision"))
	}

	none, err := ca.Branch("routing_decision", workflow.DecisionOutcome{Type: workflow.OutcomeNoBranches}, present(initial))
	require.NoError(t, err)
	require.Empty(t, none, "no branches: not even the convergence step")

	_, err = ca.Branch("routing_decision", workflow.DecisionOutcome{Type: workflow.OutcomeCreateSteps,
		StepNames: []string{"validate_request"}}, present(initial))
	require.ErrorContains(t, err, `chose "validate_request", which is not one of its descendant steps`)
}

func TestParseDecisionOutcome(t *testing.T) {
	t.Parallel()
	o, err := workflow.ParseDecisionOutcome(json.RawMessage(`{"type":"create_steps","step_names":["a","b"]}`))
	require.NoError(t, err)
	require.Equal(t, workflow.DecisionOutcome{Type: "create_steps", StepNames: []string{"a", "b"}}, o)
	o, err = workflow.ParseDecisionOutcome(json.RawMessage(`{"type":"no_branches"}`))
	require.NoError(t, err)
	require.Equal(t, workflow.OutcomeNoBranches, o.Type)
	for doc, want := range map[string]string{
		``:                             "is required of a decision step",
		`null`:                         "is required of a decision step",
		`{"type":"CreateSteps"}`:       `"CreateSteps" is not allowed`,
		`{"type":"create_steps"}`:      "step_names: must name at least one step",
		`{"type":"no_branches","x":1}`: `unknown field "x"`,
		`{"type":"create_steps","step_names":"a"}`: "result.decision_point_outcome",
	} {
		_, err := workflow.ParseDecisionOutcome(json.RawMessage(doc))
		require.ErrorContains(t, err, want, doc)
	}
}
