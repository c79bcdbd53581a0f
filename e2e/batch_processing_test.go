package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// productsCSV is the absolute path of a shipped CSV test file.
func productsCSV(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "pkg", "workflow", "testdata", name))
	require.NoError(t, err)
	return p
}

// stepResult decodes the result value of a task's step, by name.
func stepResult(t *testing.T, env *harness.Env, task, step string, into any) {
	t.Helper()
	var raw json.RawMessage
	require.NoError(t, env.Pool.QueryRow(context.Background(), `
		SELECT ws.results -> 'result' FROM tasker.workflow_steps AS ws
		  JOIN tasker.named_steps AS ns ON ns.named_step_uuid = ws.named_step_uuid
		 WHERE ws.task_uuid = $1 AND ns.name = $2`, task, step).Scan(&raw))
	require.NoError(t, json.Unmarshal(raw, into), step)
}

// aggregate is the part of the CSV aggregator's result these tests read.
type aggregate struct {
	TotalProcessed  int      `json:"total_processed"`
	InventoryValue  float64  `json:"total_inventory_value"`
	WorkerCount     int      `json:"worker_count"`
	FailedRows      []int    `json:"failed_rows"`
	IsolatedBatches []string `json:"isolated_batches"`
}

// TestProductsCSVBatch runs tasker-core's batch_processing_products_csv template,
// unchanged, over the shipped 1000-row CSV: the analyzer's outcome makes five workers
// with 200-row ranges, each depending on it, and the aggregator is created once, waiting
// for all five. A 60-row file is too small to split: one placeholder worker runs.
func TestProductsCSVBatch(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) {
		c.Templates = loadCoreFixtures(t, "batch_processing_products_csv")
	}
	env := harness.New(t, cluster, opts)
	full := []string{"pending", "enqueued", "in_progress", "enqueued_for_orchestration", "complete"}

	t.Run("five workers", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 60*time.Second)
		created, err := env.Client.CreateTask(ctx, request("csv_processing_rust", "csv_product_inventory_analyzer",
			map[string]any{"csv_file_path": productsCSV(t, "products.csv")}))
		require.NoError(t, err)
		require.Equal(t, 1, created.TotalSteps, "only the analyzer exists at first")
		done, err := env.Client.WaitTask(ctx, created.TaskUUID)
		require.NoError(t, err)
		require.Equal(t, "complete", done.Status)

		steps := taskSteps(t, env, created.TaskUUID)
		var workers []string
		for name, trail := range steps {
			requireWellFormedAudit(t, trail, legalStep)
			require.Equal(t, full, states(trail), name)
			if name != "analyze_csv" && name != "aggregate_csv_results" {
				workers = append(workers, name)
			}
		}
		sort.Strings(workers)
		require.Equal(t, []string{"process_csv_batch_001", "process_csv_batch_002", "process_csv_batch_003",
			"process_csv_batch_004", "process_csv_batch_005"}, workers)
		parents := parentsOf(t, env, created.TaskUUID)
		require.Equal(t, workers, parents["aggregate_csv_results"])
		for i, w := range workers {
			require.Equal(t, []string{"analyze_csv"}, parents[w])
			var in workflow.BatchWorkerInputs
			require.NoError(t, env.Pool.QueryRow(ctx, `SELECT inputs FROM tasker.workflow_steps AS ws
				JOIN tasker.named_steps AS ns ON ns.named_step_uuid = ws.named_step_uuid
				WHERE ws.task_uuid = $1 AND ns.name = $2`, created.TaskUUID, w).Scan(&in))
			require.JSONEq(t, fmt.Sprint(200*i+1), string(in.Cursor.StartCursor), w)
			require.JSONEq(t, fmt.Sprint(200*(i+1)+1), string(in.Cursor.EndCursor), w)
			require.Equal(t, workflow.ContinueOnFailure, in.BatchMetadata.FailureStrategy)
			require.Equal(t, "process_csv_batch", in.TemplateStep)
		}
		var agg aggregate
		stepResult(t, env, created.TaskUUID, "aggregate_csv_results", &agg)
		require.Equal(t, 1000, agg.TotalProcessed)
		require.Equal(t, 5, agg.WorkerCount)
		require.Positive(t, agg.InventoryValue)
	})

	t.Run("no batches", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 60*time.Second)
		created, done := runTask(ctx, t, env, request("csv_processing_rust", "csv_product_inventory_analyzer",
			map[string]any{"csv_file_path": productsCSV(t, "products_bad_rows.csv")}))
		require.Equal(t, "complete", done.Status)
		parents := parentsOf(t, env, created.TaskUUID)
		require.Equal(t, []string{"process_csv_batch_000"}, parents["aggregate_csv_results"],
			"the placeholder worker stands between the analyzer and the aggregator")
		var noop struct {
			NoOp bool `json:"no_op"`
		}
		stepResult(t, env, created.TaskUUID, "process_csv_batch_000", &noop)
		require.True(t, noop.NoOp)
	})
}

