package workflow_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// loadFixtures loads tasker-core's pinned fixtures with LoadDir, by file base name.
func loadFixtures(t *testing.T) map[string]*workflow.Template {
	t.Helper()
	out := map[string]*workflow.Template{}
	for dir, want := range map[string]int{"rust": 25, "ruby": 3} {
		ts, err := workflow.LoadDir(filepath.Join("testdata", "tasker-core", dir))
		require.NoError(t, err)
		require.Len(t, ts, want, dir)
		for _, tm := range ts {
			out[strings.TrimSuffix(filepath.Base(tm.Source), ".yaml")] = tm
		}
	}
	return out
}

func TestTaskerCoreFixturesLoad(t *testing.T) {
	t.Parallel()
	fx := loadFixtures(t)

	ca := fx["conditional_approval_rust"]
	require.Equal(t, "conditional_approval_rust/approval_routing/1.0.0", ca.Key())
	require.Equal(t, workflow.StepDecision, ca.Step("routing_decision").Type)
	require.Equal(t, []string{"validate_request"}, ca.Step("routing_decision").Dependencies)
	require.Equal(t, workflow.StepDeferredConvergence, ca.Step("finalize_approval").Type)
	require.Equal(t, workflow.StepStandard, ca.Step("validate_request").Type, "absent type is standard")
	require.NoError(t, ca.Unsupported(), "decision points run")

	zero := fx["boundary_max_attempts_zero"].Step("boundary_test_step").Retry
	require.NotNil(t, zero.MaxAttempts)
	require.Equal(t, 0, *zero.MaxAttempts)
	require.Equal(t, 0, zero.Attempts())
	require.True(t, zero.IsRetryable())
	require.Equal(t, workflow.Backoff("exponential"), zero.Backoff)
	require.Equal(t, 3, fx["conditional_approval_rust"].Step("auto_approve").Retry.Attempts(), "absent means 3")
	require.False(t, fx["success_only"].Step("success_step").Retry.IsRetryable())
	require.Equal(t, 0, fx["success_only"].Step("success_step").Retry.Attempts())
	require.Equal(t, 2, fx["retryable_error_only"].Step("retryable_error_step").Retry.Attempts(),
		"environments.test does not apply")

	csv := fx["batch_processing_products_csv"]
	bc := csv.Step("process_csv_batch").BatchConfig
	require.NotNil(t, bc)
	require.Equal(t, workflow.FailureStrategy("continue_on_failure"), bc.FailureStrategy)
	require.Equal(t, 200, bc.BatchSize)
	require.Equal(t, "row_number", bc.CursorField)
	require.Equal(t, workflow.StepBatchable, csv.Step("analyze_csv").Type)
	require.Equal(t, workflow.StepBatchWorker, csv.Step("process_csv_batch").Type)

	require.JSONEq(t, `{"max_waiting_for_dependencies_minutes":2,"max_waiting_for_retry_minutes":2,
		"max_steps_in_process_minutes":2,"max_duration_minutes":30}`, string(fx["dlq_staleness_test"].Lifecycle))
	require.Contains(t, string(fx["batch_resumption_test"].Metadata), `"notes"`)

	for name, tm := range fx {
		require.NoError(t, tm.Unsupported(), name)
	}
	require.NoError(t, fx["mathematical_sequence"].Unsupported())
}

// TestStoredFormKeepsEverything checks that the form Register stores (json.Marshal of the
// template) parses again and still carries tasker-core's fields.
func TestStoredFormKeepsEverything(t *testing.T) {
	t.Parallel()
	for name, tm := range loadFixtures(t) {
		stored, err := json.Marshal(tm)
		require.NoError(t, err, name)
		back, err := workflow.Parse(stored)
		require.NoError(t, err, name)
		again, err := json.Marshal(back)
		require.NoError(t, err)
		require.JSONEq(t, string(stored), string(again), name)
	}
	csv := loadFixtures(t)["batch_resumption_test"]
	stored, err := json.Marshal(csv)
	require.NoError(t, err)
	for _, want := range []string{`"metadata":{`, `"notes":`, `"environments":{"test"`, `"system_dependencies":{"primary":"default"}`,
		`"type":"batch_worker"`, `"batch_config":{"batch_size":100,"parallelism":1,"cursor_field":"id"`,
		`"backoff":"exponential","backoff_base_ms":50,"max_backoff_ms":200`, `"failure_strategy":"fail_fast"`} {
		require.Contains(t, string(stored), want)
	}
	zero, err := json.Marshal(loadFixtures(t)["boundary_max_attempts_zero"])
	require.NoError(t, err)
	require.Contains(t, string(zero), `"max_attempts":0`)
}

