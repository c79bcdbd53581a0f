// Package lifecycle holds Tasker's task and step state machines: the states, the tables
// of legal transitions, and the state-guarded SQL that persists a transition together
// with its audit row.
//
// Every transition is checked twice. In Go, the tables here reject an illegal edge with
// a descriptive *TransitionError before any SQL runs. In SQL, a compare-and-set on the
// current state (the most recent audit row) means a lost race writes nothing.
package lifecycle

import (
	"fmt"
	"slices"
)

// TaskState is a task's lifecycle state as stored in tasker.task_transitions.to_state.
type TaskState string

// The 12 task states.
const (
	TaskPending                TaskState = "pending"
	TaskInitializing           TaskState = "initializing"
	TaskEnqueuingSteps         TaskState = "enqueuing_steps"
	TaskStepsInProcess         TaskState = "steps_in_process"
	TaskEvaluatingResults      TaskState = "evaluating_results"
	TaskWaitingForDependencies TaskState = "waiting_for_dependencies"
	TaskWaitingForRetry        TaskState = "waiting_for_retry"
	TaskBlockedByFailures      TaskState = "blocked_by_failures"
	TaskComplete               TaskState = "complete"
	TaskError                  TaskState = "error"
	TaskCancelled              TaskState = "cancelled"
	TaskResolvedManually       TaskState = "resolved_manually"
)

// StepState is a workflow step's lifecycle state as stored in
// tasker.workflow_step_transitions.to_state.
type StepState string

// The 10 step states.
const (
	StepPending                         StepState = "pending"
	StepEnqueued                        StepState = "enqueued"
	StepInProgress                      StepState = "in_progress"
	StepEnqueuedForOrchestration        StepState = "enqueued_for_orchestration"
	StepEnqueuedAsErrorForOrchestration StepState = "enqueued_as_error_for_orchestration"
	StepWaitingForRetry                 StepState = "waiting_for_retry"
	StepComplete                        StepState = "complete"
	StepError                           StepState = "error"
	StepCancelled                       StepState = "cancelled"
	StepResolvedManually                StepState = "resolved_manually"
)

// TaskStates lists every task state in lifecycle order.
var TaskStates = []TaskState{
	TaskPending, TaskInitializing, TaskEnqueuingSteps, TaskStepsInProcess, TaskEvaluatingResults,
	TaskWaitingForDependencies, TaskWaitingForRetry, TaskBlockedByFailures,
	TaskComplete, TaskError, TaskCancelled, TaskResolvedManually,
}

// StepStates lists every step state in lifecycle order.
var StepStates = []StepState{
	StepPending, StepEnqueued, StepInProgress, StepEnqueuedForOrchestration,
	StepEnqueuedAsErrorForOrchestration, StepWaitingForRetry,
	StepComplete, StepError, StepCancelled, StepResolvedManually,
}

// taskTransitions is the task table. Orchestration makes every task transition. Cancel and
// manual resolution are added below for every non-terminal state.
var taskTransitions = map[TaskState][]TaskState{
	TaskPending:           {TaskInitializing},
	TaskInitializing:      {TaskEnqueuingSteps, TaskComplete, TaskWaitingForDependencies},
	TaskEnqueuingSteps:    {TaskStepsInProcess, TaskError},
	TaskStepsInProcess:    {TaskEvaluatingResults, TaskWaitingForRetry, TaskComplete, TaskError},
	TaskEvaluatingResults: {TaskComplete, TaskEnqueuingSteps, TaskWaitingForDependencies, TaskBlockedByFailures},
	// → error from the waiting states is the staleness detector giving up on a task that
	// waited too long (it also files a DLQ entry).
	TaskWaitingForDependencies: {TaskEvaluatingResults, TaskError},
	// → evaluating_results from waiting_for_retry and blocked_by_failures is tasker-sim's
	// own (not in tasker-core): after an operator action on a step (PATCH
	// …/workflow_steps/{step_uuid}) the task re-enters evaluation, when it has no failed
	// step left or the step its retry waited for is done (OperatorReentry), and moves on.
	TaskWaitingForRetry:   {TaskEnqueuingSteps, TaskError, TaskEvaluatingResults},
	TaskBlockedByFailures: {TaskError, TaskEvaluatingResults},
	// error is terminal for processing, but an operator may reset it.
	TaskError:            {TaskPending, TaskResolvedManually},
	TaskComplete:         nil,
	TaskCancelled:        nil,
	TaskResolvedManually: nil,
}

// stepTransitions is the step table. Orchestration moves pending→enqueued and finalizes
// results; the worker claims (enqueued→in_progress) and reports (in_progress→enqueued_*).
var stepTransitions = map[StepState][]StepState{
	StepPending:  {StepEnqueued, StepInProgress, StepError, StepWaitingForRetry},
	StepEnqueued: {StepInProgress, StepError, StepWaitingForRetry},
	// in_progress → waiting_for_retry | error is orchestration recovering an orphan whose
	// claim lease ran out.
	StepInProgress:                      {StepEnqueuedForOrchestration, StepEnqueuedAsErrorForOrchestration, StepError, StepWaitingForRetry},
	StepEnqueuedForOrchestration:        {StepComplete, StepError},
	StepEnqueuedAsErrorForOrchestration: {StepWaitingForRetry, StepError, StepComplete},
	StepWaitingForRetry:                 {StepPending},
	StepError:                           {StepPending},
	StepComplete:                        nil,
	StepCancelled:                       nil,
	StepResolvedManually:                nil,
}

