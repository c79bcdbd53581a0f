package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tasker-sim/tasker-sim/pkg/faults"
)

func faultCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fault",
		Short: "Inject faults into a running orchestrator or worker (get, set, clear)",
		Long: `Inject faults into a running process through its /admin/faults endpoint.

The spec is a JSON object; every field is optional:
  error_rate (0-1) and retryable   handlers fail instead of running (worker)
  latency_ms {"min": M, "max": N}   handlers wait a uniform random delay first (worker)
  timeout_rate (0-1)                handlers hang until their timeout (worker)
  slow_completion_ms N              each FFI completion send takes N ms longer; at or above
                                    the 100 ms slow-send threshold it counts as slow and as a
                                    failure of the ffi_completion breaker (5 in a row open it),
                                    which then refuses completions; refused steps run again
                                    after their lease (worker with TASKER_HANDLER_TYPE ruby,
                                    python or typescript; a rust worker refuses it)
  database_unavailable true         the API's database work fails (orchestrator)
  flood_channel N                   push N empty items through the intake channel once
  abandon_rate (0-1)                the worker drops a step message it has read, unclaimed,
                                    as if it crashed; the message comes back after its
                                    visibility timeout (30 s by default) as a redelivery
                                    (worker)
  queue_error_rate (0-1)            fallback PGMQ reads fail as if the database refused them;
                                    counted as queue errors, the next read as a retry (both)

Per task, the same object can ride in the task's context: taskerctl task create --faults '{...}'.
There it applies to that task's steps only (a task's own faults win over its process's;
its slow_completion_ms wins over the process's, which otherwise slows every completion).
database_unavailable, flood_channel, abandon_rate and queue_error_rate act on a whole
process and are refused per task. The orchestrator refuses the worker faults.

Examples:
  taskerctl fault set --target worker --spec '{"error_rate": 0.2, "retryable": true}'
  taskerctl fault set --target orchestrator --spec '{"database_unavailable": true}'
  taskerctl fault clear --target orchestrator`,
	}
	for _, sub := range []struct {
		use, short string
		method     string
		withSpec   bool
	}{
		{"get", "Show a process's current faults", http.MethodGet, false},
		{"set", "Replace a process's faults with --spec", http.MethodPost, true},
		{"clear", "Remove every fault from a process", http.MethodPost, false},
	} {
		c := &cobra.Command{
			Use:   sub.use,
			Short: sub.short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				base, err := faultTarget(cmd)
				if err != nil {
					return err
				}
				var body io.Reader
				if sub.method == http.MethodPost {
					spec := "{}"
					if sub.withSpec {
						spec, _ = cmd.Flags().GetString("spec")
						if _, err := faults.Parse([]byte(spec)); err != nil {
							return fmt.Errorf("--spec: %w", err)
						}
					}
					body = bytes.NewReader([]byte(spec))
				}
				req, err := http.NewRequestWithContext(cmd.Context(), sub.method, base+"/admin/faults", body)
				if err != nil {
					return err
				}
				if token := os.Getenv(AuthTokenEnv); token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				defer func() { _ = resp.Body.Close() }()
				data, err := io.ReadAll(resp.Body)
				if err != nil {
					return err
				}
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("%s answered %d: %s", base, resp.StatusCode, strings.TrimSpace(string(data)))
				}
				var pretty bytes.Buffer
				if json.Indent(&pretty, data, "", "  ") == nil {
					data = pretty.Bytes()
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), strings.TrimSpace(string(data)))
				return err
			},
		}
		c.Flags().String("target", "worker", "orchestrator or worker")
		c.Flags().String("worker-url", "", "worker address (default $TASKER_WORKER_URL or http://127.0.0.1:8081)")
		if sub.withSpec {
			c.Flags().String("spec", "", "the faults, as a JSON object (required)")
			_ = c.MarkFlagRequired("spec")
		}
		cmd.AddCommand(c)
	}
	return cmd
}

func faultTarget(cmd *cobra.Command) (string, error) {
	target, _ := cmd.Flags().GetString("target")
	switch target {
	case "orchestrator":
		return strings.TrimRight(apiURL(cmd), "/"), nil
	case "worker":
		u, _ := cmd.Flags().GetString("worker-url")
		if u == "" {
			u = os.Getenv("TASKER_WORKER_URL")
		}
		if u == "" {
			u = "http://127.0.0.1:8081"
		}
		return strings.TrimRight(u, "/"), nil
	}
	return "", fmt.Errorf("--target %q: must be orchestrator or worker", target)
}
