package load_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/load"
	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/pgprovision"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

var cluster *pgprovision.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgprovision.RunTestMain(m, "load tests", func(c *pgprovision.Cluster) { cluster = c }))
}

// newEnv starts an in-process orchestrator and workers whose counters are served on the
// orchestrator's /metrics, so runs can be reconciled.
func newEnv(t *testing.T, workers int) *harness.Env {
	t.Helper()
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "load-test"},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return harness.New(t, cluster, harness.Options{Telemetry: tel, Workers: workers,
		PGMQMode: pgmqMode(),
		Orchestrator: func(_ int, c *orchestrator.Config) {
			c.PollInterval = 100 * time.Millisecond
			c.Backoff.Base = 10 * time.Millisecond
			c.Backoff.Max = 50 * time.Millisecond
		}})
}

func config(t *testing.T, env *harness.Env, mix string) load.Config {
	t.Helper()
	m, err := load.ParseMix(mix)
	require.NoError(t, err)
	return load.Config{Client: env.Client, OrchestratorURL: env.Orchestrators[0].URL(), Mix: m,
		MaxSenders: 256, Grace: time.Minute, Warn: func(s string) { t.Log("warning:", s) }}
}

func rate(r float64) *load.Schedule {
	s := load.ConstantRate(r)
	return &s
}

func requireClean(t *testing.T, res *load.Result) {
	t.Helper()
	require.Empty(t, res.Unfinished, "every task finished")
	require.True(t, res.Reconciliation.Checked)
	require.Empty(t, res.Reconciliation.Problems)
	require.Equal(t, res.Created, res.Reconciliation.RequestsCounted, "tasker_tasks_requests_total agrees")
	require.True(t, res.Passed)
}

const rateUnderTest = 100

// The open model holds its rate: 100 tasks/s for 20 s achieves 95–105 % of it.
func TestOpenModelHoldsItsRate(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 2)
	cfg := config(t, env, "slow_step=1")
	cfg.Schedule, cfg.Duration, cfg.Warmup = rate(float64(rateUnderTest)), 20*time.Second, 2*time.Second
	// make test runs other packages beside this one on two cores, so a create can take
	// seconds; enough senders keep every arrival on time, which is what is measured here.
	cfg.MaxSenders = 4096
	res, err := load.Run(context.Background(), cfg)
	require.NoError(t, err)
	t.Logf("target %.1f/s, achieved %.1f/s, created %d, missed %d, p99 %.1f ms, generator CPU %.1f%%",
		res.TargetRate, res.AchievedRate, res.Created, res.Missed, res.Overall.P99, res.GeneratorCPUPercent)
	require.InDelta(t, 100, res.TargetRate, 0.01)
	require.GreaterOrEqual(t, res.AchievedRate, 95.0)
	require.LessOrEqual(t, res.AchievedRate, 105.0)
	require.InDelta(t, 2000, res.Created, 20, "about 20 s × 100/s")
	require.Zero(t, res.Missed)
	require.Equal(t, map[string]int64{"complete": res.Created}, res.FinalStates)
	require.Positive(t, res.Overall.P50)
	requireClean(t, res)
}

// The closed model keeps exactly its concurrency in flight and picks shapes by weight.
func TestClosedModelAndMixProportions(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 2)
	cfg := config(t, env, "mathematical_sequence=3,diamond_pattern=1")
	cfg.Concurrency, cfg.Tasks = 8, 240
	var most atomic.Int64
	cfg.Progress = func(p load.Progress) {
		for n := int64(p.InFlight); n > most.Load(); {
			most.CompareAndSwap(most.Load(), n)
		}
	}
	res, err := load.Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Equal(t, "closed", res.Model)
	require.EqualValues(t, 240, res.Created)
	require.LessOrEqual(t, most.Load(), int64(8), "never more than the concurrency in flight")
	share := float64(res.Shapes[0].Created) / float64(res.Created)
	t.Logf("mathematical_sequence share %.3f (want 0.75), most in flight %d", share, most.Load())
	require.InDelta(t, 0.75, share, 0.1, "3:1 weights")
	require.EqualValues(t, 240, res.FinalStates["complete"])
	requireClean(t, res)
}

// fetchFaults reads a process's current faults document.
func fetchFaults(base string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/admin/faults", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var doc map[string]any
	return doc, json.NewDecoder(resp.Body).Decode(&doc)
}

