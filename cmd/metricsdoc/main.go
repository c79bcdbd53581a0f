// Command metricsdoc writes docs/metrics.md from the telemetry catalog (make docs).
package main

import (
	"fmt"
	"os"

	"github.com/tasker-sim/tasker-sim/internal/metricsdoc"
)

func main() {
	path := "docs/metrics.md"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	if err := os.WriteFile(path, metricsdoc.Render(), 0o644); err != nil { //nolint:gosec // a document meant to be read
		fmt.Fprintln(os.Stderr, "metricsdoc:", err)
		os.Exit(1)
	}
}
