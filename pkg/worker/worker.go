// Package worker is tasker-sim's worker process: it registers its templates, creates its
// namespaces' queues, claims steps through pkg/stepclaim, runs their handlers and submits
// the results.
//
// cmd/worker is a thin main over Run; tests and the harness call Start.
package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/tasker-sim/tasker-sim/internal/contract"
	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/dbwait"
	"github.com/tasker-sim/tasker-sim/pkg/faults"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
	"github.com/tasker-sim/tasker-sim/pkg/stepclaim"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// Defaults for Config.
const (
	BindAddressDefault     = "127.0.0.1:8081"
	ShutdownTimeoutDefault = 10 * time.Second
	MaxConnsDefault        = 20
	// HandlerTypeRust is the native path: handlers run directly in the worker.
	HandlerTypeRust = "rust"
)

// Config configures a worker. Zero fields take the documented defaults.
type Config struct {
	// DatabaseURL is the PostgreSQL URL (TASKER_DATABASE_URL). Required.
	DatabaseURL string
	// DatabaseWait is how long Start waits for the database to answer, retrying with
	// backoff and logging each try, before it gives up (TASKER_DATABASE_WAIT). Default
	// 60 s (dbwait.LimitDefault); a negative value tries once.
	DatabaseWait time.Duration
	// BindAddress is the health listener (TASKER_WORKER_BIND_ADDRESS). Default 127.0.0.1:8081.
	BindAddress string
	// WorkerID names this worker in claims and audit rows. Default: host-pid-random.
	WorkerID string
	// Templates to register and serve. Default: workflow.Embedded().
	Templates []*workflow.Template
	// Registry maps callables to handlers. Default: workflow.DefaultRegistry().
	Registry workflow.Registry
	// SimulationProfiles shape the simulated handlers of callables Registry lacks, by
	// namespace (workflow.LoadSimulationProfiles). Default: the built-in profile.
	SimulationProfiles *workflow.SimulationProfiles
	// Namespaces limits which namespaces this worker serves. Default: every template's.
	Namespaces []string
	// PollInterval, VisibilityTimeout, Concurrency and PollBatch tune step claiming; see
	// stepclaim.Config for their defaults.
	PollInterval      time.Duration
	VisibilityTimeout time.Duration
	Concurrency       int
	PollBatch         int
	// CandidateCapacity bounds the channel of messages waiting to be claimed (default 1000).
	CandidateCapacity int
	// MaxConns caps the database pool. Default 20.
	MaxConns int32
	// SkipMigrate skips running migrations at start.
	SkipMigrate bool
	// PGMQMode picks the pgmq provider for migrations. Default auto.
	PGMQMode migrations.PGMQMode
	// ShutdownTimeout is how long Stop lets running handlers finish before cancelling
	// them; a cancelled step is recovered when its lease runs out. Default 10 s.
	ShutdownTimeout time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Telemetry supplies instruments, tracer and the /metrics handler. Default: disabled.
	Telemetry *telemetry.Providers
	// HandlerType is "rust" (handlers run directly; the default) or "ruby", "python" or
	// "typescript", which route steps through the simulated FFI dispatch and completion
	// channels (see ffi.go).
	HandlerType string
	// FFIOverhead is the simulated per-call cost of crossing into the foreign runtime.
	FFIOverhead time.Duration
	// SlowSendThreshold marks a completion send as slow (a breaker failure). Default 100 ms.
	SlowSendThreshold time.Duration
	// FFICompletionDelay slows the completion consumer, so the completion channel fills
	// and its sends wait (backpressure). It is a setting, not the slow_completion_ms
	// fault, which slows each send itself. Default 0.
	FFICompletionDelay time.Duration
	// FFIChannelCapacity bounds the FFI dispatch and completion channels. Default 1000.
	FFIChannelCapacity int
	// FFIBreaker sets the ffi_completion breaker. Defaults: 5 failures, 30 s, 2 successes.
	FFIBreaker resilience.BreakerConfig
	// PGMQBreaker guards the fallback reads of the worker queues.
	PGMQBreaker resilience.BreakerConfig
	// Faults are injected from the start (TASKER_FAULTS); POST /admin/faults changes them.
	Faults faults.Faults
	// AuthToken, when set (TASKER_AUTH_TOKEN), is the bearer token /admin/faults requires.
	AuthToken string
}

