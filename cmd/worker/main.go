// Command worker runs a tasker-sim worker: it registers the shipped templates (plus any
// in TASKER_TEMPLATE_PATH), claims steps from its namespaces' queues and runs their
// handlers. Configuration comes from the environment; see the README's configuration table.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasker-sim/tasker-sim/internal/envconfig"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a tasker-sim worker (health on TASKER_WORKER_BIND_ADDRESS)",
		Long: `Run a tasker-sim worker.

It applies migrations if needed, registers its templates, creates worker_<namespace>_queue
for each namespace it serves (TASKER_WORKER_NAMESPACES, comma-separated; default all),
and claims steps by LISTEN/NOTIFY with a polling fallback until SIGINT or SIGTERM.

Required: TASKER_DATABASE_URL.`,
		SilenceUsage: true,
		// run prints the error once, named.
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := envconfig.Logger("tasker-worker")
			if err != nil {
				return err
			}
			cfg, err := envconfig.Worker(log)
			if err != nil {
				return err
			}
			if cfg.Telemetry, err = envconfig.Telemetry(cmd.Context(), "tasker-worker", log); err != nil {
				return err
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = cfg.Telemetry.Shutdown(ctx)
			}()
			return worker.Run(cmd.Context(), *cfg)
		},
	}
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, named("worker", err))
		return 1
	}
	return 0
}

// named prefixes an error with the program's name, once: errors from the worker package
// already carry it.
func named(name string, err error) string {
	if msg := err.Error(); strings.HasPrefix(msg, name+":") {
		return msg
	}
	return name + ": " + err.Error()
}
