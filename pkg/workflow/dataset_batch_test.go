package workflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

func TestDatasetAnalyzer(t *testing.T) {
	t.Parallel()
	step := fixtureStep(t, "batch_resumption_test", "analyze_dataset")
	analyze := func(init map[string]any, ctx string) (map[string]any, workflow.BatchOutcome) {
		res, err := run(t, step.Handler.Callable, workflow.StepInput{Attempt: 1, Initialization: init, Context: json.RawMessage(ctx)})
		require.NoError(t, err, ctx)
		m := decodeAs[map[string]any](t, res)
		o, err := workflow.ParseBatchOutcome(rawJSON(t, m[workflow.BatchKey]))
		require.NoError(t, err, ctx)
		return m, o
	}
	m, o := analyze(step.Handler.Initialization, `{"test_id":"batch_resumption","dataset_size":100}`)
	require.Equal(t, workflow.BatchOutcome{Type: workflow.OutcomeCreateBatches, WorkerTemplateName: "checkpoint_fail_batch",
		WorkerCount: 1, CursorConfigs: []workflow.CursorConfig{cursor("001", 0, 100)}, TotalItems: 100}, o)
	require.EqualValues(t, 1, m["worker_count"])
	require.EqualValues(t, 100, m["total_items"])

	_, o = analyze(nil, `{"dataset_size":2500}`)
	require.Equal(t, "process_batch", o.WorkerTemplateName)
	require.Equal(t, []workflow.CursorConfig{cursor("001", 0, 834), cursor("002", 834, 1668), cursor("003", 1668, 2500)}, o.CursorConfigs)

	m, o = analyze(step.Handler.Initialization, `{"dataset_size":99}`)
	require.Equal(t, workflow.OutcomeNoBatches, o.Type)
	require.Equal(t, "dataset_too_small", m["reason"])
	require.EqualValues(t, 99, m["dataset_size"])

	for ctx, want := range map[string]string{
		`{}`:                    "context.dataset_size is required",
		`{"dataset_size":"10"}`: `context.dataset_size must be an integer of at least 0, got "10"`,
		`{"dataset_size":-1}`:   "context.dataset_size must be an integer of at least 0, got -1",
		`{"dataset_size":1.5}`:  "context.dataset_size must be an integer of at least 0, got 1.5",
	} {
		_, err := run(t, step.Handler.Callable, workflow.StepInput{Attempt: 1, Context: json.RawMessage(ctx)})
		var se *workflow.StepError
		require.ErrorAs(t, err, &se, ctx)
		require.False(t, se.Retryable, ctx)
		require.Contains(t, se.Message, want, ctx)
	}
}

// checkpointWorker runs CheckpointAndFailHandler as batch_resumption_test's worker of
// the range [0, 100) and returns its result or error and the cursors it saved.
func checkpointWorker(t *testing.T, in workflow.StepInput) (map[string]any, []json.RawMessage, error) {
	t.Helper()
	step := fixtureStep(t, "batch_resumption_test", "checkpoint_fail_batch")
	var saved []json.RawMessage
	in.SaveCheckpoint = func(_ context.Context, c any) error {
		saved = append(saved, rawJSON(t, c))
		return nil
	}
	if in.Initialization == nil {
		in.Initialization = step.Handler.Initialization
	}
	in.Inputs = workerInputs(t, step, cursor("001", 0, 100), step.BatchConfig.FailureStrategy)
	if in.Context == nil {
		in.Context = json.RawMessage(`{"test_id":"batch_resumption","dataset_size":100}`)
	}
	res, err := run(t, step.Handler.Callable, in)
	if err != nil {
		return nil, saved, err
	}
	return decodeAs[map[string]any](t, res), saved, nil
}

func TestCheckpointAndFailResumes(t *testing.T) {
	t.Parallel()
	_, saved, err := checkpointWorker(t, workflow.StepInput{Attempt: 1})
	var se *workflow.StepError
	require.ErrorAs(t, err, &se)
	require.True(t, se.Retryable)
	require.Equal(t, "RetryableError", se.ErrorType)
	require.Equal(t, "SIMULATED_BATCH_FAILURE", se.ErrorCode)
	require.Equal(t, "simulated failure after 50 items on attempt 1", se.Message)
	require.Len(t, saved, 2)
	require.JSONEq(t, `{"cursor":25,"items_processed":25}`, string(saved[0]))
	require.JSONEq(t, `{"cursor":50,"items_processed":50}`, string(saved[1]))

	res, saved2, err := checkpointWorker(t, workflow.StepInput{Attempt: 2, Checkpoint: saved[1]})
	require.NoError(t, err)
	require.EqualValues(t, 50, res["total_processed"])
	require.EqualValues(t, 50, res["resumed_from"])
	require.EqualValues(t, 100, res["final_position"])
	require.EqualValues(t, 0, res["start_position"])
	require.EqualValues(t, 100, res["end_position"])
	require.EqualValues(t, 2, res["attempts"])
	require.Len(t, saved2, 2)
	require.JSONEq(t, `{"cursor":75,"items_processed":75}`, string(saved2[0]))

	// Without a saved checkpoint, tasker-core's form in the previous result is read.
	res, _, err = checkpointWorker(t, workflow.StepInput{Attempt: 2,
		Previous: json.RawMessage(`{"success":false,"metadata":{"context":{"checkpoint_progress":50,"processed_before_failure":50}}}`)})
	require.NoError(t, err)
	require.EqualValues(t, 50, res["resumed_from"])
	require.EqualValues(t, 50, res["total_processed"])

	// Neither: a later attempt starts over; a checkpoint outside the range is ignored.
	res, _, err = checkpointWorker(t, workflow.StepInput{Attempt: 2, Checkpoint: json.RawMessage(`{"cursor":150}`)})
	require.NoError(t, err)
	require.EqualValues(t, 0, res["resumed_from"])
	require.EqualValues(t, 100, res["total_processed"])
}

func TestCheckpointAndFailSleepsAndStops(t *testing.T) {
	t.Parallel()
	step := fixtureStep(t, "batch_resumption_test", "checkpoint_fail_batch")
	inputs := workerInputs(t, step, cursor("001", 0, 100), workflow.FailFast)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	init := map[string]any{"sleep_per_item_ms": float64(5), "items_per_checkpoint": float64(2), "fail_on_attempt": float64(0)}
	var saved int
	start := time.Now()
	_, err := workflow.DefaultRegistry()[step.Handler.Callable](ctx, workflow.StepInput{Attempt: 1, Initialization: init,
		Inputs: inputs,
		SaveCheckpoint: func(context.Context, any) error {
			saved++
			return nil
		}})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 400*time.Millisecond)
	require.Positive(t, saved)
	require.Less(t, saved, 50)

	// A checkpoint that cannot be saved (the claim was lost) stops the worker.
	lost := errors.New("claim lost")
	_, err = workflow.DefaultRegistry()[step.Handler.Callable](context.Background(), workflow.StepInput{Attempt: 1,
		Initialization: step.Handler.Initialization, Inputs: inputs,
		SaveCheckpoint: func(context.Context, any) error { return lost }})
	require.ErrorIs(t, err, lost)
	require.ErrorContains(t, err, "saving the checkpoint at cursor 25")
}
