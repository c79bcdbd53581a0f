package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// healthCommand is the container healthcheck: the image is distroless (no shell, no
// curl), so the binaries it ships must be able to ask a process whether it is ready.
func healthCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Exit 0 when a process's /health/ready answers 200 (for container healthchecks)",
		Long: `Ask a tasker-sim process whether it is ready: GET <url>/health/ready must answer
200 within --timeout. The exit status is 0 when it does and 1 otherwise, with the
reason on stderr.

The URL is the orchestrator's (--url, else $TASKER_ORCHESTRATION_URL, else
http://127.0.0.1:8080) or a worker's health address. The Docker image's healthchecks
use it, as it needs no shell:

  taskerctl health --url http://127.0.0.1:8080
  taskerctl health --url http://127.0.0.1:8081`,
		Args: cobra.NoArgs,
		RunE: runHealth,
	}
	cmd.Flags().Duration("timeout", 3*time.Second, "give up after this long")
	return cmd
}

func runHealth(cmd *cobra.Command, _ []string) error {
	timeout, _ := cmd.Flags().GetDuration("timeout")
	if timeout <= 0 {
		return fmt.Errorf("--timeout %s: must be positive", timeout)
	}
	target := strings.TrimRight(apiURL(cmd), "/") + "/health/ready"
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// %v, not %w: the orchestrator hint that Execute adds to dial errors would be
		// wrong for a worker.
		return fmt.Errorf("%s: no answer: %v", target, err) //nolint:errorlint // see above
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d: %s", target, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s answered 200\n", target)
	return nil
}
