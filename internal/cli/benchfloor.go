package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// The floor's task: the template whose rows it writes, as the burst's tasks are.
const (
	floorNamespace = "rust_e2e_linear"
	floorTask      = "mathematical_sequence"
	floorVersion   = "1.0.0"
	// floorSchema holds the floor's helpers (an id generator and a batch counter).
	floorSchema = "tasker_sim_floor"
	// floorProcessor and floorWorker stand in for the processes in the audit metadata.
	floorProcessor = "0192a3b4-0000-7000-8000-000000000001"
	floorWorker    = "worker-floor"
)

// floorDefaultBatches are the tasks per batch measured by default: from one task at a
// time up to twice the batches a burst reaches.
var floorDefaultBatches = []int{1, 4, 8, 16, 32}

func benchFloorCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "floor",
		Short: "What the writes alone allow: a task's rows written by pgbench, with no engine, against TPC-B",
		Long: `Measure the floor under the throughput and latency goals: the rows that a
mathematical_sequence task leaves behind (its task, 4 steps and 3 edges, 5 step
transitions per step and 15 task transitions, a worker-queue message and a result message
per step with their archive copies, the notifications) written by pgbench, with no
orchestrator, no worker and no reads beyond the row locks. Each task goes through the
same transactions the processes make (create and enqueue; per step a claim, a result,
and the result's handling with the next enqueue), and a batch of tasks shares each
statement, as a burst's batches do.

For each --batches size B it runs 8 clients for --seconds and reports steps/s, the ratio
to pgbench's TPC-B-like TPS on the same server (--reference-seconds), and PostgreSQL's
CPU per step. Then one client writes one task at a time: its average is the least a
single task's create -> complete can take on this machine, whatever the engine does.
Compare with 'bench throughput' (steps/s ÷ TPS, database CPU per step, and the batch
sizes it reaches) and with 'bench' (P50).

It starts a throwaway PostgreSQL cluster (or uses the server named by
TASKER_DATABASE_URL; it needs CREATE DATABASE there, and the database's CPU is then
unknown) and a fresh, migrated database for each measurement. pgbench comes from PATH or
/usr/lib/postgresql/*/bin.`,
		Args: cobra.NoArgs,
		RunE: runBenchFloor,
	}
	f := cmd.Flags()
	f.IntSlice("batches", floorDefaultBatches, "tasks per batch to measure (each from 1 to 256)")
	f.Int("seconds", 10, "how long each measurement runs")
	f.Int("reference-seconds", 10, "how long the TPC-B reference runs (0 skips it)")
	addOutputFlag(cmd)
	return cmd
}

// FloorResult is what `taskerctl bench floor -o json` prints.
type FloorResult struct {
	Machine Machine `json:"machine"`
	// Batches are the 8-client measurements, one per --batches size.
	Batches []FloorBatch `json:"batches"`
	// OneTaskMS is the average time one client took to write one task, in a row.
	OneTaskMS float64 `json:"one_task_ms"`
	// OneTaskDBCPUMS is PostgreSQL's CPU per task then (compare with bench's CPU per
	// task); null when unknown.
	OneTaskDBCPUMS *float64 `json:"one_task_db_cpu_ms"`
	// Reference is the TPC-B run (absent with --reference-seconds 0).
	Reference *PgbenchResult `json:"reference,omitempty"`
}

// FloorBatch is one batch size's measurement.
type FloorBatch struct {
	// TasksPerBatch tasks share each statement: a step statement carries as many steps.
	TasksPerBatch  int     `json:"tasks_per_batch"`
	StepsPerSecond float64 `json:"steps_per_second"`
	// StepsPerTPS is StepsPerSecond ÷ the reference's TPS.
	StepsPerTPS float64 `json:"steps_per_second_over_tps,omitempty"`
	// DBCPUMSPerStep is PostgreSQL's CPU per step; null when unknown.
	DBCPUMSPerStep *float64 `json:"db_cpu_ms_per_step"`
}

