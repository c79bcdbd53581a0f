package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// recordingTelemetry returns telemetry whose tracer records every span in the recorder.
func recordingTelemetry(t *testing.T) (*telemetry.Providers, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	p := newTelemetry(t)
	p.Tracer = tp.Tracer(telemetry.ScopeName)
	return p, rec
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

// taskSpans are the spans of one task, found by its correlation_id.
type taskSpans struct {
	all    []sdktrace.ReadOnlySpan
	byID   map[trace.SpanID]sdktrace.ReadOnlySpan
	create sdktrace.ReadOnlySpan
	// By step_uuid: the claim that won, the execution, its submit, and the processing of
	// its result that archived the message (a duplicate delivery's is left out).
	claims, execs, submits, results map[string]sdktrace.ReadOnlySpan
}

func spansOf(ended []sdktrace.ReadOnlySpan, corr string) *taskSpans {
	ts := &taskSpans{byID: map[trace.SpanID]sdktrace.ReadOnlySpan{}, claims: map[string]sdktrace.ReadOnlySpan{},
		execs: map[string]sdktrace.ReadOnlySpan{}, submits: map[string]sdktrace.ReadOnlySpan{},
		results: map[string]sdktrace.ReadOnlySpan{}}
	for _, s := range ended {
		a := spanAttrs(s)
		if a["correlation_id"] != corr {
			continue
		}
		ts.all = append(ts.all, s)
		ts.byID[s.SpanContext().SpanID()] = s
		step := a["step_uuid"]
		switch s.Name() {
		case "create_task":
			ts.create = s
		case "worker.step_claim":
			if a["outcome"] == "claimed" {
				ts.claims[step] = s
			}
		case "worker.step_execution":
			ts.execs[step] = s
		case "worker.step_submit":
			ts.submits[step] = s
		case "process_step_result":
			if a["archived"] == "true" {
				ts.results[step] = s
			}
		}
	}
	return ts
}

// gatherSpans waits until the recorder holds every span of a finished task whose steps
// each ran once, and returns them.
func gatherSpans(t *testing.T, rec *tracetest.SpanRecorder, corr string, steps int) *taskSpans {
	t.Helper()
	var ts *taskSpans
	waitFor(t, 10*time.Second, "every span of task "+corr, func() bool {
		ts = spansOf(rec.Ended(), corr)
		return ts.create != nil && len(ts.claims) == steps && len(ts.execs) == steps &&
			len(ts.submits) == steps && len(ts.results) == steps
	})
	return ts
}

// parent returns the span's parent among the task's spans, failing when it is not one.
func (ts *taskSpans) parent(t *testing.T, s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	t.Helper()
	p, ok := ts.byID[s.Parent().SpanID()]
	require.True(t, ok && s.Parent().IsValid(), "%s %s has no parent among the task's spans", s.Name(), spanAttrs(s)["step_uuid"])
	return p
}

// sameSpan compares span identities: a context that crossed a queue is remote, the
// recorded span's own is not.
func sameSpan(a, b trace.SpanContext) bool {
	return a.TraceID() == b.TraceID() && a.SpanID() == b.SpanID()
}

// linksTo reports whether s links to target with the given link.kind.
func linksTo(s sdktrace.ReadOnlySpan, target trace.SpanContext, kind string) bool {
	for _, l := range s.Links() {
		if !sameSpan(l.SpanContext, target) {
			continue
		}
		for _, kv := range l.Attributes {
			if kv.Key == "link.kind" && kv.Value.AsString() == kind {
				return true
			}
		}
	}
	return false
}

// requireOneTrace checks that every span of the task is in create_task's trace, that
// create_task is its root, and that every span of that trace carries the correlation_id.
func requireOneTrace(t *testing.T, ended []sdktrace.ReadOnlySpan, ts *taskSpans, corr string) {
	t.Helper()
	require.False(t, ts.create.Parent().IsValid(), "create_task is the root of the task's trace")
	id := ts.create.SpanContext().TraceID()
	for _, s := range ts.all {
		require.Equal(t, id, s.SpanContext().TraceID(), "%s %s is in the task's trace", s.Name(), spanAttrs(s)["step_uuid"])
	}
	for _, s := range ended {
		if s.SpanContext().TraceID() == id {
			require.Equal(t, corr, spanAttrs(s)["correlation_id"], "%s carries the task's correlation_id", s.Name())
		}
	}
}

// requireDAGTrace checks that the spans follow the task's DAG: each step's claim and
// execution are children of the span that enqueued it (create_task for a root step, else
// the process_step_result of one of its parents), its submit and the processing of its
// result are children of its execution, and the enqueuing span of a step with several
// parents links to the execution spans of the others. It returns each step's enqueuing
// span, by step name.
func requireDAGTrace(t *testing.T, ts *taskSpans, steps []api.StepResponse) map[string]sdktrace.ReadOnlySpan {
	t.Helper()
	byName := map[string]string{}
	for _, st := range steps {
		byName[st.Name] = st.StepUUID
	}
	enqueuers := map[string]sdktrace.ReadOnlySpan{}
	for _, st := range steps {
		id := st.StepUUID
		exec := ts.execs[id]
		enq := ts.parent(t, exec)
		enqueuers[st.Name] = enq
		require.Equal(t, enq.SpanContext(), ts.parent(t, ts.claims[id]).SpanContext(),
			"%s: claim and execution share the enqueuing span", st.Name)
		require.Equal(t, exec.SpanContext(), ts.parent(t, ts.submits[id]).SpanContext(), "%s: submit under execution", st.Name)
		require.Equal(t, exec.SpanContext(), ts.parent(t, ts.results[id]).SpanContext(),
			"%s: process_step_result under the worker's execution", st.Name)
		if len(st.Dependencies) == 0 {
			require.Equal(t, ts.create.SpanContext(), enq.SpanContext(), "%s: a root step is enqueued by create_task", st.Name)
			continue
		}
		last := ""
		for _, d := range st.Dependencies {
			if sameSpan(ts.results[byName[d]].SpanContext(), enq.SpanContext()) {
				last = d
			}
		}
		require.NotEmpty(t, last, "%s is enqueued by the result of one of its parents %v, not by %s",
			st.Name, st.Dependencies, enq.Name())
		for _, d := range st.Dependencies {
			if d != last {
				require.True(t, linksTo(enq, ts.execs[byName[d]].SpanContext(), "dependency"),
					"%s's enqueuing span (the result of %s) links to the execution of %s", st.Name, last, d)
			}
		}
	}
	return enqueuers
}

// logTrace writes the task's spans as a tree, with their links, for the test log.
func logTrace(t *testing.T, ts *taskSpans, names map[string]string) {
	t.Helper()
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	for _, s := range ts.all {
		children[s.Parent().SpanID()] = append(children[s.Parent().SpanID()], s)
	}
	var b strings.Builder
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		fmt.Fprintf(&b, "\n%s%s %s", strings.Repeat("  ", depth), s.Name(), names[spanAttrs(s)["step_uuid"]])
		for _, l := range s.Links() {
			if target, ok := ts.byID[l.SpanContext.SpanID()]; ok {
				fmt.Fprintf(&b, " [link to %s %s]", target.Name(), names[spanAttrs(target)["step_uuid"]])
			}
		}
		for _, c := range children[s.SpanContext().SpanID()] {
			walk(c, depth+1)
		}
	}
	for _, s := range ts.all {
		if _, ok := ts.byID[s.Parent().SpanID()]; !ok {
			walk(s, 0)
		}
	}
	t.Log("trace:" + b.String())
}