// Worker is a running worker.
type Worker struct {
	cfg       Config
	log       *slog.Logger
	pool      *pgxpool.Pool
	templates map[string]*workflow.Template // by namespace/name/version
	listener  net.Listener
	server    *http.Server
	cancel    context.CancelFunc
	hardStop  context.CancelFunc
	wg        sync.WaitGroup
	stopOnce  sync.Once
	started   time.Time
	in        *telemetry.Instruments
	tracer    trace.Tracer
	claimer   *stepclaim.Claimer
	submitter *stepclaim.Submitter
	gauges    metric.Registration
	ffi       *ffiPath
	queueCB   *resilience.Breaker
	faults    *faults.Switch
	queues    map[string]bool // the worker queues this worker serves
	loops     atomic.Int32    // claim loops running, for /health
	rndMu     sync.Mutex
	rnd       *rand.Rand
}

// Run starts a worker and blocks until ctx is cancelled, then stops it.
func Run(ctx context.Context, cfg Config) error {
	w, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return w.Stop()
}

// Start connects, migrates, registers templates, creates queues and begins claiming.
func Start(ctx context.Context, cfg Config) (*Worker, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pool, err := connect(ctx, c)
	if err != nil {
		return nil, err
	}
	w, err := newWorker(ctx, c, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	w.startLoops(ctx)
	w.log.Info("worker started", "namespaces", c.Namespaces, "bind_address", w.listener.Addr().String(),
		"handler_type", c.HandlerType)
	return w, nil
}

// withDefaults checks cfg and fills in the defaults.
func (cfg Config) withDefaults() (*Config, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("worker config: DatabaseURL (TASKER_DATABASE_URL) is required")
	}
	cfg.BindAddress = cmp.Or(cfg.BindAddress, BindAddressDefault)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, ShutdownTimeoutDefault)
	cfg.MaxConns = cmp.Or(cfg.MaxConns, MaxConnsDefault)
	if cfg.WorkerID == "" {
		host, _ := os.Hostname()
		cfg.WorkerID = fmt.Sprintf("%s-%d-%s", cmp.Or(host, "worker"), os.Getpid(), uuid.NewString()[:8])
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Telemetry == nil {
		cfg.Telemetry = telemetry.Disabled()
	}
	cfg.HandlerType = cmp.Or(cfg.HandlerType, HandlerTypeRust)
	switch cfg.HandlerType {
	case HandlerTypeRust, HandlerTypeRuby, HandlerTypePython, HandlerTypeTypeScript:
	default:
		return nil, fmt.Errorf("worker config: handler type %q: must be rust, ruby, python or typescript", cfg.HandlerType)
	}
	cfg.SlowSendThreshold = cmp.Or(cfg.SlowSendThreshold, SlowSendThresholdDefault)
	if err := cfg.Faults.Validate(); err != nil {
		return nil, fmt.Errorf("worker config: faults: %w", err)
	}
	if err := cfg.templatesWithDefaults(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// templatesWithDefaults fills in the templates (skipping, with a warning, those with step
// types tasker-sim cannot run yet), the registry and the namespaces, and
// checks that every namespace served has a template and that every callable has a Go
// handler or a valid simulation profile.
func (cfg *Config) templatesWithDefaults() error {
	if cfg.Templates == nil {
		ts, err := workflow.Embedded()
		if err != nil {
			return err
		}
		cfg.Templates = ts
	}
	// A template with steps tasker-sim cannot run yet (decision, batch) is skipped, not fatal.
	cfg.Templates = slices.DeleteFunc(slices.Clone(cfg.Templates), func(t *workflow.Template) bool {
		err := t.Unsupported()
		if err != nil {
			cfg.Logger.Warn("template skipped", "template", t.Key(), "file", t.Source, "reason", err.Error())
		}
		return err != nil
	})
	if cfg.Registry == nil {
		cfg.Registry = workflow.DefaultRegistry()
	}
	// A callable without a Go handler runs a simulated one; its profile must be valid now.
	reg, simulated, err := cfg.Registry.Resolve(cfg.Templates, cfg.SimulationProfiles)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	cfg.Registry = reg
	if len(simulated) > 0 {
		cfg.Logger.Info("simulated handlers stand in for callables without a Go handler", "callables", simulated)
	}
	var all []string
	for _, t := range cfg.Templates {
		if !slices.Contains(all, t.NamespaceName) {
			all = append(all, t.NamespaceName)
		}
	}
	if len(cfg.Namespaces) == 0 {
		cfg.Namespaces = all
	}
	for _, ns := range cfg.Namespaces {
		if !slices.Contains(all, ns) {
			return fmt.Errorf("worker config: namespace %q has no template (known: %v)", ns, all)
		}
	}
	return nil
}

// connect opens the pool, with the database metrics' tracer, and waits for a database
// that is still starting.
func connect(ctx context.Context, cfg *Config) (*pgxpool.Pool, error) {
	pool, err := dbwait.Connect(ctx, cfg.DatabaseURL, telemetry.PoolConfig(cfg.Telemetry.Instruments, "worker", cfg.MaxConns), dbwait.Options{Limit: cfg.DatabaseWait, Logger: cfg.Logger.With("component", "worker", "worker_id", cfg.WorkerID),
		Hint: dbwait.WaitHint})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return pool, nil
}

// newWorker builds a worker on pool: it migrates, registers the templates, creates the
// queues, and sets up the claimer, the submitter, the breakers and the health listener.
// Nothing runs yet.
func newWorker(ctx context.Context, cfg *Config, pool *pgxpool.Pool) (*Worker, error) {
	w := &Worker{cfg: *cfg, log: cfg.Logger.With("component", "worker", "worker_id", cfg.WorkerID),
		pool: pool, templates: map[string]*workflow.Template{}, started: time.Now(), in: cfg.Telemetry.Instruments,
		tracer: cfg.Telemetry.Tracer, queues: map[string]bool{}}
	for _, t := range cfg.Templates {
		w.templates[t.Key()] = t
	}
	for _, ns := range cfg.Namespaces {
		w.queues[workflow.WorkerQueue(ns)] = true
	}
	w.queueCB = resilience.NewBreaker(resilience.PGMQ, cfg.PGMQBreaker, w.log)
	w.submitter = stepclaim.NewSubmitter(pool, cfg.WorkerID, 0)
	w.rnd = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed))
	if err := w.checkProcessFaults(cfg.Faults); err != nil {
		return nil, fmt.Errorf("worker config: faults: %w", err)
	}
	if cfg.HandlerType != HandlerTypeRust {
		w.ffi = newFFIPath(w)
	}
	if err := w.prepare(ctx); err != nil {
		return nil, err
	}
	w.faults = faults.NewCheckedSwitch(cfg.Faults, w.checkProcessFaults, w.applyProcessFaults)
	claimer, err := stepclaim.New(stepclaim.Config{
		Pool: pool, WorkerID: cfg.WorkerID, Namespaces: cfg.Namespaces, Execute: w.execute,
		PollInterval: cfg.PollInterval, VisibilityTimeout: cfg.VisibilityTimeout,
		Concurrency: cfg.Concurrency, PollBatch: cfg.PollBatch, CandidateCapacity: cfg.CandidateCapacity,
		Logger: w.log, Instruments: w.in, Tracer: w.tracer, Breaker: w.queueCB, Faults: w.faults,
	})
	if err != nil {
		return nil, err
	}
	w.claimer = claimer
	var lc net.ListenConfig
	if w.listener, err = lc.Listen(ctx, "tcp", cfg.BindAddress); err != nil {
		return nil, fmt.Errorf("worker: listen on %s (TASKER_WORKER_BIND_ADDRESS): %w", cfg.BindAddress, err)
	}
	if w.gauges, err = w.in.Observe(w.observeGauges); err != nil {
		_ = w.listener.Close()
		return nil, fmt.Errorf("worker: %w", err)
	}
	w.server = &http.Server{Handler: w.routes(), ReadHeaderTimeout: 10 * time.Second}
	return w, nil
}

