// Package stepclaim is how a worker takes steps: it hears about queued steps from
// LISTEN/NOTIFY (claim method "event") and from a fallback poll (claim method "poll"),
// both through messaging.Intake, claims them in batches (one statement claims every
// message waiting when an execution slot is free), and submits results in batches by
// group commit (Submitter).
//
// The claim is the exclusion point. Archiving the queue message succeeds for exactly one
// caller, and the compare-and-set enqueued → in_progress succeeds only for a step that
// is still enqueued, so a duplicate delivery changes nothing, in a batch as alone. The
// claim also takes a lease (the visibility timeout): when a worker dies mid-step its lease
// runs out, and orchestration hands the step to another worker.
package stepclaim

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	pgmq "github.com/craigpastro/pgmq-go"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/tasker-sim/tasker-sim/pkg/faults"
	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// Claim methods, as the claimed_total metric labels them.
const (
	MethodEvent = messaging.MethodEvent
	MethodPoll  = messaging.MethodPoll
)

// Defaults for Config.
const (
	PollIntervalDefault      = messaging.IntakePollIntervalDefault
	VisibilityTimeoutDefault = 30 * time.Second
	ConcurrencyDefault       = 10
	PollBatchDefault         = messaging.IntakePollBatchDefault
	CandidateCapacityDefault = 1000
	ClaimBatchDefault        = 32
)

// Outcome is what a claim attempt found.
type Outcome string

// Claim outcomes.
const (
	// Claimed: the step is ours; run it.
	Claimed Outcome = "claimed"
	// MessageGone: another claimer archived the message first; nothing changed.
	MessageGone Outcome = "message_gone"
	// NotClaimable: the message is consumed, but the step was not enqueued (a duplicate
	// delivery, or a cancelled task); nothing else changed.
	NotClaimable Outcome = "not_claimable"
	// UnknownStep: the message is consumed, but names no step at all: poison.
	UnknownStep Outcome = "unknown_step"
)

// Step is a claimed step with everything its handler needs.
type Step struct {
	Queue         string
	MsgID         int64
	Method        string
	TaskUUID      uuid.UUID
	StepUUID      uuid.UUID
	StepName      string
	Attempt       int
	MaxAttempts   int
	Retryable     bool
	TaskName      string
	Namespace     string
	Version       string
	Context       json.RawMessage
	CorrelationID uuid.UUID
	Dependencies  map[string]json.RawMessage
	// LeaseUntil is when orchestration may take the step back.
	LeaseUntil time.Time
	// Trace is the parent of the step's execution span: the span that enqueued the step
	// (from its message's headers), or the claim span when the message had none. The
	// Claimer sets it; Claim alone leaves it invalid.
	Trace trace.SpanContext
}

// Claim archives the message and claims its step, in one transaction (one statement).
// The trace context of ctx's span becomes the step's trace_context, so a recovery of the
// step can link to this attempt. ClaimBatch does the same for many messages at once.
func Claim(ctx context.Context, db lifecycle.DB, queue string, msgID int64, stepUUID uuid.UUID,
	workerID string, lease time.Duration, method string) (*Step, Outcome, error) {
	res, err := ClaimBatch(ctx, db, queue, workerID, lease, []lifecycle.ClaimMessage{
		{MsgID: msgID, Step: stepUUID, Method: method, Trace: messaging.Headers(ctx)}})
	if err != nil {
		return nil, "", err
	}
	return res[0].Step, res[0].Outcome, nil
}

// ClaimResult is what a batch claim found for one message.
type ClaimResult struct {
	MsgID   int64
	Outcome Outcome
	// Step is set when Outcome is Claimed.
	Step *Step
}

