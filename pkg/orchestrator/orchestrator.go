package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"

	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/dbwait"
	"github.com/tasker-sim/tasker-sim/pkg/faults"
	"github.com/tasker-sim/tasker-sim/pkg/groupcommit"
	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// Orchestrator is a running orchestration service.
type Orchestrator struct {
	cfg          *Config
	log          *slog.Logger
	pool         *pgxpool.Pool
	templates    *templateCache
	creations    *groupcommit.Group[*creation, created]
	results      *resilience.Channel[messaging.Delivery]
	intake       *messaging.Intake
	server       *http.Server
	listener     net.Listener
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	stopOnce     sync.Once
	stopErr      error
	started      time.Time
	pgmqProvider string
	waiters      *waiters
	// finalized logs every task that reaches a terminal state (for WaitAny).
	finalized *finalizedLog
	tel       *telemetry.Providers
	gauges    metric.Registration
	faults    *faults.Switch
	web       *resilience.Breaker
	readiness *resilience.Breaker
	queue     *resilience.Breaker
	// loops counts the background loops that run, for /health (http.go).
	loops loopState
}

// Run starts an orchestrator and blocks until ctx is cancelled, then stops it gracefully.
func Run(ctx context.Context, cfg *Config) error {
	o, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return o.Stop()
}

// connect opens the pool, with the database metrics' tracer, and waits for a database
// that is still starting.
func connect(ctx context.Context, c *Config) (*pgxpool.Pool, error) {
	pool, err := dbwait.Connect(ctx, c.DatabaseURL, telemetry.PoolConfig(c.Telemetry.Instruments, "orchestrator", c.MaxConns), dbwait.Options{Limit: c.DatabaseWait, Logger: c.Logger.With("component", "orchestrator"),
		Hint: dbwait.WaitHint})
	if err != nil {
		return nil, fmt.Errorf("orchestrator: %w", err)
	}
	return pool, nil
}

// newIntake is the step results' intake, which also hears task finalizations and
// template registrations.
func (o *Orchestrator) newIntake() *messaging.Intake {
	c := o.cfg
	return &messaging.Intake{Pool: o.pool, Queues: []string{messaging.QueueStepResults},
		Channels: []string{messaging.OrchestrationChannel},
		Others: map[string]func(context.Context, *pgconn.Notification){messaging.TaskFinalizedChannel: o.onFinalized,
			messaging.TemplateRegisteredChannel: o.onTemplateRegistered},
		OnConnect: func(context.Context) { o.templates.forget(uuid.Nil) },
		Out:       o.results, Breaker: o.queue, VisibilityTimeout: c.VisibilityTimeout, PollInterval: c.PollInterval,
		PollBatch: pollBatchSize, Logger: o.log, Instruments: c.Telemetry.Instruments,
		Reader: &messaging.FallbackReader{DB: o.pool, Instruments: c.Telemetry.Instruments, Faults: o.faults}}
}

