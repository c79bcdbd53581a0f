// Package metricsdoc renders docs/metrics.md from the telemetry catalog, so the document
// can never disagree with the code. `go run ./cmd/metricsdoc` (make docs) rewrites it,
// and a test fails when it is stale.
package metricsdoc

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// Render returns the document.
func Render() []byte {
	var b bytes.Buffer
	b.WriteString("# tasker-sim metrics\n\n")
	b.WriteString("Generated from `pkg/telemetry/catalog.go` by `make docs`; do not edit by hand.\n\n")
	b.WriteString("Every metric is served in Prometheus text on `/metrics` by both the orchestrator and the worker, ")
	b.WriteString("and pushed over OTLP when `[telemetry.opentelemetry] enabled = true`. ")
	b.WriteString("`correlation_id` is left off when `drop_high_cardinality_labels = true`.\n\n")
	for _, d := range []telemetry.Domain{telemetry.Orchestration, telemetry.Worker, telemetry.Resilience,
		telemetry.Database, telemetry.Messaging} {
		fmt.Fprintf(&b, "## %s\n\n", strings.ToUpper(string(d[:1]))+string(d[1:]))
		b.WriteString("| Name | Kind | Unit | Labels | Prometheus series | Description |\n")
		b.WriteString("|---|---|---|---|---|---|\n")
		for _, m := range telemetry.Catalog {
			if m.Domain != d {
				continue
			}
			unit := m.Unit
			if unit == "" {
				unit = "-"
			}
			labels := "-"
			if len(m.Labels) > 0 {
				labels = "`" + strings.Join(m.Labels, "`, `") + "`"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | `%s` | %s |\n", m.Name, m.Kind, unit, labels,
				strings.Join(m.Series, "`, `"), m.Description)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%d metrics in all.\n", len(telemetry.Catalog))
	return b.Bytes()
}