// ClaimBatch archives the messages of one queue and claims their steps, in one
// statement: one result per message, in order. Each message's Trace becomes its step's
// trace_context.
func ClaimBatch(ctx context.Context, db lifecycle.DB, queue, workerID string, lease time.Duration,
	msgs []lifecycle.ClaimMessage) ([]ClaimResult, error) {
	leaseUntil := time.Now().Add(lease)
	rows, err := lifecycle.ClaimSteps(ctx, db, queue, workerID, lease, msgs)
	if err != nil {
		return nil, err
	}
	if len(rows) != len(msgs) {
		return nil, fmt.Errorf("claim from %s: %d results for %d messages", queue, len(rows), len(msgs))
	}
	out := make([]ClaimResult, len(rows))
	for i, r := range rows {
		out[i] = ClaimResult{MsgID: r.MsgID, Outcome: Outcome(r.Outcome)}
		if out[i].Outcome != Claimed {
			continue
		}
		s := &Step{Queue: queue, MsgID: r.MsgID, Method: msgs[i].Method, TaskUUID: r.Task, StepUUID: r.Step,
			StepName: r.StepName, Attempt: r.Attempt, MaxAttempts: r.MaxAttempts, Retryable: r.Retryable,
			TaskName: r.TaskName, Namespace: r.Namespace, Version: r.Version, Context: r.Context,
			CorrelationID: r.CorrelationID, LeaseUntil: leaseUntil}
		if err := json.Unmarshal(r.DependencyResults, &s.Dependencies); err != nil {
			return nil, fmt.Errorf("claim step %s: dependency results: %w", r.Step, err)
		}
		out[i].Step = s
	}
	return out, nil
}

// ErrLeaseLost means the worker no longer holds the step's attempt (so its result,
// checkpoint or lease renewal was not stored): the lease ran out and orchestration gave
// the step to another attempt, or the task was cancelled.
var ErrLeaseLost = errors.New("step lease lost")

// Submit stores a claimed step's result, moves the step to enqueued_for_orchestration (or
// enqueued_as_error_for_orchestration) and tells orchestration, in one transaction. The
// completion message's headers carry the trace context of ctx's span, which also becomes
// the step's trace_context: orchestration's span for the result continues that trace, and
// a child step enqueued by another parent's result links to it. A Submitter does the same
// for many results at once.
func Submit(ctx context.Context, db lifecycle.DB, s *Step, workerID string, success bool, results []byte) (int64, error) {
	sub, err := submission(s, success, results, messaging.Headers(ctx))
	if err != nil {
		return 0, err
	}
	ids, err := lifecycle.SubmitResults(ctx, db, workerID, []lifecycle.Submission{sub})
	if err != nil {
		return 0, fmt.Errorf("submit result of step %s: %w", s.StepUUID, err)
	}
	if ids[0] == 0 {
		return 0, fmt.Errorf("submit result of step %s attempt %d: %w", s.StepUUID, s.Attempt, ErrLeaseLost)
	}
	return ids[0], nil
}

func submission(s *Step, success bool, results, headers []byte) (lifecycle.Submission, error) {
	msg, err := json.Marshal(messaging.StepMessage{TaskUUID: s.TaskUUID, StepUUID: s.StepUUID, CorrelationID: s.CorrelationID})
	if err != nil {
		return lifecycle.Submission{}, err
	}
	return lifecycle.Submission{Step: s.StepUUID, Attempt: s.Attempt, Success: success, Results: results,
		Message: msg, Headers: headers}, nil
}

