package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tasker-sim/tasker-sim/internal/load"
	"github.com/tasker-sim/tasker-sim/internal/stack"
)

// Soak goals, printed beside the figures.
const (
	historyCostGoal = 1.5 // database CPU per step with the full history ÷ with the baseline
	rssGrowthGoal   = 20  // % RSS growth from minute 1 to the end of the sustained load
	soakRateShare   = 0.7 // default sustained rate, as a share of the probe burst's tasks/s
	// soakKeptUpP50MS is the median latency above which the sustained load is said to
	// have outrun the stack: a mathematical_sequence task takes well under it when
	// nothing queues.
	soakKeptUpP50MS = 1000
)

func benchSoakCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Measure per-step cost with a large history, and memory growth under sustained load",
		Long: `Two measurements on a stack of its own (like 'bench throughput'):

History: the cost of a step with --history finished tasks in the database against the
cost with --baseline-history. After a warm-up burst it fills the history up to the
baseline with copies of a finished mathematical_sequence task (every row of the task,
its steps, edges and transitions, with new ids, generated in SQL), vacuums and analyzes,
and runs a burst of --tasks tasks; then fills up to --history, vacuums and analyzes
again, and runs the same burst. It reports steps/s and the database's CPU per step of
both bursts and their ratio (goal: at most 1.5).

Memory: a short burst probes the stack's tasks/s; then mathematical_sequence tasks arrive
at --rate (default 70 % of the probe) for --minutes, and the resident memory (VmRSS) of
every orchestrator and worker is read at minute 1 and when the arrivals stop (before the
grace period and the final scrape of /metrics): the goal is at most 20 % growth. --history 0 or --minutes 0 skips a measurement.`,
		Args: cobra.NoArgs,
		RunE: runBenchSoak,
	}
	f := cmd.Flags()
	f.Int("tasks", 500, "tasks in each measurement burst (and in the warm-up and the probe)")
	f.Int("clients", 16, "goroutines creating a burst's tasks")
	f.Int("history", 100000, "finished tasks in the database for the second history burst (0 skips the history measurement)")
	f.Int("baseline-history", 1000, "finished tasks in the database for the first history burst")
	f.Int("minutes", 10, "minutes of sustained load for the memory measurement (0 skips it; at least 2)")
	f.Float64("rate", 0, "sustained load, tasks/s (default 70 % of the probe burst's tasks/s)")
	f.Int("orchestrators", 1, "orchestrator processes")
	f.Int("workers", 1, "worker processes")
	f.String("bin-dir", "", "directory with the orchestrator and worker binaries (default: beside taskerctl, then ./bin)")
	addOutputFlag(cmd)
	return cmd
}

// SoakResult is what `taskerctl bench soak -o json` prints.
type SoakResult struct {
	Machine Machine `json:"machine"`
	// History is the per-step cost with a large history (absent with --history 0).
	History *HistoryResult `json:"history,omitempty"`
	// Memory is the RSS growth under sustained load (absent with --minutes 0).
	Memory *MemoryResult `json:"memory,omitempty"`
	Goals  SoakGoals     `json:"goals"`
}

// SoakGoals are the goals the soak's figures are judged against.
type SoakGoals struct {
	DBCPUPerStepRatio float64 `json:"db_cpu_per_step_ratio_max"`
	RSSGrowthPercent  float64 `json:"rss_growth_percent_max"`
}

// HistoryResult compares a burst on a small history with the same burst on a large one.
type HistoryResult struct {
	Baseline HistoryBurst `json:"baseline"`
	Full     HistoryBurst `json:"full"`
	// DBCPUPerStepRatio is Full's database CPU per step ÷ Baseline's; null when unknown.
	DBCPUPerStepRatio *float64 `json:"db_cpu_per_step_ratio"`
	// StepsPerSecondRatio is Full's steps/s ÷ Baseline's.
	StepsPerSecondRatio float64 `json:"steps_per_second_ratio"`
	// GenerateSeconds is how long generating the history took.
	GenerateSeconds float64 `json:"generate_seconds"`
}

// HistoryBurst is one burst with the history it ran on.
type HistoryBurst struct {
	// HistoryTasks counts the tasks in the database when the burst started.
	HistoryTasks int64         `json:"history_tasks"`
	Run          ThroughputRun `json:"run"`
}

