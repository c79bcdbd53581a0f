package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/tasker-sim/tasker-sim/internal/stack"
	"github.com/tasker-sim/tasker-sim/pkg/client"
)

func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// percentile returns the p-th percentile (0..100) of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// ownStack is what startOwnStack started, or the user's own processes.
type ownStack struct {
	url, dbURL string
	// workers and ffiWorkers are the workers' base URLs, when this command started them
	// (ffiWorkers are also in workers).
	workers, ffiWorkers []string
	// metrics are the /metrics addresses of every process, when known.
	metrics []string
	// meter reads the CPU of the processes this command started, and of PostgreSQL when
	// it is a local cluster this command runs (nil for the user's own stack).
	meter *cpuMeter
	stop  func()
}

// startOwnStack starts a throwaway stack unless the user named an orchestrator.
func startOwnStack(cmd *cobra.Command, workers int, env []string) (*ownStack, error) {
	return startOwnStackWithFFI(cmd, workers, 0, env)
}

// startOwnStackWithFFI is startOwnStack with ffiWorkers FFI (ruby) workers besides.
func startOwnStackWithFFI(cmd *cobra.Command, workers, ffiWorkers int, env []string) (*ownStack, error) {
	if u, _ := cmd.Flags().GetString("url"); u != "" {
		return &ownStack{url: u, dbURL: os.Getenv("TASKER_DATABASE_URL"), stop: func() {}}, nil
	}
	if u := os.Getenv(OrchestrationURLEnv); u != "" {
		return &ownStack{url: u, dbURL: os.Getenv("TASKER_DATABASE_URL"), stop: func() {}}, nil
	}
	binDir, _ := cmd.Flags().GetString("bin-dir")
	logf := func(format string, args ...any) { fmt.Fprintf(cmd.ErrOrStderr(), "· "+format+"\n", args...) }
	s, err := stack.Start(cmd.Context(), stack.Options{DatabaseURL: os.Getenv("TASKER_DATABASE_URL"),
		BinDir: binDir, Workers: workers, FFIWorkers: ffiWorkers, Env: env, Logf: logf})
	if err != nil {
		return nil, err
	}
	own := &ownStack{url: s.URL, dbURL: s.DatabaseURL, stop: s.Stop, metrics: []string{s.URL + "/metrics"},
		workers: s.WorkerURLs, ffiWorkers: s.FFIWorkerURLs, meter: &cpuMeter{procs: s.Processes()}}
	own.meter.postmaster, _ = localPostmaster(cmd.Context(), s.Cluster())
	for _, w := range s.WorkerURLs {
		own.metrics = append(own.metrics, w+"/metrics")
	}
	return own, nil
}