// startLoops starts the health server, the claimer and the FFI path, each tracked by
// w.wg. The claimer stops on a graceful stop; handlers keep the hard context, which only
// a stop past ShutdownTimeout cancels. Neither ends with ctx, only with Stop.
func (w *Worker) startLoops(ctx context.Context) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = cancel
	hardCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	w.hardStop = hardStop
	w.wg.Go(func() {
		if err := w.server.Serve(w.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.log.Error("health server stopped", "error", err)
		}
	})
	w.loops.Add(1)
	w.wg.Go(func() {
		defer w.loops.Add(-1)
		w.claimer.Run(runCtx, hardCtx)
	})
	if w.ffi != nil {
		w.ffi.start(runCtx, hardCtx, cmp.Or(w.cfg.Concurrency, stepclaim.ConcurrencyDefault))
		w.wg.Go(func() { w.ffi.wg.Wait() })
	}
	w.applyProcessFaults(w.cfg.Faults)
}

func (w *Worker) prepare(ctx context.Context) error {
	if !w.cfg.SkipMigrate {
		if _, err := migrations.Migrate(ctx, w.pool, &migrations.Config{PGMQ: w.cfg.PGMQMode}); err != nil {
			return fmt.Errorf("worker: %w", err)
		}
	}
	if err := workflow.Register(ctx, w.pool, w.cfg.Templates); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	for _, ns := range w.cfg.Namespaces {
		if err := messaging.EnsureQueue(ctx, w.pool, workflow.WorkerQueue(ns)); err != nil {
			return fmt.Errorf("worker: namespace %s: %w", ns, err)
		}
	}
	return nil
}

