package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tasker-sim/tasker-sim/internal/load"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// Environment variables `taskerctl load` reads besides the common ones.
const (
	LoadWorkerURLsEnv    = "TASKER_LOAD_WORKER_URLS"
	LoadFFIWorkerURLsEnv = "TASKER_LOAD_FFI_WORKER_URLS"
)

func loadCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Generate load: tasks of a mix of shapes at a rate or concurrency, with timed faults",
		Long: `Generate load against an orchestrator and measure it.

Open model (default): tasks arrive at --rate per second (or follow --ramp / --stages)
whatever the system does, and latency runs from each task's intended start, so a slow
system cannot hide behind a slow generator. Arrivals that find every sender busy are
missed, counted and reported. Closed model: --concurrency N keeps N tasks in flight.

The run lasts --duration (0: until Ctrl-C) or --tasks; the --warmup is left out of the
figures. Ctrl-C stops arrivals, waits --grace for tasks in flight, clears faults and
prints what was done. At the end every created task is reconciled: it must have reached
a terminal state, and the orchestrator's counters must agree. The exit status is 1 on
any loss or failed --threshold.

Faults: --scenario FILE.toml applies timed phases through the processes' /admin/faults
(orchestrator, worker, ffi_worker); --scenario chaos is built in and lights every metric
within three minutes. Without --url, load starts its own stack (one worker and one FFI
worker); with --url, name the workers with --worker-url / --ffi-worker-url (or
TASKER_LOAD_WORKER_URLS / TASKER_LOAD_FFI_WORKER_URLS) so phases can reach them.

Examples:
  taskerctl load --rate 100 --duration 2m
  taskerctl load --ramp 10:200:5m --mix 'mathematical_sequence=3,complex_dag=1'
  taskerctl load --concurrency 50 --tasks 5000 -o json
  taskerctl load --scenario chaos --duration 3m --report chaos.html
  taskerctl load --url http://127.0.0.1:8080 --rate 150 --duration 0 --threshold 'p99<500ms,errors<1%'`,
		Args: cobra.NoArgs,
		RunE: runLoad,
	}
	f := cmd.Flags()
	f.Float64("rate", 50, "open model: tasks per second")
	f.String("ramp", "", "open model: FROM:TO:DURATION, a linear ramp, e.g. 10:200:5m (then TO holds)")
	f.String("stages", "", "open model: RATE:DURATION,... ramps from --rate through each stage, e.g. 100:1m,100:5m,0.5:1m")
	f.Int("concurrency", 0, "closed model: keep this many tasks in flight (instead of a rate)")
	f.Duration("duration", time.Minute, "how long arrivals last; 0 runs until Ctrl-C (or --tasks)")
	f.Int64("tasks", 0, "stop arrivals after this many tasks (0: no limit)")
	f.Duration("warmup", 5*time.Second, "start of the run left out of the figures")
	f.String("mix", load.DefaultMix, "shapes and weights: NAME=WEIGHT,...")
	f.Int("payload-bytes", 0, "pad each task's context with this many bytes (0 to 1048576)")
	f.Int("max-senders", 512, "open model: create requests in flight at most; an arrival finding none free is missed")
	f.Duration("grace", time.Minute, "how long tasks in flight get to finish once arrivals stop")
	f.String("scenario", "", "fault phases: a TOML file, 'chaos', or 'none'")
	f.Float64("scenario-speed", 1, "run the scenario's clock this many times faster")
	f.Bool("scenario-loop", false, "repeat the scenario while the run lasts (every scenario length plus 10 s), clearing faults between rounds")
	f.StringSlice("worker-url", nil, "with --url: a worker's base URL for fault phases (repeatable; $"+LoadWorkerURLsEnv+")")
	f.StringSlice("ffi-worker-url", nil, "with --url: an FFI worker's base URL (repeatable; $"+LoadFFIWorkerURLsEnv+")")
	f.String("threshold", "", "checks that fail the run, e.g. 'p99<500ms,errors<1%' (p50 p90 p99 p99.9 max mean errors misses)")
	f.String("report", "", "write a self-contained HTML report with charts to this file")
	f.Int("workers", 1, "without --url: workers to start")
	f.Int("ffi-workers", 1, "without --url: FFI (ruby) workers to start besides")
	f.String("bin-dir", "", "directory with the orchestrator and worker binaries (default: beside taskerctl, then ./bin)")
	addOutputFlag(cmd)
	return cmd
}

