// Package dashboards generates tasker-sim's Grafana dashboards, Grafana provisioning and
// Prometheus alert rules from the telemetry catalog, so no panel or alert can name a
// series the simulator does not emit. `go run ./cmd/dashboards` (make docs) writes them
// under deploy/, and a test fails when the committed files are stale.
//
// Dashboards are described here as plain Go values (Dashboard, Row, Panel, Query) and
// rendered to Grafana's JSON model with the Grafana Foundation SDK.
package dashboards

import "time"

// Viz is a Grafana visualization.
type Viz string

// Visualizations the dashboards use.
const (
	TimeSeries    Viz = "timeseries"
	Stat          Viz = "stat"
	Gauge         Viz = "gauge"
	StateTimeline Viz = "state-timeline"
	PieChart      Viz = "piechart"
	BarGauge      Viz = "bargauge"
)

// VarCorrelationID is the dashboard variable that picks one task for the flow panel.
const VarCorrelationID = "correlation_id"

// Dashboard is one Grafana dashboard.
type Dashboard struct {
	// UID is the stable identifier: file name, provisioning key and URL (/d/UID).
	UID string
	// Title is shown in Grafana.
	Title string
	// Description says what the dashboard is for.
	Description string
	// Variables are the template variables, if any.
	Variables []Variable
	// Rows group the panels.
	Rows []Row
}

// Variable is a query variable listing one label's values on one series.
type Variable struct {
	// Name is the variable name, used in queries as $Name.
	Name string
	// Label is shown in the variable picker.
	Label string
	// Series is the series whose label values are listed.
	Series string
	// LabelName is the label listed.
	LabelName string
}

// Query renders the variable's Grafana query.
func (v Variable) Query() string { return "label_values(" + v.Series + ", " + v.LabelName + ")" }

// Row is a titled row of panels.
type Row struct {
	// Title is the row's title.
	Title string
	// Panels are laid out left to right, wrapping.
	Panels []Panel
}

// Panel is one visualization and its queries.
type Panel struct {
	// Title is unique within its dashboard; alerts name panels by it.
	Title string
	// Description is the panel's help text.
	Description string
	// Viz is the visualization.
	Viz Viz
	// Unit is a Grafana unit id ("reqps", "ms", "percentunit", "short").
	Unit string
	// Queries are the panel's PromQL queries.
	Queries []Query
	// Min and Max fix the axis or gauge range when set.
	Min, Max *float64
	// Thresholds color values, lowest first; the first step's value is ignored (base).
	Thresholds []Step
	// Mappings turn exact values into text and colors.
	Mappings []Mapping
	// Stacked stacks the time series.
	Stacked bool
	// Width is the panel's width in grid units (of 24); 0 means 8.
	Width uint32
	// NoValue is shown when the queries return nothing (e.g. "none open").
	NoValue string
	// Fault, when set, makes the panel fault-only: its queries return nothing on a
	// healthy system and data once the fault happens. The fixture test checks both on
	// the recorded chaos run.
	Fault *Fault
}

// Fault is a phase of the built-in chaos scenario (load.Chaos) and how long after its
// end its effect may first show.
type Fault struct {
	// Phase is the scenario phase's name.
	Phase string
	// After is how long past the phase's end the effect may first be scraped; 0 means
	// DefaultFaultSettle.
	After time.Duration
}

// DefaultFaultSettle covers a fault that is scraped only after its phase ended: two
// scrape intervals of the recording and a second of slack.
const DefaultFaultSettle = 5 * time.Second

// Settle is f.After, or DefaultFaultSettle when it is not set.
func (f Fault) Settle() time.Duration {
	if f.After == 0 {
		return DefaultFaultSettle
	}
	return f.After
}

// during is a Fault with the default settle time.
func during(phase string) *Fault { return &Fault{Phase: phase} }

// Query is one PromQL query of a panel.
type Query struct {
	// Expr is the PromQL expression.
	Expr string
	// Legend is the legend format, e.g. "{{queue}}".
	Legend string
	// Instant asks for the latest value only (stat-like panels).
	Instant bool
}

// Step is one threshold: Color from Value up.
type Step struct {
	Value float64
	Color string
}

// Mapping shows Text in Color for the exact Value.
type Mapping struct {
	Value string
	Text  string
	Color string
}

// Panels lists every panel of the dashboard, row by row.
func (d Dashboard) Panels() []Panel {
	var out []Panel
	for _, r := range d.Rows {
		out = append(out, r.Panels...)
	}
	return out
}

// Panel returns the panel with the given title, and whether there is one.
func (d Dashboard) Panel(title string) (Panel, bool) {
	for _, p := range d.Panels() {
		if p.Title == title {
			return p, true
		}
	}
	return Panel{}, false
}

func ptr[T any](v T) *T { return &v }

// q is a range query with a legend.
func q(expr, legend string) Query { return Query{Expr: expr, Legend: legend} }

// instant is an instant query with a legend.
func instant(expr, legend string) Query { return Query{Expr: expr, Legend: legend, Instant: true} }
