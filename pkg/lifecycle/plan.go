package lifecycle

// ExecutionStatus summarises a task's steps, as tasker.get_task_execution_context
// computes it. The first matching rule wins, in the order of the constants.
type ExecutionStatus string

// The execution statuses.
const (
	// ExecBlockedByFailures: some step is in error.
	ExecBlockedByFailures ExecutionStatus = "blocked_by_failures"
	// ExecHasReadySteps: some step can be enqueued now.
	ExecHasReadySteps ExecutionStatus = "has_ready_steps"
	// ExecProcessing: some step is enqueued, running, or awaiting orchestration.
	ExecProcessing ExecutionStatus = "processing"
	// ExecAllComplete: every step is complete (or resolved manually).
	ExecAllComplete ExecutionStatus = "all_complete"
	// ExecWaitingForDependencies: nothing can move now (for example a retry backoff).
	ExecWaitingForDependencies ExecutionStatus = "waiting_for_dependencies"
)

// Snapshot is what orchestration knows about a task when it decides the next move.
type Snapshot struct {
	State  TaskState
	Status ExecutionStatus
	// WaitingRetry counts steps in waiting_for_retry whose backoff has not run out.
	WaitingRetry int
}

// Move is one task transition in a plan. When EnqueueFirst is set, the ready steps must
// be enqueued after entering enqueuing_steps and before this move is made.
type Move struct {
	To           TaskState
	EnqueueFirst bool
}

// Plan returns the task transitions that take a task from snap to where it must wait for
// the next event: a terminal state, steps_in_process, or one of the waiting states.
// An empty plan means there is nothing to do now. Every move in the plan is a legal edge.
//
// The paths follow tasker-core: a step result moves steps_in_process → evaluating_results,
// and evaluation either finishes the task, enqueues what became ready, or waits.
func Plan(snap Snapshot) []Move {
	switch snap.State {
	case TaskPending:
		return append([]Move{{To: TaskInitializing}}, fromInitializing(snap.Status)...)
	case TaskInitializing:
		return fromInitializing(snap.Status)
	case TaskEnqueuingSteps:
		return []Move{{To: TaskStepsInProcess, EnqueueFirst: true}}
	case TaskStepsInProcess:
		switch snap.Status {
		case ExecProcessing:
			// Steps are still out; nothing to evaluate until one of them reports.
			return nil
		case ExecWaitingForDependencies:
			if snap.WaitingRetry > 0 {
				// Nothing is running and the only way forward is a retry: wait for it.
				return []Move{{To: TaskWaitingForRetry}}
			}
		case ExecBlockedByFailures, ExecHasReadySteps, ExecAllComplete:
		}
		return append([]Move{{To: TaskEvaluatingResults}}, fromEvaluating(snap.Status)...)
	case TaskEvaluatingResults:
		return fromEvaluating(snap.Status)
	case TaskWaitingForDependencies:
		switch snap.Status {
		case ExecProcessing, ExecWaitingForDependencies:
			return nil
		case ExecBlockedByFailures, ExecHasReadySteps, ExecAllComplete:
		}
		return append([]Move{{To: TaskEvaluatingResults}}, fromEvaluating(snap.Status)...)
	case TaskWaitingForRetry:
		if snap.Status == ExecHasReadySteps {
			return []Move{{To: TaskEnqueuingSteps}, {To: TaskStepsInProcess, EnqueueFirst: true}}
		}
		return nil
	case TaskBlockedByFailures, TaskComplete, TaskError, TaskCancelled, TaskResolvedManually:
		// A blocked task waits for an operator (or a cancel); results of its other steps
		// change nothing.
		return nil
	}
	return nil
}

func fromInitializing(status ExecutionStatus) []Move {
	switch status {
	case ExecHasReadySteps:
		return []Move{{To: TaskEnqueuingSteps}, {To: TaskStepsInProcess, EnqueueFirst: true}}
	case ExecAllComplete:
		return []Move{{To: TaskComplete}}
	case ExecBlockedByFailures, ExecProcessing, ExecWaitingForDependencies:
		return []Move{{To: TaskWaitingForDependencies}}
	}
	return []Move{{To: TaskWaitingForDependencies}}
}

func fromEvaluating(status ExecutionStatus) []Move {
	switch status {
	case ExecAllComplete:
		return []Move{{To: TaskComplete}}
	case ExecBlockedByFailures:
		// A permanently failed step blocks the task. As in tasker-core it stays blocked
		// until something finalizes it again (an operator resolves it, or it is cancelled).
		return []Move{{To: TaskBlockedByFailures}}
	case ExecHasReadySteps:
		return []Move{{To: TaskEnqueuingSteps}, {To: TaskStepsInProcess, EnqueueFirst: true}}
	case ExecProcessing, ExecWaitingForDependencies:
		return []Move{{To: TaskWaitingForDependencies}}
	}
	return []Move{{To: TaskWaitingForDependencies}}
}