type floorPlan struct {
	format              string
	batches             []int
	seconds, refSeconds int
	logf                func(string, ...any)
	srv                 *benchServer
	pgbench, scriptDir  string
}

func parseFloorFlags(cmd *cobra.Command) (*floorPlan, error) {
	format, err := outputFormat(cmd)
	if err != nil {
		return nil, err
	}
	if err := refuseURL(cmd); err != nil {
		return nil, err
	}
	batches, _ := cmd.Flags().GetIntSlice("batches")
	p := &floorPlan{format: format, batches: batches, seconds: flagInt(cmd, "seconds"),
		refSeconds: flagInt(cmd, "reference-seconds"), logf: stderrLogf(cmd)}
	if len(batches) == 0 {
		return nil, errors.New("--batches: list at least one size")
	}
	for _, b := range batches {
		if b < 1 || b > 256 {
			return nil, fmt.Errorf("--batches %d: each size must be from 1 to 256", b)
		}
	}
	if p.seconds < 1 || p.seconds > 3600 {
		return nil, fmt.Errorf("--seconds %d: must be from 1 to 3600", p.seconds)
	}
	if p.refSeconds < 0 || p.refSeconds > 3600 {
		return nil, fmt.Errorf("--reference-seconds %d: must be from 0 to 3600", p.refSeconds)
	}
	return p, nil
}

func runBenchFloor(cmd *cobra.Command, _ []string) error {
	p, err := parseFloorFlags(cmd)
	if err != nil {
		return err
	}
	if p.pgbench, err = findPgbench(); err != nil {
		return err
	}
	if p.scriptDir, err = os.MkdirTemp("", "tasker-sim-floor-"); err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(p.scriptDir) }()
	ctx := cmd.Context()
	if p.srv, err = startBenchServer(ctx, p.logf); err != nil {
		return err
	}
	defer p.srv.stop()
	res := &FloorResult{Machine: p.srv.machine(ctx)}
	for _, b := range p.batches {
		fb, err := p.measureBatch(ctx, b)
		if err != nil {
			return err
		}
		res.Batches = append(res.Batches, *fb)
	}
	if res.OneTaskMS, res.OneTaskDBCPUMS, err = p.measureOneTask(ctx); err != nil {
		return err
	}
	if p.refSeconds > 0 {
		if res.Reference, err = p.srv.pgbench(ctx, p.refSeconds, p.logf); err != nil {
			return fmt.Errorf("reference run: %w", err)
		}
		for i := range res.Batches {
			res.Batches[i].StepsPerTPS = res.Batches[i].StepsPerSecond / res.Reference.TPS
		}
	}
	if p.format == "json" {
		return printJSON(cmd.OutOrStdout(), res)
	}
	printFloor(cmd.OutOrStdout(), res, p)
	return nil
}

// measureBatch runs 8 clients writing tasks batch at a time on a fresh database.
func (p *floorPlan) measureBatch(ctx context.Context, batch int) (*FloorBatch, error) {
	p.logf("floor: %d task(s) a batch, %d clients, %d s", batch, pgbenchClients, p.seconds)
	out, cpu, err := p.run(ctx, batch, "-c", strconv.Itoa(pgbenchClients), "-j", strconv.Itoa(pgbenchThreads))
	if err != nil {
		return nil, err
	}
	tps, err := parsePgbenchTPS(out)
	if err != nil {
		return nil, err
	}
	fb := &FloorBatch{TasksPerBatch: batch, StepsPerSecond: tps * float64(batch*stepsPerTask)}
	runs, err := parsePgbenchProcessed(out)
	if err != nil {
		return nil, err
	}
	if steps := float64(runs * batch * stepsPerTask); cpu != nil && steps > 0 {
		ms := 1000 * cpu.Seconds() / steps
		fb.DBCPUMSPerStep = &ms
	}
	return fb, nil
}