// loadPlan is the validated command line.
type loadPlan struct {
	cfg        load.Config
	format     string
	report     string
	workerURLs []string
	ffiURLs    []string
}

func runLoad(cmd *cobra.Command, _ []string) error {
	plan, err := parseLoadFlags(cmd)
	if err != nil {
		return err
	}
	own, err := startOwnStackWithFFI(cmd, flagInt(cmd, "workers"), flagInt(cmd, "ffi-workers"), nil)
	if err != nil {
		return err
	}
	defer own.stop()
	if err := plan.connect(own); err != nil {
		return err
	}
	bar := newLoadProgress(cmd.ErrOrStderr(), plan.cfg.Duration)
	plan.cfg.Progress = bar.update
	plan.cfg.Warn = bar.warn
	res, err := load.Run(cmd.Context(), plan.cfg)
	bar.finish()
	if err != nil {
		return err
	}
	if plan.report != "" {
		if err := writeReport(plan.report, res); err != nil {
			return err
		}
	}
	if plan.format == "json" {
		if err := printJSON(cmd.OutOrStdout(), res); err != nil {
			return err
		}
	} else {
		printLoadSummary(cmd.OutOrStdout(), res)
	}
	if !res.Passed {
		return errors.New("load run failed: " + failureReason(res))
	}
	return nil
}

func flagInt(cmd *cobra.Command, name string) int {
	v, _ := cmd.Flags().GetInt(name)
	return v
}

// parseLoadFlags validates every flag before anything starts; each error names its flag.
func parseLoadFlags(cmd *cobra.Command) (*loadPlan, error) {
	f := cmd.Flags()
	format, err := outputFormat(cmd)
	if err != nil {
		return nil, err
	}
	p := &loadPlan{format: format}
	p.report, _ = f.GetString("report")
	c := &p.cfg
	c.Duration, _ = f.GetDuration("duration")
	c.Tasks, _ = f.GetInt64("tasks")
	c.Warmup, _ = f.GetDuration("warmup")
	c.PayloadBytes, _ = f.GetInt("payload-bytes")
	c.MaxSenders, _ = f.GetInt("max-senders")
	c.Grace, _ = f.GetDuration("grace")
	for _, check := range []struct {
		bad  bool
		what string
	}{
		{c.Duration < 0, fmt.Sprintf("--duration %s: must not be negative (0 runs until Ctrl-C)", c.Duration)},
		{c.Tasks < 0, fmt.Sprintf("--tasks %d: must not be negative", c.Tasks)},
		{c.Warmup < 0, fmt.Sprintf("--warmup %s: must not be negative", c.Warmup)},
		{c.PayloadBytes < 0 || c.PayloadBytes > 1<<20, fmt.Sprintf("--payload-bytes %d: must be from 0 to 1048576", c.PayloadBytes)},
		{c.MaxSenders < 1 || c.MaxSenders > 100000, fmt.Sprintf("--max-senders %d: must be from 1 to 100000", c.MaxSenders)},
		{c.Grace < 0, fmt.Sprintf("--grace %s: must not be negative", c.Grace)},
		{c.Duration > 0 && c.Warmup >= c.Duration, fmt.Sprintf("--warmup %s: must be shorter than --duration %s", c.Warmup, c.Duration)},
	} {
		if check.bad {
			return nil, errors.New(check.what)
		}
	}
	mix, _ := f.GetString("mix")
	if c.Mix, err = load.ParseMix(mix); err != nil {
		return nil, err
	}
	if err := p.parseModel(cmd); err != nil {
		return nil, err
	}
	if err := p.parseScenario(cmd); err != nil {
		return nil, err
	}
	thr, _ := f.GetString("threshold")
	if c.Thresholds, err = load.ParseThresholds(thr); err != nil {
		return nil, err
	}
	return p, nil
}

