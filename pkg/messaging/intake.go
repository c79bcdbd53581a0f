package messaging

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-sim/tasker-sim/pkg/faults"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// How a delivery arrived, as the claim and receive metrics label it.
const (
	// MethodEvent: a notification brought it (with its payload, or its id to read).
	MethodEvent = "event"
	// MethodPoll: the fallback poll read it.
	MethodPoll = "poll"
)

// Delivery is a queue message on its way to the process that consumes it.
type Delivery struct {
	Queue   string
	MsgID   int64
	Body    []byte
	Headers []byte // the message's pgmq headers: the sender's trace context
	Method  string // MethodEvent or MethodPoll
	// ReadCount is 0 for a notification that carried the message, and above 1 for a
	// redelivery.
	ReadCount int64
	// Read: the message was read, and so is hidden for the visibility timeout. A poll
	// reads it, and so does a notification that came without its payload.
	Read bool
}

// Intake defaults.
const (
	IntakePollIntervalDefault = time.Second
	IntakePollBatchDefault    = 20
)

// Intake feeds Out with the messages of some queues. Two paths feed it: LISTEN/NOTIFY
// (a notification carries the message, or its id, which the intake then reads), and a
// fallback poll that runs after every (re)connect of the listener and every
// PollInterval, so nothing a missed notification announced is lost. The poll goes
// through the pgmq breaker and the FallbackReader; messages a consumer already took are
// archived, so a poll finds only what the events missed. Both services use it.
type Intake struct {
	// Pool reads messages and supplies the listener's connection settings; required.
	Pool *pgxpool.Pool
	// Queues whose messages to deliver; required.
	Queues []string
	// Channels to LISTEN on for the queues' notifications; required.
	Channels []string
	// Others are more channels to LISTEN on on the same connection, each with its handler,
	// for notifications that are not queue events (for example task finalizations). The
	// handlers run on the listener's goroutine: keep them short.
	Others map[string]func(ctx context.Context, n *pgconn.Notification)
	// Out receives the deliveries; a full channel makes the intake wait. Required.
	Out *resilience.Channel[Delivery]
	// Reader is the fallback poll's read; default: a FallbackReader with no faults.
	Reader *FallbackReader
	// Breaker, when set, guards the fallback reads (the pgmq breaker).
	Breaker *resilience.Breaker
	// VisibilityTimeout hides a read message from other readers; required.
	VisibilityTimeout time.Duration
	// PollInterval paces the fallback poll. Default 1 s.
	PollInterval time.Duration
	// PollBatch is how many messages one poll reads per queue. Default 20.
	PollBatch int
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Instruments record listener retries and reads. Default: record nothing.
	Instruments *telemetry.Instruments
	// OnConnect, when set, runs after every (re)connect of the listener, before the
	// fallback poll: notifications sent while it was away are lost, so a consumer that
	// caches what notifications invalidate drops its cache here.
	OnConnect func(ctx context.Context)

	floodOnce sync.Once
	floods    chan int
}

// Check reports the first required field that is missing.
func (in *Intake) Check() error {
	switch {
	case in.Pool == nil:
		return errors.New("intake: Pool is required")
	case len(in.Queues) == 0:
		return errors.New("intake: Queues must list at least one queue")
	case len(in.Channels) == 0:
		return errors.New("intake: Channels must list at least one channel")
	case in.Out == nil:
		return errors.New("intake: Out is required")
	case in.VisibilityTimeout <= 0:
		return errors.New("intake: VisibilityTimeout must be positive")
	}
	return nil
}

func (in *Intake) withDefaults() {
	in.PollInterval = cmp.Or(in.PollInterval, IntakePollIntervalDefault)
	in.PollBatch = cmp.Or(in.PollBatch, IntakePollBatchDefault)
	if in.Logger == nil {
		in.Logger = slog.Default()
	}
	if in.Instruments == nil {
		in.Instruments = telemetry.Noop()
	}
	if in.Reader == nil {
		in.Reader = &FallbackReader{DB: in.Pool, Instruments: in.Instruments}
	}
	in.floodChannel()
}

func (in *Intake) floodChannel() chan int {
	in.floodOnce.Do(func() { in.floods = make(chan int, 16) })
	return in.floods
}

