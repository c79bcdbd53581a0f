package worker

import (
	"cmp"
	"context"
	"sync"
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
	// consumerDelay slows the completion consumer (Config.FFICompletionDelay; 0 normally).
	consumerDelay time.Duration
	// slots holds one token per foreign executor. A step takes one before it is
	// dispatched and gives it back once its handler has run, so the claimers never take
	// more steps than the executors can start: a claimed step does not wait out its
	// lease in a queue.
	slots chan struct{}
	// submitting bounds the completions being submitted at once.
	submitting chan struct{}
	wg         sync.WaitGroup
}

func newFFIPath(w *Worker) *ffiPath {
	in := w.in
	capacity := cmp.Or(w.cfg.FFIChannelCapacity, FFIChannelCapacity)
	return &ffiPath{
		w:             w,
		dispatchCh:    resilience.NewChannel[*stepclaim.Step]("worker_ffi_dispatch", "worker", capacity, in),
		completeCh:    resilience.NewChannel[*outcome]("worker_ffi_completion", "worker", capacity, in),
		breaker:       resilience.NewBreaker(resilience.FFICompletion, w.cfg.FFIBreaker, w.log),
		slow:          cmp.Or(w.cfg.SlowSendThreshold, SlowSendThresholdDefault),
		overhead:      w.cfg.FFIOverhead,
		consumerDelay: w.cfg.FFICompletionDelay,
	}
}

// start runs the foreign executors and the completion processor. When ctx ends (a
// graceful stop), the executors finish the steps already dispatched and the processor
// submits every completion already made; only hard ending (the worker's hard stop) cuts
// them short.
func (f *ffiPath) start(ctx, hard context.Context, executors int) {
	f.slots = make(chan struct{}, max(executors, 1))
	f.submitting = make(chan struct{}, max(executors, 1))
	var running sync.WaitGroup
	for range max(executors, 1) {
		running.Add(1)
		f.wg.Go(func() {
			defer running.Done()
			f.executor(ctx, hard)
		})
	}
	executorsDone := make(chan struct{})
	f.wg.Go(func() { running.Wait(); close(executorsDone) })
	f.wg.Go(func() { f.completions(hard, executorsDone) })
}

// dispatch hands a claimed step to the foreign side once an executor is free. It blocks
// the claimer that calls it, which is the backpressure that keeps claims in step with
// the executors.
func (f *ffiPath) dispatch(hard context.Context, s *stepclaim.Step) {
	select {
	case f.slots <- struct{}{}:
	case <-hard.Done():
		return // stopping: the step goes back after its lease
	}
	if !f.dispatchCh.Send(hard, s) {
		<-f.slots
	}
}

func (f *ffiPath) executor(ctx, hard context.Context) {
	for {
		select {
		case s := <-f.dispatchCh.Receive():
			f.execute(hard, s)
		case <-ctx.Done():
			// Stopping: run what was already dispatched, then leave.
			for {
				select {
				case s := <-f.dispatchCh.Receive():
					f.execute(hard, s)
				default:
					return
				}
			}
		}
	}
}

// execute runs one dispatched step on the foreign side and hands its outcome back.
func (f *ffiPath) execute(hard context.Context, s *stepclaim.Step) {
	if f.overhead > 0 {
		select {
		case <-time.After(f.overhead):
		case <-hard.Done():
			<-f.slots
			return
		}
	}
	o := f.w.run(hard, s)
	<-f.slots // the handler has run: another step may be claimed
	if o != nil {
		f.complete(o)
	}
}

// complete sends an outcome back through the completion channel. The ffi_completion
// breaker judges the send by its latency: one at or above the slow threshold counts in
// ffi_completion_slow_sends_total and as a breaker failure even when it succeeded. While
// the breaker is open the completion is refused; the step stays claimed, and its lease
// running out hands it to another attempt, so nothing is lost.
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
	sent := f.send(ctx, o)
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

// send is the completion send the breaker times. The slow_completion_ms fault (o.stall)
// is the foreign side stalling while it hands the completion back, so it is part of the
// send: a stall past the send timeout means the completion is not sent.
func (f *ffiPath) send(ctx context.Context, o *outcome) bool {
	if o.stall > 0 {
		t := time.NewTimer(o.stall)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
	}
	return f.completeCh.Send(ctx, o)
}

func (f *ffiPath) completions(hard context.Context, executorsDone <-chan struct{}) {
	consume := func(o *outcome) bool {
		if d := f.consumerDelay; d > 0 {
			select {
			case <-time.After(d):
			case <-hard.Done():
				o.span.End()
				return false
			}
		}
		// Submits run side by side, up to one per executor, so that a burst of
		// completions shares submit statements (stepclaim.Submitter).
		select {
		case f.submitting <- struct{}{}:
		case <-hard.Done():
			o.span.End()
			return false
		}
		f.wg.Go(func() {
			defer func() { <-f.submitting }()
			f.w.finish(o)
		})
		return true
	}
	for {
		select {
		case o := <-f.completeCh.Receive():
			if !consume(o) {
				return
			}
		case <-executorsDone:
			// No more completions can come: submit what is left, then leave.
			for {
				select {
				case o := <-f.completeCh.Receive():
					if !consume(o) {
						return
					}
				default:
					return
				}
			}
		case <-hard.Done():
			return
		}
	}
}
