package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/tasker-sim/tasker-sim/internal/load"
	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// demoShapes is the burst's mix: every workflow shape, including one that recovers after
// retries and one that exhausts its retries, so every kind of final state shows up.
var demoShapes = slices.DeleteFunc(slices.Clone(load.Shapes), func(s load.Shape) bool { return s.Name == "slow_step" })

func demoCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a throwaway tasker-sim, run a burst of every workflow shape, print a summary",
		Long: `Run the tasker-sim demo: a throwaway PostgreSQL (or TASKER_DATABASE_URL), migrations,
the orchestrator and workers as real processes, then a short burst of tasks of every
shape with a progress bar. It prints tasks, P50/P95 latency per shape, final states and
the flow of steps through the queues, then stops everything and cleans up.

Run 'make build' first, or use 'make demo', which does both.`,
		Args: cobra.NoArgs,
		RunE: runDemo,
	}
	f := cmd.Flags()
	f.Int("tasks-per-shape", 10, "tasks of each shape")
	f.Int("concurrency", 8, "tasks in flight at once")
	f.Int("workers", 1, "worker processes")
	f.String("bin-dir", "", "directory with the orchestrator and worker binaries (default: beside taskerctl, then ./bin)")
	return cmd
}

type outcome struct {
	shape   string
	status  string
	latency time.Duration
}