// runTraced runs one task to completion and returns its spans and steps.
func runTraced(t *testing.T, env *harness.Env, rec *tracetest.SpanRecorder, req *api.TaskRequest) (*taskSpans, []api.StepResponse) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	started := time.Now()
	created, done := runTask(ctx, t, env, req)
	require.Equal(t, "complete", done.Status)
	steps, err := env.Client.Steps(ctx, created.TaskUUID)
	require.NoError(t, err)
	ts := gatherSpans(t, rec, created.CorrelationID, len(steps))
	t.Logf("%s: complete with %d spans in %s", req.Name, len(ts.all), time.Since(started).Round(time.Millisecond))
	names := map[string]string{}
	for _, st := range steps {
		names[st.StepUUID] = st.Name
	}
	logTrace(t, ts, names)
	requireOneTrace(t, rec.Ended(), ts, created.CorrelationID)
	return ts, steps
}

// TestOneTracePerTask runs a diamond and a linear task and checks that each is one trace
// whose parent chain follows its DAG, through both queues and both processes.
func TestOneTracePerTask(t *testing.T) {
	t.Parallel()
	p, rec := recordingTelemetry(t)
	env := harness.New(t, cluster, telemetryOptions(p))

	t.Run("diamond_pattern", func(t *testing.T) {
		ts, steps := runTraced(t, env, rec, request("rust_e2e_diamond", "diamond_pattern", map[string]any{"even_number": 2}))
		enqueuers := requireDAGTrace(t, ts, steps)
		// diamond_end is enqueued by the result of the branch that finished last, and links
		// to the other branch's execution: exactly one dependency link.
		end := enqueuers["diamond_end"]
		require.Equal(t, "process_step_result", end.Name())
		require.Len(t, end.Links(), 1, "the join links to the one other parent")
		require.Equal(t, enqueuers["diamond_branch_b"].SpanContext(), enqueuers["diamond_branch_c"].SpanContext(),
			"both branches are enqueued by diamond_start's result")
	})
	t.Run("mathematical_sequence", func(t *testing.T) {
		ts, steps := runTraced(t, env, rec, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2}))
		requireDAGTrace(t, ts, steps)
		for _, s := range ts.all {
			require.Empty(t, s.Links(), "a linear task needs no links: %s", s.Name())
		}
	})
}

