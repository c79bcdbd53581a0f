package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
)

// HopLatency is the median time of one hop of a task's way from create to complete, over
// the measured tasks, as their audit rows timed it. Each step counts once: a retried
// step's hops run from its first claim to its first result sent on for completion.
type HopLatency struct {
	// Hop names the two audit events it runs between.
	Hop string `json:"hop"`
	// MedianMS is the median over every occurrence.
	MedianMS float64 `json:"median_ms"`
	// PerTask is how many times a task makes the hop (the mean over the tasks).
	PerTask float64 `json:"per_task"`
}

// The hops, in a task's order. Each step's transitions are timed by their created_at
// (the clock when each row was written, so rows of one transaction differ); the task's
// creation by tasks.created_at, when its creating transaction began. A step's hop to its
// successor follows its edge.
var hopNames = []string{
	"task created -> first step enqueued",
	"step enqueued -> claimed by a worker (in_progress)",
	"claimed -> result submitted (enqueued_for_orchestration)",
	"result submitted -> step complete (orchestration)",
	"step complete -> next step enqueued",
	"last step complete -> task complete",
	"task created -> task complete (the server's part of the latency)",
}

// hopsSQL measures the hops of the tasks in $1, one row per hop in hopNames' order.
const hopsSQL = `
WITH steps AS MATERIALIZED (
    SELECT ws.workflow_step_uuid AS step, ws.task_uuid AS task,
           min(st.created_at) FILTER (WHERE st.to_state = 'enqueued') AS enqueued,
           min(st.created_at) FILTER (WHERE st.to_state = 'in_progress') AS claimed,
           min(st.created_at) FILTER (WHERE st.to_state = 'enqueued_for_orchestration') AS submitted,
           min(st.created_at) FILTER (WHERE st.to_state = 'complete') AS completed
      FROM tasker.workflow_steps AS ws
      JOIN tasker.workflow_step_transitions AS st ON st.workflow_step_uuid = ws.workflow_step_uuid
     WHERE ws.task_uuid = ANY ($1::uuid[])
     GROUP BY ws.workflow_step_uuid, ws.task_uuid),
tasks AS (
    SELECT t.task_uuid AS task, t.created_at,
           (SELECT min(tt.created_at) FROM tasker.task_transitions AS tt
             WHERE tt.task_uuid = t.task_uuid AND tt.to_state = 'complete') AS completed,
           (SELECT min(s.enqueued) FROM steps AS s WHERE s.task = t.task_uuid) AS first_enqueued,
           (SELECT max(s.completed) FROM steps AS s WHERE s.task = t.task_uuid) AS last_step_completed
      FROM tasker.tasks AS t
     WHERE t.task_uuid = ANY ($1::uuid[])),
hops AS (
    SELECT 0 AS hop, first_enqueued - created_at AS took FROM tasks
    UNION ALL SELECT 1, claimed - enqueued FROM steps
    UNION ALL SELECT 2, submitted - claimed FROM steps
    UNION ALL SELECT 3, completed - submitted FROM steps
    UNION ALL SELECT 4, n.enqueued - p.completed
      FROM tasker.workflow_step_edges AS e
      JOIN steps AS p ON p.step = e.from_step_uuid
      JOIN steps AS n ON n.step = e.to_step_uuid
    UNION ALL SELECT 5, completed - last_step_completed FROM tasks
    UNION ALL SELECT 6, completed - created_at FROM tasks)
SELECT h.n,
       coalesce(extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY hops.took)) * 1000, 0)::float8,
       count(hops.took)
  FROM generate_series(0, 6) AS h(n)
  LEFT JOIN hops ON hops.hop = h.n AND hops.took IS NOT NULL
 GROUP BY h.n
 ORDER BY h.n`

// LatencyHops breaks the latency of the given tasks into the hops between their audit
// rows: where a single task's time goes. Steps that never reached a state leave that hop
// out; a hop no task made has median 0 and PerTask 0.
func LatencyHops(ctx context.Context, db lifecycle.DB, tasks []string) ([]HopLatency, error) {
	rows, err := db.Query(ctx, hopsSQL, tasks)
	if err != nil {
		return nil, fmt.Errorf("latency hops: %w", err)
	}
	out := make([]HopLatency, 0, len(hopNames))
	for rows.Next() {
		var n, count int
		var median float64
		if err := rows.Scan(&n, &median, &count); err != nil {
			rows.Close()
			return nil, fmt.Errorf("latency hops: %w", err)
		}
		perTask := 0.0
		if len(tasks) > 0 {
			perTask = float64(count) / float64(len(tasks))
		}
		out = append(out, HopLatency{Hop: hopNames[n], MedianMS: median, PerTask: perTask})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("latency hops: %w", err)
	}
	return out, nil
}

// measureHops connects to dbURL and measures the hops of tasks.
func measureHops(ctx context.Context, dbURL string, tasks []string) ([]HopLatency, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	return LatencyHops(ctx, conn, tasks)
}

// printHops prints the breakdown under the latency figures.
func printHops(w io.Writer, hops []HopLatency) {
	if len(hops) == 0 {
		return
	}
	if hops[len(hops)-1].PerTask == 0 {
		fmt.Fprintln(w, "  breakdown: no audit rows of the measured tasks in that database (is TASKER_DATABASE_URL the orchestrator's?)")
		return
	}
	fmt.Fprintln(w, "  where the time goes (medians over the measured tasks, from their audit rows):")
	for _, h := range hops {
		fmt.Fprintf(w, "    %-66s %7.2f ms  x %.2f per task\n", h.Hop, h.MedianMS, h.PerTask)
	}
}
