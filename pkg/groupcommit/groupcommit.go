// Package groupcommit shares one database transaction among concurrent callers.
//
// A caller that finds no batch in flight runs its item at once, alone, so a lone request
// never waits for a timer. Callers that arrive while a batch is in flight queue up and go
// together in the next one: under load, many requests share one round trip and one
// commit. When a batch fails, each of its items is run again alone, so one bad item
// cannot fail the others.
package groupcommit

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Run executes one batch. It returns a result per item, in order, or an error for the
// whole batch (nothing of it committed).
type Run[T, R any] func(ctx context.Context, batch []T) ([]R, error)

// Group batches calls to one Run. The zero value is not usable; use New.
type Group[T, R any] struct {
	run    Run[T, R]
	max    int
	linger time.Duration

	mu       sync.Mutex
	pending  []*request[T, R]
	flushing bool
}

type request[T, R any] struct {
	item T
	done chan response[R]
}

type response[R any] struct {
	result R
	err    error
}

// New returns a Group whose batches hold at most max items. linger is how long a batch
// that already has company waits for more before it goes; 0 sends it at once.
func New[T, R any](run Run[T, R], max int, linger time.Duration) *Group[T, R] {
	if max < 1 {
		max = 1
	}
	return &Group[T, R]{run: run, max: max, linger: linger}
}

// Do runs item in the next batch and returns its result once that batch has finished.
// The batch runs without ctx's cancellation, since other callers' items ride on it; a
// caller whose ctx ends still waits for its batch, so its item's outcome is never unknown.
func (g *Group[T, R]) Do(ctx context.Context, item T) (R, error) {
	req := &request[T, R]{item: item, done: make(chan response[R], 1)}
	g.mu.Lock()
	g.pending = append(g.pending, req)
	lead := !g.flushing
	g.flushing = true
	g.mu.Unlock()
	if lead {
		g.flush(context.WithoutCancel(ctx))
	}
	r := <-req.done
	return r.result, r.err
}

// flush runs the pending items, a batch at a time, until none is left.
func (g *Group[T, R]) flush(ctx context.Context) {
	for {
		g.mu.Lock()
		if waiting := len(g.pending); waiting > 1 && waiting < g.max && g.linger > 0 {
			// Others are calling too: let the batch fill a moment.
			g.mu.Unlock()
			time.Sleep(g.linger)
			g.mu.Lock()
		}
		n := min(len(g.pending), g.max)
		if n == 0 {
			g.flushing = false
			g.mu.Unlock()
			return
		}
		batch := g.pending[:n:n]
		g.pending = g.pending[n:]
		g.mu.Unlock()
		g.send(ctx, batch)
	}
}

// send runs one batch and answers each of its callers.
func (g *Group[T, R]) send(ctx context.Context, batch []*request[T, R]) {
	items := make([]T, len(batch))
	for i, r := range batch {
		items[i] = r.item
	}
	results, err := g.run(ctx, items)
	if err != nil && len(batch) > 1 {
		for _, r := range batch {
			g.send(ctx, []*request[T, R]{r})
		}
		return
	}
	if err == nil && len(results) != len(batch) {
		// A Run that broke its contract: its batch committed, so it is not run again.
		err = fmt.Errorf("groupcommit: a batch of %d items returned %d results", len(batch), len(results))
	}
	for i, r := range batch {
		if err != nil {
			r.done <- response[R]{err: err}
			continue
		}
		r.done <- response[R]{result: results[i]}
	}
}