// ID is the worker's id as it appears in claims.
func (w *Worker) ID() string { return w.cfg.WorkerID }

// Addr is the health listener's address.
func (w *Worker) Addr() string { return w.listener.Addr().String() }

// Stop stops claiming, lets running handlers finish for up to ShutdownTimeout (then
// cancels them), and closes the pool. Safe to call more than once.
func (w *Worker) Stop() error {
	var err error
	w.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ShutdownTimeout)
		defer cancel()
		err = w.server.Shutdown(ctx)
		w.cancel()
		done := make(chan struct{})
		go func() { w.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			w.hardStop()
			<-done
		}
		w.hardStop()
		_ = w.gauges.Unregister()
		w.pool.Close()
		w.log.Info("worker stopped")
	})
	return err
}

// stepExecutionResult is what the worker stores in workflow_steps.results.
type stepExecutionResult struct {
	StepUUID string            `json:"step_uuid"`
	Success  bool              `json:"success"`
	Status   string            `json:"status"`
	Result   any               `json:"result"`
	Error    *resultError      `json:"error"`
	Metadata executionMetadata `json:"metadata"`
	// OrchestrationMetadata carries what the handler asks of orchestration: a Retry-After.
	OrchestrationMetadata *orchestrationMetadata `json:"orchestration_metadata"`
}

type orchestrationMetadata struct {
	Headers map[string]string `json:"headers"`
}

type resultError struct {
	Message   string `json:"message"`
	ErrorType string `json:"error_type"`
	ErrorCode string `json:"error_code,omitempty"`
	Retryable bool   `json:"retryable"`
}

type executionMetadata struct {
	ExecutionTimeMS float64   `json:"execution_time_ms"`
	Retryable       bool      `json:"retryable"`
	WorkerID        string    `json:"worker_id"`
	HandlerType     string    `json:"handler_type"`
	Attempt         int       `json:"attempt"`
	StartedAt       time.Time `json:"started_at"`
	CompletedAt     time.Time `json:"completed_at"`
	ErrorType       string    `json:"error_type,omitempty"`
	ErrorCode       string    `json:"error_code,omitempty"`
}

// execute takes one claimed step. The native ("rust") path runs its handler here and
// returns the submit of its result, which the claimer runs once the handler's permit is
// released; the FFI-style path hands the step to the dispatch channel (see ffi.go).
func (w *Worker) execute(hard context.Context, s *stepclaim.Step) (complete func()) {
	if w.ffi != nil {
		w.ffi.dispatch(hard, s)
		return nil
	}
	if o := w.run(hard, s); o != nil {
		return func() { w.finish(o) }
	}
	return nil
}

// outcome is a step whose handler has run and whose result is ready to submit.
type outcome struct {
	ctx     context.Context
	span    trace.Span
	log     *slog.Logger
	step    *stepclaim.Step
	body    []byte
	success bool
	herr    error
	retry   bool
	tookMS  float64
	// stall is how much longer the FFI completion send takes (slow_completion_ms).
	stall time.Duration
}

