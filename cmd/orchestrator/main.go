// Command orchestrator runs tasker-sim's orchestration service: the REST API, step-result
// processing and the background loops. `orchestrator migrate` only applies migrations.
// Configuration comes from the environment; see the README's configuration table.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/tasker-sim/tasker-sim/internal/envconfig"
	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/dbwait"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := command().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, named("orchestrator", err))
		return 1
	}
	return 0
}

func command() *cobra.Command {
	root := &cobra.Command{
		Use:   "orchestrator",
		Short: "Run the tasker-sim orchestration service (REST API on TASKER_WEB_BIND_ADDRESS)",
		Long: `Run the tasker-sim orchestration service.

It applies migrations (under an advisory lock, so several processes may start at once),
creates the orchestration queues, serves the REST API on TASKER_WEB_BIND_ADDRESS
(default 127.0.0.1:8080) and processes step results until SIGINT or SIGTERM.

Required: TASKER_DATABASE_URL.`,
		SilenceUsage: true,
		// run prints the error once, named.
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := envconfig.Logger("tasker-orchestration")
			if err != nil {
				return err
			}
			cfg, err := envconfig.Orchestrator(log)
			if err != nil {
				return err
			}
			if cfg.Telemetry, err = envconfig.Telemetry(cmd.Context(), "tasker-orchestration", log); err != nil {
				return err
			}
			defer shutdownTelemetry(cfg.Telemetry)
			return orchestrator.Run(cmd.Context(), cfg)
		},
	}
	root.AddCommand(&cobra.Command{
		Use:          "migrate",
		Short:        "Apply database migrations to TASKER_DATABASE_URL and exit",
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			url := os.Getenv(envconfig.DatabaseURL)
			if url == "" {
				return fmt.Errorf("%s is required", envconfig.DatabaseURL)
			}
			limit, err := envconfig.DatabaseWaitLimit()
			if err != nil {
				return err
			}
			log, err := envconfig.Logger("tasker-orchestration")
			if err != nil {
				return err
			}
			pool, err := pgxpool.New(cmd.Context(), url)
			if err != nil {
				return err
			}
			defer pool.Close()
			if err := dbwait.Wait(cmd.Context(), pool.Ping, dbwait.Options{URL: url, Limit: limit, Logger: log,
				Hint: dbwait.WaitHint}); err != nil {
				return err
			}
			mode := migrations.PGMQMode(os.Getenv(envconfig.PGMQMode))
			res, err := migrations.Migrate(cmd.Context(), pool, &migrations.Config{PGMQ: mode})
			if err != nil {
				return err
			}
			fmt.Printf("migrations applied: %v (pgmq provided by %s)\n", res.Applied, res.PGMQProvider)
			return nil
		},
	})
	return root
}

// shutdownTelemetry flushes the exporters; a push that cannot finish in 5 s is dropped.
func shutdownTelemetry(p *telemetry.Providers) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.Shutdown(ctx)
}

// named prefixes an error with the program's name, once: errors from the orchestrator package
// already carry it.
func named(name string, err error) string {
	if msg := err.Error(); strings.HasPrefix(msg, name+":") {
		return msg
	}
	return name + ": " + err.Error()
}
