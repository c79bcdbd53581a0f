package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tasker-sim/tasker-sim/internal/stack"
	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/pgprovision"
)

// The benchmarks' task: mathematical_sequence of the rust_e2e_linear namespace, four steps
// in a line.
const (
	benchNamespace = "rust_e2e_linear"
	benchTask      = "mathematical_sequence"
	benchVersion   = "1.0.0"
	stepsPerTask   = 4
)

// benchTaskRequest is a request for one benchmark task with a context of its own.
func benchTaskRequest(even int, reason string) *api.TaskRequest {
	body, _ := json.Marshal(map[string]any{"even_number": even, "_run_id": uuid.NewString()})
	return &api.TaskRequest{Name: benchTask, Namespace: benchNamespace, Version: benchVersion,
		Context: body, Initiator: "taskerctl", SourceSystem: "bench", Reason: reason}
}

// Throughput goals, printed beside the figures.
const (
	throughputTarget  = 0.5 // steps/s ÷ pgbench TPS
	throughputStretch = 1.0
	scaleOutGoal      = 1.0 // steps/s with twice the processes ÷ steps/s
)

func benchThroughputCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "throughput",
		Short: "Measure steps/s of a burst of mathematical_sequence tasks against pgbench TPS on the same server",
		Long: `Measure throughput: a burst of mathematical_sequence tasks (4 steps each) created from
--clients goroutines spread over the orchestrators' APIs, timed from the first create to
the last completion. It reports steps/s and tasks/s, the CPU seconds every process used
during the burst (orchestrators, workers, and PostgreSQL: the postmaster and all its
children), and the database's CPU per step.

As a reference, in the same run and on the same server, it runs pgbench's TPC-B-like
workload (scale 10, 8 clients, 2 threads, prepared statements) on a scratch database and
reports steps/s ÷ TPS: the goal is at least 0.5, the stretch 1.0.

It starts its own stack: a throwaway PostgreSQL cluster (or the server named by
TASKER_DATABASE_URL; it needs CREATE DATABASE there, and the database's CPU is then
unknown), a fresh database per run, and the built binaries (run 'make build' first).
The processes get taskerctl's environment, so the services' variables tune them.
--compare-scale-out also runs twice the orchestrators and workers on a fresh database
and reports the ratio (goal: at least 1.0).

The machine's speed drifts, so one run's ratio can be off by a fifth. --repeat N runs N
rounds, each a burst (and its scale-out burst) with its pgbench reference right after it,
and reports every round's ratios and their medians; the details printed are the median
round's. pgbench comes from PATH or
/usr/lib/postgresql/*/bin (apt-get install postgresql-client; on Debian and Ubuntu it
comes with the server package, postgresql).`,
		Args: cobra.NoArgs,
		RunE: runBenchThroughput,
	}
	f := cmd.Flags()
	f.Int("tasks", 2000, "tasks in the burst")
	f.Int("clients", 16, "goroutines creating tasks")
	f.Int("orchestrators", 1, "orchestrator processes")
	f.Int("workers", 1, "worker processes")
	f.Int("reference-seconds", 15, "how long pgbench runs (0 skips the reference)")
	f.Bool("compare-scale-out", false, "also run twice the orchestrators and workers on a fresh database and compare")
	f.Int("repeat", 1, "rounds to run; the ratios reported are the rounds' medians")
	f.String("bin-dir", "", "directory with the orchestrator and worker binaries (default: beside taskerctl, then ./bin)")
	addOutputFlag(cmd)
	return cmd
}

// ThroughputResult is what `taskerctl bench throughput -o json` prints. Its round is the
// median one (see MedianRound); Rounds lists every round when there were several.
type ThroughputResult struct {
	Machine Machine `json:"machine"`
	ThroughputRound
	// MedianScaleOutRatio is the median of the rounds' ScaleOutRatio (--compare-scale-out).
	MedianScaleOutRatio float64 `json:"median_scale_out_ratio,omitempty"`
	// Rounds are all the rounds, in the order they ran (--repeat above 1).
	Rounds  []ThroughputRound `json:"rounds,omitempty"`
	Targets ThroughputGoals   `json:"targets"`
}

// ThroughputRound is one round: a burst, its scale-out burst, and its reference.
type ThroughputRound struct {
	// Run is the burst with --orchestrators and --workers.
	Run ThroughputRun `json:"run"`
	// ScaleOut is the burst with twice the processes (--compare-scale-out).
	ScaleOut *ThroughputRun `json:"scale_out,omitempty"`
	// ScaleOutRatio is ScaleOut's steps/s ÷ Run's.
	ScaleOutRatio float64 `json:"scale_out_ratio,omitempty"`
	// Reference is the pgbench run (absent with --reference-seconds 0).
	Reference *PgbenchResult `json:"reference,omitempty"`
	// StepsPerTPS is Run's steps/s ÷ the reference's TPS.
	StepsPerTPS float64 `json:"steps_per_second_over_tps,omitempty"`
}