// strategyTemplate is a CSV batch of 20-row workers over the file with bad rows, with
// the given failure strategy.
func strategyTemplate(t *testing.T, strategy workflow.FailureStrategy) *workflow.Template {
	t.Helper()
	const callable = "tasker_example_rs::step_handlers::batch_processing_products_csv::"
	doc := fmt.Sprintf(`{"name": "csv_%[1]s", "namespace_name": "tasker_sim_batch", "version": "1.0.0",
	  "steps": [
	    {"name": "analyze_csv", "type": "batchable", "handler": {"callable": "%[2]sCsvAnalyzerHandler",
	      "initialization": {"batch_size": 20, "max_workers": 10, "worker_template_name": "process_csv_batch"}}},
	    {"name": "process_csv_batch", "type": "batch_worker", "dependencies": ["analyze_csv"],
	      "handler": {"callable": "%[2]sCsvBatchProcessorHandler"},
	      "retry": {"max_attempts": 1},
	      "batch_config": {"batch_size": 20, "parallelism": 3, "cursor_field": "row_number",
	        "worker_template": "process_csv_batch", "failure_strategy": "%[1]s"}},
	    {"name": "aggregate_csv_results", "type": "deferred_convergence", "dependencies": ["process_csv_batch"],
	      "handler": {"callable": "%[2]sCsvResultsAggregatorHandler"}}
	  ]}`, strategy, callable)
	tmpl, err := workflow.Parse([]byte(doc))
	require.NoError(t, err)
	return tmpl
}

// TestBatchFailureStrategies runs a batch over a file with bad rows under each failure
// strategy: continue_on_failure skips and lists them, isolate finishes and marks the
// batches that had them, fail_fast fails the worker that met one, and so the task.
func TestBatchFailureStrategies(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) {
		c.Templates = []*workflow.Template{strategyTemplate(t, workflow.ContinueOnFailure),
			strategyTemplate(t, workflow.Isolate), strategyTemplate(t, workflow.FailFast)}
	}
	env := harness.New(t, cluster, opts)
	run := func(t *testing.T, strategy workflow.FailureStrategy) (string, string) {
		ctx := ctxFor(t, 60*time.Second)
		created, done := runTask(ctx, t, env, request("tasker_sim_batch", "csv_"+string(strategy),
			map[string]any{"csv_file_path": productsCSV(t, "products_bad_rows.csv")}))
		return created.TaskUUID, done.Status
	}
	t.Run("continue_on_failure", func(t *testing.T) {
		t.Parallel()
		task, status := run(t, workflow.ContinueOnFailure)
		require.Equal(t, "complete", status)
		var agg aggregate
		stepResult(t, env, task, "aggregate_csv_results", &agg)
		require.NotEmpty(t, agg.FailedRows)
		require.Equal(t, 60-len(agg.FailedRows), agg.TotalProcessed)
		require.Empty(t, agg.IsolatedBatches)
	})
	t.Run("isolate", func(t *testing.T) {
		t.Parallel()
		task, status := run(t, workflow.Isolate)
		require.Equal(t, "complete", status)
		var agg aggregate
		stepResult(t, env, task, "aggregate_csv_results", &agg)
		require.NotEmpty(t, agg.IsolatedBatches)
		require.NotEmpty(t, agg.FailedRows)
	})
	t.Run("fail_fast", func(t *testing.T) {
		t.Parallel()
		task, status := run(t, workflow.FailFast)
		require.Equal(t, "blocked_by_failures", status)
		steps := taskSteps(t, env, task)
		_, converged := steps["aggregate_csv_results"]
		require.True(t, converged, "the aggregator exists, waiting")
		require.Equal(t, "pending", states(steps["aggregate_csv_results"])[len(steps["aggregate_csv_results"])-1])
		failed := 0
		for name, trail := range steps {
			if last := states(trail)[len(trail)-1]; last == "error" {
				failed++
				require.Contains(t, name, "process_csv_batch_", "only workers that met a bad row fail")
			}
		}
		require.Positive(t, failed)
	})
}

// resumableBatch is a one-worker batch of 100 slow items that saves a checkpoint every
// 10 items; its worker never fails by itself.
const resumableBatch = `
name: resumable_batch
namespace_name: tasker_sim_batch_resume
version: 1.0.0
steps:
  - name: analyze_dataset
    type: batchable
    handler:
      callable: tasker_example_rs::step_handlers::batch_processing_example::DatasetAnalyzerHandler
      initialization: {batch_size: 100, max_workers: 1, worker_template_name: resumable_worker}
  - name: resumable_worker
    type: batch_worker
    dependencies: [analyze_dataset]
    handler:
      callable: CheckpointAndFailHandler
      initialization: {fail_on_attempt: 0, items_per_checkpoint: 10, sleep_per_item_ms: 40}
    retry: {retryable: true, max_attempts: 3}
    batch_config: {batch_size: 100, parallelism: 1, cursor_field: id, worker_template: resumable_worker, failure_strategy: fail_fast}
`