func newBar(w io.Writer, n int, what string) *progressbar.ProgressBar {
	return progressbar.NewOptions(n,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("tasks"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

// The single-task latency goals, printed beside the figures.
const (
	p1TargetP50MS = 10
	p1TargetP99MS = 25
)

func benchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure mathematical_sequence latency from create to complete (P50/P95/P99)",
		Long: `Measure end-to-end latency of mathematical_sequence: each task is created, then
awaited (long-poll, so the time is not quantised by a polling interval), one at a time.

Without --url it starts its own throwaway PostgreSQL, orchestrator and worker (run
'make build' first). As a reference in the same run it measures the latency of one
durable single-row commit on the same database and reports the task latency as a
multiple of it: a linear task needs about 13 commits. With the database known it also
breaks the latency into hops between the tasks' audit rows (a step's enqueue, its claim,
its result, its completion, the next step's enqueue), each the median over the measured
tasks, so you can see where a single task's time goes.`,
		Args: cobra.NoArgs,
		RunE: runBench,
	}
	f := cmd.Flags()
	f.Int("tasks", 200, "tasks to measure (at least 1)")
	f.Int("warmup", 10, "tasks run first and not measured")
	f.Int("even-number", 6, "the even_number input")
	f.Int("workers", 1, "workers to start when running its own stack")
	f.Int("repeat", 1, "rounds to run, each --tasks tasks and its own commit reference; the figures reported are the median round's")
	f.String("bin-dir", "", "directory with the orchestrator and worker binaries (default: beside taskerctl, then ./bin)")
	addOutputFlag(cmd)
	return cmd
}

// BenchResult is what `taskerctl bench -o json` prints.
type BenchResult struct {
	Tasks int `json:"tasks"`
	// BenchRound holds P50, P99, the commit reference and the CPU per task.
	BenchRound
	P95MS          float64 `json:"p95_ms"`
	MeanMS         float64 `json:"mean_ms"`
	TasksPerSecond float64 `json:"tasks_per_second"`
	// Hops is where the measured tasks' time went (when the database is known), over
	// every round.
	Hops []HopLatency `json:"hops,omitempty"`
	// Rounds are every round's figures, in the order they ran (--repeat above 1); the
	// fields above are the median round's.
	Rounds []BenchRound `json:"rounds,omitempty"`
}

// TaskCPU is the CPU (user + system) the stack's processes used per measured task: a
// figure that moves less with the machine's speed than the latency does.
type TaskCPU struct {
	// PostgresMS is the whole server's (postmaster and every child); null when unknown.
	PostgresMS *float64 `json:"postgres_ms"`
	// ServicesMS is the orchestrators' and workers' together.
	ServicesMS float64 `json:"services_ms"`
}

// BenchRound is one round of bench: its latency and its own commit reference.
type BenchRound struct {
	P50MS             float64 `json:"p50_ms"`
	P99MS             float64 `json:"p99_ms"`
	ReferenceCommitMS float64 `json:"reference_commit_p50_ms,omitempty"`
	RatioToCommit     float64 `json:"p50_over_commit_p50,omitempty"`
	// CPU is what the processes used per measured task, when this command started them.
	CPU *TaskCPU `json:"cpu_per_task,omitempty"`
}

// medianBenchRound is the index of the median round: by P50 ÷ commit when every round
// has its reference, else by P50; of an even count, the lower middle.
func medianBenchRound(rounds []BenchRound) int {
	byRatio := !slices.ContainsFunc(rounds, func(r BenchRound) bool { return r.RatioToCommit <= 0 })
	return medianIndex(len(rounds), func(i int) float64 {
		if byRatio {
			return rounds[i].RatioToCommit
		}
		return rounds[i].P50MS
	})
}

// flagRepeat reads and checks --repeat, which both benchmarks take.
func flagRepeat(cmd *cobra.Command) (int, error) {
	const most = 50
	n := flagInt(cmd, "repeat")
	if n < 1 || n > most {
		return 0, fmt.Errorf("--repeat %d: must be from 1 to %d", n, most)
	}
	return n, nil
}

// benchPlan is the validated command line of bench.
type benchPlan struct {
	format                         string
	tasks, warmup, even, w, repeat int
}

func parseBenchFlags(cmd *cobra.Command) (*benchPlan, error) {
	format, err := outputFormat(cmd)
	if err != nil {
		return nil, err
	}
	p := &benchPlan{format: format, tasks: flagInt(cmd, "tasks"), warmup: flagInt(cmd, "warmup"),
		even: flagInt(cmd, "even-number"), w: flagInt(cmd, "workers")}
	if p.repeat, err = flagRepeat(cmd); err != nil {
		return nil, err
	}
	switch {
	case p.tasks < 1:
		return nil, fmt.Errorf("--tasks %d: must be at least 1", p.tasks)
	case p.warmup < 0:
		return nil, fmt.Errorf("--warmup %d: must not be negative", p.warmup)
	case p.even < 2 || p.even > 100 || p.even%2 != 0:
		return nil, fmt.Errorf("--even-number %d: must be even, from 2 to 100", p.even)
	}
	return p, nil
}

func runBench(cmd *cobra.Command, _ []string) error {
	p, err := parseBenchFlags(cmd)
	if err != nil {
		return err
	}
	own, err := startOwnStack(cmd, p.w, nil)
	if err != nil {
		return err
	}
	defer own.stop()
	c, err := clientFor(own.url)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	res, ids, err := p.rounds(ctx, c, own.dbURL, own.meter, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if own.dbURL != "" {
		if res.Hops, err = measureHops(ctx, own.dbURL, ids); err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "· the latency breakdown failed (the figures above stand): %v\n", err)
		}
	}
	if p.format == "json" {
		return printJSON(cmd.OutOrStdout(), res)
	}
	printBench(cmd.OutOrStdout(), res, p.warmup)
	return nil
}

// rounds runs the plan's rounds, each its tasks and then, when the database is known, its
// commit reference, and returns the median round's result (with every round in Rounds
// when there were several) and the ids of every measured task.
func (p *benchPlan) rounds(ctx context.Context, c *client.Client, dbURL string, m *cpuMeter, progress io.Writer) (*BenchResult, []string, error) {
	var results []*BenchResult
	var ids []string
	for i := range p.repeat {
		warmup := p.warmup
		if i > 0 {
			warmup = 0 // the stack is warm
		}
		res, got, err := p.measure(ctx, c, warmup, m, newBar(progress, p.tasks, fmt.Sprintf("round %d of %d", i+1, p.repeat)))
		if err != nil {
			return nil, nil, err
		}
		if dbURL != "" {
			ref, err := commitLatency(ctx, dbURL, p.tasks)
			if err != nil {
				return nil, nil, fmt.Errorf("reference run: %w", err)
			}
			res.ReferenceCommitMS = toMS(ref)
			res.RatioToCommit = res.P50MS / res.ReferenceCommitMS
		}
		results, ids = append(results, res), append(ids, got...)
	}
	rounds := make([]BenchRound, len(results))
	for i, r := range results {
		rounds[i] = r.BenchRound
	}
	res := results[medianBenchRound(rounds)]
	if len(rounds) > 1 {
		res.Rounds = rounds
	}
	return res, ids, nil
}