func runDemo(cmd *cobra.Command, _ []string) error {
	f := cmd.Flags()
	per, _ := f.GetInt("tasks-per-shape")
	conc, _ := f.GetInt("concurrency")
	workers, _ := f.GetInt("workers")
	switch {
	case per < 1 || per > 10000:
		return fmt.Errorf("--tasks-per-shape %d: must be from 1 to 10000", per)
	case conc < 1 || conc > 256:
		return fmt.Errorf("--concurrency %d: must be from 1 to 256", conc)
	case workers < 1 || workers > 16:
		return fmt.Errorf("--workers %d: must be from 1 to 16", workers)
	}
	// Short retry backoffs keep the retry shapes within the burst.
	own, err := startOwnStack(cmd, workers, []string{"TASKER_BACKOFF_BASE_MS=50", "TASKER_BACKOFF_MAX_MS=500",
		"TASKER_POLL_INTERVAL_MS=200", "LOG_LEVEL=warn"})
	if err != nil {
		return err
	}
	defer own.stop()
	c, err := clientFor(own.url)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Minute)
	defer cancel()

	type job struct{ s load.Shape }
	var jobs []job
	for _, s := range demoShapes {
		for range per {
			jobs = append(jobs, job{s})
		}
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	r.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	inputs := make([]map[string]any, len(jobs))
	for i, j := range jobs {
		inputs[i] = j.s.Input(r)
	}

	bar := newBar(cmd.ErrOrStderr(), len(jobs), "running the burst")
	var mu sync.Mutex
	var results []outcome
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	began := time.Now()
	for i, j := range jobs {
		g.Go(func() error {
			in := inputs[i]
			in["_run_id"] = uuid.NewString()
			body, _ := json.Marshal(in)
			start := time.Now()
			t, err := c.CreateTask(gctx, &api.TaskRequest{Name: j.s.Name, Namespace: j.s.Namespace, Version: "1.0.0",
				Context: body, Initiator: "taskerctl", SourceSystem: "demo", Reason: "demo burst"})
			if err != nil {
				return fmt.Errorf("create %s: %w", j.s.Name, err)
			}
			if t, err = c.WaitTask(gctx, t.TaskUUID); err != nil {
				return fmt.Errorf("wait for %s %s: %w", j.s.Name, t.TaskUUID, err)
			}
			mu.Lock()
			results = append(results, outcome{shape: j.s.Name, status: t.Status, latency: time.Since(start)})
			mu.Unlock()
			_ = bar.Add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	_ = bar.Finish()
	elapsed := time.Since(began)
	if err := printDemoSummary(cmd, results, elapsed, own.dbURL); err != nil {
		return err
	}
	return printMetricFlow(cmd, own.metrics)
}

// printMetricFlow reads the processes' /metrics and prints the reference's flow: requests
// → enqueued → executions → successes → submitted → processed → completions.
func printMetricFlow(cmd *cobra.Command, urls []string) error {
	if len(urls) == 0 {
		return nil
	}
	all, err := fromMetricsURLs(cmd.Context(), urls)
	if err != nil {
		return err
	}
	get := func(name string) float64 { v, _ := sum(all, telemetry.Series(name), nil); return v }
	fmt.Fprintf(cmd.OutOrStdout(), "metric flow: requests %g -> enqueued %g -> executions %g -> successes %g (failures %g) -> "+
		"submitted %g -> processed %g -> completions %g (task failures %g)\n",
		get(telemetry.MetricTasksRequests), get(telemetry.MetricStepsEnqueued), get(telemetry.MetricStepsExecutions),
		get(telemetry.MetricStepsSuccesses), get(telemetry.MetricStepsFailures), get(telemetry.MetricStepsResultsSubmitted),
		get(telemetry.MetricStepResultsProcessed), get(telemetry.MetricTasksCompletions), get(telemetry.MetricTasksFailures))
	return nil
}

func printDemoSummary(cmd *cobra.Command, results []outcome, elapsed time.Duration, dbURL string) error {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "\n%d tasks in %s (%.1f tasks/s)\n\n", len(results), elapsed.Round(time.Millisecond),
		float64(len(results))/elapsed.Seconds())
	byShape := map[string][]outcome{}
	for _, o := range results {
		byShape[o.shape] = append(byShape[o.shape], o)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SHAPE\tTASKS\tCOMPLETE\tFAILED\tP50\tP95\t")
	for _, s := range demoShapes {
		os := byShape[s.Name]
		lat := make([]time.Duration, 0, len(os))
		counts := map[string]int{}
		for _, o := range os {
			lat = append(lat, o.latency)
			counts[o.status]++
		}
		slices.Sort(lat)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t\n", s.Name, len(os), counts["complete"], counts["error"]+counts["blocked_by_failures"],
			ms(percentile(lat, 50)), ms(percentile(lat, 95)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	finals := map[string]int{}
	for _, o := range results {
		finals[o.status]++
	}
	keys := make([]string, 0, len(finals))
	for k := range finals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprint(out, "\nfinal states:")
	for _, k := range keys {
		fmt.Fprintf(out, " %s=%d", k, finals[k])
	}
	fmt.Fprintln(out)
	return printFlow(cmd, dbURL)
}

// printFlow reads the audit trail to show how steps moved: enqueued, claimed by event or
// poll, reported, finalized.
func printFlow(cmd *cobra.Command, dbURL string) error {
	if dbURL == "" {
		return nil
	}
	ctx := cmd.Context()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var tasks, enqueued, byEvent, byPoll, reportedOK, reportedErr, retried, complete, failed int
	err = conn.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM tasker.tasks),
		       count(*) FILTER (WHERE to_state = 'enqueued'),
		       count(*) FILTER (WHERE to_state = 'in_progress' AND metadata->>'claim_method' = 'event'),
		       count(*) FILTER (WHERE to_state = 'in_progress' AND metadata->>'claim_method' = 'poll'),
		       count(*) FILTER (WHERE to_state = 'enqueued_for_orchestration'),
		       count(*) FILTER (WHERE to_state = 'enqueued_as_error_for_orchestration'),
		       count(*) FILTER (WHERE to_state = 'waiting_for_retry'),
		       count(*) FILTER (WHERE to_state = 'complete'),
		       count(*) FILTER (WHERE to_state = 'error')
		  FROM tasker.workflow_step_transitions`).Scan(&tasks, &enqueued, &byEvent, &byPoll, &reportedOK,
		&reportedErr, &retried, &complete, &failed)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "step flow: tasks %d -> steps enqueued %d -> claimed %d (event %d, poll %d) -> "+
		"results %d ok + %d failed -> steps complete %d, retried %d, error %d\n",
		tasks, enqueued, byEvent+byPoll, byEvent, byPoll, reportedOK, reportedErr, complete, retried, failed)
	return nil
}
