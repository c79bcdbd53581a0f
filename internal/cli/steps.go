package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
)

// stepCommands are the task subcommands for one step: show it, act on it, read its audit.
func stepCommands() []*cobra.Command {
	return []*cobra.Command{stepGetCommand(), resetStepCommand(), resolveStepCommand(), completeStepCommand(),
		stepAuditCommand()}
}

// exampleUUID is the uuid the help texts and error messages show.
const exampleUUID = "0199c3e0-ccdb-7581-87ab-3f67daeaa4a5"

// checkUUID checks that the argument or flag called name holds a UUID.
func checkUUID(name, value string) error {
	if _, err := uuid.Parse(value); err != nil || len(value) != 36 {
		return fmt.Errorf("%s %q: must be a UUID, e.g. %s", name, value, exampleUUID)
	}
	return nil
}

// uuidArgs takes exactly len(names) arguments, each a UUID; errors name the argument.
func uuidArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return fmt.Errorf("%s takes %d argument(s), %s; got %d", cmd.CommandPath(), len(names),
				strings.Join(names, " "), len(args))
		}
		for i, name := range names {
			if err := checkUUID(name, args[i]); err != nil {
				return err
			}
		}
		return nil
	}
}

// stepRunE is the RunE of a command on one step: it calls the API with the task and step
// uuids and prints the step it answers with, as text or JSON.
func stepRunE(call func(cmd *cobra.Command, c *client.Client, task, step string) (*api.StepResponse, error)) func(*cobra.Command, []string) error {
	return showRunE(func(cmd *cobra.Command, c *client.Client, args []string) (*api.StepResponse, error) {
		return call(cmd, c, args[0], args[1])
	}, printStep)
}

func stepGetCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "step TASK_UUID STEP_UUID",
		Short: "Show one step of a task: state, attempts, readiness, times and result",
		Long: `Show one workflow step of a task (GET /v1/tasks/{uuid}/workflow_steps/{step_uuid}).

The text output is a readable block; -o json prints the API's body. 'taskerctl task
steps TASK_UUID' lists a task's steps; their uuids are in its -o json output.

Example:
  taskerctl task step 0199c3e0-ccdb-7581-87ab-3f67daeaa4a5 0199c3e0-cd01-7c22-9a51-6a0b1d1e2f30`,
		Args: uuidArgs("TASK_UUID", "STEP_UUID"),
		RunE: stepRunE(func(cmd *cobra.Command, c *client.Client, task, step string) (*api.StepResponse, error) {
			return c.GetStep(cmd.Context(), task, step)
		}),
	}
	addOutputFlag(cmd)
	return cmd
}

// printStep prints a step as a block of labelled lines.
func printStep(w io.Writer, s *api.StepResponse) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Step UUID:\t%s\n", s.StepUUID)
	fmt.Fprintf(tw, "Task UUID:\t%s\n", s.TaskUUID)
	fmt.Fprintf(tw, "Name:\t%s\n", s.Name)
	fmt.Fprintf(tw, "State:\t%s\n", s.CurrentState)
	fmt.Fprintf(tw, "Attempts:\t%d of %d (retryable: %t, retry eligible: %t)\n", s.Attempts, s.MaxAttempts,
		s.Retryable, s.RetryEligible)
	deps := "none"
	if len(s.Dependencies) > 0 {
		deps = strings.Join(s.Dependencies, ", ")
	}
	fmt.Fprintf(tw, "Depends on:\t%s (%d of %d parents done, satisfied: %t)\n", deps, s.CompletedParents,
		s.TotalParents, s.DependenciesSatisfied)
	fmt.Fprintf(tw, "Ready to run:\t%t\n", s.ReadyForExecution)
	fmt.Fprintf(tw, "Created at:\t%s\n", s.CreatedAt.Format(time.RFC3339Nano))
	fmt.Fprintf(tw, "Updated at:\t%s\n", s.UpdatedAt.Format(time.RFC3339Nano))
	for _, t := range []struct {
		label string
		at    *time.Time
	}{{"Last attempted at", s.LastAttemptedAt}, {"Last failure at", s.LastFailureAt},
		{"Next retry at", s.NextRetryAt}, {"Completed at", s.CompletedAt}} {
		if t.at != nil {
			fmt.Fprintf(tw, "%s:\t%s\n", t.label, t.at.Format(time.RFC3339Nano))
		}
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if json.Unmarshal(s.Results, &r) == nil {
		if len(r.Result) > 0 && string(r.Result) != "null" {
			fmt.Fprintf(tw, "Result:\t%s\n", compactJSON(r.Result))
		}
		if len(r.Error) > 0 && string(r.Error) != "null" {
			fmt.Fprintf(tw, "Error:\t%s\n", compactJSON(r.Error))
		}
	}
	_ = tw.Flush()
}