// MedianRound returns the index of the median round by ratio to the reference when every
// round has one (by steps/s otherwise); of an even count, the lower of the middle two, so
// that the median is always a round that ran. -1 for none.
func MedianRound(rounds []ThroughputRound) int {
	byRatio := !slices.ContainsFunc(rounds, func(r ThroughputRound) bool { return r.Reference == nil })
	return medianIndex(len(rounds), func(i int) float64 {
		if byRatio {
			return rounds[i].StepsPerTPS
		}
		return rounds[i].Run.StepsPerSecond
	})
}

// medianIndex is the index, among n items, of the one with the median key; of an even
// count, the lower of the middle two, so the median is always an item. -1 for none.
func medianIndex(n int, key func(i int) float64) int {
	if n == 0 {
		return -1
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(key(a), key(b)) })
	return idx[(n-1)/2]
}

// medianScaleOut is the median (the lower middle of an even count) of the rounds'
// scale-out ratios; 0 when no round compared.
func medianScaleOut(rounds []ThroughputRound) float64 {
	var ratios []float64
	for _, r := range rounds {
		if r.ScaleOut != nil {
			ratios = append(ratios, r.ScaleOutRatio)
		}
	}
	if i := medianIndex(len(ratios), func(i int) float64 { return ratios[i] }); i >= 0 {
		return ratios[i]
	}
	return 0
}

// ThroughputGoals are the goals the figures are judged against.
type ThroughputGoals struct {
	StepsPerTPS        float64 `json:"steps_per_second_over_tps"`
	StepsPerTPSStretch float64 `json:"steps_per_second_over_tps_stretch"`
	ScaleOutRatio      float64 `json:"scale_out_ratio"`
}

// Machine describes where a benchmark ran.
type Machine struct {
	CPUs            int    `json:"cpus"`
	GOOS            string `json:"goos"`
	GOARCH          string `json:"goarch"`
	PostgresVersion string `json:"postgres_version,omitempty"`
}

// ThroughputRun is one burst's figures.
type ThroughputRun struct {
	Orchestrators  int            `json:"orchestrators"`
	Workers        int            `json:"workers"`
	Clients        int            `json:"clients"`
	Tasks          int            `json:"tasks"`
	Steps          int            `json:"steps"`
	Failed         int            `json:"failed"`
	FinalStates    map[string]int `json:"final_states"`
	WallSeconds    float64        `json:"wall_seconds"`
	StepsPerSecond float64        `json:"steps_per_second"`
	TasksPerSecond float64        `json:"tasks_per_second"`
	// DBCPUSeconds is PostgreSQL's CPU during the burst; null when unknown (a server this
	// command does not run).
	DBCPUSeconds   *float64     `json:"db_cpu_seconds"`
	DBCPUMSPerStep *float64     `json:"db_cpu_ms_per_step"`
	Processes      []ProcessCPU `json:"processes"`
}

