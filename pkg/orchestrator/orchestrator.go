package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	pgmq "github.com/craigpastro/pgmq-go"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
)

// Orchestrator is a running orchestration service.
type Orchestrator struct {
	cfg          *Config
	log          *slog.Logger
	pool         *pgxpool.Pool
	templates    *templateCache
	results      chan resultJob
	server       *http.Server
	listener     net.Listener
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	stopOnce     sync.Once
	stopErr      error
	started      time.Time
	pgmqProvider string
	waiters      *waiters
}

type resultJob struct {
	msgID  int64
	body   []byte
	method string
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

// Start connects, migrates, creates the orchestration queues and starts the API and the
// background loops. It returns once the API is listening.
func Start(ctx context.Context, cfg *Config) (*Orchestrator, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	poolCfg, err := pgxpool.ParseConfig(c.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: database url: %w", err)
	}
	poolCfg.MaxConns = c.MaxConns
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: connect: %w", err)
	}
	o := &Orchestrator{
		cfg: c, log: c.Logger.With("component", "orchestrator", "processor_uuid", c.ProcessorUUID),
		pool: pool, templates: newTemplateCache(), results: make(chan resultJob, resultChannelCapacity),
		started: time.Now(), waiters: newWaiters(),
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
	o.server = &http.Server{Handler: o.routes(), ReadHeaderTimeout: 10 * time.Second}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	o.cancel = cancel
	o.goLoop(func() { o.serve() })
	o.goLoop(func() { o.listen(runCtx) })
	for range c.ResultConcurrency {
		o.goLoop(func() { o.resultWorker(runCtx) })
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
		if err := pgmq.CreateQueue(ctx, o.pool, q); err != nil {
			return fmt.Errorf("orchestrator: create queue %s: %w", q, err)
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
		o.pool.Close()
		o.log.Info("orchestrator stopped")
	})
	return o.stopErr
}

// listen turns notifications on the orchestration channel into result jobs. After each
// (re)connect it polls once, to pick up anything sent while nobody listened.
func (o *Orchestrator) listen(ctx context.Context) {
	l := &messaging.Listener{
		ConnConfig: o.pool.Config().ConnConfig.Copy(),
		Channels:   []string{messaging.OrchestrationChannel, messaging.TaskFinalizedChannel},
		Logger:     o.log,
		Handle: func(ctx context.Context, n *pgconn.Notification) {
			if n.Channel == messaging.TaskFinalizedChannel {
				o.waiters.wake(n.Payload)
				return
			}
			var ev messaging.Notification
			if err := json.Unmarshal([]byte(n.Payload), &ev); err != nil {
				o.log.Warn("ignoring malformed notification", "channel", n.Channel, "error", err)
				return
			}
			if ev.QueueName != messaging.QueueStepResults {
				return
			}
			job := resultJob{msgID: ev.MsgID, body: ev.Message, method: "event"}
			if ev.PayloadOmitted || len(ev.Message) == 0 {
				body, ok := o.readByID(ctx, ev.MsgID)
				if !ok {
					return
				}
				job.body = body
			}
			select {
			case o.results <- job:
			case <-ctx.Done():
			}
		},
		OnConnect: func(ctx context.Context) { o.pollResults(ctx) },
	}
	_ = l.Run(ctx)
}

func (o *Orchestrator) readByID(ctx context.Context, msgID int64) ([]byte, bool) {
	body, ok, err := messaging.ReadByID(ctx, o.pool, messaging.QueueStepResults, msgID, o.cfg.VisibilityTimeout)
	if err != nil && ctx.Err() == nil {
		o.log.Warn("read notified result", "msg_id", msgID, "error", err)
	}
	return body, ok
}

func (o *Orchestrator) resultWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-o.results:
			if err := o.processResult(ctx, job); err != nil && ctx.Err() == nil {
				// The message stays in the queue; the fallback poller retries it.
				o.log.Error("process step result", "msg_id", job.msgID, "claim_method", job.method, "error", err)
			}
		}
	}
}

// pollResults reads results the event path has not taken (a missed notification, a
// crash mid-processing) and processes them in line.
func (o *Orchestrator) pollResults(ctx context.Context) {
	msgs, err := pgmq.ReadBatch(ctx, o.pool, messaging.QueueStepResults,
		int64(o.cfg.VisibilityTimeout.Seconds()), pollBatchSize)
	if err != nil {
		if ctx.Err() == nil {
			o.log.Warn("poll step results", "error", err)
		}
		return
	}
	for _, m := range msgs {
		if err := o.processResult(ctx, resultJob{msgID: m.MsgID, body: m.Message, method: "poll"}); err != nil && ctx.Err() == nil {
			o.log.Error("process polled step result", "msg_id", m.MsgID, "error", err)
		}
	}
}
