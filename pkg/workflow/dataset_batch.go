package workflow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strconv"
	"time"
)

// The batch resumption workflow (tasker-core's batch_resumption_test template): a
// batchable step splits a dataset of integers into cursor ranges, and a batch worker
// walks its range, saving checkpoints as it goes and failing once on purpose, so that
// the next attempt has to resume from the last checkpoint instead of starting over.
// This file also holds what the batch handlers share: options, cursor ranges and
// checkpoints.

// batchExampleCallable is the callable prefix of tasker-core's batch example handlers.
const batchExampleCallable = "tasker_example_rs::step_handlers::batch_processing_example::"

func datasetBatchHandlers() Registry {
	return Registry{
		batchExampleCallable + "DatasetAnalyzerHandler": datasetAnalyzer,
		// tasker-core's template names this handler without a module path.
		"CheckpointAndFailHandler": checkpointAndFail,
	}
}

// intOption reads the integer option key of a handler's settings (its initialization,
// or a batch worker's inputs): def when absent, an error naming the field when it is not
// an integer or is below minimum.
func intOption(m map[string]any, field, key string, def, minimum int64) (int64, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("%s.%s: must be an integer, got %v", field, key, x)
		}
		n = int64(x)
	case json.Number:
		i, err := strconv.ParseInt(x.String(), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s.%s: must be an integer, got %s", field, key, x)
		}
		n = i
	default:
		return 0, fmt.Errorf("%s.%s: must be an integer, got %T", field, key, v)
	}
	if n < minimum {
		return 0, fmt.Errorf("%s.%s: must be at least %d, got %d", field, key, minimum, n)
	}
	return n, nil
}

// intSpec is an integer option: its key, its default and its minimum.
type intSpec struct {
	key          string
	def, minimum int64
}

// intOptions reads several integer options at once; a bad one is a non-retryable
// ValidationError naming the field.
func intOptions(m map[string]any, field string, specs ...intSpec) (map[string]int64, error) {
	out := make(map[string]int64, len(specs))
	for _, s := range specs {
		n, err := intOption(m, field, s.key, s.def, s.minimum)
		if err != nil {
			return nil, validationError("INVALID_CONFIGURATION", err.Error())
		}
		out[s.key] = n
	}
	return out, nil
}

// stringOption reads the string option key, def when absent or empty.
func stringOption(m map[string]any, key, def string) string {
	if s, ok := m[key].(string); ok && s != "" {
		return s
	}
	return def
}