// compactJSON is raw on one line.
func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// operatorFlags adds the --reason and --by flags every step action takes.
func operatorFlags(cmd *cobra.Command, by string) {
	cmd.Flags().String("reason", "", "why, recorded in the step's transition (required)")
	cmd.Flags().String("by", "", by+" (required)")
	_ = cmd.MarkFlagRequired("reason")
	_ = cmd.MarkFlagRequired("by")
	addOutputFlag(cmd)
}

// operatorText reads --reason and --by, which must not be blank.
func operatorText(cmd *cobra.Command) (reason, by string, err error) {
	reason, _ = cmd.Flags().GetString("reason")
	by, _ = cmd.Flags().GetString("by")
	if strings.TrimSpace(reason) == "" {
		return "", "", fmt.Errorf("--reason: must not be empty")
	}
	if strings.TrimSpace(by) == "" {
		return "", "", fmt.Errorf("--by: must not be empty")
	}
	return reason, by, nil
}

// stepActionCommand builds a command that applies an operator action to a step and
// prints the step afterwards; build turns the flags into the action.
func stepActionCommand(use, short, long, by string, build func(cmd *cobra.Command) (*api.StepManualAction, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  uuidArgs("TASK_UUID", "STEP_UUID"),
		RunE: stepRunE(func(cmd *cobra.Command, c *client.Client, task, step string) (*api.StepResponse, error) {
			act, err := build(cmd)
			if err != nil {
				return nil, err
			}
			return c.StepAction(cmd.Context(), task, step, act)
		}),
	}
	operatorFlags(cmd, by)
	return cmd
}

func resetStepCommand() *cobra.Command {
	return stepActionCommand("reset-step TASK_UUID STEP_UUID --reason R --by NAME",
		"Reset a failed step's attempts to 0 so it runs again; prints the step",
		`Reset a step in error for retry (action reset_for_retry): its attempts go back to 0
and it is enqueued again, so a task blocked by failures resumes. Prints the step
afterwards (pending, or already enqueued or running).

Example:
  taskerctl task reset-step 0199c3e0-ccdb-7581-87ab-3f67daeaa4a5 0199c3e0-cd01-7c22-9a51-6a0b1d1e2f30 \
    --reason "upstream fixed" --by ops@example.com`,
		"who reset it, recorded as reset_by",
		func(cmd *cobra.Command) (*api.StepManualAction, error) {
			reason, by, err := operatorText(cmd)
			if err != nil {
				return nil, err
			}
			return &api.StepManualAction{ActionType: api.ActionResetForRetry, Reason: reason, ResetBy: by}, nil
		})
}

func resolveStepCommand() *cobra.Command {
	return stepActionCommand("resolve-step TASK_UUID STEP_UUID --reason R --by NAME",
		"Mark a failed step resolved by hand, without a result; prints the step",
		`Resolve a step manually (action resolve_manually): it ends resolved_manually, which
counts as done for its dependents, and it keeps no result. Prints the step afterwards.

Example:
  taskerctl task resolve-step 0199c3e0-ccdb-7581-87ab-3f67daeaa4a5 0199c3e0-cd01-7c22-9a51-6a0b1d1e2f30 \
    --reason "not needed for this order" --by ops@example.com`,
		"who resolved it, recorded as resolved_by",
		func(cmd *cobra.Command) (*api.StepManualAction, error) {
			reason, by, err := operatorText(cmd)
			if err != nil {
				return nil, err
			}
			return &api.StepManualAction{ActionType: api.ActionResolveManually, Reason: reason, ResolvedBy: by}, nil
		})
}