// Config configures a Claimer.
type Config struct {
	// Pool is the database; required.
	Pool *pgxpool.Pool
	// WorkerID identifies this worker in claims and audit rows; required.
	WorkerID string
	// Namespaces whose queues to serve; required.
	Namespaces []string
	// Execute runs a claimed step's handler with the work context Run was given;
	// required. It is called on a goroutine of its own, at most Concurrency at once. What
	// it returns, when not nil, completes the step (persists its result) after the
	// handler's permit is released, so the next handler starts while the result is being
	// written, as a handler dispatch service that hands results to a completion channel
	// would.
	Execute func(ctx context.Context, s *Step) (complete func())
	// PollInterval paces the fallback poll. Default 1 s.
	PollInterval time.Duration
	// VisibilityTimeout is the claim lease and the poll's visibility timeout. Default 30 s.
	VisibilityTimeout time.Duration
	// Concurrency is how many steps run at once. Default 10.
	Concurrency int
	// PollBatch is how many messages one poll reads per queue. Default 20.
	PollBatch int
	// CandidateCapacity bounds the channel of messages waiting to be claimed. Default 1000.
	CandidateCapacity int
	// ClaimBatch bounds how many messages one claim statement takes. Default 32.
	ClaimBatch int
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Instruments record claims and queue traffic. Default: record nothing.
	Instruments *telemetry.Instruments
	// Tracer makes the worker.step_claim spans. Default: a no-op tracer, which still
	// passes the messages' trace context on.
	Tracer trace.Tracer
	// Breaker, when set, guards the fallback reads (the pgmq breaker).
	Breaker *resilience.Breaker
	// Faults, when set, are the process's faults. Two act here: abandon_rate drops a step
	// message before its claim, as a worker that crashed after reading it would (it stays
	// hidden for VisibilityTimeout, then a poll reads it again and its claim counts a
	// redelivery, tasker_queue_visibility_timeouts_total); queue_error_rate refuses
	// fallback reads.
	Faults *faults.Switch
}

// Claimer feeds claimed steps to Execute until its context ends.
type Claimer struct {
	cfg        Config
	candidates *resilience.Channel[messaging.Delivery]
	log        *slog.Logger
	intake     *messaging.Intake
}

// CandidateChannel names the worker's bounded queue of messages waiting to be claimed.
const CandidateChannel = "worker_step_candidates"

// Candidates is the bounded channel of messages waiting to be claimed, for the gauges.
func (c *Claimer) Candidates() *resilience.Channel[messaging.Delivery] { return c.candidates }

// New checks cfg and returns a Claimer.
func New(cfg Config) (*Claimer, error) {
	switch {
	case cfg.Pool == nil:
		return nil, errors.New("stepclaim: Pool is required")
	case cfg.WorkerID == "":
		return nil, errors.New("stepclaim: WorkerID is required")
	case len(cfg.Namespaces) == 0:
		return nil, errors.New("stepclaim: Namespaces must list at least one namespace")
	case cfg.Execute == nil:
		return nil, errors.New("stepclaim: Execute is required")
	}
	cfg.VisibilityTimeout = cmp.Or(cfg.VisibilityTimeout, VisibilityTimeoutDefault)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, ConcurrencyDefault)
	cfg.CandidateCapacity = cmp.Or(cfg.CandidateCapacity, CandidateCapacityDefault)
	cfg.ClaimBatch = cmp.Or(cfg.ClaimBatch, ClaimBatchDefault)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Instruments == nil {
		cfg.Instruments = telemetry.Noop()
	}
	if cfg.Tracer == nil {
		cfg.Tracer = tracenoop.NewTracerProvider().Tracer(telemetry.ScopeName)
	}
	c := &Claimer{cfg: cfg, log: cfg.Logger,
		candidates: resilience.NewChannel[messaging.Delivery](CandidateChannel, "worker", cfg.CandidateCapacity, cfg.Instruments)}
	c.intake = &messaging.Intake{Pool: cfg.Pool, Out: c.candidates, Breaker: cfg.Breaker,
		VisibilityTimeout: cfg.VisibilityTimeout, PollInterval: cfg.PollInterval, PollBatch: cfg.PollBatch,
		Logger: cfg.Logger, Instruments: cfg.Instruments,
		Reader: &messaging.FallbackReader{DB: cfg.Pool, Instruments: cfg.Instruments, Faults: cfg.Faults}}
	for _, ns := range cfg.Namespaces {
		c.intake.Queues = append(c.intake.Queues, workflow.WorkerQueue(ns))
		c.intake.Channels = append(c.intake.Channels, messaging.Channel(ns))
	}
	if err := c.intake.Check(); err != nil {
		return nil, fmt.Errorf("stepclaim: %w", err)
	}
	return c, nil
}

// Run listens, polls and claims until ctx ends, then waits for running steps to finish.
// Execute gets work, not ctx, so that a step running when ctx ends (a graceful stop) can
// finish; ending work (a hard stop) cancels the running steps.
func (c *Claimer) Run(ctx, work context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { c.intake.Run(ctx) })
	wg.Go(func() { c.claimLoop(ctx, work) })
	wg.Wait()
}