// planBatches splits total items, numbered from first, into at most maxWorkers ranges of
// one size (the last may be shorter): ceil(total/batchSize) workers capped at
// maxWorkers, each ceil(total/workers) items, batch ids 001, 002 and so on. The worker
// count is recomputed from that size, so that no range is ever empty.
func planBatches(total, batchSize, maxWorkers, first int64) (size int64, cursors []CursorConfig) {
	workers := min(ceilDiv(total, batchSize), maxWorkers)
	size = ceilDiv(total, workers)
	workers = ceilDiv(total, size)
	for i := range workers {
		start, end := first+i*size, first+min((i+1)*size, total)
		cursors = append(cursors, CursorConfig{BatchID: fmt.Sprintf("%03d", i+1),
			StartCursor: json.RawMessage(strconv.FormatInt(start, 10)),
			EndCursor:   json.RawMessage(strconv.FormatInt(end, 10)), BatchSize: int(end - start)})
	}
	return size, cursors
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// datasetAnalyzer is the batchable step of batch_resumption_test: context.dataset_size
// items, 0-based cursors, no batches when there are fewer than batch_size.
func datasetAnalyzer(_ context.Context, in StepInput) (any, error) {
	opt, err := intOptions(in.Initialization, "initialization",
		intSpec{"batch_size", 1000, 1}, intSpec{"max_workers", 10, 1})
	if err != nil {
		return nil, err
	}
	var c struct {
		DatasetSize json.RawMessage `json:"dataset_size"`
	}
	if json.Unmarshal(in.Context, &c) != nil || len(c.DatasetSize) == 0 || string(c.DatasetSize) == "null" {
		return nil, validationError("MISSING_DATASET_SIZE", "context.dataset_size is required")
	}
	n, ok := integerValue(string(c.DatasetSize))
	if !ok || n.Sign() < 0 || !n.IsInt64() {
		return nil, validationError("INVALID_DATASET_SIZE",
			fmt.Sprintf("context.dataset_size must be an integer of at least 0, got %s", c.DatasetSize))
	}
	size := n.Int64()
	if size < opt["batch_size"] {
		return map[string]any{BatchKey: BatchOutcome{Type: OutcomeNoBatches},
			"reason": "dataset_too_small", "dataset_size": size}, nil
	}
	each, cursors := planBatches(size, opt["batch_size"], opt["max_workers"], 0)
	return map[string]any{
		BatchKey: BatchOutcome{Type: OutcomeCreateBatches, WorkerCount: len(cursors), CursorConfigs: cursors, TotalItems: size,
			WorkerTemplateName: stringOption(in.Initialization, "worker_template_name", "process_batch")},
		"worker_count": len(cursors), "actual_batch_size": each, "total_items": size,
	}, nil
}

// batchWorker is what a batch worker handler reads from its StepInput: the inputs
// orchestration gave it, its integer cursor range and its settings.
type batchWorker struct {
	BatchWorkerInputs
	// start and end are the cursor range: start inclusive, end exclusive.
	start, end int64
	// settings are the worker's inputs with its handler initialization over them.
	settings map[string]any
}

// readBatchWorker decodes a batch worker's inputs. Its cursors must be integers with
// start ≤ end (a no-op worker's are not read), and its failure strategy, when given, one
// of the known ones (continue_on_failure when absent). Errors are non-retryable
// ValidationErrors naming the field.
func readBatchWorker(in StepInput) (batchWorker, error) {
	var w batchWorker
	if len(bytes.TrimSpace(in.Inputs)) == 0 || string(bytes.TrimSpace(in.Inputs)) == "null" {
		return w, validationError("MISSING_BATCH_INPUTS", "inputs: a batch worker needs the cursor orchestration gives it (inputs.cursor)")
	}
	if err := json.Unmarshal(in.Inputs, &w.BatchWorkerInputs); err != nil {
		return w, validationError("INVALID_BATCH_INPUTS", fmt.Sprintf("inputs: %v", err))
	}
	dec := json.NewDecoder(bytes.NewReader(in.Inputs))
	dec.UseNumber()
	if err := dec.Decode(&w.settings); err != nil || w.settings == nil {
		return w, validationError("INVALID_BATCH_INPUTS", "inputs: must be a JSON object")
	}
	maps.Copy(w.settings, in.Initialization)
	if w.IsNoOp {
		return w, nil
	}
	switch w.BatchMetadata.FailureStrategy {
	case "":
		w.BatchMetadata.FailureStrategy = ContinueOnFailure
	case ContinueOnFailure, FailFast, Isolate:
	default:
		return w, validationError("INVALID_BATCH_INPUTS", fmt.Sprintf("inputs.batch_metadata.failure_strategy: %q is not allowed: must be one of %v",
			w.BatchMetadata.FailureStrategy, FailureStrategies))
	}
	var err error
	if w.start, err = cursorInt(w.Cursor.StartCursor, "start_cursor"); err != nil {
		return w, err
	}
	if w.end, err = cursorInt(w.Cursor.EndCursor, "end_cursor"); err != nil {
		return w, err
	}
	if w.start > w.end {
		return w, validationError("INVALID_BATCH_INPUTS", fmt.Sprintf("inputs.cursor: start_cursor %d must not be after end_cursor %d", w.start, w.end))
	}
	return w, nil
}

// cursorInt reads an integer cursor (a JSON number).
func cursorInt(raw json.RawMessage, key string) (int64, error) {
	n, ok := integerValue(string(bytes.TrimSpace(raw)))
	if !ok || !n.IsInt64() {
		return 0, validationError("INVALID_BATCH_INPUTS", fmt.Sprintf("inputs.cursor.%s: must be an integer, got %s", key, raw))
	}
	return n.Int64(), nil
}

// noOpResult is what a batch worker returns at once when it is the placeholder of a
// no_batches outcome.
func noOpResult(w batchWorker) map[string]any {
	return map[string]any{"no_op": true, "reason": "no batches", "batch_id": w.Cursor.BatchID}
}

// checkpoint is the progress a batch worker saves: the cursor of the next item and how
// many items of its range lie before it, plus, for a worker that accumulates, its
// running totals.
type checkpoint struct {
	Cursor         int64           `json:"cursor"`
	ItemsProcessed int64           `json:"items_processed"`
	Partial        json.RawMessage `json:"partial,omitempty"`
}

// savedCheckpoint reads a checkpoint an earlier attempt saved. A checkpoint that does not
// decode or whose cursor lies outside [start, end] is ignored: the worker starts over.
func savedCheckpoint(raw json.RawMessage, start, end int64) (checkpoint, bool) {
	var c struct {
		Cursor  *int64          `json:"cursor"`
		Partial json.RawMessage `json:"partial"`
	}
	if len(bytes.TrimSpace(raw)) == 0 || json.Unmarshal(raw, &c) != nil || c.Cursor == nil ||
		*c.Cursor < start || *c.Cursor > end {
		return checkpoint{}, false
	}
	return checkpoint{Cursor: *c.Cursor, ItemsProcessed: *c.Cursor - start, Partial: c.Partial}, true
}

// saveCheckpoint stores c through in.SaveCheckpoint, when the step can save one. A
// failure (the attempt lost its claim) is returned as an ordinary, retryable error.
func saveCheckpoint(ctx context.Context, in StepInput, c checkpoint) error {
	if in.SaveCheckpoint == nil {
		return nil
	}
	if err := in.SaveCheckpoint(ctx, c); err != nil {
		return fmt.Errorf("saving the checkpoint at cursor %d: %w", c.Cursor, err)
	}
	return nil
}

// previousProgress reads the checkpoint a failed attempt of tasker-core's handler left in
// its result, at metadata.context.checkpoint_progress, if it lies in (start, end].
func previousProgress(prev json.RawMessage, start, end int64) (int64, bool) {
	var r struct {
		Metadata struct {
			Context struct {
				CheckpointProgress *int64 `json:"checkpoint_progress"`
			} `json:"context"`
		} `json:"metadata"`
	}
	if len(bytes.TrimSpace(prev)) == 0 || json.Unmarshal(prev, &r) != nil {
		return 0, false
	}
	p := r.Metadata.Context.CheckpointProgress
	if p == nil || *p <= start || *p > end {
		return 0, false
	}
	return *p, true
}

// checkpointAndFail is the batch worker of batch_resumption_test. Its items are the
// integers of its cursor range. It resumes from the checkpoint an earlier attempt saved
// (or, as tasker-core's handler does, from the checkpoint_progress of the previous
// attempt's result), saves a checkpoint every items_per_checkpoint items, and on attempt
// fail_on_attempt fails, retryably, once fail_after_items items of its range are done.
// sleep_per_item_ms slows it down so that a test can kill the worker mid-batch.
func checkpointAndFail(ctx context.Context, in StepInput) (any, error) {
	w, err := readBatchWorker(in)
	if err != nil {
		return nil, err
	}
	if w.IsNoOp {
		return noOpResult(w), nil
	}
	opt, err := intOptions(w.settings, "initialization", intSpec{"fail_after_items", 50, 0},
		intSpec{"fail_on_attempt", 1, 0}, intSpec{"items_per_checkpoint", 25, 0}, intSpec{"sleep_per_item_ms", 0, 0})
	if err != nil {
		return nil, err
	}
	resume := w.start
	if c, ok := savedCheckpoint(in.Checkpoint, w.start, w.end); ok {
		resume = c.Cursor
	} else if p, ok := previousProgress(in.Previous, w.start, w.end); ok {
		resume = p
	}
	every, perItem := opt["items_per_checkpoint"], time.Duration(opt["sleep_per_item_ms"])*time.Millisecond
	pos := resume
	for pos < w.end {
		if err := wait(ctx, perItem); err != nil {
			return nil, fmt.Errorf("batch worker interrupted: %w", err)
		}
		pos++
		if every > 0 && (pos-w.start)%every == 0 {
			if err := saveCheckpoint(ctx, in, checkpoint{Cursor: pos, ItemsProcessed: pos - w.start}); err != nil {
				return nil, err
			}
		}
		if int64(in.Attempt) == opt["fail_on_attempt"] && pos-w.start >= opt["fail_after_items"] {
			return nil, &StepError{ErrorType: "RetryableError", ErrorCode: "SIMULATED_BATCH_FAILURE", Retryable: true,
				Message: fmt.Sprintf("simulated failure after %d items on attempt %d", pos-w.start, in.Attempt)}
		}
	}
	return map[string]any{"total_processed": pos - resume, "resumed_from": resume, "final_position": pos,
		"start_position": w.start, "end_position": w.end, "attempts": in.Attempt, "batch_id": w.Cursor.BatchID,
		"message": fmt.Sprintf("processed items %d to %d of [%d, %d) on attempt %d", resume, pos, w.start, w.end, in.Attempt)}, nil
}
