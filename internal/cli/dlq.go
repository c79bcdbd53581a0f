package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
)

// dlqStatuses are the resolution statuses --status takes.
var dlqStatuses = []string{api.DlqPending, api.DlqManuallyResolved, api.DlqPermanentlyFailed, api.DlqCancelled}

// dlqCommand is taskerctl dlq: the dead-letter queue's entries and statistics.
func dlqCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "The dead-letter queue: list, get, update, stats, queue, staleness",
		Long: `Inspect and triage the dead-letter queue (DLQ): the tasks the orchestrator filed
because they went stale, exhausted their retries or were filed by hand, each with an
investigation record an operator updates.

Example:
  taskerctl dlq list --status Pending`,
	}
	cmd.AddCommand(dlqListCommand(), dlqGetCommand(), dlqUpdateCommand(), dlqStatsCommand(), dlqQueueCommand(),
		dlqStalenessCommand())
	return cmd
}

// checkDlqStatus checks a --status value.
func checkDlqStatus(s string) error {
	if !slices.Contains(dlqStatuses, s) {
		return fmt.Errorf("--status %q: must be one of %s", s, strings.Join(dlqStatuses, ", "))
	}
	return nil
}

// intFlag reads the int flag name, which must be at least lowest when given.
func intFlag(cmd *cobra.Command, name string, lowest int) (int, error) {
	v, _ := cmd.Flags().GetInt(name)
	if cmd.Flags().Changed(name) && v < lowest {
		return 0, fmt.Errorf("--%s %d: must be at least %d", name, v, lowest)
	}
	return v, nil
}

// listRunE is the RunE of a command that lists rows: fetch calls the API, and the rows are
// printed as JSON ([] when none), as a table, or as the line none when there are none.
func listRunE[T any](none string, fetch func(cmd *cobra.Command, c *client.Client) ([]T, error),
	table func(w io.Writer, rows []T)) func(*cobra.Command, []string) error {
	return showRunE(func(cmd *cobra.Command, c *client.Client, _ []string) ([]T, error) {
		rows, err := fetch(cmd, c)
		return nonNil(rows), err
	}, func(w io.Writer, rows []T) {
		if len(rows) == 0 {
			fmt.Fprintln(w, none)
			return
		}
		table(w, rows)
	})
}

func dlqListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List DLQ entries, newest first",
		Long: `List the DLQ's investigation entries, newest first (GET /v1/dlq), optionally only
those of one resolution status: Pending, ManuallyResolved, PermanentlyFailed or
Cancelled. --limit (1 to 1000, default 50 on the server) and --offset page them.

Example:
  taskerctl dlq list --status Pending --limit 20`,
		Args: cobra.NoArgs,
		RunE: listRunE("no DLQ entries", func(cmd *cobra.Command, c *client.Client) ([]api.DlqEntry, error) {
			o := client.DlqListOptions{}
			o.ResolutionStatus, _ = cmd.Flags().GetString("status")
			if o.ResolutionStatus != "" {
				if err := checkDlqStatus(o.ResolutionStatus); err != nil {
					return nil, err
				}
			}
			var err error
			if o.Limit, err = intFlag(cmd, "limit", 1); err != nil {
				return nil, err
			}
			if o.Offset, err = intFlag(cmd, "offset", 0); err != nil {
				return nil, err
			}
			return c.ListDlq(cmd.Context(), o)
		}, printDlqEntries),
	}
	f := cmd.Flags()
	f.String("status", "", "only entries in this status: "+strings.Join(dlqStatuses, ", "))
	f.Int("limit", 0, "at most this many entries, 1 to 1000 (default 50)")
	f.Int("offset", 0, "skip this many entries")
	addOutputFlag(cmd)
	return cmd
}

// printDlqEntries prints DLQ entries as a table.
func printDlqEntries(w io.Writer, rows []api.DlqEntry) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DLQ ENTRY UUID\tTASK UUID\tREASON\tSTATUS\tORIGINAL STATE\tFILED AT")
	for _, e := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.DlqEntryUUID, e.TaskUUID, e.DlqReason, e.ResolutionStatus,
			e.OriginalState, e.DlqTimestamp.Format(time.RFC3339))
	}
	_ = tw.Flush()
}

func dlqGetCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get TASK_UUID",
		Short: "Show a task's most recent DLQ entry",
		Long: `Show the most recent DLQ entry of a task (GET /v1/dlq/task/{task_uuid}): why and when
it was filed, its investigation status and notes, and its metadata. -o json prints the
API's body, with the task snapshot taken when it was filed.

Example:
  taskerctl dlq get 0199c3e0-ccdb-7581-87ab-3f67daeaa4a5`,
		Args: uuidArgs("TASK_UUID"),
		RunE: showRunE(func(cmd *cobra.Command, c *client.Client, args []string) (*api.DlqEntry, error) {
			return c.GetDlqEntryForTask(cmd.Context(), args[0])
		}, printDlqEntry),
	}
	addOutputFlag(cmd)
	return cmd
}