// ProcessCPU is the CPU one tasker process used during a burst.
type ProcessCPU struct {
	Name       string  `json:"name"`
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// PgbenchResult is the reference run's figures.
type PgbenchResult struct {
	Scale   int     `json:"scale"`
	Clients int     `json:"clients"`
	Threads int     `json:"threads"`
	Seconds int     `json:"seconds"`
	TPS     float64 `json:"tps"`
	// DBCPUMSPerTransaction is PostgreSQL's CPU per transaction; null when unknown.
	DBCPUMSPerTransaction *float64 `json:"db_cpu_ms_per_transaction"`
}

// throughputPlan is the validated command line.
type throughputPlan struct {
	format                         string
	tasks, clients, orchs, workers int
	refSeconds, repeat             int
	scaleOut                       bool
	binDir                         string
	progress                       io.Writer
	logf                           func(string, ...any)
}

func parseThroughputFlags(cmd *cobra.Command) (*throughputPlan, error) {
	format, err := outputFormat(cmd)
	if err != nil {
		return nil, err
	}
	if err := refuseURL(cmd); err != nil {
		return nil, err
	}
	f := cmd.Flags()
	p := &throughputPlan{format: format, tasks: flagInt(cmd, "tasks"), clients: flagInt(cmd, "clients"),
		orchs: flagInt(cmd, "orchestrators"), workers: flagInt(cmd, "workers"), refSeconds: flagInt(cmd, "reference-seconds"),
		progress: cmd.ErrOrStderr(), logf: stderrLogf(cmd)}
	if p.repeat, err = flagRepeat(cmd); err != nil {
		return nil, err
	}
	p.scaleOut, _ = f.GetBool("compare-scale-out")
	p.binDir, _ = f.GetString("bin-dir")
	for _, check := range []struct {
		bad  bool
		what string
	}{
		{p.tasks < 1 || p.tasks > 1000000, fmt.Sprintf("--tasks %d: must be from 1 to 1000000", p.tasks)},
		{p.clients < 1 || p.clients > 1000, fmt.Sprintf("--clients %d: must be from 1 to 1000", p.clients)},
		{p.orchs < 1 || p.orchs > 16, fmt.Sprintf("--orchestrators %d: must be from 1 to 16", p.orchs)},
		{p.workers < 1 || p.workers > 64, fmt.Sprintf("--workers %d: must be from 1 to 64", p.workers)},
		{p.refSeconds < 0 || p.refSeconds > 3600, fmt.Sprintf("--reference-seconds %d: must be from 0 to 3600", p.refSeconds)},
	} {
		if check.bad {
			return nil, errors.New(check.what)
		}
	}
	return p, nil
}

// refuseURL rejects --url: the benchmarks read their own processes' CPU and memory, so
// they always start their own stack (and TASKER_ORCHESTRATION_URL is not consulted).
func refuseURL(cmd *cobra.Command) error {
	if u, _ := cmd.Flags().GetString("url"); u != "" {
		return fmt.Errorf("--url %s: %s starts its own stack to read its processes' CPU; it takes no --url", u, cmd.CommandPath())
	}
	return nil
}

func stderrLogf(cmd *cobra.Command) func(string, ...any) {
	return func(format string, args ...any) { fmt.Fprintf(cmd.ErrOrStderr(), "· "+format+"\n", args...) }
}

func runBenchThroughput(cmd *cobra.Command, _ []string) error {
	p, err := parseThroughputFlags(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	srv, err := startBenchServer(ctx, p.logf)
	if err != nil {
		return err
	}
	defer srv.stop()
	res := &ThroughputResult{Machine: srv.machine(ctx), Targets: ThroughputGoals{StepsPerTPS: throughputTarget,
		StepsPerTPSStretch: throughputStretch, ScaleOutRatio: scaleOutGoal}}
	var rounds []ThroughputRound
	for i := range p.repeat {
		if p.repeat > 1 {
			p.logf("round %d of %d", i+1, p.repeat)
		}
		r, err := p.round(ctx, srv)
		if err != nil {
			return err
		}
		rounds = append(rounds, *r)
	}
	res.ThroughputRound = rounds[MedianRound(rounds)]
	res.MedianScaleOutRatio = medianScaleOut(rounds)
	if len(rounds) > 1 {
		res.Rounds = rounds
	}
	if p.format == "json" {
		return printJSON(cmd.OutOrStdout(), res)
	}
	printThroughput(cmd.OutOrStdout(), res, srv.cpuUnknown)
	return nil
}

// round runs one round: the burst, the scale-out burst when asked, then the reference.
func (p *throughputPlan) round(ctx context.Context, srv *benchServer) (*ThroughputRound, error) {
	run, err := p.measure(ctx, srv)
	if err != nil {
		return nil, err
	}
	r := &ThroughputRound{Run: *run}
	if p.scaleOut {
		twice := *p
		twice.orchs, twice.workers = 2*p.orchs, 2*p.workers
		if r.ScaleOut, err = twice.measure(ctx, srv); err != nil {
			return nil, err
		}
		r.ScaleOutRatio = r.ScaleOut.StepsPerSecond / r.Run.StepsPerSecond
	}
	if p.refSeconds > 0 {
		if r.Reference, err = srv.pgbench(ctx, p.refSeconds, p.logf); err != nil {
			return nil, fmt.Errorf("reference run: %w", err)
		}
		r.StepsPerTPS = r.Run.StepsPerSecond / r.Reference.TPS
	}
	return r, nil
}

// measure starts the plan's stack on a fresh database, runs one burst, and stops it.
func (p *throughputPlan) measure(ctx context.Context, srv *benchServer) (*ThroughputRun, error) {
	s, err := p.startStack(ctx, srv)
	if err != nil {
		return nil, err
	}
	defer s.Stop()
	return p.burst(ctx, srv, s, fmt.Sprintf("burst %d+%d", p.orchs, p.workers))
}

// startStack starts the plan's stack on a fresh database of srv.
func (p *throughputPlan) startStack(ctx context.Context, srv *benchServer) (*stack.Stack, error) {
	return stack.Start(ctx, stack.Options{Cluster: srv.cluster, BinDir: p.binDir, Orchestrators: p.orchs,
		Workers: p.workers, Logf: p.logf})
}

// burst runs one burst of the plan's size on s, measured.
func (p *throughputPlan) burst(ctx context.Context, srv *benchServer, s *stack.Stack, what string) (*ThroughputRun, error) {
	clients, err := clientsFor(s.OrchestratorURLs)
	if err != nil {
		return nil, err
	}
	run, err := measureBurst(ctx, srv.meter(s), clients, p.tasks, p.clients, newBar(p.progress, p.tasks, what))
	if err != nil {
		return nil, err
	}
	run.Orchestrators, run.Workers = p.orchs, p.workers
	return run, nil
}

func clientsFor(urls []string) ([]*client.Client, error) {
	out := make([]*client.Client, 0, len(urls))
	for _, u := range urls {
		c, err := clientFor(u)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// measureBurst runs one burst and reads the CPU every process used during it.
func measureBurst(ctx context.Context, m *cpuMeter, clients []*client.Client, tasks, conc int,
	bar *progressbar.ProgressBar) (*ThroughputRun, error) {
	before := m.read()
	out, err := runBurst(ctx, clients, tasks, conc, func(int) { _ = bar.Add(1) })
	after := m.read()
	_ = bar.Finish()
	if err != nil {
		return nil, err
	}
	run := &ThroughputRun{Clients: conc, Tasks: tasks, Steps: tasks * stepsPerTask, FinalStates: out.states,
		WallSeconds: out.wall.Seconds(), Processes: after.since(before, m)}
	run.StepsPerSecond = float64(run.Steps) / run.WallSeconds
	run.TasksPerSecond = float64(tasks) / run.WallSeconds
	for state, n := range out.states {
		if state != "complete" {
			run.Failed += n
		}
	}
	if d, ok := after.dbSince(before); ok {
		db := roundMS(d.Seconds())
		perStep := roundMS(1000 * db / float64(run.Steps))
		run.DBCPUSeconds, run.DBCPUMSPerStep = &db, &perStep
	}
	return run, nil
}

// burstOutcome is what a burst saw.
type burstOutcome struct {
	// states counts the tasks' final states.
	states map[string]int
	// wall runs from the first create to the last completion seen.
	wall time.Duration
}

// burstStall ends a burst in which no task has finished for this long.
const burstStall = 2 * time.Minute

// runBurst creates tasks mathematical_sequence tasks from conc goroutines, task i on
// clients[i % len(clients)], and waits until every one is terminal; done is called once
// per finished task.
func runBurst(ctx context.Context, clients []*client.Client, tasks, conc int, done func(int)) (*burstOutcome, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchers := make([]*burstWatcher, len(clients))
	for i, c := range clients {
		watchers[i] = &burstWatcher{client: c, states: map[string]int{}, done: done}
	}
	began := time.Now()
	var next atomic.Int64
	creators, cctx := errgroup.WithContext(ctx)
	for range conc {
		creators.Go(func() error {
			for i := int(next.Add(1) - 1); i < tasks; i = int(next.Add(1) - 1) {
				w := watchers[i%len(watchers)]
				id, err := createBenchTask(cctx, w.client)
				if err != nil {
					return err
				}
				w.add(id)
			}
			return nil
		})
	}
	var creating atomic.Bool
	creating.Store(true)
	watching, wctx := errgroup.WithContext(ctx)
	for _, w := range watchers {
		watching.Go(func() error { return w.run(wctx, &creating) })
	}
	err := creators.Wait()
	creating.Store(false)
	if err != nil {
		cancel()
		_ = watching.Wait()
		return nil, fmt.Errorf("creating tasks: %w", err)
	}
	if err := watching.Wait(); err != nil {
		return nil, err
	}
	out := &burstOutcome{states: map[string]int{}}
	for _, w := range watchers {
		for s, n := range w.states {
			out.states[s] += n
		}
		out.wall = max(out.wall, w.last.Sub(began))
	}
	return out, nil
}

// createBenchTask creates one mathematical_sequence task with a unique context, retrying a
// refusal (503 while a breaker is open, a dropped connection) a few times.
func createBenchTask(ctx context.Context, c *client.Client) (string, error) {
	req := benchTaskRequest(6, "throughput benchmark")
	var err error
	for attempt := range 5 {
		var t *api.TaskResponse
		if t, err = c.CreateTask(ctx, req); err == nil {
			return t.TaskUUID, nil
		}
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status != http.StatusServiceUnavailable && ae.Status != http.StatusTooManyRequests {
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		}
	}
	return "", err
}

// burstWatcher waits for the tasks created on one orchestrator with POST /v1/tasks/wait.
//
// Every wait request makes the orchestrator read the state of every task it names, so
// naming all the burst's tasks in every request would make the benchmark's own database
// load a large part of what it measures. The tasks of a burst finish roughly in the order
// they were created, so each request names only the oldest unfinished ones: a window that
// doubles while requests find most of it finished and halves while they find little.
type burstWatcher struct {
	client *client.Client
	done   func(int)
	mu     sync.Mutex
	added  []string
	// Owned by run:
	order   []string // unfinished tasks in creation order, and finished ones not yet dropped
	pending map[string]bool
	window  int
	states  map[string]int
	last    time.Time
}

// Wait window bounds, and the least time between two requests.
const (
	burstWindowMin = 32
	burstPace      = 50 * time.Millisecond
)

func (w *burstWatcher) add(id string) {
	w.mu.Lock()
	w.added = append(w.added, id)
	w.mu.Unlock()
}

func (w *burstWatcher) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.added
	w.added = nil
	return out
}

// run watches until creating is over and every task it was given is terminal.
func (w *burstWatcher) run(ctx context.Context, creating *atomic.Bool) error {
	w.pending, w.window = map[string]bool{}, burstWindowMin
	lastProgress := time.Now()
	for {
		for _, id := range w.take() {
			w.pending[id] = true
			w.order = append(w.order, id)
		}
		if len(w.pending) == 0 {
			if !creating.Load() && len(w.take()) == 0 {
				return nil
			}
			time.Sleep(burstPace / 5)
			continue
		}
		if time.Since(lastProgress) > burstStall {
			return fmt.Errorf("no task finished for %s; %d still unfinished", burstStall, len(w.pending))
		}
		asked := time.Now()
		finished, err := w.poll(ctx)
		if err != nil {
			return err
		}
		if finished > 0 {
			lastProgress = time.Now()
		}
		time.Sleep(time.Until(asked.Add(burstPace)))
	}
}

// oldest returns the window's oldest unfinished tasks, dropping finished ones from the front.
func (w *burstWatcher) oldest() []string {
	for len(w.order) > 0 && !w.pending[w.order[0]] {
		w.order = w.order[1:]
	}
	ids := make([]string, 0, w.window)
	for _, id := range w.order {
		if len(ids) == w.window {
			break
		}
		if w.pending[id] {
			ids = append(ids, id)
		}
	}
	return ids
}

// poll asks once about the oldest unfinished tasks, records those that finished and
// resizes the window.
func (w *burstWatcher) poll(ctx context.Context) (int, error) {
	ids := w.oldest()
	res, err := w.client.WaitAny(ctx, ids, 5*time.Second)
	if err != nil {
		return 0, fmt.Errorf("waiting for tasks: %w", err)
	}
	if len(res.NotFound) > 0 {
		return 0, fmt.Errorf("the orchestrator does not know %d created tasks, e.g. %s", len(res.NotFound), res.NotFound[0])
	}
	finished := 0
	for _, f := range res.Finished {
		if w.pending[f.TaskUUID] {
			delete(w.pending, f.TaskUUID)
			w.states[f.Status]++
			w.done(1)
			finished++
		}
	}
	if finished > 0 {
		w.last = time.Now()
	}
	switch {
	case finished >= len(ids)/2:
		w.window = min(2*w.window, api.MaxWaitTasks)
	case finished < len(ids)/8:
		w.window = max(w.window/2, burstWindowMin)
	}
	return finished, nil
}

// benchServer is the PostgreSQL server a benchmark runs on.
type benchServer struct {
	cluster *pgprovision.Cluster
	// postmaster is the server's postmaster pid, 0 when its CPU cannot be read.
	postmaster int
	// cpuUnknown says why the database's CPU is not reported, when it is not.
	cpuUnknown string
}

// startBenchServer starts a throwaway cluster, or connects to TASKER_DATABASE_URL's server.
func startBenchServer(ctx context.Context, logf func(string, ...any)) (*benchServer, error) {
	url := os.Getenv("TASKER_DATABASE_URL")
	if url == "" {
		logf("starting a throwaway PostgreSQL cluster")
	}
	c, err := pgprovision.Start(ctx, pgprovision.Options{URL: url, Logf: logf})
	if err != nil {
		return nil, err
	}
	srv := &benchServer{cluster: c}
	srv.postmaster, srv.cpuUnknown = localPostmaster(ctx, c)
	return srv, nil
}

// localPostmaster is the postmaster pid of cluster, or 0 and why its CPU cannot be read
// here: only a local cluster this command runs has its processes on this machine.
func localPostmaster(ctx context.Context, c *pgprovision.Cluster) (int, string) {
	if c == nil {
		return 0, "the server is not one this command started"
	}
	if c.Source() != pgprovision.SourceLocal {
		return 0, fmt.Sprintf("the server is not a local cluster this command runs (source %s)", c.Source())
	}
	pid, err := postmasterPID(ctx, c.AdminURL())
	if err != nil {
		return 0, err.Error()
	}
	return pid, ""
}

func (b *benchServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = b.cluster.Stop(ctx)
}

// machine describes this machine and the server's version.
func (b *benchServer) machine(ctx context.Context) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	if conn, err := pgx.Connect(ctx, b.cluster.AdminURL()); err == nil {
		_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&m.PostgresVersion)
		_ = conn.Close(ctx)
	}
	return m
}

// meter reads the CPU of s's processes and of the server.
func (b *benchServer) meter(s *stack.Stack) *cpuMeter {
	return &cpuMeter{procs: s.Processes(), postmaster: b.postmaster}
}

// postmasterPID reads the postmaster's pid from the first line of the data directory's
// postmaster.pid.
func postmasterPID(ctx context.Context, adminURL string) (int, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var dir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir); err != nil {
		return 0, fmt.Errorf("the data directory cannot be read: %w", err)
	}
	return readPostmasterPID(dir)
}

