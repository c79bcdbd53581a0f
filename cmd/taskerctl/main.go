// Command taskerctl is tasker-sim's command-line client: task create/get/list/cancel/steps,
// bench and demo. See `taskerctl --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tasker-sim/tasker-sim/internal/cli"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
}
