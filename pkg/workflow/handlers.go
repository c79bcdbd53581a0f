package workflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// StepInput is what a handler gets: the task's context and its parents' results.
type StepInput struct {
	TaskUUID      uuid.UUID
	StepUUID      uuid.UUID
	StepName      string
	CorrelationID uuid.UUID
	// Context is the task's context JSON.
	Context json.RawMessage
	// Dependencies maps each parent step's name to its result value.
	Dependencies map[string]json.RawMessage
	// Attempt is this attempt's number, starting at 1.
	Attempt     int
	MaxAttempts int
	// Initialization is the handler's fixed configuration from the template.
	Initialization map[string]any
	// Inputs is the step's own input (workflow_steps.inputs), null for a step of the
	// template itself. A batch worker's holds its BatchWorkerInputs.
	Inputs json.RawMessage
	// Previous is the result the step's previous attempt stored (its whole step
	// execution result, with metadata.context), or null on a first attempt.
	Previous json.RawMessage
	// Checkpoint is the progress an earlier attempt saved with SaveCheckpoint, or null.
	Checkpoint json.RawMessage
	// SaveCheckpoint stores progress while the attempt runs, so that an attempt after a
	// crash can resume from it (Checkpoint). It fails once the attempt has lost its claim.
	// Nil when the step runs where nothing can be saved.
	SaveCheckpoint func(ctx context.Context, checkpoint any) error
}

// Handler runs one step. It returns the step's result value (any JSON-encodable value)
// or an error; a *StepError says whether the failure may be retried, and any other
// error is treated as retryable.
type Handler func(ctx context.Context, in StepInput) (any, error)

// StepError is a handler failure with its classification.
type StepError struct {
	Message   string
	ErrorType string
	ErrorCode string
	Retryable bool
	// RetryAfter, when positive, asks for the next attempt no sooner than this (the
	// Retry-After header of the result's orchestration metadata); orchestration uses it
	// instead of its backoff.
	RetryAfter time.Duration
}

func (e *StepError) Error() string { return e.ErrorType + ": " + e.Message }

// Registry maps callables to handlers.
type Registry map[string]Handler

// DefaultRegistry returns the handlers the shipped templates use.
func DefaultRegistry() Registry {
	r := Registry{
		"math.square_even_number":    squareEvenNumber,
		"math.square_parent_product": squareParentProduct,
		"test.fail_n_times":          failNTimes,
		"test.sleep_first_attempt":   sleepFirstAttempt,
	}
	maps.Copy(r, approvalHandlers())
	maps.Copy(r, csvBatchHandlers())
	maps.Copy(r, datasetBatchHandlers())
	maps.Copy(r, errorScenarioHandlers())
	return r
}

// Check validates ts against r: a step whose callable has no Go handler runs a simulated
// handler, so its simulation profile (handler.initialization.simulate over the built-in
// default) must be valid. The error names the template step, the field and the rule.
// Resolve does the same and also builds the simulated handlers.
func (r Registry) Check(ts []*Template) error {
	_, _, err := r.Resolve(ts, nil)
	return err
}

// squareEvenNumber is the first step of the maths workflows: context.even_number squared.
// A missing or odd number is a validation error that retrying cannot fix.
func squareEvenNumber(_ context.Context, in StepInput) (any, error) {
	var ctx struct {
		EvenNumber *json.Number `json:"even_number"`
	}
	dec := json.NewDecoder(bytes.NewReader(in.Context))
	dec.UseNumber()
	if err := dec.Decode(&ctx); err != nil || ctx.EvenNumber == nil {
		return nil, &StepError{Message: "context.even_number is required", ErrorType: "ValidationError",
			ErrorCode: "MISSING_CONTEXT_FIELD"}
	}
	n, ok := integerValue(ctx.EvenNumber.String())
	if !ok || n.Bit(0) != 0 || n.Sign() <= 0 {
		return nil, &StepError{Message: fmt.Sprintf("context.even_number must be a positive even integer, got %s", ctx.EvenNumber),
			ErrorType: "ValidationError", ErrorCode: "VALIDATION_ERROR"}
	}
	return json.Number(new(big.Int).Mul(n, n).String()), nil
}