func printThroughput(w io.Writer, r *ThroughputResult, cpuUnknown string) {
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs, %s/%s, PostgreSQL %s\n\n", m.CPUs, m.GOOS, m.GOARCH, m.PostgresVersion)
	if len(r.Rounds) > 1 {
		printRounds(w, r)
	}
	printThroughputRun(w, &r.Run, cpuUnknown)
	if r.Reference != nil {
		ref := r.Reference
		fmt.Fprintf(w, "\nreference: pgbench TPC-B-like, scale %d, %d clients, %d threads, %d s, prepared: %.1f TPS",
			ref.Scale, ref.Clients, ref.Threads, ref.Seconds, ref.TPS)
		if ref.DBCPUMSPerTransaction != nil {
			fmt.Fprintf(w, " (PostgreSQL CPU %.3f ms per transaction)", *ref.DBCPUMSPerTransaction)
		}
		fmt.Fprintf(w, "\nsteps/s ÷ TPS = %.1f ÷ %.1f = %.2f   (target >= %.1f, stretch %.1f)\n",
			r.Run.StepsPerSecond, ref.TPS, r.StepsPerTPS, r.Targets.StepsPerTPS, r.Targets.StepsPerTPSStretch)
	}
	if r.ScaleOut != nil {
		fmt.Fprintln(w)
		printThroughputRun(w, r.ScaleOut, cpuUnknown)
		which := ""
		if len(r.Rounds) > 1 {
			which = " in this round (the median over the rounds is above)"
		}
		fmt.Fprintf(w, "\nscale-out%s: %d+%d ÷ %d+%d steps/s = %.1f ÷ %.1f = %.2f   (goal >= %.1f)\n", which,
			r.ScaleOut.Orchestrators, r.ScaleOut.Workers, r.Run.Orchestrators, r.Run.Workers,
			r.ScaleOut.StepsPerSecond, r.Run.StepsPerSecond, r.ScaleOutRatio, r.Targets.ScaleOutRatio)
	}
}

