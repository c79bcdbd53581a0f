package messaging

import (
	"context"
	"encoding/json"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Every message tasker-sim sends carries its sender's span context as W3C trace context in
// pgmq's message headers, {"traceparent": "00-…", "tracestate": "…"}, so that the span
// which receives it continues the sender's trace: one task, one trace. The propagator is
// fixed rather than the global one, so the headers are the same whatever the process's
// exporter settings, and a process with tracing off still passes the context along.
var traceContext = propagation.TraceContext{}

// Headers returns the pgmq message headers (a JSON object) carrying the span context of
// ctx's span, or nil when ctx has no valid span context: the message then goes without
// headers (NULL).
func Headers(ctx context.Context) []byte {
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	if len(carrier) == 0 {
		return nil
	}
	body, err := json.Marshal(carrier)
	if err != nil {
		return nil // a map of strings always encodes; without headers the trace just breaks
	}
	return body
}

// ContextWithHeaders returns ctx with the span context that message headers hold as its
// remote parent. Headers that are absent (old messages, foreign producers), not a JSON
// object, or without a valid traceparent leave ctx as it is, so the receiver's span simply
// starts a new trace.
func ContextWithHeaders(ctx context.Context, headers []byte) context.Context {
	carrier := headerCarrier(headers)
	if len(carrier) == 0 {
		return ctx
	}
	return traceContext.Extract(ctx, carrier)
}

// SpanContextFromHeaders returns the span context message headers (or a stored
// trace_context) hold; it is invalid when they hold none.
func SpanContextFromHeaders(headers []byte) trace.SpanContext {
	return trace.SpanContextFromContext(ContextWithHeaders(context.Background(), headers))
}

// headerCarrier reads the string members of a headers object. Members of other types
// (a foreign producer's own headers) are ignored, as is anything that is not an object.
func headerCarrier(headers []byte) propagation.MapCarrier {
	if len(headers) == 0 {
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(headers, &fields); err != nil {
		return nil
	}
	carrier := make(propagation.MapCarrier, len(fields))
	for k, raw := range fields {
		var v string
		if json.Unmarshal(raw, &v) == nil {
			carrier[k] = v
		}
	}
	return carrier
}