// MemoryResult is the RSS of every tasker process under sustained load.
type MemoryResult struct {
	ProbeTasksPerSecond float64          `json:"probe_tasks_per_second"`
	Rate                float64          `json:"rate"`
	Minutes             int              `json:"minutes"`
	AchievedRate        float64          `json:"achieved_rate"`
	Created             int64            `json:"created"`
	FinalStates         map[string]int64 `json:"final_states"`
	Unfinished          int              `json:"unfinished"`
	// KeptUp says the stack kept up with the rate: nothing unfinished and a median
	// latency under soakKeptUpP50MS. When it did not, the RSS includes a growing backlog.
	KeptUp    bool         `json:"kept_up"`
	Processes []ProcessRSS `json:"processes"`
	// Latency is the sustained load's create-to-complete latency.
	Latency *load.LatencySummary `json:"latency_ms"`
}

// ProcessRSS is one process's resident memory during the sustained load.
type ProcessRSS struct {
	Name          string  `json:"name"`
	PID           int     `json:"pid"`
	Minute1KB     int64   `json:"rss_minute_1_kb"`
	EndKB         int64   `json:"rss_end_kb"`
	PeakKB        int64   `json:"rss_peak_kb"`
	GrowthPercent float64 `json:"growth_percent"`
}

// soakPlan is the validated command line.
type soakPlan struct {
	throughputPlan
	history, baseline, minutes int
	rate                       float64
}

func parseSoakFlags(cmd *cobra.Command) (*soakPlan, error) {
	format, err := outputFormat(cmd)
	if err != nil {
		return nil, err
	}
	if err := refuseURL(cmd); err != nil {
		return nil, err
	}
	f := cmd.Flags()
	p := &soakPlan{throughputPlan: throughputPlan{format: format, tasks: flagInt(cmd, "tasks"),
		clients: flagInt(cmd, "clients"), orchs: flagInt(cmd, "orchestrators"), workers: flagInt(cmd, "workers"),
		progress: cmd.ErrOrStderr(), logf: stderrLogf(cmd)},
		history: flagInt(cmd, "history"), baseline: flagInt(cmd, "baseline-history"), minutes: flagInt(cmd, "minutes")}
	p.rate, _ = f.GetFloat64("rate")
	p.binDir, _ = f.GetString("bin-dir")
	for _, check := range []struct {
		bad  bool
		what string
	}{
		{p.tasks < 1 || p.tasks > 100000, fmt.Sprintf("--tasks %d: must be from 1 to 100000", p.tasks)},
		{p.clients < 1 || p.clients > 1000, fmt.Sprintf("--clients %d: must be from 1 to 1000", p.clients)},
		{p.orchs < 1 || p.orchs > 16, fmt.Sprintf("--orchestrators %d: must be from 1 to 16", p.orchs)},
		{p.workers < 1 || p.workers > 64, fmt.Sprintf("--workers %d: must be from 1 to 64", p.workers)},
		{p.history < 0 || p.history > 100000000, fmt.Sprintf("--history %d: must be from 0 to 100000000", p.history)},
		{p.history > 0 && (p.baseline < p.tasks || p.baseline >= p.history),
			fmt.Sprintf("--baseline-history %d: must be at least --tasks (%d) and below --history (%d)", p.baseline, p.tasks, p.history)},
		{p.minutes != 0 && (p.minutes < 2 || p.minutes > 24*60), fmt.Sprintf("--minutes %d: must be 0 or from 2 to 1440", p.minutes)},
		{p.rate < 0 || p.rate > load.MaxRate, fmt.Sprintf("--rate %v: must be from 0 (automatic) to %d", p.rate, load.MaxRate)},
		{p.history == 0 && p.minutes == 0, "--history 0 and --minutes 0: nothing left to measure"},
	} {
		if check.bad {
			return nil, errors.New(check.what)
		}
	}
	return p, nil
}