// run runs a claimed step's handler and builds its result. Handlers get a context that
// survives a graceful stop (so running steps can finish) but not a hard one. It returns
// nil when the step must be left to lease recovery. The execution span continues the
// task's trace under the span that enqueued the step (s.Trace).
func (w *Worker) run(hard context.Context, s *stepclaim.Step) *outcome {
	ctx, span := w.tracer.Start(trace.ContextWithSpanContext(hard, s.Trace), "worker.step_execution", trace.WithAttributes(
		attribute.String("correlation_id", s.CorrelationID.String()), attribute.String("task_uuid", s.TaskUUID.String()),
		attribute.String("step_uuid", s.StepUUID.String()), attribute.String("step_name", s.StepName),
		attribute.String("namespace", s.Namespace), attribute.String("claim_method", s.Method),
		attribute.Int("attempt", s.Attempt)))
	corr := s.CorrelationID.String()
	log := w.log.With("correlation_id", s.CorrelationID, "task_uuid", s.TaskUUID, "step_uuid", s.StepUUID,
		"namespace", s.Namespace, "step_name", s.StepName, "claim_method", s.Method)
	sf := w.faultsFor(s, log)
	w.in.ActiveExecution(ctx, s.Namespace, w.cfg.HandlerType, 1)
	started := time.Now()
	spec, value, herr := w.invoke(ctx, s, sf)
	finished := time.Now()
	w.in.ActiveExecution(ctx, s.Namespace, w.cfg.HandlerType, -1)
	if hard.Err() != nil {
		// Stopped mid-step: leave the step to lease recovery rather than report a failure
		// that was ours, not the handler's.
		log.Warn("worker stopping; step left for lease recovery")
		span.End()
		return nil
	}
	switch {
	case spec == nil:
		w.in.StepFailedEarly(ctx, corr, s.Namespace, "step_not_found")
	case herr != nil:
		w.in.StepExecuted(ctx, corr, s.Namespace, "handler_execution_failed", finished.Sub(started))
	default:
		w.in.StepExecuted(ctx, corr, s.Namespace, "", finished.Sub(started))
	}
	res := stepExecutionResult{StepUUID: s.StepUUID.String(), Success: herr == nil, Status: "completed", Result: value,
		Metadata: executionMetadata{
			ExecutionTimeMS: float64(finished.Sub(started).Microseconds()) / 1000, WorkerID: w.cfg.WorkerID,
			HandlerType: w.cfg.HandlerType, Attempt: s.Attempt, StartedAt: started.UTC(), CompletedAt: finished.UTC(),
		}}
	if herr != nil {
		re := classify(herr)
		res.Status, res.Result, res.Error = "failed", nil, re
		res.Metadata.Retryable, res.Metadata.ErrorType, res.Metadata.ErrorCode = re.Retryable, re.ErrorType, re.ErrorCode
		var se *workflow.StepError
		if errors.As(herr, &se) && se.RetryAfter > 0 {
			secs := strconv.FormatInt(int64(math.Ceil(se.RetryAfter.Seconds())), 10)
			res.OrchestrationMetadata = &orchestrationMetadata{Headers: map[string]string{"retry-after": secs}}
		}
	}
	body, err := json.Marshal(res)
	if err != nil {
		log.Error("encode step result", "error", err)
		span.End()
		return nil
	}
	return &outcome{ctx: ctx, span: span, log: log, step: s, body: body, success: res.Success, herr: herr,
		retry: res.Metadata.Retryable, tookMS: res.Metadata.ExecutionTimeMS, stall: sf.stall}
}

// finish submits a step's result and ends its span.
func (w *Worker) finish(o *outcome) {
	defer o.span.End()
	s, ctx := o.step, o.ctx
	submitStart := time.Now()
	if err := w.submit(ctx, o); err != nil {
		o.span.RecordError(err)
		if errors.Is(err, stepclaim.ErrLeaseLost) {
			o.log.Warn("result discarded: the step's lease was lost", "attempt", s.Attempt)
			return
		}
		w.in.QueueError(ctx, messaging.QueueStepResults, "send")
		o.log.Error("submit step result; the step will be recovered when its lease runs out", "error", err)
		return
	}
	submitted := time.Since(submitStart)
	w.in.ResultSubmitted(ctx, s.CorrelationID.String(), submitted)
	w.in.MessagesSent(ctx, messaging.QueueStepResults, 1, submitted)
	if o.herr != nil {
		o.log.Info("step failed", "attempt", s.Attempt, "error", o.herr, "retryable", o.retry)
	} else {
		o.log.Debug("step completed", "attempt", s.Attempt, "duration_ms", o.tookMS)
	}
}

// submit submits a step's result inside a worker.step_submit span. The completion
// message carries the execution span's context (ctx), not the submit span's: orchestration's
// process_step_result then hangs under the step's execution, and a later step that
// depends on this one links to the execution. The submit span only times the statement.
func (w *Worker) submit(ctx context.Context, o *outcome) error {
	s := o.step
	_, span := w.tracer.Start(ctx, "worker.step_submit", trace.WithAttributes(
		attribute.String("correlation_id", s.CorrelationID.String()), attribute.String("task_uuid", s.TaskUUID.String()),
		attribute.String("step_uuid", s.StepUUID.String()), attribute.Int("attempt", s.Attempt),
		attribute.Bool("success", o.success), attribute.String("queue", messaging.QueueStepResults)))
	defer span.End()
	msgID, err := w.submitter.Submit(ctx, s, o.success, o.body)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "submit failed")
		return err
	}
	span.SetAttributes(attribute.Int64("msg_id", msgID))
	return nil
}