// measureOneTask runs one client writing one task at a time and returns its average time
// and PostgreSQL's CPU per task (nil when unknown).
func (p *floorPlan) measureOneTask(ctx context.Context) (float64, *float64, error) {
	p.logf("floor: one task at a time, 1 client, %d s", p.seconds)
	out, cpu, err := p.run(ctx, 1, "-c", "1", "-j", "1")
	if err != nil {
		return 0, nil, err
	}
	ms, err := parsePgbenchLatency(out)
	if err != nil {
		return 0, nil, err
	}
	tasks, err := parsePgbenchProcessed(out)
	if err != nil || cpu == nil || tasks == 0 {
		return ms, nil, err
	}
	perTask := 1000 * cpu.Seconds() / float64(tasks)
	return ms, &perTask, nil
}

// run writes the script for batch, runs pgbench with it on a fresh database, and returns
// pgbench's output and PostgreSQL's CPU over the run (nil when unknown).
func (p *floorPlan) run(ctx context.Context, batch int, clients ...string) (string, *time.Duration, error) {
	name := fmt.Sprintf("tasker_sim_floor_%d", time.Now().UnixNano())
	url, err := p.srv.cluster.CreateDatabase(ctx, name, "")
	if err != nil {
		return "", nil, err
	}
	defer func() { _ = p.srv.cluster.DropDatabase(context.WithoutCancel(ctx), name) }()
	path, err := writeFloorScript(ctx, p.scriptDir, url, batch)
	if err != nil {
		return "", nil, err
	}
	m := &cpuMeter{postmaster: p.srv.postmaster}
	before := m.read()
	args := append(append([]string{"-n"}, clients...), "-T", strconv.Itoa(p.seconds), "-M", "prepared", "-f", path, url)
	out, err := runPgbenchCmd(ctx, p.pgbench, args...)
	if err != nil {
		return "", nil, err
	}
	if d, ok := m.read().dbSince(before); ok {
		return out, &d, nil
	}
	return out, nil, nil
}

// WriteFloorTasks writes times batches of batch floor tasks into url's database, one
// client, after preparing it (PrepareFloor): what a measurement does, counted instead of
// timed.
func WriteFloorTasks(ctx context.Context, url string, batch, times int) error {
	bin, err := findPgbench()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tasker-sim-floor-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	path, err := writeFloorScript(ctx, dir, url, batch)
	if err != nil {
		return err
	}
	_, err = runPgbenchCmd(ctx, bin, "-n", "-c", "1", "-j", "1", "-t", strconv.Itoa(times), "-M", "prepared", "-f", path, url)
	return err
}

// writeFloorScript prepares url's database and writes the script for batch into dir.
func writeFloorScript(ctx context.Context, dir, url string, batch int) (string, error) {
	script, err := prepareFloorDatabase(ctx, url, batch)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("floor-%d.sql", batch))
	return path, os.WriteFile(path, []byte(script), 0o600)
}

// prepareFloorDatabase migrates url, registers the templates and creates the queues as
// the services do, adds the floor's helpers, and returns the script for batch.
func prepareFloorDatabase(ctx context.Context, url string, batch int) (string, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	ids, err := PrepareFloor(ctx, pool)
	if err != nil {
		return "", err
	}
	return FloorScript(batch, ids), nil
}

// FloorIDs are the template rows the floor's tasks point at.
type FloorIDs struct {
	NamedTask  string
	NamedSteps []string // in the template's order
}

