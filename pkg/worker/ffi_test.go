package worker

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/tasker-sim/tasker-sim/pkg/faults"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
	"github.com/tasker-sim/tasker-sim/pkg/stepclaim"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testWorker is the part of a worker the FFI completion path and fault selection use.
func testWorker(t *testing.T, handlerType string, process faults.Faults) (*Worker, *telemetry.Providers) {
	t.Helper()
	p, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "worker-unit"}, quiet())
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	w := &Worker{cfg: Config{HandlerType: handlerType}, log: quiet(), in: p.Instruments, tracer: p.Tracer}
	w.faults = faults.NewCheckedSwitch(process, w.checkProcessFaults, nil)
	if handlerType != HandlerTypeRust {
		w.ffi = newFFIPath(w)
	}
	return w, p
}

// counter reads one unlabelled counter from the Prometheus text the process serves.
func counter(t *testing.T, p *telemetry.Providers, name string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	p.MetricsHandler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	require.NoError(t, err)
	var sum float64
	if fam := fams[name]; fam != nil {
		for _, m := range fam.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func stepWithContext(taskContext string) *stepclaim.Step {
	return &stepclaim.Step{Context: json.RawMessage(taskContext)}
}

// TestDefaultsCountA150msStallAsSlow: on default settings (100 ms threshold, 5 failures
// open the ffi_completion breaker), five completions stalled 150 ms are sent but count as
// slow, the breaker opens, and the sixth completion is refused. The counts come from the
// sends themselves.
func TestDefaultsCountA150msStallAsSlow(t *testing.T) {
	w, p := testWorker(t, HandlerTypeRuby, faults.Faults{})
	f := w.ffi
	require.Equal(t, 100*time.Millisecond, f.slow)
	sf := w.faultsFor(stepWithContext(`{"n": 1, "_faults": {"slow_completion_ms": 150}}`), quiet())
	require.Equal(t, 150*time.Millisecond, sf.stall)

	_, span := noop.NewTracerProvider().Tracer("").Start(context.Background(), "step")
	for i := range resilience.FailureThresholdDefault {
		start := time.Now()
		f.complete(&outcome{ctx: context.Background(), span: span, log: quiet(), stall: sf.stall})
		require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "send %d really took the stall", i)
	}
	require.Equal(t, resilience.FailureThresholdDefault, f.completeCh.Len(), "slow sends are still sent")
	require.Equal(t, float64(resilience.FailureThresholdDefault), counter(t, p, "ffi_completion_slow_sends_total"))
	require.Equal(t, resilience.Open, f.breaker.State())

	f.complete(&outcome{ctx: context.Background(), span: span, log: quiet()})
	require.Equal(t, resilience.FailureThresholdDefault, f.completeCh.Len(), "the open breaker refuses the completion")
	require.Equal(t, 1.0, counter(t, p, "ffi_completion_circuit_open_rejections_total"))
}

// TestSlowCompletionSelection: a task's own slow_completion_ms slows its steps only; the
// process's slows every completion, including those of tasks with other faults of their
// own; a rust worker ignores the per-task value and refuses the process one.
func TestSlowCompletionSelection(t *testing.T) {
	ruby, _ := testWorker(t, HandlerTypeRuby, faults.Faults{})
	require.Zero(t, ruby.faultsFor(stepWithContext(`{"n": 1}`), quiet()).stall)
	require.Zero(t, ruby.faultsFor(stepWithContext(`{"_faults": {"error_rate": 0.5}}`), quiet()).stall)

	slowProcess, _ := testWorker(t, HandlerTypePython, faults.Faults{SlowCompletionMS: 200})
	require.Equal(t, 200*time.Millisecond, slowProcess.faultsFor(stepWithContext(`{"n": 1}`), quiet()).stall)
	own := slowProcess.faultsFor(stepWithContext(`{"_faults": {"error_rate": 0.5}}`), quiet())
	require.Equal(t, 200*time.Millisecond, own.stall)
	require.Equal(t, 0.5, own.handler.ErrorRate, "the task's handler faults replace the process's")
	require.Equal(t, 50*time.Millisecond,
		slowProcess.faultsFor(stepWithContext(`{"_faults": {"slow_completion_ms": 50}}`), quiet()).stall)

	rust, _ := testWorker(t, HandlerTypeRust, faults.Faults{})
	require.Zero(t, rust.faultsFor(stepWithContext(`{"_faults": {"slow_completion_ms": 150}}`), quiet()).stall)
	err := rust.faults.Set(faults.Faults{SlowCompletionMS: 150})
	require.ErrorContains(t, err, "slow_completion_ms 150: needs an FFI handler type")
	require.NoError(t, ruby.faults.Set(faults.Faults{SlowCompletionMS: 150}))
}
