package messaging_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tasker-sim/tasker-sim/pkg/messaging"
)

// spanContext starts a span on a real SDK tracer and returns its context.
func spanContext(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(context.Background(), "sender")
	t.Cleanup(func() { span.End() })
	return ctx, span.SpanContext()
}

func TestHeadersRoundTrip(t *testing.T) {
	t.Parallel()
	ctx, sc := spanContext(t)
	ts, err := trace.ParseTraceState("vendor=value")
	require.NoError(t, err)
	sc = sc.WithTraceState(ts)
	ctx = trace.ContextWithSpanContext(ctx, sc)

	h := messaging.Headers(ctx)
	var fields map[string]string
	require.NoError(t, json.Unmarshal(h, &fields))
	require.Equal(t, "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01", fields["traceparent"])
	require.Equal(t, "vendor=value", fields["tracestate"])

	got := messaging.SpanContextFromHeaders(h)
	require.True(t, got.IsRemote(), "a context read from headers is remote")
	require.Equal(t, sc.TraceID(), got.TraceID())
	require.Equal(t, sc.SpanID(), got.SpanID())
	require.True(t, got.IsSampled())
	require.Equal(t, "vendor=value", got.TraceState().String())

	parent := trace.SpanContextFromContext(messaging.ContextWithHeaders(context.Background(), h))
	require.Equal(t, got, parent)
}

// Without a span there is nothing to carry: no headers at all, not an empty object.
func TestHeadersWithoutSpan(t *testing.T) {
	t.Parallel()
	require.Nil(t, messaging.Headers(context.Background()))
}

// Headers that hold no usable trace context leave the receiver's context alone: its span
// starts a new trace. Members that are not strings (a foreign producer's) are ignored.
func TestContextWithHeadersIgnoresWhatItCannotUse(t *testing.T) {
	t.Parallel()
	valid := `"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`
	for _, h := range []string{"", "null", "[]", `"traceparent"`, "{}", `{"traceparent": 7}`,
		`{"traceparent": "00-zz-zz-01"}`, `{"Traceparent": ` + valid + `}`, "{not json"} {
		ctx := messaging.ContextWithHeaders(context.Background(), []byte(h))
		require.False(t, trace.SpanContextFromContext(ctx).IsValid(), "headers %q", h)
	}
	foreign := `{"x-foreign": {"nested": true}, "x-count": 3, "traceparent": ` + valid + `}`
	sc := messaging.SpanContextFromHeaders([]byte(foreign))
	require.True(t, sc.IsValid(), "the trace context survives a foreign producer's other headers")
	require.Equal(t, "00f067aa0ba902b7", sc.SpanID().String())
}

// Send puts the trace context of the caller's span in the message's headers, Read and
// ReadByID return them, and a send without a span has none.
func TestSendCarriesTraceContext(t *testing.T) {
	t.Parallel()
	pool, _ := migratedPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const queue = "worker_traced_queue"
	require.NoError(t, messaging.EnsureQueue(ctx, pool, queue))

	spanCtx, sc := spanContext(t)
	traced, err := messaging.Send(spanCtx, pool, queue, map[string]string{"m": "traced"})
	require.NoError(t, err)
	plain, err := messaging.Send(ctx, pool, queue, map[string]string{"m": "plain"})
	require.NoError(t, err)

	msgs, err := messaging.Read(ctx, pool, queue, 30*time.Second, 10)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	byID := map[int64]messaging.Message{msgs[0].MsgID: msgs[0], msgs[1].MsgID: msgs[1]}
	require.Equal(t, sc.SpanID(), messaging.SpanContextFromHeaders(byID[traced].Headers).SpanID())
	require.Nil(t, byID[plain].Headers)

	// Visible again after a moment, then read by id, with the headers.
	_, err = pool.Exec(ctx, "SELECT pgmq.set_vt($1, $2, 0)", queue, traced)
	require.NoError(t, err)
	m, ok, err := messaging.ReadByID(ctx, pool, queue, traced, 30*time.Second)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, traced, m.MsgID)
	require.EqualValues(t, 2, m.ReadCount)
	require.Equal(t, sc.TraceID(), messaging.SpanContextFromHeaders(m.Headers).TraceID())

	_, ok, err = messaging.ReadByID(ctx, pool, queue, traced, 30*time.Second)
	require.NoError(t, err)
	require.False(t, ok, "a hidden message is not read again")
}
