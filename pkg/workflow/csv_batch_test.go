package workflow_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// fixtureStep is a step of one of tasker-core's pinned fixtures.
func fixtureStep(t *testing.T, fixture, step string) *workflow.StepTemplate {
	t.Helper()
	tm := loadFixtures(t)[fixture]
	require.NotNil(t, tm, fixture)
	for i := range tm.Steps {
		if tm.Steps[i].Name == step {
			return &tm.Steps[i]
		}
	}
	t.Fatalf("%s has no step %s", fixture, step)
	return nil
}

// decodeAs turns a handler's result into T through its JSON form.
func decodeAs[T any](t *testing.T, v any) T {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out T
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

func rawJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// workerInputs builds a batch worker's inputs as orchestration does: the worker
// template's initialization, its cursor and its batch metadata.
func workerInputs(t *testing.T, tmpl *workflow.StepTemplate, c workflow.CursorConfig, strategy workflow.FailureStrategy) json.RawMessage {
	t.Helper()
	in := map[string]any{}
	for k, v := range tmpl.Handler.Initialization {
		in[k] = v
	}
	in["cursor"] = c
	in["batch_metadata"] = workflow.BatchMetadata{CursorField: tmpl.BatchConfig.CursorField, FailureStrategy: strategy}
	in["is_no_op"] = c.BatchID == workflow.NoOpBatchID
	in["__template_step_name"] = tmpl.Name
	return rawJSON(t, in)
}

func cursor(id string, start, end int) workflow.CursorConfig {
	return workflow.CursorConfig{BatchID: id, StartCursor: json.RawMessage(strconv.Itoa(start)),
		EndCursor: json.RawMessage(strconv.Itoa(end)), BatchSize: end - start}
}

// batchResult is a CSV batch worker's result.
type batchResult struct {
	NoOp            bool             `json:"no_op"`
	ProcessedCount  int64            `json:"processed_count"`
	InventoryValue  float64          `json:"total_inventory_value"`
	CategoryCounts  map[string]int64 `json:"category_counts"`
	MaxPrice        float64          `json:"max_price"`
	MaxPriceProduct string           `json:"max_price_product"`
	AverageRating   float64          `json:"average_rating"`
	BatchID         string           `json:"batch_id"`
	StartRow        int64            `json:"start_row"`
	EndRow          int64            `json:"end_row"`
	ResumedFrom     int64            `json:"resumed_from"`
	FailedRows      []int64          `json:"failed_rows"`
	Isolated        bool             `json:"isolated"`
}

// aggregate is the CSV aggregator's result.
type aggregate struct {
	TotalProcessed  int64            `json:"total_processed"`
	InventoryValue  float64          `json:"total_inventory_value"`
	CategoryCounts  map[string]int64 `json:"category_counts"`
	MaxPrice        float64          `json:"max_price"`
	MaxPriceProduct string           `json:"max_price_product"`
	AverageRating   float64          `json:"overall_average_rating"`
	WorkerCount     int              `json:"worker_count"`
	FailedRows      []int64          `json:"failed_rows"`
	IsolatedBatches []string         `json:"isolated_batches"`
}

// direct computes the aggregate figures of a whole clean products file without the
// handlers.
func direct(t *testing.T, path string) aggregate {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	out, ratings := aggregate{CategoryCounts: map[string]int64{}}, 0.0
	for _, r := range recs[1:] {
		price, err1 := strconv.ParseFloat(r[3], 64)
		stock, err2 := strconv.ParseInt(r[4], 10, 64)
		rating, err3 := strconv.ParseFloat(r[5], 64)
		require.NoError(t, errors.Join(err1, err2, err3))
		out.TotalProcessed++
		out.InventoryValue += price * float64(stock)
		out.CategoryCounts[r[2]]++
		if price > out.MaxPrice {
			out.MaxPrice, out.MaxPriceProduct = price, r[1]
		}
		ratings += rating
	}
	out.AverageRating = ratings / float64(out.TotalProcessed)
	return out
}

func analyzeCSV(t *testing.T, path string, init map[string]any) (map[string]any, workflow.BatchOutcome) {
	t.Helper()
	step := fixtureStep(t, "batch_processing_products_csv", "analyze_csv")
	if init == nil {
		init = step.Handler.Initialization
	}
	res, err := run(t, step.Handler.Callable, workflow.StepInput{Attempt: 1, Initialization: init,
		Context: rawJSON(t, map[string]any{"csv_file_path": path, "analysis_mode": "inventory"})})
	require.NoError(t, err)
	m := decodeAs[map[string]any](t, res)
	o, err := workflow.ParseBatchOutcome(rawJSON(t, m[workflow.BatchKey]))
	require.NoError(t, err)
	return m, o
}

func TestCsvAnalyzerRanges(t *testing.T) {
	t.Parallel()
	m, o := analyzeCSV(t, productsFile, nil)
	require.Equal(t, workflow.OutcomeCreateBatches, o.Type)
	require.Equal(t, "process_csv_batch", o.WorkerTemplateName)
	require.Equal(t, 5, o.WorkerCount)
	require.EqualValues(t, 1000, o.TotalItems)
	require.Equal(t, []workflow.CursorConfig{cursor("001", 1, 201), cursor("002", 201, 401), cursor("003", 401, 601),
		cursor("004", 601, 801), cursor("005", 801, 1001)}, o.CursorConfigs)
	require.EqualValues(t, 5, m["worker_count"])
	require.EqualValues(t, 1000, m["total_rows"])
	require.Equal(t, productsFile, m["csv_file_path"])

	m, o = analyzeCSV(t, badRowsFile, nil)
	require.Equal(t, workflow.OutcomeNoBatches, o.Type)
	require.Equal(t, "dataset_too_small", m["reason"])
	require.EqualValues(t, 60, m["total_rows"])
	require.Equal(t, badRowsFile, m["csv_file_path"])

	_, o = analyzeCSV(t, productsFile, map[string]any{"batch_size": float64(300), "max_workers": float64(10)})
	require.Equal(t, []workflow.CursorConfig{cursor("001", 1, 251), cursor("002", 251, 501), cursor("003", 501, 751),
		cursor("004", 751, 1001)}, o.CursorConfigs)
}

func TestCsvAnalyzerErrors(t *testing.T) {
	t.Parallel()
	step := fixtureStep(t, "batch_processing_products_csv", "analyze_csv")
	for ctx, want := range map[string]string{
		`{}`:                                   "context.csv_file_path is required",
		`{"csv_file_path":""}`:                 "context.csv_file_path is required",
		`{"csv_file_path":"testdata/nothing"}`: "context.csv_file_path: open testdata/nothing",
		`{"csv_file_path":"testdata/tasker-core/rust/batch_resumption_test.yaml"}`: `the header has no "title" column`,
	} {
		_, err := run(t, step.Handler.Callable, workflow.StepInput{Attempt: 1, Context: json.RawMessage(ctx),
			Initialization: step.Handler.Initialization})
		var se *workflow.StepError
		require.ErrorAs(t, err, &se, ctx)
		require.False(t, se.Retryable, ctx)
		require.Equal(t, "ValidationError", se.ErrorType, ctx)
		require.Contains(t, se.Message, want, ctx)
	}
	_, err := run(t, step.Handler.Callable, workflow.StepInput{Attempt: 1, Context: json.RawMessage(`{"csv_file_path":"x"}`),
		Initialization: map[string]any{"batch_size": float64(0)}})
	require.ErrorContains(t, err, "initialization.batch_size: must be at least 1, got 0")
}

// runWorker runs the CSV batch worker on the rows [start, end) of path.
func runWorker(t *testing.T, path string, c workflow.CursorConfig, strategy workflow.FailureStrategy,
	in workflow.StepInput,
) (batchResult, error) {
	t.Helper()
	step := fixtureStep(t, "batch_processing_products_csv", "process_csv_batch")
	in.Inputs = workerInputs(t, step, c, strategy)
	if in.Initialization == nil {
		in.Initialization = step.Handler.Initialization
	}
	in.Dependencies = map[string]json.RawMessage{"analyze_csv": rawJSON(t, map[string]any{"csv_file_path": path})}
	if in.Attempt == 0 {
		in.Attempt = 1
	}
	res, err := run(t, step.Handler.Callable, in)
	if err != nil {
		return batchResult{}, err
	}
	return decodeAs[batchResult](t, res), nil
}

func TestCsvWorkersAndAggregatorMatchTheWholeFile(t *testing.T) {
	t.Parallel()
	analyzed, o := analyzeCSV(t, productsFile, nil)
	deps := map[string]json.RawMessage{"analyze_csv": rawJSON(t, analyzed)}
	for _, c := range o.CursorConfigs {
		r, err := runWorker(t, productsFile, c, workflow.ContinueOnFailure, workflow.StepInput{})
		require.NoError(t, err)
		require.EqualValues(t, 200, r.ProcessedCount, c.BatchID)
		require.Equal(t, c.BatchID, r.BatchID)
		require.Equal(t, r.StartRow, r.ResumedFrom)
		require.Empty(t, r.FailedRows)
		deps[workflow.WorkerStepName("process_csv_batch", c.BatchID)] = rawJSON(t, r)
	}
	step := fixtureStep(t, "batch_processing_products_csv", "aggregate_csv_results")
	res, err := run(t, step.Handler.Callable, workflow.StepInput{Attempt: 1, Dependencies: deps,
		Initialization: step.Handler.Initialization})
	require.NoError(t, err)
	got, want := decodeAs[aggregate](t, res), direct(t, productsFile)
	require.EqualValues(t, 1000, got.TotalProcessed)
	require.Equal(t, want.TotalProcessed, got.TotalProcessed)
	require.InDelta(t, math.Round(want.InventoryValue*100)/100, got.InventoryValue, 0.001)
	require.Equal(t, want.CategoryCounts, got.CategoryCounts)
	require.Equal(t, want.MaxPrice, got.MaxPrice)
	require.Equal(t, want.MaxPriceProduct, got.MaxPriceProduct)
	require.InDelta(t, want.AverageRating, got.AverageRating, 1e-9)
	require.Equal(t, 5, got.WorkerCount)
	require.Empty(t, got.FailedRows)
	require.Empty(t, got.IsolatedBatches)
}

func TestCsvFailureStrategies(t *testing.T) {
	t.Parallel()
	all := cursor("001", 1, 61)
	for _, strategy := range []workflow.FailureStrategy{workflow.ContinueOnFailure, workflow.Isolate} {
		r, err := runWorker(t, badRowsFile, all, strategy, workflow.StepInput{})
		require.NoError(t, err, strategy)
		require.EqualValues(t, 57, r.ProcessedCount, strategy)
		require.Equal(t, []int64{7, 31, 52}, r.FailedRows, strategy)
		require.Equal(t, strategy == workflow.Isolate, r.Isolated, strategy)
	}
	_, err := runWorker(t, badRowsFile, all, workflow.FailFast, workflow.StepInput{})
	var se *workflow.StepError
	require.ErrorAs(t, err, &se)
	require.False(t, se.Retryable)
	require.Equal(t, "BatchItemError", se.ErrorType)
	require.Equal(t, "BATCH_ITEM_FAILED", se.ErrorCode)
	require.Contains(t, se.Message, `row 7: price "N/A" is not a number`)

	// Rows past the bad ones succeed whatever the strategy.
	r, err := runWorker(t, badRowsFile, cursor("002", 53, 61), workflow.FailFast, workflow.StepInput{})
	require.NoError(t, err)
	require.EqualValues(t, 8, r.ProcessedCount)

	// The aggregator collects the bad rows and the isolated batches.
	deps := map[string]json.RawMessage{}
	for i, c := range []workflow.CursorConfig{cursor("001", 1, 31), cursor("002", 31, 61)} {
		strategy := []workflow.FailureStrategy{workflow.ContinueOnFailure, workflow.Isolate}[i]
		r, err := runWorker(t, badRowsFile, c, strategy, workflow.StepInput{})
		require.NoError(t, err)
		deps[workflow.WorkerStepName("process_csv_batch", c.BatchID)] = rawJSON(t, r)
	}
	step := fixtureStep(t, "batch_processing_products_csv", "aggregate_csv_results")
	res, err := run(t, step.Handler.Callable, workflow.StepInput{Attempt: 1, Dependencies: deps})
	require.NoError(t, err)
	agg := decodeAs[aggregate](t, res)
	require.EqualValues(t, 57, agg.TotalProcessed)
	require.Equal(t, []int64{7, 31, 52}, agg.FailedRows)
	require.Equal(t, []string{"002"}, agg.IsolatedBatches)
}

func TestCsvWorkerResumesFromCheckpoint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path  string
		c     workflow.CursorConfig
		every float64
		want  []int64 // the checkpoints' cursors
	}{
		{productsFile, cursor("002", 201, 401), 100, []int64{301, 401}},
		{badRowsFile, cursor("001", 1, 61), 20, []int64{21, 41, 61}},
	} {
		var saved []json.RawMessage
		save := func(_ context.Context, c any) error {
			saved = append(saved, rawJSON(t, c))
			return nil
		}
		init := map[string]any{"operation": "inventory_analysis", "items_per_checkpoint": tc.every}
		clean, err := runWorker(t, tc.path, tc.c, workflow.ContinueOnFailure, workflow.StepInput{Initialization: init, SaveCheckpoint: save})
		require.NoError(t, err)
		var cursors []int64
		for _, s := range saved {
			var cp struct {
				Cursor         int64           `json:"cursor"`
				ItemsProcessed int64           `json:"items_processed"`
				Partial        json.RawMessage `json:"partial"`
			}
			require.NoError(t, json.Unmarshal(s, &cp))
			require.Equal(t, cp.Cursor-clean.StartRow, cp.ItemsProcessed)
			require.NotEmpty(t, cp.Partial)
			cursors = append(cursors, cp.Cursor)
		}
		require.Equal(t, tc.want, cursors)

		resumed, err := runWorker(t, tc.path, tc.c, workflow.ContinueOnFailure, workflow.StepInput{Attempt: 2,
			Initialization: init, Checkpoint: saved[len(saved)-2]})
		require.NoError(t, err)
		require.Equal(t, tc.want[len(tc.want)-2], resumed.ResumedFrom)
		resumed.ResumedFrom = clean.ResumedFrom
		require.Equal(t, clean, resumed)
	}
}