// Start connects, migrates, creates the orchestration queues and starts the API and the
// background loops. It returns once the API is listening.
func Start(ctx context.Context, cfg *Config) (*Orchestrator, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkOrchestratorFaults(c.Faults); err != nil {
		return nil, fmt.Errorf("orchestrator: TASKER_FAULTS: %w", err)
	}
	pool, err := connect(ctx, c)
	if err != nil {
		return nil, err
	}
	o := &Orchestrator{
		tel: c.Telemetry,
		cfg: c, log: c.Logger.With("component", "orchestrator", "processor_uuid", c.ProcessorUUID),
		pool: pool, templates: newTemplateCache(), results: resilience.NewChannel[messaging.Delivery](resultChannel, "orchestration", resultChannelCapacity, c.Telemetry.Instruments),
		started: time.Now(), waiters: newWaiters(), finalized: newFinalizedLog(),
	}
	o.creations = groupcommit.New(o.createTasks, createBatchMax, messaging.BatchLinger)
	o.web = resilience.NewBreaker(resilience.WebDatabase, c.WebBreaker, o.log)
	o.readiness = resilience.NewBreaker(resilience.TaskReadiness, c.ReadinessBreaker, o.log)
	o.queue = resilience.NewBreaker(resilience.PGMQ, c.PGMQBreaker, o.log)
	o.faults = faults.NewCheckedSwitch(c.Faults, checkOrchestratorFaults, o.applyProcessFaults)
	o.intake = o.newIntake()
	if err := o.intake.Check(); err != nil {
		pool.Close()
		return nil, fmt.Errorf("orchestrator: %w", err)
	}
	if err := o.prepare(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", c.BindAddress)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("orchestrator: listen on %s (TASKER_WEB_BIND_ADDRESS): %w", c.BindAddress, err)
	}
	o.listener = ln
	if o.gauges, err = o.tel.Instruments.Observe(o.observeGauges); err != nil {
		_ = ln.Close()
		pool.Close()
		return nil, fmt.Errorf("orchestrator: %w", err)
	}
	o.server = &http.Server{Handler: o.routes(), ReadHeaderTimeout: 10 * time.Second}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	o.cancel = cancel
	o.goLoop(func() { o.serve() })
	o.tracked(&o.loops.intake, func() { o.intake.Run(runCtx) })
	for range c.ResultConcurrency {
		o.tracked(&o.loops.results, func() { o.resultWorker(runCtx) })
	}
	o.goLoop(func() { o.maintenance(runCtx) })
	o.log.Info("orchestrator started", "bind_address", ln.Addr().String(), "pgmq_provider", o.pgmqProvider)
	return o, nil
}

func (o *Orchestrator) prepare(ctx context.Context) error {
	if !o.cfg.SkipMigrate {
		res, err := migrations.Migrate(ctx, o.pool, &migrations.Config{PGMQ: o.cfg.PGMQMode})
		if err != nil {
			return fmt.Errorf("orchestrator: %w", err)
		}
		o.pgmqProvider = res.PGMQProvider
	}
	for _, q := range messaging.OrchestrationQueues {
		if err := messaging.EnsureQueue(ctx, o.pool, q); err != nil {
			return fmt.Errorf("orchestrator: %w", err)
		}
	}
	return nil
}

func (o *Orchestrator) goLoop(f func()) {
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		f()
	}()
}

func (o *Orchestrator) serve() {
	if err := o.server.Serve(o.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		o.log.Error("api server stopped", "error", err)
	}
}

// Addr is the API's listening address.
func (o *Orchestrator) Addr() string { return o.listener.Addr().String() }

// URL is the API's base URL.
func (o *Orchestrator) URL() string { return "http://" + o.Addr() }

// Pool exposes the database pool, for tests and the harness.
func (o *Orchestrator) Pool() *pgxpool.Pool { return o.pool }

// Stop shuts the API down, lets in-flight work finish, and closes the pool. It is safe to
// call more than once.
func (o *Orchestrator) Stop() error {
	o.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), o.cfg.ShutdownTimeout)
		defer cancel()
		o.stopErr = o.server.Shutdown(ctx)
		o.cancel()
		o.wg.Wait()
		_ = o.gauges.Unregister()
		o.pool.Close()
		o.log.Info("orchestrator stopped")
	})
	return o.stopErr
}

// onFinalized hears that a task reached a terminal state (on any orchestrator): API
// clients waiting on it return at once.
func (o *Orchestrator) onFinalized(_ context.Context, n *pgconn.Notification) {
	o.waiters.wake(n.Payload)
	if id, err := uuid.Parse(n.Payload); err == nil {
		o.finalized.append(id)
	}
}

// onTemplateRegistered drops the cached template a registration names (and every
// resolved name).
func (o *Orchestrator) onTemplateRegistered(_ context.Context, n *pgconn.Notification) {
	id, err := uuid.Parse(n.Payload)
	if err != nil {
		id = uuid.Nil // unreadable: forget them all
	}
	o.templates.forget(id)
}

