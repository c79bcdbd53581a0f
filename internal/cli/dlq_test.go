package cli_test

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
)

func TestDlqCommands(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, harness.Options{})
	url := env.Orchestrators[0].URL()

	for _, args := range [][]string{{"dlq", "list"}, {"dlq", "stats"}} {
		out, err := taskerctl(t, url, args...)
		require.NoError(t, err)
		require.Equal(t, "no DLQ entries\n", out, args)
	}
	for _, args := range [][]string{{"dlq", "list"}, {"dlq", "stats"}, {"dlq", "queue"}} {
		out, err := taskerctl(t, url, append(args, "-o", "json")...)
		require.NoError(t, err)
		require.Equal(t, "[]\n", out, args)
	}
	out, err := taskerctl(t, url, "dlq", "queue")
	require.NoError(t, err)
	require.Equal(t, "no pending DLQ entries\n", out)

	// A real task, filed in the DLQ by hand.
	out, err = taskerctl(t, url, "task", "create", "--namespace", "rust_e2e_linear", "--name", "mathematical_sequence",
		"--input", `{"even_number": 4}`, "--wait")
	require.NoError(t, err, out)
	task := regexp.MustCompile(`Task UUID:\s+([0-9a-f-]{36})`).FindStringSubmatch(out)[1]
	var entry string
	require.NoError(t, env.Pool.QueryRow(context.Background(), `INSERT INTO tasker.tasks_dlq
		(task_uuid, original_state, dlq_reason, metadata) VALUES ($1, 'steps_in_process', 'manual_dlq', '{"filed_by": "test"}')
		RETURNING dlq_entry_uuid`, task).Scan(&entry))

	out, err = taskerctl(t, url, "dlq", "list", "--status", "Pending", "--limit", "10")
	require.NoError(t, err)
	require.Regexp(t, `DLQ ENTRY UUID\s+TASK UUID\s+REASON\s+STATUS`, out)
	require.Regexp(t, entry+`\s+`+task+`\s+ManualDlq\s+Pending\s+steps_in_process`, out)
	out, err = taskerctl(t, url, "dlq", "list", "--status", "Cancelled")
	require.NoError(t, err)
	require.Equal(t, "no DLQ entries\n", out)
	out, err = taskerctl(t, url, "dlq", "list", "--offset", "1", "-o", "json")
	require.NoError(t, err)
	require.Equal(t, "[]\n", out)

	out, err = taskerctl(t, url, "dlq", "get", task)
	require.NoError(t, err)
	require.Regexp(t, `DLQ entry UUID:\s+`+entry, out)
	require.Regexp(t, `Reason:\s+ManualDlq\n`, out)
	require.Regexp(t, `Status:\s+Pending\n`, out)
	require.Regexp(t, `Metadata:\s+\{"filed_by":"test"\}\n`, out)

	out, err = taskerctl(t, url, "dlq", "queue", "--limit", "5")
	require.NoError(t, err)
	require.Regexp(t, `\d+\.\d\s+`+entry+`\s+`+task+`\s+ManualDlq\s+\d+\.\d\s+rust_e2e_linear/mathematical_sequence\s+complete`, out)
	out, err = taskerctl(t, url, "dlq", "stats")
	require.NoError(t, err)
	require.Regexp(t, `ManualDlq\s+1\s+1\s+0\s+0\s+0\s+`, out)
	out, err = taskerctl(t, url, "dlq", "stats", "-o", "json")
	require.NoError(t, err)
	var stats []api.DlqStats
	require.NoError(t, json.Unmarshal([]byte(out), &stats))
	require.Len(t, stats, 1)
	require.Equal(t, int64(1), stats[0].TotalEntries)

	dlqUpdate(t, url, task, entry)

	out, err = taskerctl(t, url, "dlq", "staleness", "-o", "json")
	require.NoError(t, err)
	var stale []api.StalenessMonitoring
	require.NoError(t, json.Unmarshal([]byte(out), &stale), out)
	_, err = taskerctl(t, url, "dlq", "staleness", "--limit", "3")
	require.NoError(t, err)

	code, _, errOut := execute("dlq", "get", "--url", url, uuid.NewString())
	require.Equal(t, 1, code)
	require.Regexp(t, `^taskerctl: orchestrator answered 404 \S+: .+\n$`, errOut)
}

