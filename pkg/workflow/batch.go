package workflow

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Batch processing: a batchable step's result says how to split the work
// (batch_processing_outcome), orchestration creates one worker step per cursor range from
// the template's batch_worker step, and a deferred convergence step that depends on the
// batch_worker step by name joins them all.

// BatchKey is the key of a batchable step's result that holds its BatchOutcome.
const BatchKey = "batch_processing_outcome"

// The outcome types of BatchOutcome.
const (
	OutcomeCreateBatches = "create_batches"
	OutcomeNoBatches     = "no_batches"
)

// BatchOutcome is what a batchable step's handler returns under
// result.batch_processing_outcome.
type BatchOutcome struct {
	Type               string         `json:"type"`
	WorkerTemplateName string         `json:"worker_template_name,omitempty"`
	WorkerCount        int            `json:"worker_count,omitempty"`
	CursorConfigs      []CursorConfig `json:"cursor_configs,omitempty"`
	TotalItems         int64          `json:"total_items,omitempty"`
}

// CursorConfig is one worker's range: from StartCursor (inclusive) to EndCursor
// (exclusive), any JSON values the handlers agree on.
type CursorConfig struct {
	BatchID     string          `json:"batch_id"`
	StartCursor json.RawMessage `json:"start_cursor"`
	EndCursor   json.RawMessage `json:"end_cursor"`
	BatchSize   int             `json:"batch_size"`
}

// BatchMetadata is the batch configuration a worker gets from its template.
type BatchMetadata struct {
	CursorField     string          `json:"cursor_field"`
	FailureStrategy FailureStrategy `json:"failure_strategy"`
}

// BatchWorkerInputs is the part of a batch worker's Inputs that orchestration adds to its
// template's handler initialization.
type BatchWorkerInputs struct {
	Cursor        CursorConfig  `json:"cursor"`
	BatchMetadata BatchMetadata `json:"batch_metadata"`
	// IsNoOp marks the placeholder worker of a no_batches outcome: it has nothing to do.
	IsNoOp bool `json:"is_no_op"`
	// TemplateStep names the batch_worker step of the template the worker was made from.
	TemplateStep string `json:"__template_step_name"`
}

// The failure strategies of a batch worker.
const (
	// ContinueOnFailure skips an item that fails and goes on; the result counts it.
	ContinueOnFailure FailureStrategy = "continue_on_failure"
	// FailFast fails the worker (permanently) at its first failing item.
	FailFast FailureStrategy = "fail_fast"
	// Isolate goes on past failing items and marks the batch for investigation.
	Isolate FailureStrategy = "isolate"
)

// NoOpBatchID is the batch id of the placeholder worker of a no_batches outcome.
const NoOpBatchID = "000"

// ParseBatchOutcome reads a batchable step's outcome. A missing outcome, an unknown type,
// or create_batches without cursor ranges (or with a range without a batch id) is an error.
func ParseBatchOutcome(raw json.RawMessage) (BatchOutcome, error) {
	var o BatchOutcome
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return o, fmt.Errorf("result.%s: is required of a batchable step", BatchKey)
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return o, fmt.Errorf("result.%s: %w", BatchKey, err)
	}
	switch o.Type {
	case OutcomeNoBatches:
		return o, nil
	case OutcomeCreateBatches:
	default:
		return o, fmt.Errorf("result.%s.type: %q is not allowed: must be %s or %s", BatchKey, o.Type,
			OutcomeCreateBatches, OutcomeNoBatches)
	}
	if len(o.CursorConfigs) == 0 {
		return o, fmt.Errorf("result.%s.cursor_configs: must list at least one range", BatchKey)
	}
	seen := map[string]bool{}
	for i, c := range o.CursorConfigs {
		if c.BatchID == "" || seen[c.BatchID] {
			return o, fmt.Errorf("result.%s.cursor_configs[%d].batch_id: must be set and unique", BatchKey, i)
		}
		seen[c.BatchID] = true
	}
	return o, nil
}

// WorkerStepName is the name of the worker a batch creates from a batch_worker step.
func WorkerStepName(template, batchID string) string { return template + "_" + batchID }
