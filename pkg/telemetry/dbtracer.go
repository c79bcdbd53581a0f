package telemetry

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DBTracer records the database metrics from inside pgx: every statement (plain or in a
// batch), every explicit transaction, and every wait for a pool connection. Set it as
// pgx.ConnConfig.Tracer; pgxpool picks up its acquire hooks from there.
type DBTracer struct {
	in   *Instruments
	pool string
	// txStart holds the start of each connection's open transaction.
	txStart sync.Map // *pgx.Conn → time.Time
}

// NewDBTracer returns a tracer that labels its pool metrics with pool.
func NewDBTracer(in *Instruments, pool string) *DBTracer { return &DBTracer{in: in, pool: pool} }

var (
	_ pgx.QueryTracer       = (*DBTracer)(nil)
	_ pgx.BatchTracer       = (*DBTracer)(nil)
	_ pgxpool.AcquireTracer = (*DBTracer)(nil)
)

type startKey struct{}

type queryStart struct {
	at  time.Time
	sql string
}

// operation is the statement's first keyword, upper-cased: a small, bounded label.
func operation(sql string) string {
	s := strings.TrimSpace(sql)
	for strings.HasPrefix(s, "--") || strings.HasPrefix(s, "/*") {
		if i := strings.IndexAny(s, "\n"); strings.HasPrefix(s, "--") && i >= 0 {
			s = strings.TrimSpace(s[i+1:])
		} else if j := strings.Index(s, "*/"); strings.HasPrefix(s, "/*") && j >= 0 {
			s = strings.TrimSpace(s[j+2:])
		} else {
			break
		}
	}
	end := strings.IndexAny(s, " \t\n(;")
	if end < 0 {
		end = len(s)
	}
	switch op := strings.ToUpper(s[:end]); op {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "COMMIT", "ROLLBACK", "LISTEN", "CREATE", "DROP", "ALTER":
		return op
	}
	return "OTHER"
}

// TraceQueryStart notes when a statement began.
func (t *DBTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, startKey{}, queryStart{at: time.Now(), sql: data.SQL})
}

// TraceQueryEnd records the statement, and closes the books on a transaction it ended.
func (t *DBTracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	st, ok := ctx.Value(startKey{}).(queryStart)
	if !ok {
		return
	}
	op := operation(st.sql)
	t.in.SQLQuery(ctx, op, data.Err != nil, time.Since(st.at))
	switch op {
	case "BEGIN":
		if data.Err == nil {
			t.txStart.Store(conn, st.at)
		}
	case "COMMIT", "ROLLBACK":
		if began, ok := t.txStart.LoadAndDelete(conn); ok {
			outcome := strings.ToLower(op)
			if data.Err != nil {
				outcome = "rollback"
			}
			t.in.Transaction(ctx, outcome, time.Since(began.(time.Time)))
		}
	}
}

type batchKey struct{}

type batchState struct {
	mu   sync.Mutex
	last time.Time
}

// TraceBatchStart notes when a batch was sent.
func (t *DBTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return context.WithValue(ctx, batchKey{}, &batchState{last: time.Now()})
}

// TraceBatchQuery records one statement of a batch. Its duration is the time since the
// previous statement's result: the statements of a batch run one after another.
func (t *DBTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	b, ok := ctx.Value(batchKey{}).(*batchState)
	if !ok {
		return
	}
	b.mu.Lock()
	now := time.Now()
	d := now.Sub(b.last)
	b.last = now
	b.mu.Unlock()
	t.in.SQLQuery(ctx, operation(data.SQL), data.Err != nil, d)
}

// TraceBatchEnd has nothing left to record: each statement was recorded as it finished.
func (t *DBTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

type acquireKey struct{}

// TraceAcquireStart notes when the wait for a connection began.
func (t *DBTracer) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	return context.WithValue(ctx, acquireKey{}, time.Now())
}

// TraceAcquireEnd records the wait.
func (t *DBTracer) TraceAcquireEnd(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireEndData) {
	if at, ok := ctx.Value(acquireKey{}).(time.Time); ok {
		t.in.PoolWait(ctx, t.pool, time.Since(at))
	}
}

// ForgetConn drops what the tracer keeps about a closed connection.
func (t *DBTracer) ForgetConn(conn *pgx.Conn) { t.txStart.Delete(conn) }

// PoolConfig returns a pool configuration hook that traces the pool's connections with a
// new DBTracer named pool, and caps the pool at maxConns.
func PoolConfig(in *Instruments, pool string, maxConns int32) func(*pgxpool.Config) {
	t := NewDBTracer(in, pool)
	return func(pc *pgxpool.Config) {
		pc.MaxConns = maxConns
		pc.ConnConfig.Tracer = t
		pc.BeforeClose = t.ForgetConn
	}
}
