package orchestrator

import (
	"encoding/json"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/tasker-sim/tasker-sim/pkg/messaging"
)

// Kinds of span link, as the link's "link.kind" attribute names them.
const (
	// linkDependency: the enqueued step's other parent, whose result came earlier.
	linkDependency = "dependency"
	// linkPreviousAttempt: the enqueued step's earlier attempt (a retry or a recovery).
	linkPreviousAttempt = "previous_attempt"
	// linkTaskRoot: the task's create_task span, from a maintenance span.
	linkTaskRoot = "task"
)

// stepLink is one trace context the enqueue of a ready step links to (see snapshotSQL).
type stepLink struct {
	Step  uuid.UUID       `json:"step"`  // the ready step
	From  uuid.UUID       `json:"from"`  // the step whose span the context is
	Kind  string          `json:"kind"`  // linkDependency or linkPreviousAttempt
	Trace json.RawMessage `json:"trace"` // the stored trace_context (message headers)
}

// linkEnqueued links the span that enqueued a plan's ready steps to the spans of their
// other parents and earlier attempts. The step whose result led to the plan (cause) is
// its parent already, so it gets no link. Tracing never fails a plan: links that do not decode are
// left out.
func linkEnqueued(span trace.Span, snap *snapshot, cause uuid.UUID) {
	if len(snap.links) == 0 || !span.IsRecording() {
		return
	}
	var links []stepLink
	if err := json.Unmarshal(snap.links, &links); err != nil {
		return
	}
	for _, l := range links {
		if l.From == cause || (l.Kind != linkDependency && l.Kind != linkPreviousAttempt) {
			continue
		}
		sc := messaging.SpanContextFromHeaders(l.Trace)
		if !sc.IsValid() {
			continue
		}
		span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{
			attribute.String("link.kind", l.Kind), attribute.String("step_uuid", l.From.String()),
			attribute.String("enqueued_step_uuid", l.Step.String()),
		}})
	}
}

// linkTask links a maintenance span to the task's trace: its create_task span.
func linkTask(span trace.Span, t *taskRef) {
	if sc := messaging.SpanContextFromHeaders(t.traceContext); sc.IsValid() {
		span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{
			attribute.String("link.kind", linkTaskRoot), attribute.String("task_uuid", t.uuid.String()),
		}})
	}
}