// dlqUpdate resolves the entry with taskerctl dlq update and checks what dlq get shows.
func dlqUpdate(t *testing.T, url, task, entry string) {
	t.Helper()
	out, err := taskerctl(t, url, "dlq", "update", entry, "--status", "ManuallyResolved", "--notes", "replayed by hand",
		"--by", "ops@example.com")
	require.NoError(t, err, out)
	require.Contains(t, out, "DLQ entry "+entry+": ")
	out, err = taskerctl(t, url, "dlq", "update", entry, "--metadata", `{"ticket": "OPS-1"}`, "-o", "json")
	require.NoError(t, err, out)
	var resp api.UpdateInvestigationResponse
	require.NoError(t, json.Unmarshal([]byte(out), &resp))
	require.True(t, resp.Success)
	require.Equal(t, entry, resp.DlqEntryUUID)

	out, err = taskerctl(t, url, "dlq", "get", task, "-o", "json")
	require.NoError(t, err)
	var e api.DlqEntry
	require.NoError(t, json.Unmarshal([]byte(out), &e))
	require.Equal(t, api.DlqManuallyResolved, e.ResolutionStatus)
	require.Equal(t, "replayed by hand", *e.ResolutionNotes)
	require.Equal(t, "ops@example.com", *e.ResolvedBy)
	require.JSONEq(t, `{"ticket": "OPS-1"}`, string(e.Metadata))
	out, err = taskerctl(t, url, "dlq", "get", task)
	require.NoError(t, err)
	require.Regexp(t, `Status:\s+ManuallyResolved\n`, out)
	require.Regexp(t, `Resolved by:\s+ops@example.com\n`, out)
	require.Regexp(t, `Notes:\s+replayed by hand\n`, out)
	out, err = taskerctl(t, url, "dlq", "queue")
	require.NoError(t, err)
	require.Equal(t, "no pending DLQ entries\n", out)
}

func TestDlqCommandErrors(t *testing.T) {
	t.Parallel()
	id := uuid.NewString()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "list", "--status", "pending"},
			`--status "pending": must be one of Pending, ManuallyResolved, PermanentlyFailed, Cancelled`},
		{[]string{"dlq", "list", "--limit", "0"}, "--limit 0: must be at least 1"},
		{[]string{"dlq", "list", "--offset", "-1"}, "--offset -1: must be at least 0"},
		{[]string{"dlq", "list", "extra"}, `unknown command "extra"`},
		{[]string{"dlq", "get", "nope"}, `TASK_UUID "nope": must be a UUID`},
		{[]string{"dlq", "get"}, "takes 1 argument(s), TASK_UUID; got 0"},
		{[]string{"dlq", "update", "nope", "--notes", "x"}, `DLQ_ENTRY_UUID "nope": must be a UUID`},
		{[]string{"dlq", "update", id}, "nothing to update: give at least one of --status, --notes, --by, --metadata"},
		{[]string{"dlq", "update", id, "--status", "Done"}, `--status "Done": must be one of`},
		{[]string{"dlq", "update", id, "--metadata", "{"}, `--metadata "{": must be valid JSON`},
		{[]string{"dlq", "stats", "-o", "yaml"}, `--output "yaml"`},
		{[]string{"dlq", "queue", "--limit", "-1"}, "--limit -1: must be at least 1"},
		{[]string{"dlq", "staleness", "--limit", "0"}, "--limit 0: must be at least 1"},
	} {
		// Nothing listens at port 1: each error comes before any request.
		_, err := taskerctl(t, "http://127.0.0.1:1", tc.args...)
		require.ErrorContains(t, err, tc.want, tc.args)
	}
}