func init() {
	for _, s := range TaskStates {
		if !s.Terminal() {
			taskTransitions[s] = append(taskTransitions[s], TaskCancelled)
			if !slices.Contains(taskTransitions[s], TaskResolvedManually) {
				taskTransitions[s] = append(taskTransitions[s], TaskResolvedManually)
			}
		}
	}
	for _, s := range StepStates {
		if !s.Terminal() {
			// Operators may cancel, complete or resolve any unfinished step, error included.
			for _, to := range []StepState{StepCancelled, StepComplete, StepResolvedManually} {
				if !slices.Contains(stepTransitions[s], to) {
					stepTransitions[s] = append(stepTransitions[s], to)
				}
			}
		}
	}
}

// Settled reports whether a task in s runs nothing more by itself: it is terminal, or
// blocked by a failed step, where it waits for an operator. A task counts as finished
// (its finalization metrics, waiters) when it settles.
func (s TaskState) Settled() bool { return s.Terminal() || s == TaskBlockedByFailures }

// Terminal reports whether no processing transition leaves s. error counts as terminal:
// only an operator's reset leaves it.
func (s TaskState) Terminal() bool {
	switch s {
	case TaskComplete, TaskError, TaskCancelled, TaskResolvedManually:
		return true
	case TaskPending, TaskInitializing, TaskEnqueuingSteps, TaskStepsInProcess, TaskEvaluatingResults,
		TaskWaitingForDependencies, TaskWaitingForRetry, TaskBlockedByFailures:
		return false
	}
	return false
}

// Valid reports whether s is one of the 12 task states.
func (s TaskState) Valid() bool { return slices.Contains(TaskStates, s) }

// Terminal reports whether s is complete, cancelled or resolved_manually: states nothing
// leaves. A step in error is not terminal: an operator may reset it.
func (s StepState) Terminal() bool {
	switch s {
	case StepComplete, StepCancelled, StepResolvedManually:
		return true
	case StepPending, StepEnqueued, StepInProgress, StepEnqueuedForOrchestration,
		StepEnqueuedAsErrorForOrchestration, StepWaitingForRetry, StepError:
		return false
	}
	return false
}

// Valid reports whether s is one of the 10 step states.
func (s StepState) Valid() bool { return slices.Contains(StepStates, s) }

// TaskTargets returns the states a task may move to from s, in table order.
func TaskTargets(s TaskState) []TaskState { return slices.Clone(taskTransitions[s]) }

// StepTargets returns the states a step may move to from s, in table order.
func StepTargets(s StepState) []StepState { return slices.Clone(stepTransitions[s]) }

// TransitionError describes an edge the tables do not allow.
type TransitionError struct {
	// Entity is "task" or "step".
	Entity string
	From   string
	To     string
	// Allowed lists the legal targets from From.
	Allowed []string
	// Unknown is set when From or To is not a state at all.
	Unknown string
}

func (e *TransitionError) Error() string {
	if e.Unknown != "" {
		return fmt.Sprintf("illegal %s transition %s -> %s: %q is not a %s state", e.Entity, e.From, e.To, e.Unknown, e.Entity)
	}
	if len(e.Allowed) == 0 {
		return fmt.Sprintf("illegal %s transition %s -> %s: %s is terminal", e.Entity, e.From, e.To, e.From)
	}
	return fmt.Sprintf("illegal %s transition %s -> %s: from %s the allowed targets are %v",
		e.Entity, e.From, e.To, e.From, e.Allowed)
}

// CheckTask returns nil when from → to is a legal task transition, else a *TransitionError.
func CheckTask(from, to TaskState) error {
	if !from.Valid() || !to.Valid() {
		return &TransitionError{Entity: "task", From: string(from), To: string(to),
			Allowed: toStrings(taskTransitions[from]), Unknown: unknown(from.Valid(), string(from), string(to))}
	}
	if slices.Contains(taskTransitions[from], to) {
		return nil
	}
	return &TransitionError{Entity: "task", From: string(from), To: string(to), Allowed: toStrings(taskTransitions[from])}
}

// CheckStep returns nil when from → to is a legal step transition, else a *TransitionError.
func CheckStep(from, to StepState) error {
	if !from.Valid() || !to.Valid() {
		return &TransitionError{Entity: "step", From: string(from), To: string(to),
			Allowed: toStrings(stepTransitions[from]), Unknown: unknown(from.Valid(), string(from), string(to))}
	}
	if slices.Contains(stepTransitions[from], to) {
		return nil
	}
	return &TransitionError{Entity: "step", From: string(from), To: string(to), Allowed: toStrings(stepTransitions[from])}
}

func toStrings[S ~string](states []S) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}

func unknown(fromValid bool, from, to string) string {
	if !fromValid {
		return from
	}
	return to
}