// measure runs warmup tasks, then the plan's measured ones one at a time, and returns the
// latency figures and the measured tasks' ids.
func (p *benchPlan) measure(ctx context.Context, c *client.Client, warmup int, m *cpuMeter,
	bar *progressbar.ProgressBar) (*BenchResult, []string, error) {
	runOne := func() (string, time.Duration, error) {
		start := time.Now()
		t, err := c.CreateTask(ctx, benchTaskRequest(p.even, "latency benchmark"))
		if err != nil {
			return "", 0, err
		}
		if t, err = c.WaitTask(ctx, t.TaskUUID); err != nil {
			return "", 0, err
		}
		if t.Status != "complete" {
			return "", 0, fmt.Errorf("task %s ended %s", t.TaskUUID, t.Status)
		}
		return t.TaskUUID, time.Since(start), nil
	}
	for range warmup {
		if _, _, err := runOne(); err != nil {
			return nil, nil, err
		}
	}
	lat, ids := make([]time.Duration, 0, p.tasks), make([]string, 0, p.tasks)
	var before cpuReading
	if m != nil {
		before = m.read()
	}
	began := time.Now()
	for range p.tasks {
		id, d, err := runOne()
		if err != nil {
			return nil, nil, err
		}
		lat, ids = append(lat, d), append(ids, id)
		_ = bar.Add(1)
	}
	elapsed := time.Since(began)
	var cpu *TaskCPU
	if m != nil {
		cpu = m.read().perTask(before, m, p.tasks)
	}
	_ = bar.Finish()
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	return &BenchResult{Tasks: p.tasks, P95MS: toMS(percentile(lat, 95)), MeanMS: toMS(sum / time.Duration(p.tasks)),
		TasksPerSecond: float64(p.tasks) / elapsed.Seconds(),
		BenchRound:     BenchRound{P50MS: toMS(percentile(lat, 50)), P99MS: toMS(percentile(lat, 99)), CPU: cpu}}, ids, nil
}

// String is the figures as bench prints them.
func (c *TaskCPU) String() string {
	db := "PostgreSQL unknown"
	if c.PostgresMS != nil {
		db = fmt.Sprintf("PostgreSQL %.2f ms", *c.PostgresMS)
	}
	return fmt.Sprintf("%s, orchestrator and worker %.2f ms", db, c.ServicesMS)
}

// perTask is the CPU of m's processes and of PostgreSQL since before, per task of n.
func (r cpuReading) perTask(before cpuReading, m *cpuMeter, n int) *TaskCPU {
	out := &TaskCPU{}
	for _, p := range r.since(before, m) {
		out.ServicesMS += 1000 * p.CPUSeconds / float64(n)
	}
	if d, ok := r.dbSince(before); ok {
		db := float64(d.Microseconds()) / 1000 / float64(n)
		out.PostgresMS = &db
	}
	return out
}

func printBench(out io.Writer, res *BenchResult, warmup int) {
	for i, r := range res.Rounds {
		fmt.Fprintf(out, "round %d: P50 %.2f ms, P99 %.2f ms", i+1, r.P50MS, r.P99MS)
		if r.ReferenceCommitMS > 0 {
			fmt.Fprintf(out, ", commit P50 %.3f ms, P50 = %.1f x commit", r.ReferenceCommitMS, r.RatioToCommit)
		}
		if r.CPU != nil {
			fmt.Fprintf(out, ", CPU per task %s", r.CPU)
		}
		fmt.Fprintln(out)
	}
	if len(res.Rounds) > 1 {
		fmt.Fprintf(out, "the median round of %d (by P50 over commit, or by P50 without a reference):\n", len(res.Rounds))
	}
	fmt.Fprintf(out, "mathematical_sequence, %d sequential tasks (after %d warm-up), create -> complete:\n", res.Tasks, warmup)
	fmt.Fprintf(out, "  P50 %.2f ms   P95 %.2f ms   P99 %.2f ms   mean %.2f ms   (%.1f tasks/s)\n",
		res.P50MS, res.P95MS, res.P99MS, res.MeanMS, res.TasksPerSecond)
	if res.CPU != nil {
		fmt.Fprintf(out, "  CPU per task: %s\n", res.CPU)
	}
	if res.ReferenceCommitMS > 0 {
		fmt.Fprintf(out, "  reference: one durable commit P50 %.3f ms; task P50 = %.1f x commit\n",
			res.ReferenceCommitMS, res.RatioToCommit)
		printHops(out, res.Hops)
	} else {
		fmt.Fprintln(out, "  reference run and breakdown skipped: set TASKER_DATABASE_URL to the orchestrator's database")
	}
	fmt.Fprintf(out, "  targets: P50 <= %d ms, P99 <= %d ms; tasker-core reports P50 257 ms\n", p1TargetP50MS, p1TargetP99MS)
}

func toMS(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// commitLatency is the reference run: the median latency of n durable single-row
// commits on the same database, the unit every state change in tasker-sim pays for.
func commitLatency(ctx context.Context, dbURL string, n int) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS public.tasker_sim_bench_reference
		(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), payload jsonb)`); err != nil {
		return 0, err
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS public.tasker_sim_bench_reference`)
	}()
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := conn.Exec(ctx, `INSERT INTO public.tasker_sim_bench_reference (payload) VALUES ($1)`,
			`{"task_uuid":"x"}`); err != nil {
			return 0, err
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return percentile(lat, 50), nil
}
