// Package messaging holds what orchestration and workers share about PGMQ queues: queue
// names, the step message, sending with notification, and a LISTEN connection that
// survives reconnects.
package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/faults"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// Orchestration queues.
const (
	QueueTaskRequests      = "orchestration_task_requests"
	QueueStepResults       = "orchestration_step_results"
	QueueTaskFinalizations = "orchestration_task_finalizations"
)

// OrchestrationQueues lists the queues orchestration owns and creates at start.
var OrchestrationQueues = []string{QueueTaskRequests, QueueStepResults, QueueTaskFinalizations}

// ChannelPrefix starts every readiness channel: pgmq_message_ready.<namespace>.
const ChannelPrefix = "pgmq_message_ready."

// OrchestrationChannel is the channel orchestration listens on.
const OrchestrationChannel = ChannelPrefix + "orchestration"

// TaskFinalizedChannel carries the uuid of each task that reached a terminal state.
const TaskFinalizedChannel = "tasker_task_finalized"

// TemplateRegisteredChannel carries the named_task_uuid of each template (re)registered
// (a trigger on tasker.named_tasks sends it, migration 013), so that a process caching
// templates drops what it holds.
const TemplateRegisteredChannel = "tasker_template_registered"

// Channel returns the LISTEN channel for a namespace's queue.
func Channel(namespace string) string { return ChannelPrefix + namespace }

// StepMessage travels in both directions: to a worker queue to ask for a step, and to
// orchestration_step_results to say a step has a result. The result itself is in
// tasker.workflow_steps.results, never in the queue; the sender's trace context rides in
// the message's headers (see Headers).
type StepMessage struct {
	TaskUUID      uuid.UUID `json:"task_uuid"`
	StepUUID      uuid.UUID `json:"step_uuid"`
	CorrelationID uuid.UUID `json:"correlation_id"`
}

// Notification is the JSON that tasker.pgmq_send_with_notify publishes.
type Notification struct {
	EventType      string          `json:"event_type"`
	MsgID          int64           `json:"msg_id"`
	QueueName      string          `json:"queue_name"`
	Namespace      string          `json:"namespace"`
	Message        json.RawMessage `json:"message,omitempty"`
	Headers        json.RawMessage `json:"headers,omitempty"` // the message's pgmq headers, beside Message
	PayloadOmitted bool            `json:"payload_omitted,omitempty"`
}

// Event types of a Notification.
const (
	EventMessageWithPayload = "message_with_payload"
	EventMessageReady       = "message_ready"
)

// DecodeStepMessage parses and checks a step message. Poison messages (not JSON, or
// missing ids) give an error so the caller can archive them.
func DecodeStepMessage(raw []byte) (StepMessage, error) {
	var m StepMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, fmt.Errorf("step message: %w", err)
	}
	if m.TaskUUID == uuid.Nil || m.StepUUID == uuid.Nil {
		return m, errors.New("step message: task_uuid and step_uuid are required")
	}
	return m, nil
}

// Listener holds one LISTEN connection and hands each notification to Handle. When the
// connection breaks it reconnects with backoff, and calls OnConnect after every (re)connect,
// so the owner can poll for anything sent while nobody was listening.
type Listener struct {
	// ConnConfig is how to connect; required.
	ConnConfig *pgx.ConnConfig
	// Channels to LISTEN on; required.
	Channels []string
	// Handle receives every notification, on the listener's goroutine: keep it short.
	Handle func(ctx context.Context, n *pgconn.Notification)
	// OnConnect, when set, runs after each successful LISTEN.
	OnConnect func(ctx context.Context)
	// Logger; default slog.Default().
	Logger *slog.Logger
	// OnRetry, when set, runs before each reconnection attempt (for the retry metric).
	OnRetry func(ctx context.Context)
}