// TestBatchResumesAfterSIGKILL kills the worker process running a batch worker once it
// has saved a checkpoint. The step's lease runs out, orchestration hands it back, and the
// next attempt, on another worker, resumes from the checkpoint rather than from the
// start of its range.
func TestBatchResumesAfterSIGKILL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "resumable_batch.yaml"), []byte(resumableBatch), 0o600))
	opts := fastOptions()
	opts.Workers = -1
	opts.Orchestrator = func(_ int, c *orchestrator.Config) { c.PollInterval = 100 * time.Millisecond }
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 90*time.Second)

	doomed := startWorkerProcess(t, env.DatabaseURL, "doomed-worker", map[string]string{"TASKER_TEMPLATE_PATH": dir,
		"TASKER_VISIBILITY_TIMEOUT_MS": "2000", "TASKER_WORKER_NAMESPACES": "tasker_sim_batch_resume"})
	waitFor(t, 20*time.Second, "the worker process to register the template", func() bool {
		var n int
		_ = env.Pool.QueryRow(ctx, `SELECT count(*) FROM tasker.named_tasks WHERE name = 'resumable_batch'`).Scan(&n)
		return n > 0
	})
	created, err := env.Client.CreateTask(ctx, request("tasker_sim_batch_resume", "resumable_batch",
		map[string]any{"dataset_size": 100}))
	require.NoError(t, err)
	var saved int
	waitFor(t, 30*time.Second, "the batch worker to save a checkpoint past item 20", func() bool {
		_ = env.Pool.QueryRow(ctx, `SELECT coalesce((checkpoint ->> 'cursor')::int, 0) FROM tasker.workflow_steps
		                             WHERE task_uuid = $1 AND checkpoint IS NOT NULL`, created.TaskUUID).Scan(&saved)
		return saved >= 20
	})
	require.NoError(t, doomed.Process.Signal(syscall.SIGKILL))
	_ = doomed.Wait()

	ts, err := workflow.LoadDir(dir)
	require.NoError(t, err)
	_, err = env.AddWorker(ctx, func(c *worker.Config) {
		c.WorkerID, c.Templates, c.Namespaces = "rescuer", ts, []string{"tasker_sim_batch_resume"}
	})
	require.NoError(t, err)
	done, err := env.Client.WaitTask(ctx, created.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", done.Status)

	var r struct {
		ResumedFrom   int `json:"resumed_from"`
		FinalPosition int `json:"final_position"`
		Attempts      int `json:"attempts"`
	}
	stepResult(t, env, created.TaskUUID, "resumable_worker_001", &r)
	require.GreaterOrEqual(t, r.ResumedFrom, saved, "the second attempt started from the checkpoint")
	require.Equal(t, 100, r.FinalPosition)
	require.Equal(t, 2, r.Attempts)
}

// TestBatchResumptionFixture runs tasker-core's batch_resumption_test template unchanged:
// its worker fails on its first attempt after 50 of its 100 items, having saved
// checkpoints, and the retry resumes at item 50.
func TestBatchResumptionFixture(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) { c.Templates = loadCoreFixtures(t, "batch_resumption_test") }
	opts.Orchestrator = func(_ int, c *orchestrator.Config) {
		c.Backoff.Base, c.Backoff.Max = 10*time.Millisecond, 50*time.Millisecond
	}
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 60*time.Second)
	created, done := runTask(ctx, t, env, request("rust_e2e_batch_retry", "batch_resumption_test",
		map[string]any{"test_id": "batch_resumption", "dataset_size": 100}))
	require.Equal(t, "complete", done.Status)
	trail := taskSteps(t, env, created.TaskUUID)["checkpoint_fail_batch_001"]
	requireWellFormedAudit(t, trail, legalStep)
	require.Equal(t, []string{"pending", "enqueued", "in_progress", "enqueued_as_error_for_orchestration", "waiting_for_retry",
		"pending", "enqueued", "in_progress", "enqueued_for_orchestration", "complete"}, states(trail))
	var r struct {
		TotalProcessed int `json:"total_processed"`
		ResumedFrom    int `json:"resumed_from"`
		FinalPosition  int `json:"final_position"`
		Attempts       int `json:"attempts"`
	}
	stepResult(t, env, created.TaskUUID, "checkpoint_fail_batch_001", &r)
	require.Equal(t, 50, r.ResumedFrom)
	require.Equal(t, 50, r.TotalProcessed)
	require.Equal(t, 100, r.FinalPosition)
	require.Equal(t, 2, r.Attempts)
}