// PrepareFloor makes db ready for the floor's script: the schema, the templates and the
// queues the services would set up, and the floor's helpers. It returns the ids of the
// template the script's tasks use.
func PrepareFloor(ctx context.Context, db *pgxpool.Pool) (FloorIDs, error) {
	var ids FloorIDs
	if _, err := migrations.Migrate(ctx, db, &migrations.Config{}); err != nil {
		return ids, err
	}
	templates, err := workflow.Embedded()
	if err != nil {
		return ids, err
	}
	if err := workflow.Register(ctx, db, templates); err != nil {
		return ids, err
	}
	for _, q := range []string{workflow.WorkerQueue(floorNamespace), messaging.QueueStepResults} {
		if err := messaging.EnsureQueue(ctx, db, q); err != nil {
			return ids, err
		}
	}
	// One helper: a task's or step's id from its batch number, its kind and its index,
	// ordered by batch like the services' UUIDv7 ids. Inlined by the planner.
	if _, err := db.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+floorSchema+`;
		CREATE SEQUENCE IF NOT EXISTS `+floorSchema+`.batch;
		CREATE OR REPLACE FUNCTION `+floorSchema+`.id(b bigint, kind integer, i integer) RETURNS uuid
		LANGUAGE sql IMMUTABLE AS
		$$ SELECT (lpad(to_hex(b), 12, '0') || '7' || lpad(to_hex(kind), 3, '0') || '8' || lpad(to_hex(i), 15, '0'))::uuid $$;
		-- The planner settings of the services' hot statements: generic plans of index
		-- probes, which the tables' growth from empty cannot turn into scans.
		DO $$ BEGIN
		    EXECUTE format('ALTER DATABASE %I SET plan_cache_mode = force_generic_plan', current_database());
		    EXECUTE format('ALTER DATABASE %I SET enable_seqscan = off', current_database());
		    EXECUTE format('ALTER DATABASE %I SET enable_hashjoin = off', current_database());
		    EXECUTE format('ALTER DATABASE %I SET enable_mergejoin = off', current_database());
		END $$`); err != nil {
		return ids, fmt.Errorf("floor helpers: %w", err)
	}
	err = db.QueryRow(ctx, `
		SELECT nt.named_task_uuid::text, array_agg(ns.named_step_uuid::text ORDER BY ns.name)
		  FROM tasker.named_tasks AS nt
		  JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
		  JOIN tasker.named_tasks_named_steps AS x ON x.named_task_uuid = nt.named_task_uuid
		  JOIN tasker.named_steps AS ns ON ns.named_step_uuid = x.named_step_uuid
		 WHERE tn.name = $1 AND nt.name = $2 AND nt.version = $3
		 GROUP BY nt.named_task_uuid`, floorNamespace, floorTask, floorVersion).Scan(&ids.NamedTask, &ids.NamedSteps)
	if err != nil {
		return ids, fmt.Errorf("floor: template %s/%s %s: %w", floorNamespace, floorTask, floorVersion, err)
	}
	if len(ids.NamedSteps) != stepsPerTask {
		return ids, fmt.Errorf("floor: template %s has %d steps; the script writes %d", floorTask, len(ids.NamedSteps), stepsPerTask)
	}
	return ids, nil
}

// pgbenchLatency matches pgbench's "latency average = 1.234 ms".
var pgbenchLatency = regexp.MustCompile(`(?m)^latency average = ([0-9]+(?:\.[0-9]+)?) ms`)

// pgbenchProcessed matches pgbench's count of script runs that completed.
var pgbenchProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)

// parsePgbenchProcessed reads how many times the script ran to its end.
func parsePgbenchProcessed(out string) (int, error) {
	m := pgbenchProcessed.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench printed no \"number of transactions actually processed\" line:\n%s", out)
	}
	return strconv.Atoi(m[1])
}

// parsePgbenchLatency reads the average latency of one script run from pgbench's output.
func parsePgbenchLatency(out string) (float64, error) {
	m := pgbenchLatency.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench printed no \"latency average = N ms\" line:\n%s", out)
	}
	return strconv.ParseFloat(m[1], 64)
}