// invoke finds the step's template step and runs its handler, within the step's timeout
// and before its lease runs out. spec is nil when this worker does not know the step.
func (w *Worker) invoke(ctx context.Context, s *stepclaim.Step, sf stepFaults) (spec *workflow.StepTemplate, value any, herr error) {
	tmpl := w.templates[s.Namespace+"/"+s.TaskName+"/"+s.Version]
	in, spec, err := w.stepInput(ctx, s, tmpl)
	if spec == nil || err != nil {
		return spec, nil, err
	}
	// The handler must give up before the lease does, or its result would arrive after
	// orchestration has already handed the step to another attempt.
	timeout := time.Until(s.LeaseUntil) * 4 / 5
	if spec.TimeoutSeconds > 0 {
		timeout = min(timeout, time.Duration(spec.TimeoutSeconds)*time.Second)
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if herr = w.injectFaults(hctx, sf); herr == nil {
		value, herr = runHandler(hctx, w.cfg.Registry.Lookup(tmpl, spec), in)
	}
	return spec, value, herr
}

// stepInput builds the handler's input. A step that is not in its template was made at
// run time from one of its steps (a batch worker): its stored inputs name that step, and
// it gets its inputs, previous result and checkpoint, and a way to save checkpoints.
func (w *Worker) stepInput(ctx context.Context, s *stepclaim.Step, tmpl *workflow.Template) (
	workflow.StepInput, *workflow.StepTemplate, error) {
	in := workflow.StepInput{TaskUUID: s.TaskUUID, StepUUID: s.StepUUID, StepName: s.StepName, CorrelationID: s.CorrelationID,
		Context: s.Context, Dependencies: s.Dependencies, Attempt: s.Attempt, MaxAttempts: s.MaxAttempts}
	if tmpl == nil {
		return in, nil, unknownStep(s)
	}
	spec := tmpl.Step(s.StepName)
	if spec == nil {
		data, err := stepclaim.LoadStepData(ctx, w.pool, s.StepUUID)
		if err != nil {
			return in, nil, &workflow.StepError{Message: err.Error(), ErrorType: "DatabaseError", Retryable: true}
		}
		var bi workflow.BatchWorkerInputs
		if json.Unmarshal(data.Inputs, &bi) != nil || bi.TemplateStep == "" {
			return in, nil, unknownStep(s)
		}
		if spec = tmpl.Step(bi.TemplateStep); spec == nil {
			return in, nil, unknownStep(s)
		}
		in.Inputs, in.Previous, in.Checkpoint = data.Inputs, data.Previous, data.Checkpoint
		in.SaveCheckpoint = func(ctx context.Context, cp any) error {
			return stepclaim.SaveCheckpoint(ctx, w.pool, s.StepUUID, s.Attempt, w.cfg.WorkerID, cp)
		}
	}
	in.Initialization = spec.Handler.Initialization
	return in, spec, nil
}

// unknownStep is the failure of a step this worker has no template step for.
func unknownStep(s *stepclaim.Step) *workflow.StepError {
	return &workflow.StepError{Message: fmt.Sprintf("this worker has no template step %s in %s/%s/%s",
		s.StepName, s.Namespace, s.TaskName, s.Version), ErrorType: "UnknownStep", ErrorCode: "UNKNOWN_STEP"}
}

// runHandler calls h, turning a panic into a non-retryable failure so that one bad
// handler cannot take the worker down.
func runHandler(ctx context.Context, h workflow.Handler, in workflow.StepInput) (value any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &workflow.StepError{Message: fmt.Sprintf("handler panicked: %v\n%s", p, debug.Stack()),
				ErrorType: "HandlerPanic", ErrorCode: "HANDLER_PANIC"}
		}
	}()
	return h(ctx, in)
}

func classify(err error) *resultError {
	var se *workflow.StepError
	if errors.As(err, &se) {
		return &resultError{Message: se.Message, ErrorType: se.ErrorType, ErrorCode: se.ErrorCode, Retryable: se.Retryable}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &resultError{Message: err.Error(), ErrorType: "Timeout", ErrorCode: "HANDLER_TIMEOUT", Retryable: true}
	}
	return &resultError{Message: err.Error(), ErrorType: "HandlerError", Retryable: true}
}

func (w *Worker) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", w.handleBasic("healthy"))
	mux.HandleFunc("GET /health/live", w.handleBasic("alive"))
	mux.HandleFunc("GET /health/ready", w.handleReady)
	mux.HandleFunc("GET /health/detailed", w.handleDetailed)
	mux.Handle("GET /metrics", w.cfg.Telemetry.MetricsHandler)
	mux.HandleFunc("GET /api-docs/openapi.json", contract.Serve(contract.WorkerDocument))
	mux.Handle("/admin/faults", api.RequireBearer(w.cfg.AuthToken, faults.Handler(w.faults)))
	w.templateRoutes(mux) // templates_api.go
	return api.Service("worker", mux)
}

