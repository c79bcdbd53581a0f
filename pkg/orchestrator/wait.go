package orchestrator

import (
	"context"
	"slices"
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

// WaitTask returns the task once it has settled (a terminal state, or blocked_by_failures),
// or its current view when timeout passes first.
func (o *Orchestrator) WaitTask(ctx context.Context, id uuid.UUID, timeout time.Duration) (*api.TaskResponse, error) {
	ch := o.waiters.add(id.String())
	defer o.waiters.remove(id.String(), ch)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	recheck := time.NewTicker(waitRecheck)
	defer recheck.Stop()
	for {
		// Each wake reads the task alone; its steps are read once, for the answer.
		task, err := o.readTask(ctx, id)
		if err != nil || lifecycle.TaskState(task.Status).Settled() {
			return o.withSteps(ctx, id, task, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return o.withSteps(ctx, id, task, nil)
		case <-ch:
		case <-recheck.C:
		}
	}
}

// finalizedLog remembers the uuids of the last tasks that reached a terminal state, in the
// order the listener heard of them, so a waiter can see which finalizations it missed since
// a point without asking the database. Every append wakes the waiters.
type finalizedLog struct {
	mu    sync.Mutex
	ring  []uuid.UUID
	next  uint64 // sequence number of the next append
	woken chan struct{}
}

// finalizedLogSize bounds the log; a waiter that falls further behind re-reads its tasks.
const finalizedLogSize = 1 << 16

func newFinalizedLog() *finalizedLog {
	return &finalizedLog{ring: make([]uuid.UUID, finalizedLogSize), woken: make(chan struct{})}
}

func (l *finalizedLog) append(id uuid.UUID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.next%finalizedLogSize] = id
	l.next++
	close(l.woken)
	l.woken = make(chan struct{})
}

// position returns the next sequence number and a channel closed by the next append.
func (l *finalizedLog) position() (uint64, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next, l.woken
}

// since returns the ids appended from sequence number from on, and the new position; ok
// is false when some of them were already overwritten.
func (l *finalizedLog) since(from uint64) (ids []uuid.UUID, next uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.next-from > finalizedLogSize {
		return nil, l.next, false
	}
	for seq := from; seq < l.next; seq++ {
		ids = append(ids, l.ring[seq%finalizedLogSize])
	}
	return ids, l.next, true
}

// terminalStates are the task states WaitAny reports: the settled ones.
var terminalStates = func() []string {
	var out []string
	for _, s := range lifecycle.TaskStates {
		if s.Settled() {
			out = append(out, string(s))
		}
	}
	return out
}()

// waitAnyRecheck bounds how long WaitAny trusts the finalized log alone: notifications sent
// while the listener was reconnecting never reach it.
const waitAnyRecheck = 5 * time.Second

// WaitAny watches many tasks at once: it returns those among ids that have settled, and
// those that do not exist, as soon as at least one is, or when timeout passes. The
// database is read once at the start; after that only the finalized log is consulted, and
// the database only for ids the log names, so a long poll over thousands of tasks costs
// little while it waits. A load generator watches its tasks this way instead of with one
// long poll each.
func (o *Orchestrator) WaitAny(ctx context.Context, ids []uuid.UUID, timeout time.Duration) (*api.WaitResponse, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	recheck := time.NewTicker(waitAnyRecheck)
	defer recheck.Stop()
	watched := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		watched[id] = true
	}
	check := ids
	for {
		pos, woken := o.finalized.position() // before the read, so nothing after it is missed
		if len(check) > 0 {
			res, err := o.terminalAmong(ctx, check)
			if err != nil || len(res.Finished) > 0 || len(res.NotFound) > 0 {
				return res, err
			}
		}
		check = nil
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return &api.WaitResponse{Finished: []api.FinishedTask{}, NotFound: []string{}}, nil
		case <-recheck.C:
			check = ids
		case <-woken:
			check = o.finalizedAmong(pos, watched, ids)
		}
	}
}

// finalizedAmong returns the watched ids the finalized log names from pos on, or every
// watched id when the log has moved on too far to tell.
func (o *Orchestrator) finalizedAmong(pos uint64, watched map[uuid.UUID]bool, all []uuid.UUID) []uuid.UUID {
	logged, _, ok := o.finalized.since(pos)
	if !ok {
		return all
	}
	var hit []uuid.UUID
	for _, id := range logged {
		if watched[id] {
			hit = append(hit, id)
		}
	}
	return hit
}
func (o *Orchestrator) terminalAmong(ctx context.Context, ids []uuid.UUID) (*api.WaitResponse, error) {
	rows, err := o.pool.Query(ctx, `
		SELECT w.task_uuid, t.task_uuid IS NOT NULL, coalesce(tasker.get_current_task_state(t.task_uuid), '')
		  FROM unnest($1::uuid[]) AS w (task_uuid)
		  LEFT JOIN tasker.tasks AS t ON t.task_uuid = w.task_uuid`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	res := &api.WaitResponse{Finished: []api.FinishedTask{}, NotFound: []string{}}
	for rows.Next() {
		var id uuid.UUID
		var exists bool
		var state string
		if err := rows.Scan(&id, &exists, &state); err != nil {
			return nil, err
		}
		switch {
		case !exists:
			res.NotFound = append(res.NotFound, id.String())
		case slices.Contains(terminalStates, state):
			res.Finished = append(res.Finished, api.FinishedTask{TaskUUID: id.String(), Status: state})
		}
	}
	return res, rows.Err()
}