// Run listens until ctx ends. It returns nil on cancellation.
func (l *Listener) Run(ctx context.Context) error {
	logger := l.Logger
	if logger == nil {
		logger = slog.Default()
	}
	const firstDelay = 50 * time.Millisecond
	delay := firstDelay
	for {
		connected := false
		err := l.session(ctx, &connected)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // cancellation ends the loop; the session's error is only its symptom
		}
		if connected {
			// The connection worked before it broke: start the backoff afresh.
			delay = firstDelay
		}
		logger.Warn("listener connection lost; reconnecting", "error", err, "retry_in", delay)
		if l.OnRetry != nil {
			l.OnRetry(ctx)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (l *Listener) session(ctx context.Context, connected *bool) error {
	conn, err := pgx.ConnectConfig(ctx, l.ConnConfig)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	for _, ch := range l.Channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	*connected = true
	if l.OnConnect != nil {
		l.OnConnect(ctx)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		l.Handle(ctx, n)
	}
}

// queueCreateAttempts bounds EnsureQueue's retries after a concurrent create by a client
// that does not take tasker-sim's queue lock.
const queueCreateAttempts = 3

// EnsureQueue creates queue unless pgmq already has it. Both services call it at start and
// the orchestrator calls it before a namespace's first task, often at the same moment.
// pgmq.create is not safe against a concurrent create of the same queue (the extension
// then fails on a catalog unique index), so the create runs under a transaction-scoped
// advisory lock keyed by the queue name. A collision with a creator outside that lock is
// retried: by then the queue exists and the create is a no-op.
func EnsureQueue(ctx context.Context, db interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, queue string) error {
	var exists bool
	if err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pgmq.meta WHERE queue_name = $1)", queue).
		Scan(&exists); err != nil {
		return fmt.Errorf("look up queue %s: %w", queue, err)
	}
	if exists {
		return nil
	}
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('pgmq.create'), hashtext($1))", queue); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "SELECT pgmq.create($1)", queue)
			return err
		})
		if err == nil {
			return nil
		}
		if !isConcurrentCreate(err) || attempt == queueCreateAttempts {
			return fmt.Errorf("create queue %s: %w", queue, err)
		}
	}
}

// isConcurrentCreate reports the errors the pgmq extension's create gets when another
// session creates the same queue at the same moment: a unique violation on the catalog, a
// table or type that "already exists", or the other session's sequence not there yet.
func isConcurrentCreate(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "23505", "42P07", "42710", "42P01":
		return true
	}
	return false
}

// ReadByID reads one message by id, hiding it for vt, when the notification that
// announced it came without its payload. ok is false when it is no longer visible.
func ReadByID(ctx context.Context, db interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, queue string, msgID int64, vt time.Duration) (msg Message, ok bool, err error) {
	err = db.QueryRow(ctx, "SELECT msg_id, read_ct, message, headers FROM tasker.pgmq_read_specific_message($1, $2, $3)",
		queue, msgID, int(max(vt.Seconds(), 1))).Scan(&msg.MsgID, &msg.ReadCount, &msg.Body, &msg.Headers)
	if errors.Is(err, pgx.ErrNoRows) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, fmt.Errorf("read message %d of %s: %w", msgID, queue, err)
	}
	return msg, true, nil
}

// Message is one message read from a queue.
type Message struct {
	MsgID     int64
	ReadCount int64
	Body      []byte
	// Headers are the message's pgmq headers: nil when it has none.
	Headers []byte
}

// Read reads up to qty visible messages from queue, hiding them for vt, with their
// headers (pgmq 1.5's sixth column). It names its columns, so a later pgmq that adds more
// changes nothing, and, unlike pgmq-go's ReadBatch, it reports errors that arrive with the
// rows (a dropped queue, say).
func Read(ctx context.Context, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, queue string, vt time.Duration, qty int) ([]Message, error) {
	rows, err := db.Query(ctx, "SELECT msg_id, read_ct, message, headers FROM pgmq.read($1, $2, $3)",
		queue, int(max(vt.Seconds(), 1)), qty)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", queue, err)
	}
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Message, error) {
		var m Message
		return m, r.Scan(&m.MsgID, &m.ReadCount, &m.Body, &m.Headers)
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", queue, err)
	}
	return msgs, nil
}

// Send sends msg to queue with a readiness notification, inside db's transaction when db
// is a transaction. The message's headers carry the trace context of ctx's span.
func Send(ctx context.Context, db interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, queue string, msg any) (int64, error) {
	body, err := json.Marshal(msg)
	if err != nil {
		return 0, fmt.Errorf("send to %s: encode message: %w", queue, err)
	}
	var id int64
	if err := db.QueryRow(ctx, "SELECT tasker.pgmq_send_with_notify($1, $2, 0, $3)", queue, body, Headers(ctx)).Scan(&id); err != nil {
		return 0, fmt.Errorf("send to %s: %w", queue, err)
	}
	return id, nil
}

