// Command record makes the dashboards' test fixture: it starts a real stack (a throwaway
// PostgreSQL, the orchestrator, one worker and one FFI worker), runs the built-in chaos
// scenario against it as e2e/chaos_test.go does, scrapes every process's /metrics every
// 2 s meanwhile, and writes the catalog's series to a gzip-compressed fixture.
//
//	go run ./internal/dashboards/record [-o internal/dashboards/testdata/chaos.json.gz]
//
// The correlation_id label is kept for two tasks whose flow is complete (for the
// task-flow panel) and dropped elsewhere, summing the series it split, so the file stays
// small.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tasker-sim/tasker-sim/internal/cli"
	"github.com/tasker-sim/tasker-sim/internal/dashboards/fixture"
	"github.com/tasker-sim/tasker-sim/internal/load"
	"github.com/tasker-sim/tasker-sim/internal/stack"
)

// loadArgs are the chaos run's flags after --url and the workers' addresses: those of
// e2e/chaos_test.go.
var loadArgs = []string{"--scenario", "chaos", "--scenario-speed", "4", "--rate", "20", "--duration", "45s",
	"--warmup", "0s", "--grace", "2m", "-o", "json"}

// settle is how long scraping goes on after the load run returns.
const settle = 10 * time.Second

func main() {
	out := flag.String("o", "internal/dashboards/testdata/chaos.json.gz", "where to write the fixture")
	interval := flag.Duration("interval", 2*time.Second, "scrape interval")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *out, *interval)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out string, interval time.Duration) error {
	binDir, err := os.MkdirTemp("", "tasker-record-bin-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(binDir) }()
	if err := build(ctx, binDir); err != nil {
		return err
	}
	s, err := stack.Start(ctx, stack.Options{BinDir: binDir, Workers: 1, FFIWorkers: 1, Logf: logf})
	if err != nil {
		return err
	}
	defer s.Stop()

	sc := newScraper(targetsOf(s), interval)
	scrapeCtx, stopScraping := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { sc.loop(scrapeCtx); close(done) }()
	res, runErr := runChaos(ctx, s)
	if runErr == nil {
		logf("load run done; scraping %s more", settle)
		select {
		case <-time.After(settle):
		case <-ctx.Done():
		}
	}
	stopScraping()
	<-done
	if runErr != nil {
		return runErr
	}
	f, err := assemble(sc.rounds, sc.targets, res, interval)
	if err != nil {
		return err
	}
	if err := fixture.Save(out, f); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	logf("wrote %s: %d rounds, %d series, kept correlation ids %v, %d bytes", out, len(f.Timestamps),
		len(f.Series), f.CorrelationIDs, st.Size())
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "record: "+format+"\n", args...)
}

// build compiles the orchestrator and worker into dir.
func build(ctx context.Context, dir string) error {
	logf("building the orchestrator and worker")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/orchestrator", "./cmd/worker")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build (run from the repository root): %w\n%s", err, out)
	}
	return nil
}

// targetsOf names each process of the stack as Prometheus would: a job and an instance.
func targetsOf(s *stack.Stack) []target {
	ts := []target{{job: "orchestrator", url: s.URL}}
	for _, u := range s.WorkerURLs {
		job := "worker"
		for _, f := range s.FFIWorkerURLs {
			if f == u {
				job = "ffi-worker"
			}
		}
		ts = append(ts, target{job: job, url: u})
	}
	for i := range ts {
		ts[i].instance = strings.TrimPrefix(ts[i].url, "http://")
	}
	return ts
}

// runChaos runs `taskerctl load --scenario chaos` against the stack and returns its result.
func runChaos(ctx context.Context, s *stack.Stack) (*load.Result, error) {
	args := append([]string{"load", "--url", s.URL, "--worker-url", s.WorkerURLs[0],
		"--ffi-worker-url", s.FFIWorkerURLs[0]}, loadArgs...)
	logf("running taskerctl %s", strings.Join(args, " "))
	var out, errOut bytes.Buffer
	code := cli.Execute(ctx, args, &out, &errOut)
	var res load.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("taskerctl load exited %d without a JSON result (%w); stderr:\n%s", code, err, errOut.String())
	}
	for _, p := range res.Phases {
		if p.Error != "" {
			return nil, fmt.Errorf("chaos phase %q: %s", p.Name, p.Error)
		}
	}
	logf("taskerctl load exited %d: created %d, final states %v", code, res.Created, res.FinalStates)
	return &res, nil
}

// assemble turns the scrape rounds into a fixture.
func assemble(rounds []round, targets []target, res *load.Result, interval time.Duration) (*fixture.Fixture, error) {
	if len(rounds) < 2 {
		return nil, fmt.Errorf("only %d scrape rounds were recorded", len(rounds))
	}
	keep, err := pickCorrelationIDs(rounds[len(rounds)-1], targets)
	if err != nil {
		return nil, err
	}
	f := &fixture.Fixture{Schema: fixture.Schema, IntervalMS: interval.Milliseconds(), CorrelationIDs: keep,
		Recorded: "taskerctl load " + strings.Join(loadArgs, " ") + " on 1 worker and 1 FFI worker"}
	for _, p := range res.Phases {
		f.Phases = append(f.Phases, fixture.Phase{Name: p.Name, Target: p.Target,
			StartMS: res.StartedAt.Add(seconds(p.StartSeconds)).UnixMilli(),
			EndMS:   res.StartedAt.Add(seconds(p.EndSeconds)).UnixMilli()})
	}
	f.Timestamps, f.Series, err = tabulate(rounds, targets, keep)
	return f, err
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