func completeStepCommand() *cobra.Command {
	cmd := stepActionCommand("complete-step TASK_UUID STEP_UUID --result JSON --reason R --by NAME",
		"Complete a failed step by hand with a result its dependents read; prints the step",
		`Complete a step manually (action complete_manually): it ends complete with the given
result, which its dependents read as if a handler had returned it; when it was the
task's last step the task completes. --result is any JSON value; --metadata, optional,
goes into the result's metadata.custom. Prints the step afterwards.

Example:
  taskerctl task complete-step 0199c3e0-ccdb-7581-87ab-3f67daeaa4a5 0199c3e0-cd01-7c22-9a51-6a0b1d1e2f30 \
    --result '{"charged": true}' --metadata '{"ticket": "OPS-1"}' --reason "charged by hand" --by ops@example.com`,
		"who completed it, recorded as completed_by",
		func(cmd *cobra.Command) (*api.StepManualAction, error) {
			result, _ := cmd.Flags().GetString("result")
			if !json.Valid([]byte(result)) {
				return nil, fmt.Errorf(`--result %q: must be valid JSON, e.g. '{"charged": true}' or '42'`, result)
			}
			data := &api.ManualCompletionData{Result: json.RawMessage(result)}
			if meta, _ := cmd.Flags().GetString("metadata"); cmd.Flags().Changed("metadata") {
				if !json.Valid([]byte(meta)) {
					return nil, fmt.Errorf(`--metadata %q: must be valid JSON, e.g. '{"ticket": "OPS-1"}'`, meta)
				}
				data.Metadata = json.RawMessage(meta)
			}
			reason, by, err := operatorText(cmd)
			if err != nil {
				return nil, err
			}
			return &api.StepManualAction{ActionType: api.ActionCompleteManually, Reason: reason, CompletedBy: by,
				CompletionData: data}, nil
		})
	cmd.Flags().String("result", "", "the step's result, any JSON value (required)")
	cmd.Flags().String("metadata", "", "JSON put into the result's metadata.custom")
	_ = cmd.MarkFlagRequired("result")
	return cmd
}

func stepAuditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "step-audit TASK_UUID STEP_UUID",
		Short: "List a step's result submissions by workers, newest first",
		Long: `List the audit rows of a step (GET .../workflow_steps/{step_uuid}/audit): one per result
a worker submitted, newest first, with the state it led to, whether it succeeded, the
worker and the execution time. -o json prints the API's body, with each row's result.

Example:
  taskerctl task step-audit 0199c3e0-ccdb-7581-87ab-3f67daeaa4a5 0199c3e0-cd01-7c22-9a51-6a0b1d1e2f30`,
		Args: uuidArgs("TASK_UUID", "STEP_UUID"),
		RunE: showRunE(func(cmd *cobra.Command, c *client.Client, args []string) ([]api.StepAuditResponse, error) {
			rows, err := c.StepAudit(cmd.Context(), args[0], args[1])
			return nonNil(rows), err
		}, printStepAudit),
	}
	addOutputFlag(cmd)
	return cmd
}

// printStepAudit prints audit rows as a table, or a line saying there are none.
func printStepAudit(w io.Writer, rows []api.StepAuditResponse) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no audit rows: no worker has submitted a result for this step")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RECORDED AT\tTO STATE\tSUCCESS\tWORKER\tEXECUTION TIME MS")
	for _, a := range rows {
		worker, ms := "-", "-"
		if a.WorkerUUID != nil {
			worker = *a.WorkerUUID
		}
		if a.ExecutionTimeMS != nil {
			ms = fmt.Sprint(*a.ExecutionTimeMS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\n", a.RecordedAt.Format(time.RFC3339Nano), a.ToState, a.Success, worker, ms)
	}
	_ = tw.Flush()
}

// nonNil is s, or an empty slice when s is nil, so that JSON output is [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