// Flood pushes n empty candidates through the intake channel, in the background, to
// exercise backpressure (a fault to inject). Each is refused as a poison message that was
// never in any queue, so nothing else changes.
func (c *Claimer) Flood(n int) { c.intake.Flood(n) }

// claimLoop claims candidates in batches and runs each claimed step on a goroutine of
// its own, at most Concurrency at once. A batch is whatever is waiting when a slot is
// free, up to ClaimBatch: one candidate alone goes at once, and a burst shares one claim
// statement. A slot is a step claimed, running or completing: there are Concurrency +
// ClaimBatch of them, so the next batch is claimed while the handlers are busy (as a
// handler dispatch buffer would hold it), a claimed step waits at most for the steps
// ahead of it, and results wait for their write without holding a handler's permit.
// When ctx ends it waits for the running steps.
func (c *Claimer) claimLoop(ctx, work context.Context) {
	var running sync.WaitGroup
	defer running.Wait()
	slots := make(chan struct{}, c.cfg.Concurrency+c.cfg.ClaimBatch)
	handlers := make(chan struct{}, c.cfg.Concurrency)
	for {
		batch, ok := c.nextBatch(ctx, slots)
		if !ok {
			return
		}
		for _, step := range c.claimBatch(ctx, batch, slots) {
			running.Go(func() {
				defer func() { <-slots }()
				if !c.awaitHandler(work, handlers, step) {
					return
				}
				complete := c.cfg.Execute(work, step)
				<-handlers
				if complete != nil {
					complete()
				}
			})
		}
	}
}

// awaitHandler waits for a handler's permit for a claimed step. While the step waits, its
// lease is renewed each time half of it has gone, so orchestration does not take back a
// step that is only queued here; and a step that waited long enough to use a tenth of its
// lease has it renewed once more as it starts, so its handler gets (nearly) the whole
// lease, as one started at its claim does. It reports false, leaving the step to lease
// recovery, when the claim was lost or the worker is stopping hard.
func (c *Claimer) awaitHandler(work context.Context, handlers chan struct{}, step *Step) bool {
	select {
	case handlers <- struct{}{}:
		return true // a handler is free: the usual case, no timer
	default:
	}
	lease := c.cfg.VisibilityTimeout
	for {
		renew := time.NewTimer(time.Until(step.LeaseUntil) - lease/2)
		select {
		case handlers <- struct{}{}:
			renew.Stop()
			if time.Until(step.LeaseUntil) < lease*9/10 && !c.renewLease(work, step) {
				<-handlers
				return false
			}
			return true
		case <-work.Done():
			renew.Stop()
			return false
		case <-renew.C:
		}
		if !c.renewLease(work, step) {
			return false
		}
	}
}

// renewLease renews a waiting step's lease; false when the claim is lost (it is logged).
func (c *Claimer) renewLease(ctx context.Context, step *Step) bool {
	renewed := time.Now()
	if err := RenewLease(ctx, c.cfg.Pool, step.StepUUID, step.Attempt, c.cfg.WorkerID, c.cfg.VisibilityTimeout); err != nil {
		c.log.Warn("claimed step left for lease recovery while it waited for a handler", "step_uuid", step.StepUUID,
			"task_uuid", step.TaskUUID, "correlation_id", step.CorrelationID, "error", err)
		return false
	}
	step.LeaseUntil = renewed.Add(c.cfg.VisibilityTimeout)
	return true
}

// nextBatch waits for a free slot and a candidate, then gathers what waits behind it
// (messaging.Gather) up to ClaimBatch and the slots free. Each candidate holds a slot; the
// extra slots are free for sure, since only this loop takes slots.
func (c *Claimer) nextBatch(ctx context.Context, slots chan struct{}) ([]messaging.Delivery, bool) {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	var first messaging.Delivery
	select {
	case first = <-c.candidates.Receive():
	case <-ctx.Done():
		<-slots
		return nil, false
	}
	free := cap(slots) - len(slots)
	batch := messaging.Gather(c.candidates.Receive(), first, min(c.cfg.ClaimBatch, 1+free), messaging.BatchLinger)
	for range batch[1:] {
		slots <- struct{}{}
	}
	return batch, true
}

