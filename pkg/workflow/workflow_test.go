package workflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

func TestEmbeddedTemplates(t *testing.T) {
	t.Parallel()
	ts, err := workflow.Embedded()
	require.NoError(t, err)
	keys := map[string]*workflow.Template{}
	for _, tm := range ts {
		keys[tm.Key()] = tm
	}
	for key, steps := range map[string]map[string][]string{
		"rust_e2e_linear/mathematical_sequence/1.0.0": {
			"linear_step_1": nil, "linear_step_2": {"linear_step_1"}, "linear_step_3": {"linear_step_2"}, "linear_step_4": {"linear_step_3"}},
		"rust_e2e_diamond/diamond_pattern/1.0.0": {
			"diamond_start": nil, "diamond_branch_b": {"diamond_start"}, "diamond_branch_c": {"diamond_start"},
			"diamond_end": {"diamond_branch_b", "diamond_branch_c"}},
		"rust_e2e_mixed_dag/complex_dag/1.0.0": {
			"dag_init": nil, "dag_process_left": {"dag_init"}, "dag_process_right": {"dag_init"},
			"dag_validate": {"dag_process_left", "dag_process_right"}, "dag_transform": {"dag_process_left"},
			"dag_analyze": {"dag_process_right"}, "dag_finalize": {"dag_validate", "dag_transform", "dag_analyze"}},
		"rust_e2e_tree/hierarchical_tree/1.0.0": {
			"tree_root": nil, "tree_branch_left": {"tree_root"}, "tree_branch_right": {"tree_root"},
			"tree_leaf_d": {"tree_branch_left"}, "tree_leaf_e": {"tree_branch_left"}, "tree_leaf_f": {"tree_branch_right"},
			"tree_leaf_g": {"tree_branch_right"}, "tree_final_convergence": {"tree_leaf_d", "tree_leaf_e", "tree_leaf_f", "tree_leaf_g"}},
	} {
		tm := keys[key]
		require.NotNil(t, tm, key)
		got := map[string][]string{}
		for _, s := range tm.Steps {
			got[s.Name] = s.Dependencies
			if len(s.Dependencies) == 0 {
				got[s.Name] = nil
			}
		}
		require.Equal(t, steps, got, key)
	}
	require.NoError(t, workflow.DefaultRegistry().Check(ts))
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	base := func(steps string) string {
		return `{"name":"t","namespace_name":"ns","version":"1.0.0","steps":` + steps + `}`
	}
	for name, tc := range map[string]struct{ doc, want string }{
		"cycle":          {base(`[{"name":"a","handler":{"callable":"x"},"dependencies":["b"]},{"name":"b","handler":{"callable":"x"},"dependencies":["a"]}]`), "cycle"},
		"unknown dep":    {base(`[{"name":"a","handler":{"callable":"x"},"dependencies":["zz"]}]`), `dependency "zz"`},
		"duplicate step": {base(`[{"name":"a","handler":{"callable":"x"}},{"name":"a","handler":{"callable":"x"}}]`), "defined twice"},
		"no steps":       {base(`[]`), "at least one step"},
		"bad step name":  {base(`[{"name":"A-1","handler":{"callable":"x"}}]`), "must match"},
		"no callable":    {base(`[{"name":"a","handler":{}}]`), "handler.callable is required"},
		"bad namespace":  {`{"name":"t","namespace_name":"x; drop","version":"1.0.0","steps":[{"name":"a","handler":{"callable":"x"}}]}`, "namespace_name"},
		"long namespace": {`{"name":"t","namespace_name":"` + strings.Repeat("n", 35) + `","version":"1.0.0","steps":[{"name":"a","handler":{"callable":"x"}}]}`, "at most 34"},
		"bad version":    {`{"name":"t","namespace_name":"ns","version":"v1","steps":[{"name":"a","handler":{"callable":"x"}}]}`, "MAJOR.MINOR.PATCH"},
		"unknown field":  {`{"name":"t","namespace_name":"ns","version":"1.0.0","stepz":[]}`, "unknown field"},
		"retry.limit":    {base(`[{"name":"a","handler":{"callable":"x"},"retry":{"limit":2}}]`), "steps[0].retry.limit: unknown field"},
		"attempts 101":   {base(`[{"name":"a","handler":{"callable":"x"},"retry":{"max_attempts":101}}]`), "steps[0].retry.max_attempts: 101 is out of range"},
		"attempts -1":    {base(`[{"name":"a","handler":{"callable":"x"},"retry":{"max_attempts":-1}}]`), "steps[0].retry.max_attempts: -1 is out of range"},
		"bad step type":  {base(`[{"name":"a","handler":{"callable":"x"},"step_type":"deferred"}]`), "must be one of standard, decision"},
		"bad schema":     {`{"name":"t","namespace_name":"ns","version":"1.0.0","input_schema":{"type":12},"steps":[{"name":"a","handler":{"callable":"x"}}]}`, "input_schema"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := workflow.Parse([]byte(tc.doc))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestValidateInputNamesFieldAndRule(t *testing.T) {
	t.Parallel()
	ts, err := workflow.Embedded()
	require.NoError(t, err)
	var linear *workflow.Template
	for _, tm := range ts {
		if tm.Name == "mathematical_sequence" {
			linear = tm
		}
	}
	require.NoError(t, linear.ValidateInput([]byte(`{"even_number": 6, "_run_id": "x"}`)))
	for in, want := range map[string]string{
		`{"even_number": 7}`:   "context.even_number",
		`{"even_number": 102}`: "context.even_number",
		`{"even_number": 0}`:   "context.even_number",
		`{"even_number": 6.5}`: "context.even_number",
		`{}`:                   "even_number",
	} {
		err := linear.ValidateInput([]byte(in))
		require.ErrorContains(t, err, want, in)
	}
}

func run(t *testing.T, callable string, in workflow.StepInput) (any, error) {
	t.Helper()
	return workflow.DefaultRegistry()[callable](context.Background(), in)
}

func TestHandlers(t *testing.T) {
	t.Parallel()
	v, err := run(t, "math.square_even_number", workflow.StepInput{Context: json.RawMessage(`{"even_number": 6}`)})
	require.NoError(t, err)
	require.Equal(t, json.Number("36"), v)
	// JSON Schema's "integer" accepts an integral number however it is written, and so does
	// the handler: creation and execution agree.
	for _, six := range []string{`6.0`, `6e0`, `0.6e1`, `600E-2`, `6.000`} {
		v, err := run(t, "math.square_even_number", workflow.StepInput{Context: json.RawMessage(`{"even_number": ` + six + `}`)})
		require.NoError(t, err, six)
		require.Equal(t, json.Number("36"), v, six)
	}

	for _, ctx := range []string{`{}`, `{"even_number": 7}`, `{"even_number": "x"}`, `not json`,
		`{"even_number": 6.5}`, `{"even_number": 7.0}`, `{"even_number": 1e999999999}`, `{"even_number": 2e1001}`} {
		_, err := run(t, "math.square_even_number", workflow.StepInput{Context: json.RawMessage(ctx)})
		var se *workflow.StepError
		require.True(t, errors.As(err, &se), ctx)
		require.False(t, se.Retryable, "a validation error is not retryable: %s", ctx)
		require.Equal(t, "ValidationError", se.ErrorType)
	}

	huge := new(big.Int).Exp(big.NewInt(10), big.NewInt(40), nil)
	v, err = run(t, "math.square_parent_product", workflow.StepInput{Dependencies: map[string]json.RawMessage{
		"a": json.RawMessage(huge.String()), "b": json.RawMessage(`"3"`)}})
	require.NoError(t, err)
	want := new(big.Int).Mul(huge, big.NewInt(3))
	want.Mul(want, want)
	require.Equal(t, json.Number(want.String()), v)

	_, err = run(t, "math.square_parent_product", workflow.StepInput{Dependencies: map[string]json.RawMessage{"a": json.RawMessage(`1.5`)}})
	require.Error(t, err)

	for attempt, fails := range map[int]bool{1: true, 2: true, 3: false} {
		_, err := run(t, "test.fail_n_times", workflow.StepInput{Attempt: attempt, Initialization: map[string]any{"fail_count": float64(2)}})
		var se *workflow.StepError
		if fails {
			require.True(t, errors.As(err, &se))
			require.True(t, se.Retryable)
		} else {
			require.NoError(t, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = workflow.DefaultRegistry()["test.sleep_first_attempt"](ctx, workflow.StepInput{Attempt: 1, Context: json.RawMessage(`{"sleep_ms": 60000}`)})
	require.ErrorIs(t, err, context.Canceled, "the sleep honours cancellation")
}

func TestNamespaceOf(t *testing.T) {
	t.Parallel()
	require.Equal(t, "rust_e2e_linear", workflow.NamespaceOf(workflow.WorkerQueue("rust_e2e_linear")))
	for _, q := range []string{"orchestration_step_results", "worker__queue", "worker_x", "x_queue"} {
		require.Equal(t, "unknown", workflow.NamespaceOf(q), q)
	}
}
