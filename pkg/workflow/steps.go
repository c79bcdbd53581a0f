package workflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// StepType is a step's kind, as tasker-core names it.
type StepType string

// The step types of tasker-core's format; tasker-sim runs them all.
const (
	// StepStandard is an ordinary step, created with its task.
	StepStandard StepType = "standard"
	// StepDecision chooses, from its result, which of its descendants are created.
	StepDecision StepType = "decision"
	// StepDeferredConvergence joins whichever branches a decision created.
	StepDeferredConvergence StepType = "deferred_convergence"
	// StepBatchable splits work into batches, from its result.
	StepBatchable StepType = "batchable"
	// StepBatchWorker is the template of the workers a batchable step creates.
	StepBatchWorker StepType = "batch_worker"
)

// StepTypes lists every step type, in tasker-core's order.
var StepTypes = []StepType{StepStandard, StepDecision, StepDeferredConvergence, StepBatchable, StepBatchWorker}

// Backoff is a retry block's backoff kind.
type Backoff string

// Backoffs lists the backoff kinds tasker-core accepts.
var Backoffs = []Backoff{"none", "linear", "exponential", "fibonacci"}

// FailureStrategy says what a batch does when one of its workers fails.
type FailureStrategy string

// FailureStrategies lists the failure strategies tasker-core accepts.
var FailureStrategies = []FailureStrategy{"continue_on_failure", "fail_fast", "isolate"}

// BatchConfig is a batch worker step's batch configuration. As in tasker-core every
// field is required.
type BatchConfig struct {
	BatchSize       int             `json:"batch_size"`
	Parallelism     int             `json:"parallelism"`
	CursorField     string          `json:"cursor_field"`
	WorkerTemplate  string          `json:"worker_template"`
	FailureStrategy FailureStrategy `json:"failure_strategy"`
}

// UnmarshalJSON reads a step, accepting tasker-core's aliases step_type (for type) and
// depends_on (for dependencies), and fills in the type standard when none is given.
func (s *StepTemplate) UnmarshalJSON(doc []byte) error {
	type plain StepTemplate // no methods: no recursion
	var aux struct {
		plain
		StepType  *StepType `json:"step_type"`
		DependsOn []string  `json:"depends_on"`
	}
	if err := json.Unmarshal(doc, &aux); err != nil {
		return err
	}
	if aux.StepType != nil {
		if aux.Type != "" {
			return errors.New("step gives both type and its alias step_type")
		}
		aux.Type = *aux.StepType
	}
	if aux.DependsOn != nil {
		if aux.Dependencies != nil {
			return errors.New("step gives both dependencies and its alias depends_on")
		}
		aux.Dependencies = aux.DependsOn
	}
	if aux.Type == "" {
		aux.Type = StepStandard
	}
	*s = StepTemplate(aux.plain)
	return nil
}

// validate checks one step's fields. Its errors start with the field's path below the
// step, e.g. "retry.max_attempts: ...".
func (s *StepTemplate) validate() error {
	if s.Handler.Callable == "" {
		return errors.New("handler.callable is required")
	}
	if s.Type != "" {
		if err := oneOf("type", s.Type, StepTypes); err != nil {
			return err
		}
	}
	if s.Type == StepDecision && len(s.Dependencies) == 0 {
		return errors.New("dependencies: a decision step must depend on at least one step")
	}
	if s.TimeoutSeconds < 0 {
		return fmt.Errorf("timeout_seconds: %d must not be negative", s.TimeoutSeconds)
	}
	if err := s.Retry.validate(); err != nil {
		return fmt.Errorf("retry.%w", err)
	}
	if s.BatchConfig != nil {
		if err := s.BatchConfig.validate(); err != nil {
			return fmt.Errorf("batch_config.%w", err)
		}
	}
	return nil
}

func (r RetrySpec) validate() error {
	if r.MaxAttempts != nil && (*r.MaxAttempts < 0 || *r.MaxAttempts > MaxMaxAttempts) {
		return fmt.Errorf("max_attempts: %d is out of range: must be from 0 (one execution, no retry) to %d",
			*r.MaxAttempts, MaxMaxAttempts)
	}
	if r.Backoff != "" {
		if err := oneOf("backoff", r.Backoff, Backoffs); err != nil {
			return err
		}
	}
	for name, v := range map[string]*int64{"backoff_base_ms": r.BackoffBaseMS, "max_backoff_ms": r.MaxBackoffMS} {
		if v != nil && *v < 0 {
			return fmt.Errorf("%s: %d must not be negative", name, *v)
		}
	}
	return nil
}

func (b *BatchConfig) validate() error {
	if b.BatchSize < 1 {
		return fmt.Errorf("batch_size: %d must be at least 1 (the field is required)", b.BatchSize)
	}
	if b.Parallelism < 1 {
		return fmt.Errorf("parallelism: %d must be at least 1 (the field is required)", b.Parallelism)
	}
	if b.CursorField == "" {
		return errors.New("cursor_field is required")
	}
	if b.WorkerTemplate == "" {
		return errors.New("worker_template is required")
	}
	return oneOf("failure_strategy", b.FailureStrategy, FailureStrategies)
}

// oneOf checks an enum value; the error lists the allowed values.
func oneOf[T ~string](field string, v T, allowed []T) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return fmt.Errorf("%s: %q is not allowed: must be one of %s", field, v, strings.Join(names, ", "))
}

// Unsupported reports why tasker-sim cannot run the template: a batch_worker step without
// a batch_config, which its workers' batch metadata comes from. Such templates parse, but
// a worker skips them.
func (t *Template) Unsupported() error {
	var odd []string
	for _, s := range t.Steps {
		if s.Type == StepBatchWorker && s.BatchConfig == nil {
			odd = append(odd, fmt.Sprintf("batch_worker step %s has no batch_config", s.Name))
		}
	}
	if len(odd) == 0 {
		return nil
	}
	return fmt.Errorf("template %s: %s", t.Key(), strings.Join(odd, ", "))
}