// observeGauges reports the worker's gauges: its queues, its pool and its candidate channel.
func (w *Worker) observeGauges(ctx context.Context, g *telemetry.GaugeObserver) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st := w.pool.Stat()
	g.PoolConnections("worker", int64(st.AcquiredConns()), int64(st.IdleConns()))
	w.claimer.Candidates().Observe(g)
	g.CircuitBreaker(w.queueCB.Name(), int64(w.queueCB.State()))
	if w.ffi != nil {
		w.ffi.dispatchCh.Observe(g)
		w.ffi.completeCh.Observe(g)
		g.CircuitBreaker(w.ffi.breaker.Name(), int64(w.ffi.breaker.State()))
	}
	return messaging.ObserveQueues(ctx, w.pool, g, w.queues)
}

// handleBasic answers /health and /health/live with status.
func (w *Worker) handleBasic(status string) http.HandlerFunc {
	return func(rw http.ResponseWriter, _ *http.Request) {
		api.WriteJSON(rw, http.StatusOK, api.WorkerBasicHealth{Status: status, Timestamp: time.Now().UTC(),
			WorkerID: w.cfg.WorkerID})
	}
}

// handleReady answers 200 with tasker-core's readiness body when the database, the claim
// loop and the queues are healthy, else 503 naming what is not. (tasker-core's worker
// answers a flat {"error":"service_unavailable",...} there; tasker-sim keeps its own
// error body.)
func (w *Worker) handleReady(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	now := time.Now().UTC()
	checks := w.readinessChecks(ctx, now)
	if ok, why := api.Healthy(checks.All()); !ok {
		api.WriteError(rw, http.StatusServiceUnavailable, api.CodeServiceUnavailable, "not ready: "+why)
		return
	}
	api.WriteJSON(rw, http.StatusOK, api.WorkerReadinessResponse{Status: "ready", Timestamp: now,
		WorkerID: w.cfg.WorkerID, Checks: checks, SystemInfo: w.systemInfo()})
}

// handleDetailed always answers 200: healthy, or degraded when any of tasker-core's six
// checks is not. The sim's finer checks (each queue, channel and breaker) are folded
// into those checks' messages.
func (w *Worker) handleDetailed(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	now := time.Now().UTC()
	ready := w.readinessChecks(ctx, now)
	start := time.Now()
	breakers := map[string]api.Check{w.queueCB.Name(): w.queueCB.Check()}
	events := map[string]api.Check{}
	if w.ffi != nil {
		breakers[w.ffi.breaker.Name()] = w.ffi.breaker.Check()
		events[w.ffi.dispatchCh.Name()] = api.ChannelCheck(w.ffi.dispatchCh.Len(), w.ffi.dispatchCh.Cap())
		events[w.ffi.completeCh.Name()] = api.ChannelCheck(w.ffi.completeCh.Len(), w.ffi.completeCh.Cap())
	} else {
		events["ffi"] = api.Check{Status: api.StatusHealthy, Message: "none: rust handlers run in process"}
	}
	cand := w.claimer.Candidates()
	checks := api.WorkerDetailedChecks{WorkerReadinessChecks: ready,
		EventSystem: api.Fold(events, start).At(now),
		StepProcessing: api.Fold(map[string]api.Check{cand.Name(): api.ChannelCheck(cand.Len(), cand.Cap()),
			"pool": poolCheck(w.pool.Stat())}, start).At(now),
		CircuitBreakers: api.BreakersCheck(breakers, start).At(now)}
	status := api.StatusHealthy
	if ok, _ := api.Healthy(checks.All()); !ok {
		status = api.StatusDegraded
	}
	api.WriteJSON(rw, http.StatusOK, api.WorkerDetailedHealthResponse{Status: status, Timestamp: now,
		WorkerID: w.cfg.WorkerID, Checks: checks, SystemInfo: w.systemInfo()})
}

// readinessChecks are tasker-core's three worker readiness checks: the database ping,
// the claim loop, and the worker's queues with the pgmq breaker.
func (w *Worker) readinessChecks(ctx context.Context, now time.Time) api.WorkerReadinessChecks {
	db := api.DatabaseCheck(ctx, w.pool)
	start := time.Now()
	cp := api.NewCheck(api.StatusHealthy, fmt.Sprintf("claiming steps of %v", w.cfg.Namespaces), start)
	if w.loops.Load() == 0 {
		cp = api.NewCheck(api.StatusUnhealthy, "the claim loop is not running", start)
	}
	start = time.Now()
	queues, err := messaging.QueueChecks(ctx, w.pool, w.queues)
	if err != nil {
		queues = map[string]api.Check{"queues": {Status: api.StatusUnhealthy, Message: "queue metrics: " + err.Error()}}
	}
	queues["circuit_breaker_"+w.queueCB.Name()] = w.queueCB.Check()
	return api.WorkerReadinessChecks{Database: db.At(now), CommandProcessor: cp.At(now),
		QueueProcessing: api.Fold(queues, start).At(now)}
}