// printRounds prints one line per round and the medians, ahead of the median round's
// details.
func printRounds(w io.Writer, r *ThroughputResult) {
	for i, rd := range r.Rounds {
		fmt.Fprintf(w, "round %d: %.1f steps/s", i+1, rd.Run.StepsPerSecond)
		if rd.Run.DBCPUMSPerStep != nil {
			fmt.Fprintf(w, " (PostgreSQL CPU %.3f ms/step)", *rd.Run.DBCPUMSPerStep)
		}
		if rd.Reference != nil {
			fmt.Fprintf(w, ", pgbench %.1f TPS, ratio %.2f", rd.Reference.TPS, rd.StepsPerTPS)
		}
		if rd.ScaleOut != nil {
			fmt.Fprintf(w, ", scale-out %.1f steps/s, ratio %.2f", rd.ScaleOut.StepsPerSecond, rd.ScaleOutRatio)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "median of %d rounds:", len(r.Rounds))
	if r.Reference != nil {
		fmt.Fprintf(w, " steps/s ÷ TPS %.2f (target >= %.1f)", r.StepsPerTPS, r.Targets.StepsPerTPS)
	} else {
		fmt.Fprintf(w, " %.1f steps/s", r.Run.StepsPerSecond)
	}
	if r.MedianScaleOutRatio > 0 {
		fmt.Fprintf(w, "; scale-out %.2f (goal >= %.1f)", r.MedianScaleOutRatio, r.Targets.ScaleOutRatio)
	}
	fmt.Fprint(w, "\nthe median round, by ratio to its reference (by steps/s without one):\n\n")
}

func printThroughputRun(w io.Writer, r *ThroughputRun, cpuUnknown string) {
	fmt.Fprintf(w, "burst: %d mathematical_sequence tasks (%d steps) from %d clients; %d orchestrator(s) + %d worker(s)\n",
		r.Tasks, r.Steps, r.Clients, r.Orchestrators, r.Workers)
	fmt.Fprintf(w, "  %.1f steps/s   %.1f tasks/s   wall %.2f s   failures %d (final states %s)\n",
		r.StepsPerSecond, r.TasksPerSecond, r.WallSeconds, r.Failed, intCountsText(r.FinalStates))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PROCESS\tPID\tCPU s\tCPU ms/step\t")
	for _, p := range r.Processes {
		fmt.Fprintf(tw, "  %s\t%d\t%.2f\t%.3f\t\n", p.Name, p.PID, p.CPUSeconds, 1000*p.CPUSeconds/float64(r.Steps))
	}
	if r.DBCPUSeconds != nil {
		fmt.Fprintf(tw, "  postgres (all)\t\t%.2f\t%.3f\t\n", *r.DBCPUSeconds, *r.DBCPUMSPerStep)
	} else {
		fmt.Fprintf(tw, "  postgres (all)\t\tunknown\t\t%s\n", cpuUnknown)
	}
	_ = tw.Flush()
}

// roundMS rounds seconds to milliseconds (CPU times come in ticks of 10 ms anyway).
func roundMS(s float64) float64 { return math.Round(s*1000) / 1000 }

// intCountsText renders counts as "a=1 b=2", sorted, or "none".
func intCountsText(m map[string]int) string {
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = int64(v)
	}
	return countsText(c)
}