// pendingClaim is a candidate on its way to a claim: its decoded message and its
// worker.step_claim span.
type pendingClaim struct {
	cand   messaging.Delivery
	msg    messaging.StepMessage
	ctx    context.Context
	span   trace.Span
	parent trace.SpanContext
}

// claimBatch claims a batch's steps, one statement per queue, and returns the claimed
// ones. Every candidate that does not become a running step gives its slot back.
func (c *Claimer) claimBatch(ctx context.Context, batch []messaging.Delivery, slots chan struct{}) []*Step {
	byQueue := map[string][]*pendingClaim{}
	var queues []string
	for _, cand := range batch {
		p := c.prepare(ctx, cand)
		if p == nil {
			<-slots
			continue
		}
		if byQueue[cand.Queue] == nil {
			queues = append(queues, cand.Queue)
		}
		byQueue[cand.Queue] = append(byQueue[cand.Queue], p)
	}
	var claimed []*Step
	for _, q := range queues {
		for _, s := range c.claimQueue(ctx, q, byQueue[q]) {
			if s == nil {
				<-slots
				continue
			}
			claimed = append(claimed, s)
		}
	}
	return claimed
}

// prepare decodes a candidate and opens its claim span. It returns nil for a candidate
// that is not to be claimed: poison, which it archives, or one the abandon_rate fault
// drops.
func (c *Claimer) prepare(ctx context.Context, cand messaging.Delivery) *pendingClaim {
	msg, err := messaging.DecodeStepMessage(cand.Body)
	if err != nil {
		c.archivePoison(ctx, cand, err)
		return nil
	}
	if c.cfg.Faults != nil && c.cfg.Faults.Get().Abandon() {
		c.abandon(ctx, cand, msg)
		return nil
	}
	// The claim span continues the trace of the span that enqueued the step, whose context
	// the message's headers carry (a message without them starts a new trace); the claim
	// records it as the step's trace_context. The execution span gets the same parent, so
	// claim and execution are siblings; without headers it hangs under the claim span.
	pctx := messaging.ContextWithHeaders(ctx, cand.Headers)
	parent := trace.SpanContextFromContext(pctx)
	pctx, span := c.cfg.Tracer.Start(pctx, "worker.step_claim", trace.WithAttributes(
		attribute.String("correlation_id", msg.CorrelationID.String()), attribute.String("task_uuid", msg.TaskUUID.String()),
		attribute.String("step_uuid", msg.StepUUID.String()), attribute.String("queue", cand.Queue),
		attribute.Int64("msg_id", cand.MsgID), attribute.String("claim_method", cand.Method)))
	return &pendingClaim{cand: cand, msg: msg, ctx: pctx, span: span, parent: parent}
}

// archivePoison archives a message that can never be claimed, so it stops coming back.
func (c *Claimer) archivePoison(ctx context.Context, cand messaging.Delivery, cause error) {
	in := c.cfg.Instruments
	archived, err := pgmq.Archive(ctx, c.cfg.Pool, cand.Queue, cand.MsgID)
	if err != nil && ctx.Err() == nil {
		in.QueueError(ctx, cand.Queue, "archive")
		c.log.Error("archive poison message", "queue", cand.Queue, "msg_id", cand.MsgID, "error", err)
	}
	if archived {
		in.MessageReceived(ctx, cand.Queue, cand.Method, cand.ReadCount > 1)
		in.MessagesDeleted(ctx, cand.Queue, telemetry.OpArchivePoison, 1)
		c.log.Warn("archived poison message", "queue", cand.Queue, "msg_id", cand.MsgID, "error", cause)
	}
}

