package worker

import (
	"cmp"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasker-sim/tasker-sim/pkg/resilience"
	"github.com/tasker-sim/tasker-sim/pkg/stepclaim"
)

// Handler types. "rust" runs handlers in the worker's own goroutines; the others simulate
// a foreign-language worker embedding the core through FFI, as tasker-core's Ruby, Python
// and TypeScript workers do: steps go out through a dispatch channel, run with a
// per-call overhead, and come back through a completion channel guarded by the
// ffi_completion breaker. The simulation is declared in every result's handler_type.
const (
	HandlerTypeRuby       = "ruby"
	HandlerTypePython     = "python"
	HandlerTypeTypeScript = "typescript"
)

// FFI defaults, from tasker-core.
const (
	SlowSendThresholdDefault = 100 * time.Millisecond
	FFIChannelCapacity       = 1000
	completionSendTimeout    = 10 * time.Second
)

// ffiPath is the FFI-style dispatch: dispatch channel → foreign executors → completion
// channel → completion processor, which submits.
type ffiPath struct {
	w          *Worker
	dispatchCh *resilience.Channel[*stepclaim.Step]
	completeCh *resilience.Channel[*outcome]
	breaker    *resilience.Breaker
	slow       time.Duration
	overhead   time.Duration
	// consumerDelay slows the completion consumer, in nanoseconds (a fault; 0 normally).
	consumerDelay atomic.Int64
	// slots holds one token per foreign executor. A step takes one before it is
	// dispatched and gives it back once its handler has run, so the claimers never take
	// more steps than the executors can start: a claimed step does not wait out its
	// lease in a queue.
	slots chan struct{}
	wg    sync.WaitGroup
}

func newFFIPath(w *Worker) *ffiPath {
	in := w.in
	capacity := cmp.Or(w.cfg.FFIChannelCapacity, FFIChannelCapacity)
	return &ffiPath{
		w:          w,
		dispatchCh: resilience.NewChannel[*stepclaim.Step]("worker_ffi_dispatch", "worker", capacity, in),
		completeCh: resilience.NewChannel[*outcome]("worker_ffi_completion", "worker", capacity, in),
		breaker:    resilience.NewBreaker(resilience.FFICompletion, w.cfg.FFIBreaker, w.log),
		slow:       w.cfg.SlowSendThreshold,
		overhead:   w.cfg.FFIOverhead,
	}
}

// start runs the foreign executors and the completion processor until ctx ends.
func (f *ffiPath) start(ctx context.Context, executors int) {
	f.slots = make(chan struct{}, max(executors, 1))
	for range max(executors, 1) {
		f.wg.Go(func() { f.executor(ctx) })
	}
	f.wg.Go(func() { f.completions(ctx) })
}

// dispatch hands a claimed step to the foreign side once an executor is free. It blocks
// the claimer that calls it, which is the backpressure that keeps claims in step with
// the executors.
func (f *ffiPath) dispatch(s *stepclaim.Step) {
	select {
	case f.slots <- struct{}{}:
	case <-f.w.hardCtx.Done():
		return // stopping: the step goes back after its lease
	}
	if !f.dispatchCh.Send(f.w.hardCtx, s) {
		<-f.slots
	}
}

func (f *ffiPath) executor(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-f.dispatchCh.Receive():
			if f.overhead > 0 {
				select {
				case <-time.After(f.overhead):
				case <-ctx.Done():
					return
				}
			}
			o := f.w.run(s)
			<-f.slots // the handler has run: another step may be claimed
			if o != nil {
				f.complete(o)
			}
		}
	}
}

// complete sends an outcome back through the completion channel. The ffi_completion
// breaker judges the send by its latency: one at or above the slow threshold counts as a
// failure even when it succeeded. While the breaker is open the completion is refused;
// the step stays claimed, and its lease running out hands it to another attempt, so
// nothing is lost.
func (f *ffiPath) complete(o *outcome) {
	in := f.w.in
	done, err := f.breaker.Allow()
	if err != nil {
		in.FFICircuitRejection(o.ctx)
		o.log.Warn("completion refused: the ffi_completion breaker is open; the step will be retried after its lease")
		o.span.End()
		return
	}
	ctx, cancel := context.WithTimeout(o.ctx, completionSendTimeout)
	defer cancel()
	start := time.Now()
	sent := f.completeCh.Send(ctx, o)
	took := time.Since(start)
	slow := took >= f.slow
	if slow {
		in.FFISlowSend(o.ctx)
	}
	done(sent && !slow)
	if !sent {
		o.log.Warn("completion not sent within the send timeout; the step will be retried after its lease")
		o.span.End()
	}
}

func (f *ffiPath) completions(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-f.completeCh.Receive():
			if d := time.Duration(f.consumerDelay.Load()); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
			f.w.finish(o)
		}
	}
}