// Phases reach their processes while they last and are cleared at the end.
func TestScenarioPhasesAppliedAndCleared(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 1)
	workerURL := "http://" + env.Workers[0].Addr()
	orchURL := env.Orchestrators[0].URL()
	sc, err := load.ParseScenario([]byte(`
name = "test"
[[phase]]
name = "slow handlers"
at = "1s"
for = "3s"
target = "worker"
faults = { latency_ms = { min = 1, max = 5 } }
[[phase]]
name = "flaky handlers"
at = "2s"
for = "1s"
target = "worker"
faults = { error_rate = 0.1, retryable = true }
`))
	require.NoError(t, err)
	cfg := config(t, env, "mathematical_sequence=1")
	cfg.Schedule, cfg.Duration, cfg.Warmup = rate(20), 6*time.Second, time.Second
	cfg.Scenario = sc
	cfg.Targets = load.Targets{load.TargetOrchestrator: {orchURL}, load.TargetWorker: {workerURL}}

	var (
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // watches the worker's faults while the run goes on
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if doc, err := fetchFaults(workerURL); err == nil {
				b, _ := json.Marshal(doc)
				mu.Lock()
				seen[string(b)] = true
				mu.Unlock()
			}
		}
	})
	res, err := load.Run(context.Background(), cfg)
	close(done)
	wg.Wait()
	require.NoError(t, err)
	require.True(t, seen[`{"latency_ms":{"max":5,"min":1}}`], "the first phase alone: %v", seen)
	require.True(t, seen[`{"error_rate":0.1,"latency_ms":{"max":5,"min":1},"retryable":true}`], "both phases merged: %v", seen)
	after, err := fetchFaults(workerURL)
	require.NoError(t, err)
	require.Empty(t, after, "every fault is cleared at the end")
	require.Len(t, res.Phases, 2)
	for _, p := range res.Phases {
		require.Empty(t, p.Error, p.Name)
	}
	require.Empty(t, res.Unfinished)
	require.True(t, res.Passed, "retryable errors still complete: %+v", res.FinalStates)
}

// A task that never finishes is listed, fails the run, and shows in the reconciliation.
func TestReconciliationCatchesALostTask(t *testing.T) {
	t.Parallel()
	env := newEnv(t, -1) // no worker yet: every task waits in its queue
	templates, err := workflow.Embedded()
	require.NoError(t, err)
	require.NoError(t, workflow.Register(context.Background(), env.Pool, templates))
	cfg := config(t, env, "mathematical_sequence=1")
	cfg.Concurrency, cfg.Tasks, cfg.Grace = 4, 4, 8*time.Second
	var lost string
	var wg sync.WaitGroup
	wg.Go(func() {
		ctx := context.Background()
		require.Eventually(t, func() bool {
			var n int
			_ = env.Pool.QueryRow(ctx, `SELECT count(*) FROM pgmq.q_worker_rust_e2e_linear_queue`).Scan(&n)
			return n == 4
		}, 20*time.Second, 20*time.Millisecond)
		// Lose one task: its first step's message goes, so no worker will ever run it.
		require.NoError(t, env.Pool.QueryRow(ctx, `
			DELETE FROM pgmq.q_worker_rust_e2e_linear_queue
			 WHERE msg_id = (SELECT min(msg_id) FROM pgmq.q_worker_rust_e2e_linear_queue)
			RETURNING message->>'task_uuid'`).Scan(&lost))
		_, err := env.AddWorker(ctx, nil)
		require.NoError(t, err)
	})
	res, err := load.Run(context.Background(), cfg)
	wg.Wait()
	require.NoError(t, err)
	require.False(t, res.Passed)
	require.Len(t, res.Unfinished, 1)
	require.Equal(t, lost, res.Unfinished[0].TaskUUID)
	require.Equal(t, "steps_in_process", res.Unfinished[0].Status)
	require.EqualValues(t, 3, res.FinalStates["complete"])
	require.EqualValues(t, 4, res.Reconciliation.RequestsCounted)
	require.EqualValues(t, 3, res.Reconciliation.TerminalCounted)
}

// Cancelling the context (Ctrl-C) stops arrivals, lets the tasks in flight finish, clears
// the faults and still reports everything.
func TestInterruptStopsArrivalsAndDrains(t *testing.T) {
	t.Parallel()
	env := newEnv(t, 1)
	workerURL := "http://" + env.Workers[0].Addr()
	cfg := config(t, env, "mathematical_sequence=1")
	cfg.Schedule, cfg.Duration = rate(30), 0 // until stopped
	cfg.Scenario = &load.Scenario{Phases: []load.Phase{{Name: "for ever", At: 0, For: time.Hour,
		Target: load.TargetWorker, Faults: map[string]any{"latency_ms": map[string]any{"min": 1, "max": 2}}}}}
	cfg.Targets = load.Targets{load.TargetWorker: {workerURL}}
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Progress = func(p load.Progress) {
		if p.Created >= 40 {
			cancel()
		}
	}
	start := time.Now()
	res, err := load.Run(ctx, cfg)
	cancel()
	require.NoError(t, err)
	require.True(t, res.Interrupted)
	require.Less(t, time.Since(start), 30*time.Second)
	require.GreaterOrEqual(t, res.Created, int64(40))
	require.Equal(t, res.Created, res.FinalStates["complete"], "tasks in flight at the interrupt finished")
	after, err := fetchFaults(workerURL)
	require.NoError(t, err)
	require.Empty(t, after, "faults are cleared on interrupt")
	requireClean(t, res)
}

func pgmqMode() migrations.PGMQMode { return migrations.PGMQMode(os.Getenv("TASKER_TEST_PGMQ_MODE")) }
