// Package cli implements taskerctl's commands; cmd/taskerctl is a thin main over Root.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/faults"
)

// OrchestrationURLEnv names the variable holding the API address.
const OrchestrationURLEnv = "TASKER_ORCHESTRATION_URL"

// Root returns the taskerctl command tree.
func Root() *cobra.Command {
	root := &cobra.Command{
		Use:   "taskerctl",
		Short: "Drive tasker-sim: create and inspect tasks, benchmark, run the demo",
		Long: `taskerctl drives a tasker-sim orchestrator over its REST API.

The API address comes from --url, else TASKER_ORCHESTRATION_URL, else
http://127.0.0.1:8080. 'demo' and 'bench' start their own throwaway stack
unless given --url.`,
		SilenceUsage: true,
		// Execute prints the error once, with a hint when it can give one.
		SilenceErrors: true,
	}
	root.PersistentFlags().String("url", "", "orchestration API URL (default $TASKER_ORCHESTRATION_URL or "+client.DefaultURL+")")
	bench := benchCommand()
	bench.AddCommand(benchThroughputCommand(), benchSoakCommand(), benchFloorCommand())
	root.AddCommand(taskCommand(), bench, demoCommand(), verifyCommand(), faultCommand(), loadCommand(), healthCommand(),
		dlqCommand(), templatesCommand())
	return root
}

// Execute runs taskerctl with args and prints any error once to stderr, with a hint when
// the orchestrator could not be reached. It returns the process exit status.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := Root()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "taskerctl:", explain(cmd, err))
	return 1
}

// explain adds what to do to errors a new user cannot act on by themselves: an address
// nobody answers at is named, with how to start an orchestrator when it was the API's.
func explain(cmd *cobra.Command, err error) string {
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "dial" {
		return err.Error()
	}
	target := apiURL(cmd)
	var urlErr *url.Error
	if errors.As(err, &urlErr) && !strings.HasPrefix(urlErr.URL, strings.TrimRight(target, "/")) {
		return fmt.Sprintf("nothing answers at %s (%v): is the process running, and is the address right?", urlErr.URL, opErr.Err)
	}
	return fmt.Sprintf("cannot reach the orchestrator at %s (%v).\n"+
		"  Start one: `make demo` runs a throwaway stack, or run bin/orchestrator with TASKER_DATABASE_URL set;\n"+
		"  or point --url or %s at a running orchestrator.", target, opErr.Err, OrchestrationURLEnv)
}

func apiURL(cmd *cobra.Command) string {
	if u, _ := cmd.Flags().GetString("url"); u != "" {
		return u
	}
	if u := os.Getenv(OrchestrationURLEnv); u != "" {
		return u
	}
	return client.DefaultURL
}

// AuthTokenEnv names the variable holding the API's bearer token, when it has one.
const AuthTokenEnv = "TASKER_AUTH_TOKEN"

func newClient(cmd *cobra.Command) (*client.Client, error) { return clientFor(apiURL(cmd)) }

// clientFor is an API client for url that sends the bearer token, when there is one.
func clientFor(url string) (*client.Client, error) {
	c, err := client.New(url, nil)
	if err != nil {
		return nil, err
	}
	return c.WithToken(os.Getenv(AuthTokenEnv)), nil
}

func addOutputFlag(cmd *cobra.Command) {
	cmd.Flags().StringP("output", "o", "text", "output format: text or json")
}

func outputFormat(cmd *cobra.Command) (string, error) {
	o, _ := cmd.Flags().GetString("output")
	if o != "text" && o != "json" {
		return "", fmt.Errorf("--output %q: must be text or json", o)
	}
	return o, nil
}

