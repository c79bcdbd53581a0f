// Command dashboards writes the Grafana dashboards and provisioning files and the
// Prometheus alert rules and their unit tests under deploy/, from the telemetry catalog
// (make docs). Its argument is the repository root, "." by default.
package main

import (
	"fmt"
	"os"

	"github.com/tasker-sim/tasker-sim/internal/dashboards"
)

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	paths, err := dashboards.Write(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboards:", err)
		os.Exit(1)
	}
	for _, p := range paths {
		fmt.Println("wrote", p)
	}
}