// The /proc readers. Times in /proc/<pid>/stat are in clock ticks of USER_HZ, which the
// kernel reports in the auxiliary vector as AT_CLKTCK.

// procStat is what the benchmarks read from /proc/<pid>/stat.
type procStat struct {
	ppid int
	// utime, stime: the process's own CPU; cutime, cstime: its reaped children's.
	utime, stime, cutime, cstime uint64
}

// parseProcStat reads a /proc/<pid>/stat line. The command name (field 2) is in
// parentheses and may itself hold spaces and parentheses, so fields are counted from the
// last ')'.
func parseProcStat(line string) (procStat, error) {
	end := strings.LastIndexByte(line, ')')
	if end < 0 {
		return procStat{}, fmt.Errorf("/proc stat %q: no command name", line)
	}
	// Fields from 3 (state) on: state ppid pgrp session tty_nr tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime ...
	f := strings.Fields(line[end+1:])
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc stat %q: %d fields after the command name, want at least 13", line, len(f))
	}
	var st procStat
	var err error
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("/proc stat: ppid %q: %w", f[1], err)
	}
	for i, dst := range []*uint64{&st.utime, &st.stime, &st.cutime, &st.cstime} {
		if *dst, err = strconv.ParseUint(f[11+i], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("/proc stat: field %d %q: %w", 14+i, f[11+i], err)
		}
	}
	return st, nil
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(b))
}