// showRunE is the RunE of a command that asks the orchestrator one thing and prints the
// answer: the API's JSON with -o json, else text. fetch gets the command's client and
// arguments.
func showRunE[T any](fetch func(cmd *cobra.Command, c *client.Client, args []string) (T, error),
	text func(w io.Writer, v T)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		format, err := outputFormat(cmd)
		if err != nil {
			return err
		}
		c, err := newClient(cmd)
		if err != nil {
			return err
		}
		v, err := fetch(cmd, c, args)
		if err != nil {
			return err
		}
		if format == "json" {
			return printJSON(cmd.OutOrStdout(), v)
		}
		text(cmd.OutOrStdout(), v)
		return nil
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func taskCommand() *cobra.Command {
	task := &cobra.Command{Use: "task", Short: "Create, inspect and cancel tasks"}
	task.AddCommand(createCommand(), getCommand(), listCommand(), cancelCommand(), stepsCommand())
	task.AddCommand(stepCommands()...)
	return task
}

func createCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create --namespace NS --name NAME --input JSON",
		Short: "Create a task; prints its task_uuid and correlation_id",
		Long: `Create a task from a registered template.

The input must be a JSON object; it becomes the task's context. Unless --no-run-id
is given, a unique "_run_id" is added to it, so running the same command twice makes
two tasks rather than a 409 duplicate.

Example:
  taskerctl task create --namespace rust_e2e_linear --name mathematical_sequence \
    --input '{"even_number": 6}' --wait`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			ns, _ := f.GetString("namespace")
			name, _ := f.GetString("name")
			version, _ := f.GetString("version")
			input, _ := f.GetString("input")
			corr, _ := f.GetString("correlation-id")
			key, _ := f.GetString("idempotency-key")
			noRunID, _ := f.GetBool("no-run-id")
			wait, _ := f.GetBool("wait")
			timeout, _ := f.GetDuration("timeout")
			var ctxMap map[string]any
			dec := json.NewDecoder(strings.NewReader(input))
			dec.UseNumber()
			if err := dec.Decode(&ctxMap); err != nil || ctxMap == nil {
				return fmt.Errorf("--input: must be a JSON object, e.g. '{\"even_number\": 6}'")
			}
			if !noRunID {
				ctxMap["_run_id"] = uuid.Must(uuid.NewV7()).String()
			}
			if spec, _ := f.GetString("faults"); spec != "" {
				if err := faults.ValidateForTask([]byte(spec)); err != nil {
					return fmt.Errorf("--faults: %w", err)
				}
				ctxMap[faults.ContextKey] = json.RawMessage(spec)
			}
			if corr == "" {
				corr = uuid.Must(uuid.NewV7()).String()
			}
			body, _ := json.Marshal(ctxMap)
			req := &api.TaskRequest{Name: name, Namespace: ns, Version: version, Context: body,
				Initiator: "taskerctl", SourceSystem: "cli", Reason: "CLI task creation",
				CorrelationID: corr, IdempotencyKey: key}
			if f.Changed("priority") {
				p, _ := f.GetInt("priority")
				req.Priority = &p
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			start := time.Now()
			task, err := c.CreateTask(ctx, req)
			if err != nil {
				return err
			}
			if wait {
				if timeout > 0 {
					var cancel func()
					ctx, cancel = contextWithTimeout(ctx, timeout)
					defer cancel()
				}
				if task, err = c.WaitTask(ctx, task.TaskUUID); err != nil {
					return fmt.Errorf("waiting for task %s: %w", req.CorrelationID, err)
				}
			}
			if format == "json" {
				return printJSON(cmd.OutOrStdout(), task)
			}
			printTask(cmd.OutOrStdout(), task)
			if wait {
				fmt.Fprintf(cmd.OutOrStdout(), "Elapsed:          %s\n", time.Since(start).Round(time.Millisecond))
			}
			if wait && task.Status != "complete" {
				return fmt.Errorf("task %s ended %s", task.TaskUUID, task.Status)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.String("namespace", "", "template namespace, e.g. rust_e2e_linear (required)")
	f.String("name", "", "template name, e.g. mathematical_sequence (required)")
	f.String("version", "1.0.0", "template version")
	f.String("input", "{}", "task context as a JSON object")
	f.String("correlation-id", "", "correlation id (UUID); default a new UUIDv7")
	f.String("idempotency-key", "", "identity key replacing the context in duplicate detection")
	f.Int("priority", 0, "priority from -100 to 100")
	f.Bool("no-run-id", false, "do not add a unique _run_id to the context")
	f.String("faults", "", `faults for this task's steps, e.g. '{"error_rate": 1}' (see taskerctl fault --help)`)
	f.Bool("wait", false, "block until the task reaches a terminal state")
	f.Duration("timeout", 0, "with --wait, give up after this long (e.g. 30s); 0 waits for ever")
	_ = cmd.MarkFlagRequired("namespace")
	_ = cmd.MarkFlagRequired("name")
	addOutputFlag(cmd)
	return cmd
}

// printSteps prints a task's steps as a table.
func printSteps(w io.Writer, steps []api.StepResponse) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tSTATE\tATTEMPTS\tDEPENDS ON\tRESULT")
	for _, s := range steps {
		var r struct {
			Result json.RawMessage `json:"result"`
		}
		_ = json.Unmarshal(s.Results, &r)
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\n", s.Name, s.CurrentState, s.Attempts, s.MaxAttempts,
			strings.Join(s.Dependencies, ","), string(r.Result))
	}
	_ = tw.Flush()
}