// printDlqEntry prints one DLQ entry as a block of labelled lines.
func printDlqEntry(w io.Writer, e *api.DlqEntry) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "DLQ entry UUID:\t%s\n", e.DlqEntryUUID)
	fmt.Fprintf(tw, "Task UUID:\t%s\n", e.TaskUUID)
	fmt.Fprintf(tw, "Reason:\t%s\n", e.DlqReason)
	fmt.Fprintf(tw, "Original state:\t%s\n", e.OriginalState)
	fmt.Fprintf(tw, "Filed at:\t%s\n", e.DlqTimestamp.Format(time.RFC3339Nano))
	fmt.Fprintf(tw, "Status:\t%s\n", e.ResolutionStatus)
	if e.ResolutionTimestamp != nil {
		fmt.Fprintf(tw, "Resolved at:\t%s\n", e.ResolutionTimestamp.Format(time.RFC3339Nano))
	}
	if e.ResolvedBy != nil {
		fmt.Fprintf(tw, "Resolved by:\t%s\n", *e.ResolvedBy)
	}
	if e.ResolutionNotes != nil {
		fmt.Fprintf(tw, "Notes:\t%s\n", *e.ResolutionNotes)
	}
	if len(e.Metadata) > 0 && string(e.Metadata) != "null" {
		fmt.Fprintf(tw, "Metadata:\t%s\n", compactJSON(e.Metadata))
	}
	fmt.Fprintf(tw, "Updated at:\t%s\n", e.UpdatedAt.Format(time.RFC3339Nano))
	_ = tw.Flush()
}

func dlqUpdateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "update DLQ_ENTRY_UUID [--status S] [--notes T] [--by NAME] [--metadata JSON]",
		Short: "Update a DLQ entry's investigation: status, notes, resolver, metadata",
		Long: `Update the investigation record of a DLQ entry (PATCH /v1/dlq/entry/{dlq_entry_uuid}).
Each flag given overwrites that field; give at least one. --status is Pending,
ManuallyResolved, PermanentlyFailed or Cancelled; --metadata is any JSON value and
replaces the entry's metadata. The entry's uuid is in 'taskerctl dlq list' or 'dlq get'.

Example:
  taskerctl dlq update 0199c3e0-ccdb-7581-87ab-3f67daeaa4a5 --status ManuallyResolved \
    --notes "replayed the order by hand" --by ops@example.com`,
		Args: uuidArgs("DLQ_ENTRY_UUID"),
		RunE: showRunE(func(cmd *cobra.Command, c *client.Client, args []string) (*api.UpdateInvestigationResponse, error) {
			req, err := dlqUpdateRequest(cmd)
			if err != nil {
				return nil, err
			}
			return c.UpdateDlqInvestigation(cmd.Context(), args[0], req)
		}, func(w io.Writer, resp *api.UpdateInvestigationResponse) {
			fmt.Fprintf(w, "DLQ entry %s: %s\n", resp.DlqEntryUUID, resp.Message)
		}),
	}
	f := cmd.Flags()
	f.String("status", "", "new resolution status: "+strings.Join(dlqStatuses, ", "))
	f.String("notes", "", "resolution notes")
	f.String("by", "", "who resolved it (resolved_by)")
	f.String("metadata", "", `metadata, any JSON value, e.g. '{"ticket": "OPS-1"}'`)
	addOutputFlag(cmd)
	return cmd
}

// dlqUpdateRequest turns dlq update's flags into the request, checking them.
func dlqUpdateRequest(cmd *cobra.Command) (*api.UpdateInvestigationRequest, error) {
	f := cmd.Flags()
	req := &api.UpdateInvestigationRequest{}
	text := func(name string) *string {
		if !f.Changed(name) {
			return nil
		}
		v, _ := f.GetString(name)
		return &v
	}
	req.ResolutionStatus, req.ResolutionNotes, req.ResolvedBy = text("status"), text("notes"), text("by")
	if req.ResolutionStatus != nil {
		if err := checkDlqStatus(*req.ResolutionStatus); err != nil {
			return nil, err
		}
	}
	if meta := text("metadata"); meta != nil {
		if !json.Valid([]byte(*meta)) {
			return nil, fmt.Errorf(`--metadata %q: must be valid JSON, e.g. '{"ticket": "OPS-1"}'`, *meta)
		}
		req.Metadata = json.RawMessage(*meta)
	}
	if req.ResolutionStatus == nil && req.ResolutionNotes == nil && req.ResolvedBy == nil && req.Metadata == nil {
		return nil, fmt.Errorf("nothing to update: give at least one of --status, --notes, --by, --metadata")
	}
	return req, nil
}

func dlqStatsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Count DLQ entries per reason and status",
		Long: `Count the DLQ's entries per reason (GET /v1/dlq/stats): in total and per resolution
status, the oldest and newest, and the average minutes from filing to resolution
(an unresolved entry counts up to now).

Example:
  taskerctl dlq stats -o json`,
		Args: cobra.NoArgs,
		RunE: listRunE("no DLQ entries", func(cmd *cobra.Command, c *client.Client) ([]api.DlqStats, error) {
			return c.DlqStats(cmd.Context())
		}, printDlqStats),
	}
	addOutputFlag(cmd)
	return cmd
}

// printDlqStats prints the per-reason counts as a table.
func printDlqStats(w io.Writer, rows []api.DlqStats) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REASON\tTOTAL\tPENDING\tRESOLVED\tFAILED\tCANCELLED\tOLDEST\tNEWEST\tAVG RESOLUTION MIN")
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	for _, s := range rows {
		avg := "-"
		if s.AvgResolutionTimeMinutes != nil {
			avg = fmt.Sprintf("%.1f", *s.AvgResolutionTimeMinutes)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", s.DlqReason, s.TotalEntries, s.Pending,
			s.ManuallyResolved, s.PermanentFailures, s.Cancelled, at(s.OldestEntry), at(s.NewestEntry), avg)
	}
	_ = tw.Flush()
}

func dlqQueueCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue [--limit N]",
		Short: "List pending DLQ entries, most urgent first (the investigation queue)",
		Long: `List the pending DLQ entries in triage order (GET /v1/dlq/investigation-queue): the
priority score is a base by reason (dependency cycle 1000, max retries 500, staleness
100, worker unavailable 50, else 10) plus the minutes in the DLQ. --limit is 1 to 1000
(default 100 on the server).

Example:
  taskerctl dlq queue --limit 10`,
		Args: cobra.NoArgs,
		RunE: listRunE("no pending DLQ entries", func(cmd *cobra.Command, c *client.Client) ([]api.DlqInvestigationQueueEntry, error) {
			limit, err := intFlag(cmd, "limit", 1)
			if err != nil {
				return nil, err
			}
			return c.DlqInvestigationQueue(cmd.Context(), limit)
		}, printDlqQueue),
	}
	cmd.Flags().Int("limit", 0, "at most this many entries, 1 to 1000 (default 100)")
	addOutputFlag(cmd)
	return cmd
}

// printDlqQueue prints the investigation queue as a table.
func printDlqQueue(w io.Writer, rows []api.DlqInvestigationQueueEntry) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PRIORITY\tDLQ ENTRY UUID\tTASK UUID\tREASON\tMINUTES IN DLQ\tTEMPLATE\tTASK STATE")
	for _, q := range rows {
		fmt.Fprintf(tw, "%.1f\t%s\t%s\t%s\t%.1f\t%s/%s\t%s\n", q.PriorityScore, q.DlqEntryUUID, q.TaskUUID, q.DlqReason,
			q.MinutesInDlq, orDash(q.NamespaceName), orDash(q.TaskName), orDash(q.CurrentState))
	}
	_ = tw.Flush()
}

// orDash is *s, or "-" when s is nil.
func orDash(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func dlqStalenessCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "staleness [--limit N]",
		Short: "List unfinished waiting tasks and how close each is to going stale",
		Long: `List the unfinished tasks in a waiting state with their time in that state, the
staleness threshold and a health class (GET /v1/dlq/staleness): stale at 100 % of the
threshold, warning at 80 %, else healthy; stale first. --limit is 1 to 1000 (default
100 on the server).

Example:
  taskerctl dlq staleness --limit 20`,
		Args: cobra.NoArgs,
		RunE: listRunE("no unfinished tasks in a waiting state", func(cmd *cobra.Command, c *client.Client) ([]api.StalenessMonitoring, error) {
			limit, err := intFlag(cmd, "limit", 1)
			if err != nil {
				return nil, err
			}
			return c.DlqStaleness(cmd.Context(), limit)
		}, printStaleness),
	}
	cmd.Flags().Int("limit", 0, "at most this many tasks, 1 to 1000 (default 100)")
	addOutputFlag(cmd)
	return cmd
}

// printStaleness prints the staleness rows as a table.
func printStaleness(w io.Writer, rows []api.StalenessMonitoring) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HEALTH\tTASK UUID\tTEMPLATE\tSTATE\tIN STATE\tTHRESHOLD\tAGE MIN\tPRIORITY")
	secs := func(s float64) string { return (time.Duration(s * float64(time.Second))).Round(time.Second).String() }
	for _, s := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%s\t%s\t%d\t%d\n", s.HealthStatus, s.TaskUUID, s.NamespaceName, s.TaskName,
			s.CurrentState, secs(s.TimeInStateSeconds), secs(s.StalenessThresholdSeconds), s.TaskAgeMinutes, s.Priority)
	}
	_ = tw.Flush()
}