// claimQueue claims the steps of one queue's candidates in one statement, records each
// outcome and ends each claim span. It returns, per candidate, its step or nil.
func (c *Claimer) claimQueue(ctx context.Context, queue string, ps []*pendingClaim) []*Step {
	msgs := make([]lifecycle.ClaimMessage, len(ps))
	for i, p := range ps {
		msgs[i] = lifecycle.ClaimMessage{MsgID: p.cand.MsgID, Step: p.msg.StepUUID, Method: p.cand.Method,
			Trace: messaging.Headers(p.ctx)}
	}
	start := time.Now()
	res, err := ClaimBatch(ctx, c.cfg.Pool, queue, c.cfg.WorkerID, c.cfg.VisibilityTimeout, msgs)
	took := time.Since(start)
	out := make([]*Step, len(ps))
	for i, p := range ps {
		if err != nil {
			c.claimFailed(ctx, p, err)
			continue
		}
		out[i] = c.claimed(ctx, p, res[i], took)
	}
	return out
}

func (c *Claimer) claimFailed(ctx context.Context, p *pendingClaim, err error) {
	defer p.span.End()
	p.span.RecordError(err)
	p.span.SetStatus(codes.Error, "claim failed")
	if ctx.Err() == nil {
		c.cfg.Instruments.StepFailedEarly(ctx, p.msg.CorrelationID.String(), workflow.NamespaceOf(p.cand.Queue), "claim_failed")
		c.log.Error("claim", "correlation_id", p.msg.CorrelationID, "step_uuid", p.msg.StepUUID, "error", err)
	}
}

// claimed records one candidate's claim outcome and returns its step when it is ours.
func (c *Claimer) claimed(ctx context.Context, p *pendingClaim, r ClaimResult, took time.Duration) *Step {
	defer p.span.End()
	in, cand := c.cfg.Instruments, p.cand
	p.span.SetAttributes(attribute.String("outcome", string(r.Outcome)))
	if r.Outcome != MessageGone {
		// This claimer consumed the message.
		in.MessageReceived(ctx, cand.Queue, cand.Method, cand.ReadCount > 1)
		op := "archive"
		if r.Outcome == UnknownStep {
			op = telemetry.OpArchivePoison
			c.log.Warn("archived poison message: no such step", "queue", cand.Queue, "msg_id", cand.MsgID,
				"step_uuid", p.msg.StepUUID)
		}
		in.MessagesDeleted(ctx, cand.Queue, op, 1)
	}
	if r.Outcome != Claimed {
		c.log.Debug("not claimed", "correlation_id", p.msg.CorrelationID, "step_uuid", p.msg.StepUUID,
			"outcome", r.Outcome, "claim_method", cand.Method)
		return nil
	}
	in.StepClaimed(ctx, r.Step.Namespace, cand.Method, took)
	r.Step.Trace = p.parent
	if !p.parent.IsValid() {
		r.Step.Trace = p.span.SpanContext()
	}
	return r.Step
}

// abandon drops a step message without claiming it, as a worker that crashes between
// reading a message and claiming it would. The message must have been read, so that it
// stays hidden for the visibility timeout and then comes back to a poll as a redelivery
// (read_ct above 1): a polled message, or a notified one read by id, already was; one whose
// notification carried the payload is read now. Nothing is counted here: the metric comes
// from the redelivery's claim.
func (c *Claimer) abandon(ctx context.Context, cand messaging.Delivery, msg messaging.StepMessage) {
	if !cand.Read {
		_, ok, err := messaging.ReadByID(ctx, c.cfg.Pool, cand.Queue, cand.MsgID, c.cfg.VisibilityTimeout)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("abandon: read the message", "queue", cand.Queue, "msg_id", cand.MsgID, "error", err)
			}
			return // still visible: a poll takes it
		}
		if !ok {
			return // already read by a poll, or claimed: that candidate carries on
		}
	}
	c.log.Info("abandoned a step message without claiming it (abandon_rate fault); it comes back after the visibility timeout",
		"queue", cand.Queue, "msg_id", cand.MsgID, "step_uuid", msg.StepUUID, "correlation_id", msg.CorrelationID,
		"claim_method", cand.Method, "visibility_timeout", c.cfg.VisibilityTimeout)
}