// parseModel picks the open or the closed model.
func (p *loadPlan) parseModel(cmd *cobra.Command) error {
	f := cmd.Flags()
	rate, _ := f.GetFloat64("rate")
	ramp, _ := f.GetString("ramp")
	stages, _ := f.GetString("stages")
	conc, _ := f.GetInt("concurrency")
	if f.Changed("concurrency") {
		if conc < 1 || conc > 100000 {
			return fmt.Errorf("--concurrency %d: must be from 1 to 100000", conc)
		}
		if f.Changed("rate") || ramp != "" || stages != "" {
			return errors.New("--concurrency: the closed model takes no --rate, --ramp or --stages")
		}
		p.cfg.Concurrency = conc
		return nil
	}
	if rate <= 0 || rate > load.MaxRate {
		return fmt.Errorf("--rate %v: must be above 0 and at most %d tasks/s", rate, load.MaxRate)
	}
	var sched load.Schedule
	var err error
	switch {
	case ramp != "" && stages != "":
		return errors.New("--ramp: give --ramp or --stages, not both")
	case ramp != "":
		sched, err = load.ParseRamp(ramp)
	case stages != "":
		sched, err = load.ParseStages(rate, stages)
	default:
		sched = load.ConstantRate(rate)
	}
	if err != nil {
		return err
	}
	p.cfg.Schedule = &sched
	return nil
}

func (p *loadPlan) parseScenario(cmd *cobra.Command) error {
	f := cmd.Flags()
	name, _ := f.GetString("scenario")
	speed, _ := f.GetFloat64("scenario-speed")
	if speed <= 0 || speed > 1000 {
		return fmt.Errorf("--scenario-speed %v: must be above 0 and at most 1000", speed)
	}
	p.workerURLs, _ = f.GetStringSlice("worker-url")
	p.ffiURLs, _ = f.GetStringSlice("ffi-worker-url")
	if len(p.workerURLs) == 0 && os.Getenv(LoadWorkerURLsEnv) != "" {
		p.workerURLs = strings.Split(os.Getenv(LoadWorkerURLsEnv), ",")
	}
	if len(p.ffiURLs) == 0 && os.Getenv(LoadFFIWorkerURLsEnv) != "" {
		p.ffiURLs = strings.Split(os.Getenv(LoadFFIWorkerURLsEnv), ",")
	}
	loop, _ := f.GetBool("scenario-loop")
	switch name {
	case "", "none":
		if loop && name == "" {
			return errors.New("--scenario-loop: give the --scenario to repeat")
		}
		return nil
	case "chaos":
		p.cfg.Scenario = load.Chaos()
	default:
		doc, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("--scenario %q: %w", name, err)
		}
		if p.cfg.Scenario, err = load.ParseScenario(doc); err != nil {
			return fmt.Errorf("--scenario %q: %w", name, err)
		}
	}
	p.cfg.Scenario.Loop = loop
	p.cfg.Scenario = p.cfg.Scenario.Speed(speed)
	return nil
}

// connect points the plan at the orchestrator and the processes faults go to.
func (p *loadPlan) connect(own *ownStack) error {
	c, err := clientFor(own.url)
	if err != nil {
		return err
	}
	p.cfg.Client, p.cfg.OrchestratorURL, p.cfg.Token = c, own.url, os.Getenv(AuthTokenEnv)
	workers, ffi := own.workers, own.ffiWorkers
	if len(workers) == 0 {
		workers, ffi = slices.Concat(p.workerURLs, p.ffiURLs), p.ffiURLs
	}
	p.cfg.Targets = load.Targets{load.TargetOrchestrator: {own.url}, load.TargetWorker: workers, load.TargetFFIWorker: ffi}
	if p.cfg.Scenario != nil {
		return p.cfg.Targets.Check(p.cfg.Scenario)
	}
	return nil
}

func writeReport(path string, res *load.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--report %q: %w", path, err)
	}
	if err := load.WriteReport(f, res); err != nil {
		_ = f.Close()
		return fmt.Errorf("--report %q: %w", path, err)
	}
	return f.Close()
}

func failureReason(res *load.Result) string {
	var why []string
	if n := len(res.Unfinished); n > 0 {
		why = append(why, fmt.Sprintf("%d tasks never finished", n))
	}
	why = append(why, res.Reconciliation.Problems...)
	for _, t := range res.Thresholds {
		if !t.Passed {
			why = append(why, fmt.Sprintf("threshold %s not met (actual %.2f)", t.Expr, t.Actual))
		}
	}
	return strings.Join(why, "; ")
}

// loadProgress shows the run's progress: a bar on a terminal, a line every ten seconds
// elsewhere (logs).
type loadProgress struct {
	w    io.Writer
	bar  *progressbar.ProgressBar
	last time.Time
}