// Queue depth tiers for health checks, from tasker-core's backpressure thresholds.
const (
	QueueDepthCritical = 5000
	QueueDepthOverflow = 10000
)

// QueueStat is one queue's depth and oldest-message age, from pgmq.metrics_all().
type QueueStat struct {
	Queue      string
	Namespace  string
	Depth      int64
	AgeSeconds int64
}

// QueueStats reads every queue's figures (or those of the queues in only, when only is
// not nil). Gauges and health checks in both processes read through it.
func QueueStats(ctx context.Context, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, only map[string]bool) ([]QueueStat, error) {
	rows, err := db.Query(ctx, `SELECT queue_name, tasker.extract_queue_namespace(queue_name), queue_length,
	                                   coalesce(oldest_msg_age_sec, 0) FROM pgmq.metrics_all()`)
	if err != nil {
		return nil, err
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (QueueStat, error) {
		var q QueueStat
		return q, r.Scan(&q.Queue, &q.Namespace, &q.Depth, &q.AgeSeconds)
	})
	if err != nil || only == nil {
		return all, err
	}
	kept := all[:0]
	for _, q := range all {
		if only[q.Queue] {
			kept = append(kept, q)
		}
	}
	return kept, nil
}

// ObserveQueues reports depth and oldest-message age for the queues QueueStats reads.
func ObserveQueues(ctx context.Context, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, g *telemetry.GaugeObserver, only map[string]bool) error {
	stats, err := QueueStats(ctx, db, only)
	for _, q := range stats {
		g.QueueDepth(q.Namespace, q.Queue, q.Depth)
		g.QueueAge(q.Queue, q.AgeSeconds)
	}
	return err
}

// QueueChecks describes each queue (or each one in only, when only is not nil) for
// /health/detailed: its depth and oldest message, degraded from QueueDepthCritical
// messages and unhealthy from QueueDepthOverflow.
func QueueChecks(ctx context.Context, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, only map[string]bool) (map[string]api.Check, error) {
	start := time.Now()
	stats, err := QueueStats(ctx, db, only)
	if err != nil {
		return nil, err
	}
	took := float64(time.Since(start).Microseconds()) / 1000
	checks := map[string]api.Check{}
	for _, q := range stats {
		c := api.Check{Status: "healthy", Message: fmt.Sprintf("%d messages waiting, oldest %d s", q.Depth, q.AgeSeconds),
			DurationMS: took}
		switch {
		case q.Depth >= QueueDepthOverflow:
			c.Status = "unhealthy"
		case q.Depth >= QueueDepthCritical:
			c.Status = "degraded"
		}
		checks["queue_"+q.Queue] = c
	}
	return checks, nil
}

// FallbackReader is the fallback poll's read of a queue, shared by both services. It
// records each read's duration, counts a failed read as a queue error and the next read
// of that queue as a retry, and refuses reads on purpose when the process's
// queue_error_rate fault says so.
type FallbackReader struct {
	// DB runs the reads.
	DB interface {
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	}
	// Instruments record the reads; required.
	Instruments *telemetry.Instruments
	// Faults, when set, are the process's faults.
	Faults *faults.Switch

	mu     sync.Mutex
	failed map[string]bool
}

// Read reads up to qty visible messages from queue, hiding them for vt (see Read).
func (r *FallbackReader) Read(ctx context.Context, queue string, vt time.Duration, qty int) ([]Message, error) {
	r.mu.Lock()
	retry := r.failed[queue]
	r.mu.Unlock()
	if retry {
		r.Instruments.QueueRetry(ctx, "read")
	}
	start := time.Now()
	var msgs []Message
	err := faults.ErrQueueRefused
	if r.Faults == nil || !r.Faults.Get().FailQueueRead() {
		msgs, err = Read(ctx, r.DB, queue, vt, qty)
	}
	failed := err != nil && ctx.Err() == nil
	r.mu.Lock()
	if r.failed == nil {
		r.failed = map[string]bool{}
	}
	r.failed[queue] = failed
	r.mu.Unlock()
	switch {
	case failed:
		r.Instruments.QueueError(ctx, queue, "read")
	case err == nil:
		r.Instruments.QueueRead(ctx, queue, time.Since(start))
	}
	return msgs, err
}