func printFloor(w io.Writer, r *FloorResult, p *floorPlan) {
	fmt.Fprintf(w, "machine: %d CPUs, %s/%s, PostgreSQL %s\n\n", r.Machine.CPUs, r.Machine.GOOS, r.Machine.GOARCH,
		r.Machine.PostgresVersion)
	fmt.Fprintf(w, "floor: the rows of %s tasks (%d steps each) written set-based by pgbench, no engine; %d clients, %d s each\n",
		floorTask, stepsPerTask, pgbenchClients, p.seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TASKS/BATCH\tSTEPS/S\tSTEPS/S ÷ TPS\tDB CPU ms/step\t")
	for _, b := range r.Batches {
		ratio, cpu := "-", "unknown"
		if b.StepsPerTPS > 0 {
			ratio = fmt.Sprintf("%.2f", b.StepsPerTPS)
		}
		if b.DBCPUMSPerStep != nil {
			cpu = fmt.Sprintf("%.3f", *b.DBCPUMSPerStep)
		}
		fmt.Fprintf(tw, "  %d\t%.1f\t%s\t%s\t\n", b.TasksPerBatch, b.StepsPerSecond, ratio, cpu)
	}
	_ = tw.Flush()
	cpu := ""
	if r.OneTaskDBCPUMS != nil {
		cpu = fmt.Sprintf(", PostgreSQL CPU %.2f ms a task", *r.OneTaskDBCPUMS)
	}
	fmt.Fprintf(w, "one task at a time (1 client): %.2f ms a task%s: the least a create -> complete can take here (P1 target %d ms)\n",
		r.OneTaskMS, cpu, p1TargetP50MS)
	if r.Reference != nil {
		fmt.Fprintf(w, "reference: pgbench TPC-B-like, scale %d, %d clients, %d threads, %d s, prepared: %.1f TPS (throughput target: steps/s ÷ TPS >= %.1f)\n",
			r.Reference.Scale, r.Reference.Clients, r.Reference.Threads, r.Reference.Seconds, r.Reference.TPS, throughputTarget)
	}
	if slices.ContainsFunc(r.Batches, func(b FloorBatch) bool { return b.DBCPUMSPerStep == nil }) {
		fmt.Fprintf(w, "database CPU unknown: %s\n", p.srv.cpuUnknown)
	}
}

// FloorScript is the pgbench script that writes batch tasks' rows through their whole
// life, in the transactions the processes make: create and enqueue the first steps; then
// per step a claim (the worker), a result (the worker) and the result's handling with the
// next enqueue or the task's completion (the orchestrator). Every step statement carries
// one step of each task in the batch.
func FloorScript(batch int, ids FloorIDs) string {
	s := &floorScript{batch: batch, ids: ids}
	s.create()
	for r := range stepsPerTask {
		s.claim(r)
		s.submit(r)
		s.handle(r)
	}
	return s.String()
}

type floorScript struct {
	strings.Builder
	batch int
	ids   FloorIDs
}

func (s *floorScript) line(format string, args ...any) { fmt.Fprintf(s, format+"\n", args...) }

// tasks and steps are the batch's task ids and the ids of its tasks' step r.
func (s *floorScript) tasks() string {
	return fmt.Sprintf("ARRAY(SELECT %s.id(:b, 1, i) FROM generate_series(0, %d) AS i)", floorSchema, s.batch-1)
}

func (s *floorScript) steps(r int) string {
	return fmt.Sprintf("ARRAY(SELECT %s.id(:b, 2, i * %d + %d) FROM generate_series(0, %d) AS i)",
		floorSchema, stepsPerTask, r, s.batch-1)
}

func (s *floorScript) create() {
	all := fmt.Sprintf("generate_series(0, %d) AS i, generate_series(0, %d) AS s", s.batch-1, stepsPerTask-1)
	step := floorSchema + ".id(:b, 2, i * " + strconv.Itoa(stepsPerTask) + " + s)"
	s.line("BEGIN;")
	s.line(`SELECT nextval('%s.batch') AS b \gset`, floorSchema)
	s.line(`INSERT INTO tasker.tasks (task_uuid, named_task_uuid, identity_hash, correlation_id, context, initiator, source_system, reason)`+
		` SELECT t, '%s', t::text, t, '{"even_number": 8}', 'floor', 'floor', 'floor' FROM unnest(%s) AS t;`, s.ids.NamedTask, s.tasks())
	s.line(`INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid)`+
		` SELECT %s, %s.id(:b, 1, i), ('{%s}'::uuid[])[s + 1] FROM %s;`, step, floorSchema, strings.Join(s.ids.NamedSteps, ","), all)
	s.line(`INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid)`+
		` SELECT %s, %s.id(:b, 2, i * %d + s + 1) FROM %s WHERE s < %d;`, step, floorSchema, stepsPerTask, all, stepsPerTask-1)
	s.line(`INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, sort_key, most_recent)`+
		` SELECT %s, NULL, 'pending', 0, true FROM %s;`, step, all)
	s.line(`INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, sort_key, most_recent, processor_uuid)`+
		` SELECT t, v.f, v.s, v.k, v.k = 3, '%s' FROM unnest(%s) AS t, (VALUES (0, NULL, 'pending'), (1, 'pending', 'initializing'),`+
		` (2, 'initializing', 'enqueuing_steps'), (3, 'enqueuing_steps', 'steps_in_process')) AS v(k, f, s);`, floorProcessor, s.tasks())
	s.enqueue(0)
	s.line("COMMIT;")
}

func (s *floorScript) claim(r int) {
	q := workflow.WorkerQueue(floorNamespace)
	s.line("BEGIN;")
	s.take(q)
	s.lock("tasker.workflow_steps", "workflow_step_uuid", s.steps(r))
	s.flip(r, "enqueued", "in_progress", `{"worker_id": "`+floorWorker+`", "claim_method": "event"}`)
	s.line(`UPDATE tasker.workflow_steps AS ws SET attempts = ws.attempts + 1, last_attempted_at = now(), in_process = true,`+
		` claimed_by = '%s', claim_expires_at = now() + interval '30 seconds', updated_at = now() WHERE ws.workflow_step_uuid = ANY (%s);`,
		floorWorker, s.steps(r))
	s.line("COMMIT;")
}

// floorResult is a step result of the size the simulated handlers return.
const floorResult = `{"success": true, "result": 4096, "metadata": {"handler": "linear_step", "attempt": 1, "duration_ms": 0}, ` +
	`"padding": "` + "................................................................................" +
	"................................................................................" + `"}`

func (s *floorScript) submit(r int) {
	s.line("BEGIN;")
	s.line(`UPDATE tasker.workflow_steps AS ws SET results = '%s', in_process = false, claimed_by = NULL, claim_expires_at = NULL,`+
		` updated_at = now() WHERE ws.workflow_step_uuid = ANY (%s);`, floorResult, s.steps(r))
	s.flip(r, "in_progress", "enqueued_for_orchestration", `{"worker_id": "`+floorWorker+`"}`)
	s.send(messaging.QueueStepResults, r, `{"status": "success", "results": `+floorResult+`}`)
	s.line("COMMIT;")
}

func (s *floorScript) handle(r int) {
	s.line("BEGIN;")
	s.take(messaging.QueueStepResults)
	s.lock("tasker.tasks", "task_uuid", s.tasks())
	s.lock("tasker.workflow_steps", "workflow_step_uuid", s.steps(r))
	s.flip(r, "enqueued_for_orchestration", "complete", `{"processor_uuid": "`+floorProcessor+`"}`)
	s.line(`UPDATE tasker.workflow_steps AS ws SET processed = true, processed_at = now(), in_process = false, updated_at = now()`+
		` WHERE ws.workflow_step_uuid = ANY (%s);`, s.steps(r))
	moves := "(1, 'steps_in_process', 'evaluating_results', false), (2, 'evaluating_results', 'enqueuing_steps', false)," +
		" (3, 'enqueuing_steps', 'steps_in_process', true)"
	if r == stepsPerTask-1 {
		moves = "(1, 'steps_in_process', 'evaluating_results', false), (2, 'evaluating_results', 'complete', true)"
	}
	s.line(`WITH prev AS (UPDATE tasker.task_transitions AS t SET most_recent = false WHERE t.task_uuid = ANY (%s) AND t.most_recent`+
		` RETURNING t.task_uuid, t.sort_key) INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, sort_key, most_recent, processor_uuid)`+
		` SELECT prev.task_uuid, v.f, v.s, prev.sort_key + v.k, v.last, '%s' FROM prev, (VALUES %s) AS v(k, f, s, last);`,
		s.tasks(), floorProcessor, moves)
	if r < stepsPerTask-1 {
		s.enqueue(r + 1)
	} else {
		s.line(`UPDATE tasker.tasks AS t SET complete = true, completed_at = now(), updated_at = now() WHERE t.task_uuid = ANY (%s);`, s.tasks())
		s.line(`SELECT count(pg_notify('tasker_task_finalized', f::text)) FROM unnest(%s) AS f;`, s.tasks())
	}
	s.line("COMMIT;")
}

// enqueue moves step r of each task from pending to enqueued and sends its message.
func (s *floorScript) enqueue(r int) {
	s.flip(r, "pending", "enqueued", `{"processor_uuid": "`+floorProcessor+`"}`)
	s.send(workflow.WorkerQueue(floorNamespace), r, "{}")
}

// flip is the compare-and-set of step r of each task: the current transition stops being
// the most recent and the next one is inserted.
func (s *floorScript) flip(r int, from, to, meta string) {
	s.line(`WITH prev AS (UPDATE tasker.workflow_step_transitions AS t SET most_recent = false`+
		` WHERE t.workflow_step_uuid = ANY (%s) AND t.most_recent AND t.to_state = '%s' RETURNING t.workflow_step_uuid, t.sort_key)`+
		` INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, metadata, sort_key, most_recent)`+
		` SELECT prev.workflow_step_uuid, '%s', '%s', '%s', prev.sort_key + 1, true FROM prev;`, s.steps(r), from, from, to, meta)
}

// send puts a message per step r of each task on queue, with its two notifications (its
// namespace's channel and the global one), and keeps the message ids in :m for take.
func (s *floorScript) send(queue string, r int, extra string) {
	s.line(`WITH sent AS (INSERT INTO pgmq.q_%s (vt, message) SELECT clock_timestamp(),`+
		` jsonb_build_object('step_uuid', x, 'task_uuid', x, 'correlation_id', x) || '%s'::jsonb FROM unnest(%s) AS x RETURNING msg_id)`+
		` SELECT array_agg(msg_id)::text AS m, count(pg_notify('%s%s', msg_id::text)) + count(pg_notify('%s', msg_id::text)) AS n FROM sent \gset`,
		queue, extra, s.steps(r), messaging.ChannelPrefix, queue, strings.TrimSuffix(messaging.ChannelPrefix, "."))
}

// take archives the messages the last send put on queue: deleted, and copied to the
// archive.
func (s *floorScript) take(queue string) {
	s.line(`WITH taken AS (DELETE FROM pgmq.q_%[1]s WHERE msg_id = ANY (:m::bigint[]) RETURNING msg_id, read_ct, enqueued_at, vt, message, headers)`+
		` INSERT INTO pgmq.a_%[1]s (msg_id, read_ct, enqueued_at, vt, message, headers)`+
		` SELECT msg_id, read_ct + 1, enqueued_at, vt, message, headers FROM taken;`, queue)
}

// lock takes the row locks the processes take before a compare-and-set.
func (s *floorScript) lock(table, key, ids string) {
	s.line(`SELECT count(*) FROM (SELECT x.%[2]s FROM %[1]s AS x WHERE x.%[2]s = ANY (%[3]s) ORDER BY 1 FOR UPDATE) AS l;`, table, key, ids)
}