func runBenchSoak(cmd *cobra.Command, _ []string) error {
	p, err := parseSoakFlags(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	srv, err := startBenchServer(ctx, p.logf)
	if err != nil {
		return err
	}
	defer srv.stop()
	res := &SoakResult{Machine: srv.machine(ctx), Goals: SoakGoals{DBCPUPerStepRatio: historyCostGoal, RSSGrowthPercent: rssGrowthGoal}}
	if p.history > 0 {
		if res.History, err = p.measureHistory(ctx, srv); err != nil {
			return fmt.Errorf("history: %w", err)
		}
	}
	if p.minutes > 0 {
		if res.Memory, err = p.measureMemory(ctx, srv); err != nil {
			return fmt.Errorf("memory: %w", err)
		}
	}
	if p.format == "json" {
		return printJSON(cmd.OutOrStdout(), res)
	}
	printSoak(cmd.OutOrStdout(), res, srv.cpuUnknown)
	return nil
}

// measureHistory runs the history measurement on a stack of its own.
func (p *soakPlan) measureHistory(ctx context.Context, srv *benchServer) (*HistoryResult, error) {
	s, err := p.startStack(ctx, srv)
	if err != nil {
		return nil, err
	}
	defer s.Stop()
	if _, err := p.burst(ctx, srv, s, "warm-up"); err != nil {
		return nil, err
	}
	h, err := newHistoryFiller(ctx, s.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer h.close()
	res := &HistoryResult{}
	var generating time.Duration
	for _, step := range []struct {
		target int
		into   *HistoryBurst
	}{{p.baseline, &res.Baseline}, {p.history, &res.Full}} {
		took, err := h.fillTo(ctx, int64(step.target), p.progress, p.logf)
		if err != nil {
			return nil, err
		}
		generating += took
		if step.into.HistoryTasks, err = h.settle(ctx, p.logf); err != nil {
			return nil, err
		}
		run, err := p.burst(ctx, srv, s, fmt.Sprintf("burst on %d", step.into.HistoryTasks))
		if err != nil {
			return nil, err
		}
		step.into.Run = *run
	}
	res.GenerateSeconds = generating.Seconds()
	res.StepsPerSecondRatio = res.Full.Run.StepsPerSecond / res.Baseline.Run.StepsPerSecond
	if a, b := res.Baseline.Run.DBCPUMSPerStep, res.Full.Run.DBCPUMSPerStep; a != nil && b != nil && *a > 0 {
		ratio := *b / *a
		res.DBCPUPerStepRatio = &ratio
	}
	return res, nil
}

// historyFiller copies a finished mathematical_sequence task (the template) in SQL: every
// row the task has in tasker.tasks, workflow_steps, workflow_step_edges, task_transitions
// and workflow_step_transitions, with new ids, the same named task and named steps, the
// same states and transitions, and times moved into the past. Columns are read from the
// catalog, so a column added to these tables is copied from the template as it is.
type historyFiller struct {
	conn     *pgx.Conn
	template uuid.UUID
	inserts  []string // one INSERT … SELECT per table, in foreign-key order
}

// historyBatch is how many tasks one transaction of the filler copies.
const historyBatch = 5000

// historyTable says how a copy's rows of one table are made from the template's: the
// FROM clause ({template} is the template task's uuid, src the template's row, c the copy's hist_clone row, m and mt the
// copy's hist_step rows) and the columns whose values are not the template's. Every
// other timestamp is the template's moved back by c.shift; every other column is copied.
type historyTable struct {
	name      string
	from      string
	overrides map[string]string
}

var historyTables = []historyTable{
	{"tasks", `FROM tasker.tasks AS src CROSS JOIN hist_clone AS c WHERE src.task_uuid = '{template}'`, map[string]string{
		"task_uuid":      "c.task_uuid",
		"correlation_id": "c.correlation_id",
		"identity_hash":  "encode(sha256(convert_to(c.task_uuid::text, 'UTF8')), 'hex')",
		"context":        "src.context || jsonb_build_object('_run_id', c.task_uuid)",
	}},
	{"workflow_steps", `FROM tasker.workflow_steps AS src JOIN hist_step AS m ON m.old_uuid = src.workflow_step_uuid
		JOIN hist_clone AS c ON c.i = m.i`, map[string]string{
		"workflow_step_uuid": "m.new_uuid",
		"task_uuid":          "c.task_uuid",
		"results": `CASE WHEN jsonb_typeof(src.results) = 'object' AND src.results ? 'step_uuid'
			THEN src.results || jsonb_build_object('step_uuid', m.new_uuid) ELSE src.results END`,
	}},
	{"workflow_step_edges", `FROM tasker.workflow_step_edges AS src JOIN hist_step AS m ON m.old_uuid = src.from_step_uuid
		JOIN hist_step AS mt ON mt.old_uuid = src.to_step_uuid AND mt.i = m.i JOIN hist_clone AS c ON c.i = m.i`, map[string]string{
		"workflow_step_edge_uuid": "gen_random_uuid()",
		"from_step_uuid":          "m.new_uuid",
		"to_step_uuid":            "mt.new_uuid",
	}},
	{"task_transitions", `FROM tasker.task_transitions AS src CROSS JOIN hist_clone AS c WHERE src.task_uuid = '{template}'`, map[string]string{
		"task_transition_uuid": "gen_random_uuid()",
		"task_uuid":            "c.task_uuid",
		"metadata": `CASE WHEN jsonb_typeof(src.metadata) = 'object' AND src.metadata ? 'correlation_id'
			THEN src.metadata || jsonb_build_object('correlation_id', c.correlation_id) ELSE src.metadata END`,
	}},
	{"workflow_step_transitions", `FROM tasker.workflow_step_transitions AS src
		JOIN hist_step AS m ON m.old_uuid = src.workflow_step_uuid JOIN hist_clone AS c ON c.i = m.i`, map[string]string{
		"workflow_step_transition_uuid": "gen_random_uuid()",
		"workflow_step_uuid":            "m.new_uuid",
	}},
}

// historyUUID7 makes UUIDv7s for a time, like the ids the orchestrator gives tasks and
// steps, so that copies sort by their times in the primary keys as real rows do.
// tasker_sim_uuid7_like moves a template id back by the copy's shift and keeps the rest of
// it, so that a copy's steps keep the order of the template's, also when the template's
// ids straddle a millisecond; the copies are a second apart, so their ids cannot collide.
var historyUUID7 = []string{
	`CREATE FUNCTION pg_temp.tasker_sim_uuid7(ts timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
	SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0')
		|| '7' || substr(replace(gen_random_uuid()::text, '-', ''), 14))::uuid
$$`,
	`CREATE FUNCTION pg_temp.tasker_sim_uuid7_like(shift interval, template uuid) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
	SELECT (lpad(to_hex(('x' || substr(replace(template::text, '-', ''), 1, 12))::bit(48)::bigint
	                    - (extract(epoch FROM shift) * 1000)::bigint), 12, '0')
		|| substr(replace(template::text, '-', ''), 13))::uuid
$$`,
}

func newHistoryFiller(ctx context.Context, dbURL string) (*historyFiller, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	h := &historyFiller{conn: conn}
	if err := h.prepare(ctx); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

func (h *historyFiller) close() { _ = h.conn.Close(context.Background()) }

// prepare picks the template (the newest complete mathematical_sequence task) and builds
// the INSERT statements from the tables' columns.
func (h *historyFiller) prepare(ctx context.Context) error {
	err := h.conn.QueryRow(ctx, `
		SELECT t.task_uuid FROM tasker.tasks AS t
		  JOIN tasker.named_tasks AS nt ON nt.named_task_uuid = t.named_task_uuid
		 WHERE nt.name = 'mathematical_sequence'
		   AND EXISTS (SELECT 1 FROM tasker.task_transitions AS tt
		                WHERE tt.task_uuid = t.task_uuid AND tt.most_recent AND tt.to_state = 'complete')
		 ORDER BY t.created_at DESC LIMIT 1`).Scan(&h.template)
	if err != nil {
		return fmt.Errorf("finding a complete mathematical_sequence task to copy: %w", err)
	}
	for _, t := range historyTables {
		cols, err := h.columns(ctx, "tasker."+t.name)
		if err != nil {
			return err
		}
		h.inserts = append(h.inserts, historyInsert(t, cols, h.template))
	}
	for _, sql := range historyUUID7 {
		if _, err := h.conn.Exec(ctx, sql); err != nil {
			return err
		}
	}
	return nil
}

// column is a table column and whether it holds a time.
type column struct {
	name string
	time bool
}

// columns lists the columns a copy gives values to: not dropped, generated or identity.
func (h *historyFiller) columns(ctx context.Context, table string) ([]column, error) {
	rows, err := h.conn.Query(ctx, `
		SELECT a.attname, format_type(a.atttypid, a.atttypmod) LIKE 'timestamp%'
		  FROM pg_attribute AS a
		 WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
		   AND a.attgenerated = '' AND a.attidentity = ''
		 ORDER BY a.attnum`, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		return c, r.Scan(&c.name, &c.time)
	})
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	return cols, nil
}

// historyInsert is the INSERT … SELECT that copies table t's template rows once per hist_clone row.
func historyInsert(t historyTable, cols []column, template uuid.UUID) string {
	names := make([]string, len(cols))
	exprs := make([]string, len(cols))
	for i, c := range cols {
		names[i] = pgx.Identifier{c.name}.Sanitize()
		switch expr, ok := t.overrides[c.name]; {
		case ok:
			exprs[i] = expr
		case c.time:
			exprs[i] = "src." + names[i] + " - c.shift"
		default:
			exprs[i] = "src." + names[i]
		}
	}
	return fmt.Sprintf("INSERT INTO tasker.%s (%s)\nSELECT %s\n%s", pgx.Identifier{t.name}.Sanitize(),
		strings.Join(names, ", "), strings.Join(exprs, ", "), strings.ReplaceAll(t.from, "{template}", template.String()))
}

// count is how many tasks the database holds.
func (h *historyFiller) count(ctx context.Context) (int64, error) {
	var n int64
	err := h.conn.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks`).Scan(&n)
	return n, err
}

// fillTo copies the template until the database holds target tasks, in batches.
func (h *historyFiller) fillTo(ctx context.Context, target int64, progress io.Writer, logf func(string, ...any)) (time.Duration, error) {
	have, err := h.count(ctx)
	if err != nil {
		return 0, err
	}
	need := target - have
	if need <= 0 {
		return 0, nil
	}
	var oldest time.Time
	if err := h.conn.QueryRow(ctx, `SELECT min(created_at) FROM tasker.tasks`).Scan(&oldest); err != nil {
		return 0, err
	}
	logf("history: copying task %s %d times (%d tasks in the database, %d wanted)", h.template, need, have, target)
	started := time.Now()
	bar := newBar(progress, int(need), "history")
	for lo := int64(1); lo <= need; lo += historyBatch {
		hi := min(lo+historyBatch-1, need)
		if err := h.batch(ctx, lo, hi, oldest); err != nil {
			return 0, fmt.Errorf("copying tasks %d to %d: %w", lo, hi, err)
		}
		_ = bar.Add(int(hi - lo + 1))
	}
	_ = bar.Finish()
	took := time.Since(started)
	logf("history: %d tasks copied in %s (%.0f tasks/s)", need, took.Round(time.Millisecond), float64(need)/took.Seconds())
	return took, nil
}

// historySpacing is the time between two copies' creation: copy i is created i spacings
// before the oldest task already there, so the history reaches back a day per 86400 tasks.
const historySpacing = time.Second

// batch copies the template as copies lo to hi, in one transaction.
func (h *historyFiller) batch(ctx context.Context, lo, hi int64, oldest time.Time) error {
	return pgx.BeginFunc(ctx, h.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			CREATE TEMP TABLE hist_clone ON COMMIT DROP AS
			SELECT i, born, pg_temp.tasker_sim_uuid7(born) AS task_uuid, pg_temp.tasker_sim_uuid7(born) AS correlation_id,
			       (SELECT created_at FROM tasker.tasks WHERE task_uuid = $4) - born AS shift
			  FROM generate_series($1::bigint, $2::bigint) AS i,
			       LATERAL (SELECT $3::timestamptz - make_interval(secs => i * $5::double precision) AS born) AS b`,
			lo, hi, oldest, h.template, historySpacing.Seconds()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			CREATE TEMP TABLE hist_step ON COMMIT DROP AS
			SELECT c.i, s.workflow_step_uuid AS old_uuid, pg_temp.tasker_sim_uuid7_like(c.shift, s.workflow_step_uuid) AS new_uuid
			  FROM hist_clone AS c CROSS JOIN tasker.workflow_steps AS s WHERE s.task_uuid = $1`, h.template); err != nil {
			return err
		}
		for _, sql := range append([]string{`CREATE INDEX ON hist_step (old_uuid, i)`, `CREATE INDEX ON hist_clone (i)`,
			`ANALYZE hist_clone`, `ANALYZE hist_step`}, h.inserts...) {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("%w\n%s", err, sql)
			}
		}
		return nil
	})
}

// settle leaves the database as a real one that has held its history for a while:
// vacuumed and analyzed (what autovacuum would have done, and would otherwise do during
// the next burst), and checkpointed. It returns the number of tasks.
func (h *historyFiller) settle(ctx context.Context, logf func(string, ...any)) (int64, error) {
	started := time.Now()
	for _, t := range historyTables {
		if _, err := h.conn.Exec(ctx, "VACUUM (ANALYZE) tasker."+pgx.Identifier{t.name}.Sanitize()); err != nil {
			return 0, err
		}
	}
	if _, err := h.conn.Exec(ctx, "CHECKPOINT"); err != nil {
		logf("history: CHECKPOINT refused (%v); the burst may pay for a checkpoint", err)
	}
	n, err := h.count(ctx)
	logf("history: %d tasks, vacuumed, analyzed and checkpointed in %s", n, time.Since(started).Round(time.Millisecond))
	return n, err
}

// measureMemory runs the memory measurement on a stack of its own.
func (p *soakPlan) measureMemory(ctx context.Context, srv *benchServer) (*MemoryResult, error) {
	s, err := p.startStack(ctx, srv)
	if err != nil {
		return nil, err
	}
	defer s.Stop()
	probe, err := p.burst(ctx, srv, s, "probe")
	if err != nil {
		return nil, err
	}
	res := &MemoryResult{ProbeTasksPerSecond: probe.TasksPerSecond, Rate: p.rate, Minutes: p.minutes}
	if res.Rate == 0 {
		res.Rate = soakRateShare * probe.TasksPerSecond
	}
	p.logf("sustained load: %.1f tasks/s for %d minutes (probe burst: %.1f tasks/s)", res.Rate, p.minutes, probe.TasksPerSecond)
	cfg, err := p.loadConfig(s, res.Rate)
	if err != nil {
		return nil, err
	}
	// The sampler reads while the tasks arrive, minute 1 to the last minute; it stops when
	// they stop, before the grace period and the load's reconciliation, whose scrape of
	// /metrics is a burst of allocation of its own and not the sustained load.
	rss := newRSSSampler(s.Processes())
	sampling, stopSampling := context.WithTimeout(ctx, cfg.Duration)
	var wg sync.WaitGroup
	wg.Go(func() { rss.run(sampling) })
	bar := newLoadProgress(p.progress, cfg.Duration)
	cfg.Progress, cfg.Warn = bar.update, bar.warn
	lr, err := load.Run(ctx, cfg)
	bar.finish()
	stopSampling()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	res.AchievedRate, res.Created, res.FinalStates, res.Unfinished = lr.AchievedRate, lr.Created, lr.FinalStates, len(lr.Unfinished)
	res.Latency = &lr.Overall
	res.KeptUp = res.Unfinished == 0 && lr.Overall.P50 < soakKeptUpP50MS
	res.Processes = rss.result()
	return res, nil
}

// loadConfig is the sustained load: mathematical_sequence tasks arriving at rate.
func (p *soakPlan) loadConfig(s *stack.Stack, rate float64) (load.Config, error) {
	mix, err := load.ParseMix("mathematical_sequence=1")
	if err != nil {
		return load.Config{}, err
	}
	c, err := clientFor(s.URL)
	if err != nil {
		return load.Config{}, err
	}
	sched := load.ConstantRate(rate)
	return load.Config{Client: c, OrchestratorURL: s.URL, Token: os.Getenv(AuthTokenEnv), Mix: mix, Schedule: &sched,
		Duration: time.Duration(p.minutes) * time.Minute, MaxSenders: 512, Grace: time.Minute}, nil
}

// rssSampler reads the processes' VmRSS every few seconds: the reading at minute 1, the
// last one, and the peak.
type rssSampler struct {
	procs   []stack.Process
	started time.Time
	mu      sync.Mutex
	minute1 []int64 // nil until minute 1
	last    []int64
	peak    []int64
}

// rssEvery is how often the sampler reads.
const rssEvery = 5 * time.Second

func newRSSSampler(procs []stack.Process) *rssSampler {
	return &rssSampler{procs: procs, started: time.Now(), peak: make([]int64, len(procs))}
}

// run samples until ctx ends, and once more then.
func (r *rssSampler) run(ctx context.Context) {
	t := time.NewTicker(rssEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.sample()
			return
		case <-t.C:
			r.sample()
		}
	}
}

func (r *rssSampler) sample() {
	now := make([]int64, len(r.procs))
	for i, p := range r.procs {
		now[i], _ = readVMRSS(p.PID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = now
	for i, kb := range now {
		r.peak[i] = max(r.peak[i], kb)
	}
	if r.minute1 == nil && time.Since(r.started) >= time.Minute {
		r.minute1 = now
	}
}

func (r *rssSampler) result() []ProcessRSS {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ProcessRSS, len(r.procs))
	for i, p := range r.procs {
		out[i] = ProcessRSS{Name: p.Name, PID: p.PID, EndKB: r.last[i], PeakKB: r.peak[i]}
		if r.minute1 != nil {
			out[i].Minute1KB = r.minute1[i]
		}
		if out[i].Minute1KB > 0 {
			out[i].GrowthPercent = 100 * float64(out[i].EndKB-out[i].Minute1KB) / float64(out[i].Minute1KB)
		}
	}
	return out
}

func readVMRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	return parseVMRSS(f)
}

// parseVMRSS reads the VmRSS line of a /proc/<pid>/status, in kB.
func parseVMRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc status: VmRSS line %q: want a number of kB", sc.Text())
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("/proc status: no VmRSS line (a kernel thread, or the process has exited)")
}

func printSoak(w io.Writer, r *SoakResult, cpuUnknown string) {
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs, %s/%s, PostgreSQL %s\n", m.CPUs, m.GOOS, m.GOARCH, m.PostgresVersion)
	if h := r.History; h != nil {
		fmt.Fprintf(w, "\nhistory (generated in %.1f s):\n", h.GenerateSeconds)
		for _, b := range []*HistoryBurst{&h.Baseline, &h.Full} {
			fmt.Fprintf(w, "\nwith %d tasks in the database, ", b.HistoryTasks)
			printThroughputRun(w, &b.Run, cpuUnknown)
		}
		fmt.Fprintf(w, "\nsteps/s: %.1f -> %.1f (x %.2f)\n", h.Baseline.Run.StepsPerSecond, h.Full.Run.StepsPerSecond, h.StepsPerSecondRatio)
		if h.DBCPUPerStepRatio != nil {
			fmt.Fprintf(w, "database CPU per step: %.3f -> %.3f ms (x %.2f; goal <= %.1f)\n",
				*h.Baseline.Run.DBCPUMSPerStep, *h.Full.Run.DBCPUMSPerStep, *h.DBCPUPerStepRatio, r.Goals.DBCPUPerStepRatio)
		} else {
			fmt.Fprintf(w, "database CPU per step: unknown (%s)\n", cpuUnknown)
		}
	}
	if mem := r.Memory; mem != nil {
		printMemory(w, mem, r.Goals.RSSGrowthPercent)
	}
}

func printMemory(w io.Writer, m *MemoryResult, goal float64) {
	fmt.Fprintf(w, "\nmemory: %.1f tasks/s of mathematical_sequence (%.0f %% of the probe's %.1f) for %d minutes: achieved %.1f tasks/s, "+
		"%d created, final states %s, %d unfinished, latency P50 %.1f ms P99 %.1f ms\n",
		m.Rate, 100*m.Rate/m.ProbeTasksPerSecond, m.ProbeTasksPerSecond, m.Minutes, m.AchievedRate, m.Created,
		countsText(m.FinalStates), m.Unfinished, m.Latency.P50, m.Latency.P99)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PROCESS\tPID\tRSS minute 1\tRSS end\tpeak\tgrowth\t")
	for _, p := range m.Processes {
		fmt.Fprintf(tw, "  %s\t%d\t%.1f MiB\t%.1f MiB\t%.1f MiB\t%+.1f %%\t\n", p.Name, p.PID,
			float64(p.Minute1KB)/1024, float64(p.EndKB)/1024, float64(p.PeakKB)/1024, p.GrowthPercent)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "  goal: growth <= %.0f %% for every process\n", goal)
	if !m.KeptUp {
		fmt.Fprintf(w, "  note: the stack did not keep up with %.1f tasks/s (median latency %.1f s), so the memory includes a growing backlog; "+
			"a lower --rate measures a steady state\n", m.Rate, m.Latency.P50/1000)
	}
}