// Run listens and polls until ctx ends. Every goroutine it starts has ended when it
// returns.
func (in *Intake) Run(ctx context.Context) {
	in.withDefaults()
	var wg sync.WaitGroup
	l := &Listener{
		ConnConfig: in.Pool.Config().ConnConfig.Copy(),
		Channels:   append(slices.Clone(in.Channels), slices.Sorted(maps.Keys(in.Others))...),
		Logger:     in.Logger,
		Handle:     in.onNotification,
		OnConnect:  in.onConnect,
		OnRetry:    func(ctx context.Context) { in.Instruments.QueueRetry(ctx, "listen") },
	}
	wg.Go(func() { _ = l.Run(ctx) })
	tick := time.NewTicker(in.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
			in.Poll(ctx)
		case n := <-in.floods:
			wg.Go(func() { in.flood(ctx, n) })
		}
	}
}

// Flood pushes n empty deliveries through Out, in the background of Run, to exercise
// backpressure (a fault to inject). The consumer refuses each as a poison message that
// was never in any queue, so nothing else changes.
func (in *Intake) Flood(n int) {
	if n > 0 {
		in.floodChannel() <- n
	}
}

func (in *Intake) flood(ctx context.Context, n int) {
	for range n {
		if !in.Out.Send(ctx, Delivery{Queue: in.Queues[0], MsgID: -1, Body: []byte("{}"), Method: MethodPoll}) {
			return
		}
	}
}

func (in *Intake) onNotification(ctx context.Context, n *pgconn.Notification) {
	if handle := in.Others[n.Channel]; handle != nil {
		handle(ctx, n)
		return
	}
	var ev Notification
	if err := json.Unmarshal([]byte(n.Payload), &ev); err != nil {
		in.Logger.Warn("ignoring malformed notification", "channel", n.Channel, "error", err)
		return
	}
	if !slices.Contains(in.Queues, ev.QueueName) {
		return
	}
	d := Delivery{Queue: ev.QueueName, MsgID: ev.MsgID, Body: ev.Message, Headers: ev.Headers, Method: MethodEvent}
	if ev.PayloadOmitted || len(ev.Message) == 0 {
		m, ok, err := ReadByID(ctx, in.Pool, ev.QueueName, ev.MsgID, in.VisibilityTimeout)
		if err != nil && ctx.Err() == nil {
			in.Logger.Warn("read notified message", "queue", ev.QueueName, "msg_id", ev.MsgID, "error", err)
		}
		if !ok {
			return
		}
		d.Body, d.Headers, d.Read = m.Body, m.Headers, true
	}
	in.Out.Send(ctx, d)
}

func (in *Intake) onConnect(ctx context.Context) {
	if in.OnConnect != nil {
		in.OnConnect(ctx)
	}
	in.Poll(ctx)
}

// Poll reads the visible messages of every queue once and delivers them.
func (in *Intake) Poll(ctx context.Context) {
	for _, q := range in.Queues {
		var done func(bool)
		if in.Breaker != nil {
			var err error
			if done, err = in.Breaker.Allow(); err != nil {
				return // the pgmq breaker is open: no polling until it half-opens
			}
		}
		msgs, err := in.Reader.Read(ctx, q, in.VisibilityTimeout, in.PollBatch)
		if done != nil {
			done(err == nil || ctx.Err() != nil)
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, faults.ErrQueueRefused) {
				in.Logger.Warn("poll queue", "queue", q, "error", err)
			}
			continue
		}
		for _, m := range msgs {
			in.Out.Send(ctx, Delivery{Queue: q, MsgID: m.MsgID, Body: m.Body, Headers: m.Headers, Method: MethodPoll,
				ReadCount: m.ReadCount, Read: true})
		}
	}
}

// BatchLinger is how long a consumer that found more than one delivery waiting keeps
// gathering before it acts on the batch. Under load it fills batches, which saves a
// statement and a commit per delivery; a delivery that arrives alone never waits.
const BatchLinger = 2 * time.Millisecond

// Gather returns first and the deliveries waiting in ch behind it, up to max. When it found
// any waiting (the consumer is behind), it keeps gathering for up to linger before it
// returns; when it found none it returns at once.
func Gather[T any](ch <-chan T, first T, max int, linger time.Duration) []T {
	batch := []T{first}
	for len(batch) < max {
		select {
		case d := <-ch:
			batch = append(batch, d)
			continue
		default:
		}
		break
	}
	if len(batch) == 1 || len(batch) >= max || linger <= 0 {
		return batch
	}
	t := time.NewTimer(linger)
	defer t.Stop()
	for len(batch) < max {
		select {
		case d := <-ch:
			batch = append(batch, d)
		case <-t.C:
			return batch
		}
	}
	return batch
}