// maxExponent bounds the exponent of a JSON number read as an integer, so that a short
// literal such as 1e999999999 cannot make a handler build a gigantic number.
const maxExponent = 1000

// integerValue reads a JSON number literal whose value is an integer, however it is
// written: 6, 6.0 and 6e0 are all 6, as JSON Schema's "integer" type counts them.
func integerValue(lit string) (*big.Int, bool) {
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		exp, err := strconv.Atoi(strings.TrimPrefix(lit[i+1:], "+"))
		if err != nil || exp > maxExponent || exp < -maxExponent {
			return nil, false
		}
	}
	r, ok := new(big.Rat).SetString(lit)
	if !ok || !r.IsInt() {
		return nil, false
	}
	return r.Num(), true
}

// squareParentProduct multiplies every parent's result and squares the product, in
// arbitrary precision: with one parent it squares that parent.
func squareParentProduct(_ context.Context, in StepInput) (any, error) {
	if len(in.Dependencies) == 0 {
		return nil, &StepError{Message: "step has no parent results", ErrorType: "ValidationError",
			ErrorCode: "MISSING_DEPENDENCY_RESULT"}
	}
	names := make([]string, 0, len(in.Dependencies))
	for name := range in.Dependencies {
		names = append(names, name)
	}
	sort.Strings(names)
	product := big.NewInt(1)
	for _, name := range names {
		v, err := bigFromJSON(in.Dependencies[name])
		if err != nil {
			return nil, &StepError{Message: fmt.Sprintf("parent %s result: %v", name, err),
				ErrorType: "ValidationError", ErrorCode: "INVALID_DEPENDENCY_RESULT"}
		}
		product.Mul(product, v)
	}
	return json.Number(product.Mul(product, product).String()), nil
}

// bigFromJSON reads an integer written as a JSON number or a JSON string of digits.
func bigFromJSON(raw json.RawMessage) (*big.Int, error) {
	s := string(bytes.TrimSpace(raw))
	if len(s) >= 2 && s[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
	}
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("%q is not an integer", s)
	}
	return v, nil
}

// failNTimes fails, retryably, on its first fail_count attempts and then succeeds.
func failNTimes(_ context.Context, in StepInput) (any, error) {
	failCount := intSetting(in.Initialization, "fail_count", 0)
	if in.Attempt <= failCount {
		return nil, &StepError{Message: fmt.Sprintf("planned failure %d of %d", in.Attempt, failCount),
			ErrorType: "PlannedFailure", ErrorCode: "PLANNED_FAILURE", Retryable: true,
			RetryAfter: time.Duration(intSetting(in.Initialization, "retry_after_seconds", 0)) * time.Second}
	}
	return map[string]any{"succeeded_on_attempt": in.Attempt}, nil
}

// sleepFirstAttempt sleeps context.sleep_ms on its first attempt only, so a test can lose
// the worker running it and see a later attempt finish at once.
func sleepFirstAttempt(ctx context.Context, in StepInput) (any, error) {
	var c struct {
		SleepMS int64 `json:"sleep_ms"`
	}
	_ = json.Unmarshal(in.Context, &c)
	if in.Attempt == 1 && c.SleepMS > 0 {
		if err := wait(ctx, time.Duration(c.SleepMS)*time.Millisecond); err != nil {
			return nil, fmt.Errorf("sleep interrupted: %w", err)
		}
	}
	return map[string]any{"attempt": in.Attempt, "slept_ms": map[bool]int64{true: c.SleepMS, false: 0}[in.Attempt == 1]}, nil
}

// wait waits d on a timer, or until ctx ends, whose cause it returns.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

func intSetting(m map[string]any, key string, def int) int {
	switch v := m[key].(type) {
	case float64:
		return int(v)
	case int:
		return v
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return int(i)
		}
	}
	return def
}

// ErrUnknownCallable is returned for a step whose callable has no handler.
var ErrUnknownCallable = errors.New("no handler registered for callable")
