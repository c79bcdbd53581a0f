package orchestrator

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
)

// waiters wakes API requests waiting for a task to finish. Finalization notifies
// tasker_task_finalized in the same transaction, so a waiter hears about it the moment
// the task's terminal state is visible, whichever orchestrator finalized it.
type waiters struct {
	mu sync.Mutex
	by map[string]map[chan struct{}]struct{}
}

func newWaiters() *waiters { return &waiters{by: map[string]map[chan struct{}]struct{}{}} }

func (w *waiters) add(task string) chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.by[task] == nil {
		w.by[task] = map[chan struct{}]struct{}{}
	}
	w.by[task][ch] = struct{}{}
	return ch
}

func (w *waiters) remove(task string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.by[task], ch)
	if len(w.by[task]) == 0 {
		delete(w.by, task)
	}
}

func (w *waiters) wake(task string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.by[task] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// waitRecheck bounds how long a waiter trusts notifications alone; it re-reads the task
// this often in case one was missed while the listener reconnected.
const waitRecheck = time.Second

// WaitTask returns the task once it is in a terminal state, or its current view when
// timeout passes first.
func (o *Orchestrator) WaitTask(ctx context.Context, id uuid.UUID, timeout time.Duration) (*api.TaskResponse, error) {
	ch := o.waiters.add(id.String())
	defer o.waiters.remove(id.String(), ch)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	recheck := time.NewTicker(waitRecheck)
	defer recheck.Stop()
	for {
		task, err := o.GetTask(ctx, id)
		if err != nil || lifecycle.TaskState(task.Status).Terminal() {
			return task, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return task, nil
		case <-ch:
		case <-recheck.C:
		}
	}
}
