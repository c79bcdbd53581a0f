// Package e2e runs tasker-sim end to end against real PostgreSQL: orchestrators and
// workers in-process through pkg/harness, and as built binaries where a test must kill
// one.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tasker-sim/tasker-sim/internal/contract"
	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/pgprovision"
)

var (
	cluster *pgprovision.Cluster
	binDir  string
)

func TestMain(m *testing.M) {
	ctx := context.Background()
	c, stop, err := pgprovision.ForTestMain(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	cluster = c
	dir, err := os.MkdirTemp("", "tasker-e2e-bin-")
	if err == nil {
		binDir = dir
		out, berr := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "../cmd/worker", "../cmd/orchestrator").CombinedOutput()
		if berr != nil {
			fmt.Fprintf(os.Stderr, "e2e: build binaries: %v\n%s", berr, out)
			stop()
			os.Exit(1)
		}
	}
	if err := startContract(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		stop()
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		code = reportContract()
	}
	stop()
	_ = os.RemoveAll(binDir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// pgmqMode lets one run the same suite on the compatible schema and on the extension.
func pgmqMode() migrations.PGMQMode { return migrations.PGMQMode(os.Getenv("TASKER_TEST_PGMQ_MODE")) }

// fastOptions makes the background loops quick enough for tests. Its client's answers
// are checked against tasker-core's API contract.
func fastOptions() harness.Options {
	return harness.Options{PGMQMode: pgmqMode(), HTTPClient: contractClient}
}

// fastRetryOptions are fastOptions with quick background loops and retry backoffs of tens
// of milliseconds, for tests whose tasks retry.
func fastRetryOptions() harness.Options {
	opts := fastOptions()
	opts.Orchestrator = func(_ int, c *orchestrator.Config) {
		c.PollInterval = 50 * time.Millisecond
		c.Backoff.Base = 20 * time.Millisecond
		c.Backoff.Max = 100 * time.Millisecond
	}
	return opts
}

// The contract check: every answer the suite's clients get from a route of tasker-core's
// API must be one that API documents (internal/contract).
var (
	contractRecorder *contract.Recorder
	contractClient   *http.Client
)

func startContract() error {
	doc, err := contract.OrchestrationDocument()
	if err != nil {
		return err
	}
	workerDoc, err := contract.WorkerDocument()
	if err != nil {
		return err
	}
	contractRecorder = &contract.Recorder{Next: http.DefaultTransport,
		Docs: map[string]*contract.Document{"orchestrator": doc, "worker": workerDoc}}
	contractClient = &http.Client{Transport: contractRecorder}
	// Tests that speak HTTP directly go through the default transport.
	http.DefaultTransport = contractRecorder
	return nil
}

// reportContract fails the run when an answer broke the contract.
func reportContract() int {
	v := contractRecorder.Violations()
	checked := contractRecorder.Checked()
	fmt.Fprintf(os.Stderr, "e2e: contract: %d kinds of answer checked against tasker-core's API documents, %d violations\n",
		len(checked), len(v))
	if len(v) == 0 {
		return 0
	}
	for _, x := range v {
		fmt.Fprintln(os.Stderr, "e2e: contract violation:", x)
	}
	return 1
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// request builds a task request; a run id keeps identical inputs distinct tasks.
func request(namespace, name string, context map[string]any) *api.TaskRequest {
	if _, ok := context["_run_id"]; !ok {
		context["_run_id"] = uuid.NewString()
	}
	body, _ := json.Marshal(context)
	return &api.TaskRequest{Name: name, Namespace: namespace, Version: "1.0.0", Context: body,
		Initiator: "e2e", SourceSystem: "go-test", Reason: "end-to-end test"}
}

// createLinearTasks creates n mathematical_sequence tasks and returns their uuids.
func createLinearTasks(ctx context.Context, t *testing.T, env *harness.Env, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		created, err := env.Client.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 2}))
		require.NoError(t, err)
		ids[i] = created.TaskUUID
	}
	return ids
}

// requireComplete waits for each task and requires it complete.
func requireComplete(ctx context.Context, t *testing.T, env *harness.Env, ids []string) {
	t.Helper()
	for _, id := range ids {
		done, err := env.Client.WaitTask(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "complete", done.Status)
	}
}

// runTask creates a task and waits until it settles; it returns the task as created and
// as it settled.
func runTask(ctx context.Context, t *testing.T, env *harness.Env, req *api.TaskRequest) (created, done *api.TaskResponse) {
	t.Helper()
	created, err := env.Client.CreateTask(ctx, req)
	require.NoError(t, err)
	done, err = env.Client.WaitTask(ctx, created.TaskUUID)
	require.NoError(t, err)
	return created, done
}

func pow(base int64, exp int) string {
	return new(big.Int).Exp(big.NewInt(base), big.NewInt(int64(exp)), nil).String()
}

type transitionRow struct {
	From     *string
	To       string
	SortKey  int
	Recent   bool
	Metadata map[string]any
}

func taskTransitions(t *testing.T, env *harness.Env, task string) []transitionRow {
	t.Helper()
	return transitions(t, env, "tasker.task_transitions", "task_uuid", task)
}

func stepTransitions(t *testing.T, env *harness.Env, step string) []transitionRow {
	t.Helper()
	return transitions(t, env, "tasker.workflow_step_transitions", "workflow_step_uuid", step)
}

// transitions reads an audit trail in order; table and key are constants of the callers.
func transitions(t *testing.T, env *harness.Env, table, key, id string) []transitionRow {
	t.Helper()
	rows, err := env.Pool.Query(context.Background(), `SELECT from_state, to_state, sort_key, most_recent, metadata FROM `+
		table+` WHERE `+key+` = $1 ORDER BY sort_key`, id)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (transitionRow, error) {
		var x transitionRow
		return x, r.Scan(&x.From, &x.To, &x.SortKey, &x.Recent, &x.Metadata)
	})
	require.NoError(t, err)
	return out
}

func states(rows []transitionRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.To
	}
	return out
}

// requireWellFormedAudit checks an audit trail: contiguous sort keys from 0, one most
// recent row (the last), each from_state equal to the previous to_state, and every edge
// legal in the given table.
func requireWellFormedAudit(t *testing.T, rows []transitionRow, legal func(from, to string) error) {
	t.Helper()
	require.NotEmpty(t, rows)
	require.Nil(t, rows[0].From, "the first row is the initial state")
	require.Equal(t, "pending", rows[0].To)
	for i, r := range rows {
		require.Equal(t, i, r.SortKey)
		require.Equal(t, i == len(rows)-1, r.Recent, "only the last row is most_recent")
		if i > 0 {
			require.NotNil(t, r.From)
			require.Equal(t, rows[i-1].To, *r.From)
			require.NoError(t, legal(*r.From, r.To))
		}
	}
}

func legalTask(from, to string) error {
	return lifecycle.CheckTask(lifecycle.TaskState(from), lifecycle.TaskState(to))
}

func legalStep(from, to string) error {
	return lifecycle.CheckStep(lifecycle.StepState(from), lifecycle.StepState(to))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