// poolCheck is the pool's use as one of the sim's finer checks.
func poolCheck(st api.PoolStat) api.Check {
	c := api.PoolCheck(st, time.Now())
	return api.Check{Status: c.Status, Message: *c.Message}
}

// systemInfo is tasker-core's WorkerSystemInfo.
func (w *Worker) systemInfo() api.WorkerSystemInfo {
	st := w.pool.Stat()
	return api.WorkerSystemInfo{Version: api.Version(), Environment: api.Environment(),
		UptimeSeconds: int64(time.Since(w.started).Seconds()), WorkerType: w.cfg.HandlerType,
		DatabasePoolSize: st.MaxConns(), CommandProcessorActive: w.loops.Load() > 0,
		SupportedNamespaces: w.cfg.Namespaces, PoolUtilization: api.PoolUtilization(st)}
}

// stepFaults are the faults one step runs with.
type stepFaults struct {
	// handler are the handler faults: the task's own "_faults", else the process's.
	handler faults.Faults
	// stall slows the step's FFI completion send (slow_completion_ms): the task's own
	// value when it sets one, else the process's, which so reaches every completion.
	stall time.Duration
	// err, when set, is an invalid "_faults": the step fails with it.
	err error
}

// faultsFor works out a step's faults. A per-task slow_completion_ms on a rust worker is
// ignored (with a debug log): it has no FFI completion send, and the task's steps may run
// on any worker of the namespace.
func (w *Worker) faultsFor(s *stepclaim.Step, log *slog.Logger) stepFaults {
	process := w.faults.Get()
	sf := stepFaults{handler: process, stall: time.Duration(process.SlowCompletionMS) * time.Millisecond}
	own, ok, err := faults.FromTaskContext(s.Context)
	switch {
	case err != nil:
		sf.err = &workflow.StepError{Message: "task context _faults: " + err.Error(), ErrorType: "ValidationError",
			ErrorCode: "INVALID_FAULTS"}
	case !ok:
	case own.SlowCompletionMS > 0 && w.ffi == nil:
		sf.handler = own
		log.Debug("slow_completion_ms ignored: a rust worker has no FFI completion send",
			"slow_completion_ms", own.SlowCompletionMS)
	case own.SlowCompletionMS > 0:
		sf.handler, sf.stall = own, time.Duration(own.SlowCompletionMS)*time.Millisecond
	default:
		sf.handler = own
	}
	return sf
}

// injectFaults applies the step's handler faults before its handler. A non-nil error
// means the handler does not run.
func (w *Worker) injectFaults(ctx context.Context, sf stepFaults) error {
	if sf.err != nil {
		return sf.err
	}
	f := sf.handler
	w.rndMu.Lock()
	rnd := rand.New(rand.NewPCG(w.rnd.Uint64(), w.rnd.Uint64()))
	w.rndMu.Unlock()
	switch err := f.BeforeHandler(ctx, rnd); {
	case err == nil:
		return nil
	case errors.Is(err, faults.ErrInjected):
		return &workflow.StepError{Message: "injected handler failure", ErrorType: "InjectedFault",
			ErrorCode: "INJECTED_FAULT", Retryable: f.Retryable}
	default:
		return err // the step's deadline: classified as a retryable timeout
	}
}

// checkProcessFaults holds the worker's own rules for process faults: slow_completion_ms
// slows the FFI completion send, which only the FFI handler types have.
func (w *Worker) checkProcessFaults(f faults.Faults) error {
	if f.SlowCompletionMS > 0 && w.cfg.HandlerType == HandlerTypeRust {
		return fmt.Errorf("slow_completion_ms %d: needs an FFI handler type (ruby, python or typescript; "+
			"TASKER_HANDLER_TYPE); this worker's handler type is rust, which has no FFI completion send",
			f.SlowCompletionMS)
	}
	return nil
}

// applyProcessFaults puts one-off process faults into effect: a flood of the intake
// channel. The others are read where they act.
func (w *Worker) applyProcessFaults(f faults.Faults) {
	if f.FloodChannel > 0 && w.claimer != nil {
		w.claimer.Flood(f.FloodChannel)
	}
}