func newLoadProgress(w io.Writer, planned time.Duration) *loadProgress {
	lp := &loadProgress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		max := int64(-1)
		if planned > 0 {
			max = int64(planned.Seconds())
		}
		lp.bar = progressbar.NewOptions64(max, progressbar.OptionSetWriter(w), progressbar.OptionSetWidth(20),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	return lp
}

func (lp *loadProgress) update(p load.Progress) {
	line := fmt.Sprintf("%s  rate %.1f/s", p.Elapsed.Round(time.Second), p.Rate)
	if p.TargetRate > 0 {
		line += fmt.Sprintf(" (target %.1f)", p.TargetRate)
	}
	line += fmt.Sprintf("  in flight %d  created %d  done %d  p99 %.0f ms", p.InFlight, p.Created, p.Finished, p.P99MS)
	if p.Missed > 0 || p.Refused > 0 {
		line += fmt.Sprintf("  missed %d  refused %d", p.Missed, p.Refused)
	}
	if lp.bar != nil {
		lp.bar.Describe(line)
		_ = lp.bar.Set64(int64(p.Elapsed.Seconds()))
		return
	}
	if time.Since(lp.last) >= 10*time.Second {
		lp.last = time.Now()
		fmt.Fprintln(lp.w, "load:", line)
	}
}

func (lp *loadProgress) warn(msg string) {
	if lp.bar != nil {
		_ = lp.bar.Clear()
	}
	fmt.Fprintln(lp.w, "load: warning:", msg)
}

func (lp *loadProgress) finish() {
	if lp.bar != nil {
		_ = lp.bar.Finish()
	}
}

// printLoadSummary prints the end-of-run table.
func printLoadSummary(w io.Writer, r *load.Result) {
	fmt.Fprintf(w, "%s model, %.0f s measured after %.0f s warm-up", r.Model, r.MeasuredSeconds, r.WarmupSeconds)
	if r.Model == "open" {
		fmt.Fprintf(w, ": target %.1f tasks/s, achieved %.1f (%.1f%%)", r.TargetRate, r.AchievedRate, pct(r.AchievedRate, r.TargetRate))
	} else {
		fmt.Fprintf(w, ": %d in flight, achieved %.1f tasks/s", r.Concurrency, r.AchievedRate)
	}
	if r.Interrupted {
		fmt.Fprint(w, " (interrupted)")
	}
	fmt.Fprintf(w, "\ncreated %d, missed %d, refused %s; final states %s\n\n",
		r.Created, r.Missed, countsText(r.HTTPErrors), countsText(r.FinalStates))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SHAPE\tCREATED\tRATE/s\tP50 ms\tP90 ms\tP99 ms\tP99.9 ms\tMAX ms\tSTATES\t")
	for _, s := range r.Shapes {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t\n", s.Name, s.Created, s.AchievedRate,
			s.Latency.P50, s.Latency.P90, s.Latency.P99, s.Latency.P999, s.Latency.Max, countsText(s.FinalStates))
	}
	o := r.Overall
	fmt.Fprintf(tw, "all\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\t\n", r.Created, r.AchievedRate, o.P50, o.P90, o.P99, o.P999, o.Max)
	_ = tw.Flush()
	printLoadChecks(w, r)
}

func printLoadChecks(w io.Writer, r *load.Result) {
	fmt.Fprintln(w)
	for _, p := range r.Phases {
		status := "applied and cleared"
		if p.Error != "" {
			status = "FAILED: " + p.Error
		}
		fmt.Fprintf(w, "phase %-34q %5.0f–%-5.0f s  %-12s %s\n", p.Name, p.StartSeconds, p.EndSeconds, p.Target, status)
	}
	rc := r.Reconciliation
	if rc.Checked && len(rc.Problems) == 0 {
		fmt.Fprintf(w, "reconciled: %d created = %s +%d; %d finished = completions+failures +%d\n",
			rc.Created, telemetry.Series(telemetry.MetricTasksRequests), rc.RequestsCounted, rc.Terminal, rc.TerminalCounted)
	}
	for _, p := range rc.Problems {
		fmt.Fprintln(w, "reconciliation:", p)
	}
	for _, u := range r.Unfinished {
		fmt.Fprintf(w, "unfinished: %s (%s) last seen %s\n", u.TaskUUID, u.Shape, u.Status)
	}
	for _, t := range r.Thresholds {
		verdict := "ok"
		if !t.Passed {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "threshold %-16s actual %.2f  %s\n", t.Expr, t.Actual, verdict)
	}
	fmt.Fprintf(w, "generator CPU: %.1f%% of the machine\n", r.GeneratorCPUPercent)
}

func pct(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * a / b
}

// countsText renders counts as "a=1 b=2", sorted, or "none".
func countsText(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