// clockTicks is USER_HZ, read once from /proc/self/auxv (AT_CLKTCK); 100 when unreadable.
var clockTicks = sync.OnceValue(func() float64 {
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	if hz := auxvValue(b, 17); hz > 0 { // AT_CLKTCK
		return float64(hz)
	}
	return 100
})

// auxvValue finds key in an auxiliary vector of native-endian word pairs; 0 when absent.
func auxvValue(b []byte, key uint64) uint64 {
	const word = 8
	for i := 0; i+2*word <= len(b); i += 2 * word {
		k := binary.NativeEndian.Uint64(b[i:])
		if k == 0 {
			break
		}
		if k == key {
			return binary.NativeEndian.Uint64(b[i+word:])
		}
	}
	return 0
}

func ticks(n uint64) time.Duration {
	return time.Duration(float64(n) / clockTicks() * float64(time.Second))
}

// readPostmasterPID reads the first line of dataDir/postmaster.pid and checks the process
// is there to be measured.
func readPostmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("the postmaster's pid cannot be read: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s/postmaster.pid: first line %q is not a pid", dataDir, first)
	}
	if _, err := readProcStat(pid); err != nil {
		return 0, fmt.Errorf("the postmaster (pid %d) cannot be measured: %w", pid, err)
	}
	return pid, nil
}

// postgresCPU is the CPU PostgreSQL has used: the postmaster's own and its reaped
// children's, plus every living child's (backends, autovacuum, checkpointer, ...).
func postgresCPU(postmaster int) (time.Duration, error) {
	pm, err := readProcStat(postmaster)
	if err != nil {
		return 0, err
	}
	total := pm.utime + pm.stime + pm.cutime + pm.cstime
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == postmaster {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.ppid != postmaster {
			continue // gone, or not a child
		}
		total += st.utime + st.stime
	}
	return ticks(total), nil
}

// cpuMeter reads the CPU of a stack's processes and of its database server.
type cpuMeter struct {
	procs []stack.Process
	// postmaster is 0 when the server's CPU is unknown.
	postmaster int
}

// cpuReading is one reading of a cpuMeter.
type cpuReading struct {
	procs   []time.Duration // as cpuMeter.procs
	db      time.Duration
	dbKnown bool
}

func (m *cpuMeter) read() cpuReading {
	r := cpuReading{procs: make([]time.Duration, len(m.procs))}
	for i, p := range m.procs {
		if st, err := readProcStat(p.PID); err == nil {
			r.procs[i] = ticks(st.utime + st.stime)
		}
	}
	if m.postmaster > 0 {
		var err error
		r.db, err = postgresCPU(m.postmaster)
		r.dbKnown = err == nil
	}
	return r
}

// dbSince is PostgreSQL's CPU since before, when both readings know it.
func (r cpuReading) dbSince(before cpuReading) (time.Duration, bool) {
	if !r.dbKnown || !before.dbKnown {
		return 0, false
	}
	return r.db - before.db, true
}

// since is each process's CPU between before and r.
func (r cpuReading) since(before cpuReading, m *cpuMeter) []ProcessCPU {
	out := make([]ProcessCPU, len(m.procs))
	for i, p := range m.procs {
		out[i] = ProcessCPU{Name: p.Name, PID: p.PID, CPUSeconds: roundMS((r.procs[i] - before.procs[i]).Seconds())}
	}
	return out
}

// The reference: pgbench's TPC-B-like workload.
const (
	pgbenchScale   = 10
	pgbenchClients = 8
	pgbenchThreads = 2
)

// pgbench runs the reference on a scratch database of the server and drops it after.
func (b *benchServer) pgbench(ctx context.Context, seconds int, logf func(string, ...any)) (*PgbenchResult, error) {
	bin, err := findPgbench()
	if err != nil {
		return nil, fmt.Errorf("%w; or pass --reference-seconds 0 to skip the reference", err)
	}
	url, drop, err := b.scratchDatabase(ctx, "tasker_sim_pgbench")
	if err != nil {
		return nil, err
	}
	defer drop()
	logf("pgbench -i -s %d (%s)", pgbenchScale, bin)
	if _, err := runPgbenchCmd(ctx, bin, "-i", "-s", strconv.Itoa(pgbenchScale), "-q", url); err != nil {
		return nil, err
	}
	logf("pgbench -c %d -j %d -T %d -M prepared", pgbenchClients, pgbenchThreads, seconds)
	run, err := b.meteredPgbench(ctx, bin, "-c", strconv.Itoa(pgbenchClients), "-j", strconv.Itoa(pgbenchThreads),
		"-T", strconv.Itoa(seconds), "-M", "prepared", url)
	if err != nil {
		return nil, err
	}
	res := &PgbenchResult{Scale: pgbenchScale, Clients: pgbenchClients, Threads: pgbenchThreads, Seconds: seconds, TPS: run.tps}
	if run.dbCPU != nil && run.runs > 0 {
		perTx := 1000 * run.dbCPU.Seconds() / float64(run.runs)
		res.DBCPUMSPerTransaction = &perTx
	}
	return res, nil
}