// TestMessageWithoutTraceContext puts step messages without headers, and with headers
// that hold no valid trace context (a foreign producer's), in a queue: their steps run
// and their tasks complete, and the worker starts a new trace at the claim, which the
// rest of the task then continues.
func TestMessageWithoutTraceContext(t *testing.T) {
	t.Parallel()
	p, rec := recordingTelemetry(t)
	opts := telemetryOptions(p)
	// The only worker serves another namespace at first, so the step messages wait.
	opts.Worker = func(_ int, c *worker.Config) { c.Namespaces = []string{"rust_e2e_retry"} }
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 30*time.Second)

	headers := []any{nil, `{"traceparent": "00-not-a-trace", "x-foreign": {"n": 1}}`}
	var created []*api.TaskResponse
	for range headers {
		c, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2}))
		require.NoError(t, err)
		created = append(created, c)
	}
	queue := workflow.WorkerQueue("rust_e2e_linear")
	for i, h := range headers {
		tag, err := env.Pool.Exec(ctx, `UPDATE pgmq.q_`+queue+` SET headers = $1::jsonb
			WHERE message ->> 'task_uuid' = $2`, h, created[i].TaskUUID)
		require.NoError(t, err)
		require.EqualValues(t, 1, tag.RowsAffected(), "the first step's message waits in the queue")
	}
	_, err := env.AddWorker(ctx, func(c *worker.Config) { c.Namespaces = []string{"rust_e2e_linear"} })
	require.NoError(t, err)

	for _, c := range created {
		done, err := env.Client.WaitTask(ctx, c.TaskUUID)
		require.NoError(t, err)
		require.Equal(t, "complete", done.Status)
		steps, err := env.Client.Steps(ctx, c.TaskUUID)
		require.NoError(t, err)
		ts := gatherSpans(t, rec, c.CorrelationID, len(steps))
		var first api.StepResponse
		for _, st := range steps {
			if len(st.Dependencies) == 0 {
				first = st
			}
		}
		claim := ts.claims[first.StepUUID]
		require.False(t, claim.Parent().IsValid(), "a message without trace context starts a new trace at the claim")
		require.NotEqual(t, ts.create.SpanContext().TraceID(), claim.SpanContext().TraceID())
		require.Equal(t, claim.SpanContext(), ts.parent(t, ts.execs[first.StepUUID]).SpanContext(),
			"the execution hangs under the claim that started the trace")
		for _, s := range ts.all {
			if s != ts.create {
				require.Equal(t, claim.SpanContext().TraceID(), s.SpanContext().TraceID(),
					"%s continues the claim's trace", s.Name())
			}
		}
	}
}

// TestRetryTraceLinks lets a step fail until it runs out of attempts. Each retry is
// enqueued by the retry poller's span, which starts a trace of its own and links to the
// task's create_task span and to the attempt before; the retried attempt runs under it.
func TestRetryTraceLinks(t *testing.T) {
	t.Parallel()
	p, rec := recordingTelemetry(t)
	opts := telemetryOptions(p)
	opts.Orchestrator = func(_ int, c *orchestrator.Config) {
		c.PollInterval = 100 * time.Millisecond
		// Long enough that the retry is always the poller's, never the result's own plan.
		c.Backoff.Base, c.Backoff.Max = 400*time.Millisecond, 500*time.Millisecond
	}
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 30*time.Second)
	created, done := runTask(ctx, t, env, request("rust_e2e_retry", "retry_exhaustion_test", map[string]any{}))
	require.Equal(t, "blocked_by_failures", done.Status)

	const attempts = 3
	execs := map[string]sdktrace.ReadOnlySpan{} // by attempt
	var ended []sdktrace.ReadOnlySpan
	waitFor(t, 10*time.Second, "every attempt's spans", func() bool {
		ended = rec.Ended()
		for _, s := range spansOf(ended, created.CorrelationID).all {
			if s.Name() == "worker.step_execution" {
				execs[spanAttrs(s)["attempt"]] = s
			}
		}
		return len(execs) == attempts
	})
	all := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var create sdktrace.ReadOnlySpan
	for _, s := range ended {
		all[s.SpanContext().SpanID()] = s
		if s.Name() == "create_task" && spanAttrs(s)["correlation_id"] == created.CorrelationID {
			create = s
		}
	}
	require.NotNil(t, create)
	require.True(t, sameSpan(create.SpanContext(), execs["1"].Parent()), "the first attempt is enqueued by create_task")
	for n := 2; n <= attempts; n++ {
		retry, ok := all[execs[fmt.Sprint(n)].Parent().SpanID()]
		require.True(t, ok, "attempt %d's enqueuing span was recorded", n)
		require.Equal(t, "retry_due_steps", retry.Name(), "attempt %d is enqueued by the retry poller", n)
		require.Equal(t, created.CorrelationID, spanAttrs(retry)["correlation_id"])
		require.False(t, retry.Parent().IsValid(), "the maintenance span starts a trace of its own")
		require.True(t, linksTo(retry, create.SpanContext(), "task"), "attempt %d: link to create_task", n)
		require.True(t, linksTo(retry, execs[fmt.Sprint(n-1)].SpanContext(), "previous_attempt"),
			"attempt %d: link to attempt %d's execution", n, n-1)
	}
}
