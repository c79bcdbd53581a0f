package load

import (
	"context"
	"sync"
	"time"

	"github.com/tasker-sim/tasker-sim/pkg/client"
)

// flight is one created task that has not yet been seen terminal.
type flight struct {
	shape    int
	intended time.Duration
	// done is closed when the task is seen terminal (the closed model waits on it).
	done chan struct{}
}

// Cohort timing: new tasks are gathered for cohortWindow, then watched by one long poll of
// their own for up to cohortPoll; whatever is still running then joins the pool of older
// tasks, which one long poll watches and which is re-asked at most every poolRestart.
const (
	cohortWindow = 20 * time.Millisecond
	cohortPoll   = time.Second
	poolPoll     = 5 * time.Second
	poolRestart  = time.Second
	retryDelay   = 200 * time.Millisecond
)

// watcher sees created tasks finish without one long poll per task: tasks are watched in
// cohorts by POST /v1/tasks/wait, which answers as soon as any of its tasks finishes. Young
// tasks get short polls of their own so that a fast task is seen at once; tasks that live
// longer are watched together.
type watcher struct {
	client   *client.Client
	onFinish func(id string, f *flight, status string)
	onError  func(err error)

	mu       sync.Mutex
	flights  map[string]*flight
	fresh    []string
	old      []string
	oldAdded chan struct{}
	wg       sync.WaitGroup
}

func newWatcher(c *client.Client, onFinish func(string, *flight, string), onError func(error)) *watcher {
	return &watcher{client: c, onFinish: onFinish, onError: onError, flights: map[string]*flight{},
		oldAdded: make(chan struct{}, 1)}
}

// add starts watching a created task.
func (w *watcher) add(id string, f *flight) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flights[id] = f
	w.fresh = append(w.fresh, id)
}

// inFlight counts the tasks being watched.
func (w *watcher) inFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.flights)
}

// remaining lists the tasks still being watched.
func (w *watcher) remaining() map[string]*flight {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]*flight, len(w.flights))
	for id, f := range w.flights {
		out[id] = f
	}
	return out
}

// run watches until ctx ends; it returns once every goroutine it started has.
func (w *watcher) run(ctx context.Context) {
	w.wg.Go(func() { w.pool(ctx) })
	t := time.NewTicker(cohortWindow)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			w.wg.Wait()
			return
		case <-t.C:
			w.mu.Lock()
			ids := w.fresh
			w.fresh = nil
			w.mu.Unlock()
			if len(ids) > 0 {
				w.wg.Go(func() { w.cohort(ctx, ids) })
			}
		}
	}
}

// cohort watches one group of new tasks for up to cohortPoll, then hands the survivors to
// the pool.
func (w *watcher) cohort(ctx context.Context, ids []string) {
	deadline := time.Now().Add(cohortPoll)
	for len(ids) > 0 && ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		ids = w.poll(ctx, ids, left)
	}
	if len(ids) == 0 || ctx.Err() != nil {
		return
	}
	w.mu.Lock()
	w.old = append(w.old, ids...)
	w.mu.Unlock()
	select {
	case w.oldAdded <- struct{}{}:
	default:
	}
}

// pool watches the older tasks with one long poll, restarted when more join (at most
// every poolRestart).
func (w *watcher) pool(ctx context.Context) {
	for ctx.Err() == nil {
		w.mu.Lock()
		ids := w.old
		w.old = nil
		w.mu.Unlock()
		if len(ids) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-w.oldAdded:
				continue
			}
		}
		pollCtx, cancel := context.WithCancel(ctx)
		restarted := make(chan struct{})
		go func() { // joined below through restarted
			defer close(restarted)
			w.cancelOnJoin(pollCtx, cancel, time.Now())
		}()
		left := w.poll(pollCtx, ids, poolPoll)
		cancel()
		<-restarted
		w.mu.Lock()
		w.old = append(left, w.old...)
		w.mu.Unlock()
	}
}

// cancelOnJoin cancels the pool's poll when more tasks join it, but not before it has run
// for poolRestart, so that a steady trickle of joiners cannot keep it re-asking.
func (w *watcher) cancelOnJoin(pollCtx context.Context, cancel context.CancelFunc, started time.Time) {
	select {
	case <-w.oldAdded:
	case <-pollCtx.Done():
		return
	}
	t := time.NewTimer(max(poolRestart-time.Since(started), 0))
	defer t.Stop()
	select {
	case <-t.C:
		cancel()
	case <-pollCtx.Done():
	}
}

// poll asks once about ids and reports those that finished; it returns the others.
func (w *watcher) poll(ctx context.Context, ids []string, timeout time.Duration) []string {
	res, err := w.client.WaitAny(ctx, ids, timeout)
	if err != nil {
		if ctx.Err() == nil {
			w.onError(err)
			time.Sleep(retryDelay)
		}
		return ids
	}
	gone := map[string]string{}
	for _, f := range res.Finished {
		gone[f.TaskUUID] = f.Status
	}
	for _, id := range res.NotFound {
		gone[id] = StatusMissing
	}
	if len(gone) == 0 {
		return ids
	}
	left := ids[:0:0]
	for _, id := range ids {
		status, ok := gone[id]
		if !ok {
			left = append(left, id)
			continue
		}
		w.mu.Lock()
		f := w.flights[id]
		delete(w.flights, id)
		w.mu.Unlock()
		if f != nil {
			w.onFinish(id, f, status)
			close(f.done)
		}
	}
	return left
}

// StatusMissing is the final state recorded for a created task the orchestrator no longer
// knows: it was lost.
const StatusMissing = "missing"
