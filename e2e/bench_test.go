package e2e

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// BenchmarkTelemetryOverhead measures throughput (tasks/s, 8 in flight) with telemetry
// off and on, in alternating rounds on fresh databases, and reports on/off as a ratio:
// the goal is a cost of at most 5 %. Run it with `make bench-telemetry`.
func BenchmarkTelemetryOverhead(b *testing.B) {
	const tasks, inFlight, rounds = 150, 8, 3
	run := func(p *telemetry.Providers) float64 {
		opts := fastOptions()
		opts.Telemetry = p
		env := harness.New(b, cluster, opts)
		defer env.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(inFlight)
		start := time.Now()
		for range tasks {
			g.Go(func() error {
				t, err := env.Client.CreateTask(gctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 6}))
				if err != nil {
					return err
				}
				_, err = env.Client.WaitTask(gctx, t.TaskUUID)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		return tasks / time.Since(start).Seconds()
	}
	var off, on float64
	for b.Loop() {
		for range rounds {
			off += run(telemetry.Disabled())
			enabled, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "bench"}, discard())
			if err != nil {
				b.Fatal(err)
			}
			on += run(enabled)
			_ = enabled.Shutdown(context.Background())
		}
	}
	b.ReportMetric(off/float64(rounds*b.N), "tasks/s-off")
	b.ReportMetric(on/float64(rounds*b.N), "tasks/s-on")
	b.ReportMetric(on/off, "on/off")
}
