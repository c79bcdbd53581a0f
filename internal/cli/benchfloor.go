package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// The floor's helpers (an id generator and a batch counter) live in floorSchema;
// floorProcessor and floorWorker stand in for the processes in the audit metadata.
const (
	floorSchema    = "tasker_sim_floor"
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
	// Seconds is how long each measurement ran.
	Seconds int `json:"seconds"`
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

// floorPlan is the validated command line.
type floorPlan struct {
	format              string
	batches             []int
	seconds, refSeconds int
	logf                func(string, ...any)
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
	for _, b := range batches {
		if b < 1 || b > 256 {
			return nil, fmt.Errorf("--batches %d: each size must be from 1 to 256", b)
		}
	}
	for _, check := range []struct {
		bad  bool
		what string
	}{
		{len(batches) == 0, "--batches: list at least one size, each from 1 to 256"},
		{p.seconds < 1 || p.seconds > 3600, fmt.Sprintf("--seconds %d: must be from 1 to 3600", p.seconds)},
		{p.refSeconds < 0 || p.refSeconds > 3600, fmt.Sprintf("--reference-seconds %d: must be from 0 to 3600", p.refSeconds)},
	} {
		if check.bad {
			return nil, errors.New(check.what)
		}
	}
	return p, nil
}

func runBenchFloor(cmd *cobra.Command, _ []string) error {
	p, err := parseFloorFlags(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	f, err := newFloorRunner(ctx, p.logf)
	if err != nil {
		return err
	}
	defer f.close()
	res := &FloorResult{Machine: f.srv.machine(ctx), Seconds: p.seconds}
	for _, b := range p.batches {
		p.logf("floor: %d task(s) a batch, %d clients, %d s", b, pgbenchClients, p.seconds)
		run, err := f.measure(ctx, b, pgbenchClients, pgbenchThreads, p.seconds)
		if err != nil {
			return err
		}
		steps := b * stepsPerTask
		res.Batches = append(res.Batches, FloorBatch{TasksPerBatch: b, StepsPerSecond: run.tps * float64(steps),
			DBCPUMSPerStep: perRun(run, steps)})
	}
	p.logf("floor: one task at a time, 1 client, %d s", p.seconds)
	one, err := f.measure(ctx, 1, 1, 1, p.seconds)
	if err != nil {
		return err
	}
	res.OneTaskMS, res.OneTaskDBCPUMS = one.latencyMS, perRun(one, 1)
	if p.refSeconds > 0 {
		if res.Reference, err = f.srv.pgbench(ctx, p.refSeconds, p.logf); err != nil {
			return fmt.Errorf("reference run: %w", err)
		}
		for i := range res.Batches {
			res.Batches[i].StepsPerTPS = res.Batches[i].StepsPerSecond / res.Reference.TPS
		}
	}
	if p.format == "json" {
		return printJSON(cmd.OutOrStdout(), res)
	}
	printFloor(cmd.OutOrStdout(), res, f.srv.cpuUnknown)
	return nil
}

// perRun is PostgreSQL's CPU in ms per unit of a pgbench run of units per script run;
// nil when unknown.
func perRun(run *pgbenchRun, units int) *float64 {
	if run.dbCPU == nil || run.runs == 0 {
		return nil
	}
	ms := 1000 * run.dbCPU.Seconds() / float64(run.runs*units)
	return &ms
}

// floorRunner runs the floor's measurements on a server, each on a fresh database.
type floorRunner struct {
	srv       *benchServer
	pgbench   string
	scriptDir string
}

func newFloorRunner(ctx context.Context, logf func(string, ...any)) (*floorRunner, error) {
	bin, err := findPgbench()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tasker-sim-floor-")
	if err != nil {
		return nil, err
	}
	srv, err := startBenchServer(ctx, logf)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &floorRunner{srv: srv, pgbench: bin, scriptDir: dir}, nil
}

func (f *floorRunner) close() {
	f.srv.stop()
	_ = os.RemoveAll(f.scriptDir)
}

// measure writes batch tasks a script run from clients for seconds, on a fresh database.
func (f *floorRunner) measure(ctx context.Context, batch, clients, threads, seconds int) (*pgbenchRun, error) {
	url, drop, err := f.srv.scratchDatabase(ctx, "tasker_sim_floor")
	if err != nil {
		return nil, err
	}
	defer drop()
	path, err := writeFloorScript(ctx, f.scriptDir, url, batch)
	if err != nil {
		return nil, err
	}
	return f.srv.meteredPgbench(ctx, f.pgbench, "-n", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(threads),
		"-T", strconv.Itoa(seconds), "-M", "prepared", "-f", path, url)
}

// writeFloorScript prepares url's database and writes the script for batch into dir.
func writeFloorScript(ctx context.Context, dir, url string, batch int) (string, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	ids, err := prepareFloor(ctx, pool)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("floor-%d.sql", batch))
	return path, os.WriteFile(path, []byte(floorScript(batch, ids)), 0o600)
}

// floorIDs are the template rows the floor's tasks point at.
type floorIDs struct {
	namedTask  string
	namedSteps []string // by name
}

// prepareFloor makes db ready for the floor's script: the schema, the templates and the
// queues, as the services set them up, and the floor's helpers. It returns the ids of the
// template the script's tasks use.
func prepareFloor(ctx context.Context, db *pgxpool.Pool) (floorIDs, error) {
	var ids floorIDs
	if err := setUpAsTheServices(ctx, db); err != nil {
		return ids, err
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
	err := db.QueryRow(ctx, `
		SELECT nt.named_task_uuid::text, array_agg(ns.named_step_uuid::text ORDER BY ns.name)
		  FROM tasker.named_tasks AS nt
		  JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
		  JOIN tasker.named_tasks_named_steps AS x ON x.named_task_uuid = nt.named_task_uuid
		  JOIN tasker.named_steps AS ns ON ns.named_step_uuid = x.named_step_uuid
		 WHERE tn.name = $1 AND nt.name = $2 AND nt.version = $3
		 GROUP BY nt.named_task_uuid`, benchNamespace, benchTask, benchVersion).Scan(&ids.namedTask, &ids.namedSteps)
	if err != nil {
		return ids, fmt.Errorf("floor: template %s/%s %s: %w", benchNamespace, benchTask, benchVersion, err)
	}
	if len(ids.namedSteps) != stepsPerTask {
		return ids, fmt.Errorf("floor: template %s has %d steps; the script writes %d", benchTask, len(ids.namedSteps), stepsPerTask)
	}
	return ids, nil
}

// setUpAsTheServices migrates db, registers the embedded templates and creates the
// queues, as a worker (its namespaces' queues) and an orchestrator (its own) do at start.
func setUpAsTheServices(ctx context.Context, db *pgxpool.Pool) error {
	if _, err := migrations.Migrate(ctx, db, &migrations.Config{}); err != nil {
		return err
	}
	templates, err := workflow.Embedded()
	if err != nil {
		return err
	}
	if err := workflow.Register(ctx, db, templates); err != nil {
		return err
	}
	queues := slices.Clone(messaging.OrchestrationQueues)
	for _, t := range templates {
		queues = append(queues, t.QueueName())
	}
	slices.Sort(queues)
	for _, q := range slices.Compact(queues) {
		if err := messaging.EnsureQueue(ctx, db, q); err != nil {
			return err
		}
	}
	return nil
}

func printFloor(w io.Writer, r *FloorResult, cpuUnknown string) {
	fmt.Fprintf(w, "machine: %d CPUs, %s/%s, PostgreSQL %s\n\n", r.Machine.CPUs, r.Machine.GOOS, r.Machine.GOARCH,
		r.Machine.PostgresVersion)
	fmt.Fprintf(w, "floor: the rows of %s tasks (%d steps each) written set-based by pgbench, no engine; %d clients, %d s each\n",
		benchTask, stepsPerTask, pgbenchClients, r.Seconds)
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
	if r.OneTaskDBCPUMS == nil || slices.ContainsFunc(r.Batches, func(b FloorBatch) bool { return b.DBCPUMSPerStep == nil }) {
		fmt.Fprintf(w, "database CPU unknown: %s\n", cpuUnknown)
	}
}

// floorScript is the pgbench script that writes batch tasks' rows through their whole
// life, in the transactions the processes make: create and enqueue the first steps; then
// per step a claim (the worker), a result (the worker) and the result's handling with the
// next enqueue or the task's completion (the orchestrator). Every step statement carries
// one step of each task in the batch.
func floorScript(batch int, ids floorIDs) string {
	s := &floorWriter{batch: batch, ids: ids}
	s.create()
	for r := range stepsPerTask {
		s.claim(r)
		s.submit(r)
		s.handle(r)
	}
	return s.String()
}

type floorWriter struct {
	strings.Builder
	batch int
	ids   floorIDs
}

func (s *floorWriter) line(format string, args ...any) { fmt.Fprintf(s, format+"\n", args...) }

// tasks and steps are the batch's task ids and the ids of its tasks' step r.
func (s *floorWriter) tasks() string {
	return fmt.Sprintf("ARRAY(SELECT %s.id(:b, 1, i) FROM generate_series(0, %d) AS i)", floorSchema, s.batch-1)
}

func (s *floorWriter) steps(r int) string {
	return fmt.Sprintf("ARRAY(SELECT %s.id(:b, 2, i * %d + %d) FROM generate_series(0, %d) AS i)",
		floorSchema, stepsPerTask, r, s.batch-1)
}

func (s *floorWriter) create() {
	all := fmt.Sprintf("generate_series(0, %d) AS i, generate_series(0, %d) AS s", s.batch-1, stepsPerTask-1)
	step := floorSchema + ".id(:b, 2, i * " + strconv.Itoa(stepsPerTask) + " + s)"
	s.line("BEGIN;")
	s.line(`SELECT nextval('%s.batch') AS b \gset`, floorSchema)
	s.line(`INSERT INTO tasker.tasks (task_uuid, named_task_uuid, identity_hash, correlation_id, context, initiator, source_system, reason)`+
		` SELECT t, '%s', t::text, t, '{"even_number": 8}', 'floor', 'floor', 'floor' FROM unnest(%s) AS t;`, s.ids.namedTask, s.tasks())
	s.line(`INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid)`+
		` SELECT %s, %s.id(:b, 1, i), ('{%s}'::uuid[])[s + 1] FROM %s;`, step, floorSchema, strings.Join(s.ids.namedSteps, ","), all)
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

func (s *floorWriter) claim(r int) {
	q := workflow.WorkerQueue(benchNamespace)
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

func (s *floorWriter) submit(r int) {
	s.line("BEGIN;")
	s.line(`UPDATE tasker.workflow_steps AS ws SET results = '%s', in_process = false, claimed_by = NULL, claim_expires_at = NULL,`+
		` updated_at = now() WHERE ws.workflow_step_uuid = ANY (%s);`, floorResult, s.steps(r))
	s.flip(r, "in_progress", "enqueued_for_orchestration", `{"worker_id": "`+floorWorker+`"}`)
	s.send(messaging.QueueStepResults, r, `{"status": "success", "results": `+floorResult+`}`)
	s.line("COMMIT;")
}

func (s *floorWriter) handle(r int) {
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
func (s *floorWriter) enqueue(r int) {
	s.flip(r, "pending", "enqueued", `{"processor_uuid": "`+floorProcessor+`"}`)
	s.send(workflow.WorkerQueue(benchNamespace), r, "{}")
}

// flip is the compare-and-set of step r of each task: the current transition stops being
// the most recent and the next one is inserted.
func (s *floorWriter) flip(r int, from, to, meta string) {
	s.line(`WITH prev AS (UPDATE tasker.workflow_step_transitions AS t SET most_recent = false`+
		` WHERE t.workflow_step_uuid = ANY (%s) AND t.most_recent AND t.to_state = '%s' RETURNING t.workflow_step_uuid, t.sort_key)`+
		` INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, metadata, sort_key, most_recent)`+
		` SELECT prev.workflow_step_uuid, '%s', '%s', '%s', prev.sort_key + 1, true FROM prev;`, s.steps(r), from, from, to, meta)
}

// send puts a message per step r of each task on queue, with its two notifications (its
// namespace's channel and the global one), and keeps the message ids in :m for take.
func (s *floorWriter) send(queue string, r int, extra string) {
	s.line(`WITH sent AS (INSERT INTO pgmq.q_%s (vt, message) SELECT clock_timestamp(),`+
		` jsonb_build_object('step_uuid', x, 'task_uuid', x, 'correlation_id', x) || '%s'::jsonb FROM unnest(%s) AS x RETURNING msg_id)`+
		` SELECT array_agg(msg_id)::text AS m, count(pg_notify('%s%s', msg_id::text)) + count(pg_notify('%s', msg_id::text)) AS n FROM sent \gset`,
		queue, extra, s.steps(r), messaging.ChannelPrefix, queue, strings.TrimSuffix(messaging.ChannelPrefix, "."))
}

// take archives the messages the last send put on queue: deleted, and copied to the
// archive.
func (s *floorWriter) take(queue string) {
	s.line(`WITH taken AS (DELETE FROM pgmq.q_%[1]s WHERE msg_id = ANY (:m::bigint[]) RETURNING msg_id, read_ct, enqueued_at, vt, message, headers)`+
		` INSERT INTO pgmq.a_%[1]s (msg_id, read_ct, enqueued_at, vt, message, headers)`+
		` SELECT msg_id, read_ct + 1, enqueued_at, vt, message, headers FROM taken;`, queue)
}

// lock takes the row locks the processes take before a compare-and-set.
func (s *floorWriter) lock(table, key, ids string) {
	s.line(`SELECT count(*) FROM (SELECT x.%[2]s FROM %[1]s AS x WHERE x.%[2]s = ANY (%[3]s) ORDER BY 1 FOR UPDATE) AS l;`, table, key, ids)
}