func printTask(w io.Writer, t *api.TaskResponse) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Task UUID:\t%s\n", t.TaskUUID)
	fmt.Fprintf(tw, "Correlation ID:\t%s\n", t.CorrelationID)
	fmt.Fprintf(tw, "Template:\t%s/%s@%s\n", t.Namespace, t.Name, t.Version)
	fmt.Fprintf(tw, "Status:\t%s\n", t.Status)
	fmt.Fprintf(tw, "Execution status:\t%s\n", t.ExecutionStatus)
	fmt.Fprintf(tw, "Steps:\t%d total, %d complete, %d in progress, %d pending, %d failed\n",
		t.TotalSteps, t.CompletedSteps, t.InProgressSteps, t.PendingSteps, t.FailedSteps)
	fmt.Fprintf(tw, "Created at:\t%s\n", t.CreatedAt.Format(time.RFC3339Nano))
	if t.CompletedAt != nil {
		fmt.Fprintf(tw, "Completed at:\t%s\n", t.CompletedAt.Format(time.RFC3339Nano))
	}
	_ = tw.Flush()
}

func getCommand() *cobra.Command {
	return taskViewCommand("get TASK_UUID", "Show a task's status, correlation id and step counts",
		func(ctx context.Context, c *client.Client, id string) (*api.TaskResponse, error) {
			return c.GetTask(ctx, id)
		})
}

// taskViewCommand builds a command that takes a task uuid, calls the API and prints the
// task it answers with.
func taskViewCommand(use, short string, call func(ctx context.Context, c *client.Client, id string) (*api.TaskResponse, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: showRunE(func(cmd *cobra.Command, c *client.Client, args []string) (*api.TaskResponse, error) {
			return call(cmd.Context(), c, args[0])
		}, printTask),
	}
	addOutputFlag(cmd)
	return cmd
}

func listCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tasks, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := outputFormat(cmd)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			ns, _ := f.GetString("namespace")
			status, _ := f.GetString("status")
			limit, _ := f.GetInt("limit")
			page, _ := f.GetInt("page")
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.ListTasks(cmd.Context(), client.ListOptions{Namespace: ns, Status: status, PerPage: limit, Page: page})
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TASK UUID\tCORRELATION ID\tTEMPLATE\tSTATUS\tSTEPS\tCREATED")
			for _, t := range list.Tasks {
				fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%d/%d\t%s\n", t.TaskUUID, t.CorrelationID, t.Namespace, t.Name,
					t.Status, t.CompletedSteps, t.TotalSteps, t.CreatedAt.Format(time.RFC3339))
			}
			fmt.Fprintf(tw, "page %d of %d (%d tasks)\n", list.Pagination.Page, max(list.Pagination.TotalPages, 1), list.Pagination.TotalCount)
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.String("namespace", "", "only tasks of this namespace")
	f.String("status", "", "only tasks in this state (e.g. complete, error, steps_in_process)")
	f.Int("limit", 20, "tasks per page, 1 to 100")
	f.Int("page", 1, "page number")
	addOutputFlag(cmd)
	return cmd
}

func cancelCommand() *cobra.Command {
	return taskViewCommand("cancel TASK_UUID", "Cancel a task that has not finished",
		func(ctx context.Context, c *client.Client, id string) (*api.TaskResponse, error) {
			return c.CancelTask(ctx, id)
		})
}

func stepsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "steps TASK_UUID",
		Short: "List a task's steps with their states, attempts and results",
		Args:  cobra.ExactArgs(1),
		RunE: showRunE(func(cmd *cobra.Command, c *client.Client, args []string) ([]api.StepResponse, error) {
			return c.Steps(cmd.Context(), args[0])
		}, printSteps),
	}
	addOutputFlag(cmd)
	return cmd
}