func TestYAMLAliasesAndErrors(t *testing.T) {
	t.Parallel()
	doc := func(step string) string {
		return "name: t\nnamespace_name: ns\nversion: 1.0.0\nsteps:\n  - name: a\n    handler: {callable: x}\n" +
			"  - name: b\n    handler: {callable: x}\n    depends_on: [a]\n" +
			"  - name: c\n    handler: {callable: x}\n" + step
	}
	tm, err := workflow.ParseYAML([]byte(doc("    step_type: decision\n    dependencies: [b]\n")))
	require.NoError(t, err)
	require.Equal(t, []string{"a"}, tm.Step("b").Dependencies)
	require.Equal(t, workflow.StepDecision, tm.Step("c").Type)

	for step, want := range map[string][]string{
		"    retry: {limit: 3}\n":                {"steps[2].retry.limit: unknown field", "max_attempts"},
		"    timeout: 3\n":                       {"steps[2].timeout: unknown field"},
		"    handler2: {}\n":                     {"steps[2].handler2: unknown field"},
		"    type: deferred\n":                   {"steps[2].type", `"deferred"`, "standard, decision, deferred_convergence, batchable, batch_worker"},
		"    retry: {backoff: random}\n":         {"steps[2].retry.backoff", "none, linear, exponential, fibonacci"},
		"    retry: {max_attempts: 101}\n":       {"steps[2].retry.max_attempts: 101", "from 0", "to 100"},
		"    retry: {max_attempts: -1}\n":        {"steps[2].retry.max_attempts: -1", "from 0"},
		"    type: decision\n":                   {"steps[2].dependencies", "decision step"},
		"    type: a\n    step_type: decision\n": {"both type and its alias step_type"},
		"    batch_config: {batch_size: 1, parallelism: 1, cursor_field: id, worker_template: c, failure_strategy: retry}\n": {
			"steps[2].batch_config.failure_strategy", "continue_on_failure, fail_fast, isolate"},
		"    batch_config: {batch_size: 1}\n":             {"steps[2].batch_config.parallelism", "required"},
		"    publishes_events: [{name: e, color: red}]\n": {"steps[2].publishes_events[0].color: unknown field"},
	} {
		_, err := workflow.ParseYAML([]byte(doc(step)))
		require.Error(t, err, step)
		for _, w := range want {
			require.ErrorContains(t, err, w, step)
		}
	}
	_, err = workflow.ParseYAML([]byte(doc("") + "metadata: 5\n"))
	require.ErrorContains(t, err, "metadata: must be an object")
	_, err = workflow.ParseYAML([]byte(doc("") + "lifecycle: {anything: 1}\nmetadata: {notes: x, owner: {team: y}}\n"))
	require.NoError(t, err, "lifecycle and metadata are free-form")
	_, err = workflow.ParseYAML([]byte(doc("") + "name: again\n"))
	require.ErrorContains(t, err, "name", "a duplicate key is an error")
}

func TestLoadDirNamesFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := "name: t\nnamespace_name: ns\nversion: 1.0.0\nsteps:\n  - name: a\n    handler: {callable: x}\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yml"), []byte(good), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.json"),
		[]byte(`{"name":"u","namespace_name":"ns","version":"1.0.0","steps":[{"name":"a","handler":{"callable":"x"}}]}`), 0o600))
	ts, err := workflow.LoadDir(dir)
	require.NoError(t, err)
	require.Len(t, ts, 2)

	bad := strings.Replace(good, "    handler: {callable: x}\n", "    handler: {callable: x}\n    retry: {limit: 2}\n", 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(bad), 0o600))
	_, err = workflow.LoadDir(dir)
	require.ErrorContains(t, err, filepath.Join(dir, "c.yaml"))
	require.ErrorContains(t, err, "steps[0].retry.limit: unknown field")
}
