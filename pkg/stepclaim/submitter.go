package stepclaim

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
)

// SubmitBatchDefault is how many results one submit statement carries at most.
const SubmitBatchDefault = 64

// Submitter submits step results in batches, by group commit: a result submitted while
// no statement is in flight goes out at once, alone; results submitted while one is in
// flight wait for it and then go out together in the next. A lone result never waits for
// a timer, and a burst shares statements and commits.
type Submitter struct {
	db       lifecycle.DB
	workerID string
	max      int

	mu       sync.Mutex
	pending  []*submitRequest
	flushing bool
}

type submitRequest struct {
	step *Step
	sub  lifecycle.Submission
	done chan submitResponse
}

type submitResponse struct {
	msgID int64
	err   error
}

// NewSubmitter returns a Submitter for workerID's results; max bounds a batch (default
// SubmitBatchDefault).
func NewSubmitter(db lifecycle.DB, workerID string, max int) *Submitter {
	if max <= 0 {
		max = SubmitBatchDefault
	}
	return &Submitter{db: db, workerID: workerID, max: max}
}

// Submit is Submit's batched form: it returns once the statement that carried the result
// has committed, with the completion message's id. The completion message's headers
// carry the trace context of ctx's span.
func (b *Submitter) Submit(ctx context.Context, s *Step, success bool, results []byte) (int64, error) {
	sub, err := submission(s, success, results, messaging.Headers(ctx))
	if err != nil {
		return 0, err
	}
	req := &submitRequest{step: s, sub: sub, done: make(chan submitResponse, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, req)
	lead := !b.flushing
	b.flushing = true
	b.mu.Unlock()
	if lead {
		// This caller found no statement in flight: it sends batches until none is left.
		b.flush(ctx)
	}
	r := <-req.done
	return r.msgID, r.err
}

// flush sends the pending results, a batch at a time, until there are none.
func (b *Submitter) flush(ctx context.Context) {
	for {
		b.mu.Lock()
		if waiting := len(b.pending); waiting > 1 && waiting < b.max {
			// Others are submitting too (the worker is busy): let the batch fill a moment.
			b.mu.Unlock()
			time.Sleep(messaging.BatchLinger)
			b.mu.Lock()
		}
		n := min(len(b.pending), b.max)
		if n == 0 {
			b.flushing = false
			b.mu.Unlock()
			return
		}
		batch := b.pending[:n:n]
		b.pending = b.pending[n:]
		b.mu.Unlock()
		b.send(context.WithoutCancel(ctx), batch)
	}
}

// send runs one batch and answers each of its callers. It runs without the caller's
// cancellation: the other callers' results ride on it.
func (b *Submitter) send(ctx context.Context, batch []*submitRequest) {
	subs := make([]lifecycle.Submission, len(batch))
	for i, r := range batch {
		subs[i] = r.sub
	}
	ids, err := lifecycle.SubmitResults(ctx, b.db, b.workerID, subs)
	if err != nil && len(batch) > 1 {
		// One bad result must not sink the others: send each alone.
		for _, r := range batch {
			b.send(ctx, []*submitRequest{r})
		}
		return
	}
	for i, r := range batch {
		switch {
		case err != nil:
			r.done <- submitResponse{err: fmt.Errorf("submit result of step %s: %w", r.step.StepUUID, err)}
		case ids[i] == 0:
			r.done <- submitResponse{err: fmt.Errorf("submit result of step %s attempt %d: %w",
				r.step.StepUUID, r.step.Attempt, ErrLeaseLost)}
		default:
			r.done <- submitResponse{msgID: ids[i]}
		}
	}
}
