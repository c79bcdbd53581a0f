// Command taskerctl is tasker-sim's command-line client: task create/get/list/cancel/steps,
// bench and demo. See `taskerctl --help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tasker-sim/tasker-sim/internal/cli"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cli.Root().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "taskerctl:", err)
		return 1
	}
	return 0
}