// scratchDatabase creates a database named after prefix on the server; drop drops it.
func (b *benchServer) scratchDatabase(ctx context.Context, prefix string) (url string, drop func(), err error) {
	name := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	if url, err = b.cluster.CreateDatabase(ctx, name, ""); err != nil {
		return "", nil, err
	}
	return url, func() { _ = b.cluster.DropDatabase(context.WithoutCancel(ctx), name) }, nil
}

// pgbenchRun is what one pgbench run reports.
type pgbenchRun struct {
	tps       float64
	runs      int     // script runs (transactions) that completed
	latencyMS float64 // average per script run
	dbCPU     *time.Duration
}

// meteredPgbench runs pgbench with args and reads its figures and, when known,
// PostgreSQL's CPU over the run.
func (b *benchServer) meteredPgbench(ctx context.Context, bin string, args ...string) (*pgbenchRun, error) {
	m := &cpuMeter{postmaster: b.postmaster}
	before := m.read()
	out, err := runPgbenchCmd(ctx, bin, args...)
	after := m.read()
	if err != nil {
		return nil, err
	}
	run := &pgbenchRun{}
	if run.tps, err = parsePgbenchTPS(out); err != nil {
		return nil, err
	}
	if run.runs, err = parsePgbenchProcessed(out); err != nil {
		return nil, err
	}
	if run.latencyMS, err = parsePgbenchLatency(out); err != nil {
		return nil, err
	}
	if d, ok := after.dbSince(before); ok {
		run.dbCPU = &d
	}
	return run, nil
}

// findPgbench looks on PATH, then in the highest-versioned /usr/lib/postgresql/*/bin.
func findPgbench() (string, error) {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return cmpVersionDirs(b, a) })
	for _, d := range dirs {
		if p := filepath.Join(d, "pgbench"); isExecutableFile(p) {
			return p, nil
		}
	}
	return "", errors.New("pgbench not found on PATH or in /usr/lib/postgresql/*/bin: install it " +
		"(apt-get install postgresql-client; on Debian and Ubuntu pgbench comes with the server, apt-get install postgresql)")
}

// cmpVersionDirs orders /usr/lib/postgresql/<version>/bin directories by version,
// numerically, so that 16 comes after 9.6.
func cmpVersionDirs(a, b string) int {
	version := func(dir string) []int {
		var v []int
		for part := range strings.SplitSeq(filepath.Base(filepath.Dir(dir)), ".") {
			n, _ := strconv.Atoi(part)
			v = append(v, n)
		}
		return v
	}
	return slices.Compare(version(a), version(b))
}

func isExecutableFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// runPgbenchCmd runs pgbench and returns its standard output; a failure carries the end of
// what it printed.
func runPgbenchCmd(ctx context.Context, bin string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, bin, args...)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String() + "\n" + stdout.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return "", fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args[:len(args)-1], " "), err, msg)
	}
	return stdout.String(), nil
}

// pgbenchTPS matches pgbench's summary line: "tps = 1234.56 (without initial connection
// time)" since PostgreSQL 14, "(excluding connections establishing)" before.
var pgbenchTPS = regexp.MustCompile(`(?m)^tps = ([0-9]+(?:\.[0-9]+)?) \((?:without initial connection time|excluding connections establishing)\)`)

// pgbenchProcessed matches pgbench's count of script runs that completed.
var pgbenchProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)

// pgbenchLatency matches pgbench's "latency average = 1.234 ms".
var pgbenchLatency = regexp.MustCompile(`(?m)^latency average = ([0-9]+(?:\.[0-9]+)?) ms`)

// parsePgbenchTPS reads the transactions per second from pgbench's output.
func parsePgbenchTPS(out string) (float64, error) {
	return pgbenchFigure(out, pgbenchTPS, "tps = N (without initial connection time)")
}

// parsePgbenchProcessed reads how many times the script ran to its end.
func parsePgbenchProcessed(out string) (int, error) {
	n, err := pgbenchFigure(out, pgbenchProcessed, "number of transactions actually processed: N")
	return int(n), err
}

// parsePgbenchLatency reads the average latency of one script run, in ms.
func parsePgbenchLatency(out string) (float64, error) {
	return pgbenchFigure(out, pgbenchLatency, "latency average = N ms")
}

// pgbenchFigure reads the number re captures from pgbench's output; line names the line
// in the error when there is none.
func pgbenchFigure(out string, re *regexp.Regexp, line string) (float64, error) {
	m := re.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench printed no %q line:\n%s", line, out)
	}
	return strconv.ParseFloat(m[1], 64)
}