func TestCsvWorkerAndAggregatorWithNoBatches(t *testing.T) {
	t.Parallel()
	r, err := runWorker(t, badRowsFile, cursor(workflow.NoOpBatchID, 0, 0), "", workflow.StepInput{})
	require.NoError(t, err)
	require.True(t, r.NoOp)
	require.Equal(t, workflow.NoOpBatchID, r.BatchID)

	step := fixtureStep(t, "batch_processing_products_csv", "aggregate_csv_results")
	res, err := run(t, step.Handler.Callable, workflow.StepInput{Attempt: 1,
		Dependencies: map[string]json.RawMessage{"process_csv_batch_000": rawJSON(t, r)}})
	require.NoError(t, err)
	agg := decodeAs[aggregate](t, res)
	require.Zero(t, agg.TotalProcessed)
	require.Zero(t, agg.WorkerCount)

	_, err = run(t, step.Handler.Callable, workflow.StepInput{Attempt: 1,
		Dependencies: map[string]json.RawMessage{"analyze_csv": json.RawMessage(`{}`)}})
	require.ErrorContains(t, err, "no batch worker results (process_csv_batch_*)")
}

func TestCsvWorkerRejectsBadInputs(t *testing.T) {
	t.Parallel()
	_, err := runWorker(t, productsFile, cursor("001", 990, 1010), workflow.ContinueOnFailure, workflow.StepInput{})
	require.ErrorContains(t, err, "inputs.cursor: rows [1001, 1010) are past the last data row (1000)")
	_, err = runWorker(t, productsFile, cursor("001", 1, 10), "sometimes", workflow.StepInput{})
	require.ErrorContains(t, err, `inputs.batch_metadata.failure_strategy: "sometimes" is not allowed`)
	_, err = runWorker(t, productsFile, workflow.CursorConfig{BatchID: "001", StartCursor: json.RawMessage(`"a"`),
		EndCursor: json.RawMessage(`3`)}, "", workflow.StepInput{})
	require.ErrorContains(t, err, `inputs.cursor.start_cursor: must be an integer, got "a"`)
	_, err = run(t, fixtureStep(t, "batch_processing_products_csv", "process_csv_batch").Handler.Callable,
		workflow.StepInput{Attempt: 1})
	require.ErrorContains(t, err, "inputs: a batch worker needs the cursor")
}