// resultWorker processes step results in batches: whatever is waiting when it is free, up
// to resultBatchMax (see messaging.Gather). A result that arrives alone is processed at
// once, alone.
func (o *Orchestrator) resultWorker(ctx context.Context) {
	for {
		var first messaging.Delivery
		select {
		case <-ctx.Done():
			return
		case first = <-o.results.Receive():
		}
		o.processResults(ctx, messaging.Gather(o.results.Receive(), first, resultBatchMax, messaging.BatchLinger))
	}
}

// resultChannel names the orchestrator's bounded queue of step results to process.
const resultChannel = "orchestration_step_results"

// observeGauges reports the orchestrator's gauges at each collection: task states and
// ready steps from the database, every queue's depth and age, the pool, and the channel.
func (o *Orchestrator) observeGauges(ctx context.Context, g *telemetry.GaugeObserver) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st := o.pool.Stat()
	g.PoolConnections("orchestrator", int64(st.AcquiredConns()), int64(st.IdleConns()))
	o.results.Observe(g)
	for _, b := range []*resilience.Breaker{o.web, o.readiness, o.queue} {
		g.CircuitBreaker(b.Name(), int64(b.State()))
	}
	// Each database-backed gauge stands alone: one failing query does not hide the others.
	return errors.Join(
		countBy(ctx, o.pool, `
			WITH u AS MATERIALIZED (SELECT state FROM tasker.unfinished_task_states)
			SELECT s.state, count(u.state)
			  FROM unnest($1::text[]) AS s(state)
			  LEFT JOIN u ON u.state = s.state
			 GROUP BY s.state`, []any{activeTaskStates()}, g.TasksActive),
		countBy(ctx, o.pool, `
			SELECT tn.name, count(r.workflow_step_uuid) FILTER (WHERE r.ready_for_execution)
			  FROM tasker.task_namespaces AS tn
			  LEFT JOIN tasker.named_tasks AS nt ON nt.task_namespace_uuid = tn.task_namespace_uuid
			  LEFT JOIN tasker.tasks AS t ON t.named_task_uuid = nt.named_task_uuid AND t.completed_at IS NULL
			  LEFT JOIN LATERAL tasker.get_step_readiness_status(t.task_uuid) AS r ON true
			 GROUP BY tn.name`, nil, g.StepsReady),
		messaging.ObserveQueues(ctx, o.pool, g, nil),
	)
}

// countBy runs a (label, count) query and reports each row through observe.
func countBy(ctx context.Context, pool *pgxpool.Pool, sql string, args []any, observe func(string, int64)) error {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var label string
		var n int64
		if err := rows.Scan(&label, &n); err != nil {
			return err
		}
		observe(label, n)
	}
	return rows.Err()
}

// activeTaskStates lists the non-terminal task states, the ones tasks.active reports.
func activeTaskStates() []string {
	var out []string
	for _, s := range lifecycle.TaskStates {
		if !s.Terminal() {
			out = append(out, string(s))
		}
	}
	return out
}

// applyProcessFaults puts one-off process faults into effect: a flood of the result
// channel with empty jobs, which the processors refuse as poison that no queue holds.
// checkOrchestratorFaults refuses the faults that act in workers only, so that a fault sent
// to the wrong process says so instead of doing nothing.
func checkOrchestratorFaults(f faults.Faults) error {
	for _, w := range []struct {
		set  bool
		name string
	}{
		{f.ErrorRate > 0, "error_rate"}, {f.Latency != nil, "latency_ms"}, {f.TimeoutRate > 0, "timeout_rate"},
		{f.SlowCompletionMS > 0, "slow_completion_ms"}, {f.AbandonRate > 0, "abandon_rate"},
	} {
		if w.set {
			return fmt.Errorf("%s: a worker fault; the orchestrator takes database_unavailable, flood_channel and queue_error_rate", w.name)
		}
	}
	return nil
}

func (o *Orchestrator) applyProcessFaults(f faults.Faults) {
	if f.FloodChannel > 0 && o.intake != nil {
		o.intake.Flood(f.FloodChannel)
	}
}
