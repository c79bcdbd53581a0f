package load

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/image/font/sfnt"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// The charts' size in points; the page scales them down to fit narrower windows.
const (
	chartWidth  = vg.Length(720)
	chartHeight = vg.Length(300)
)

// maxUnfinishedRows caps the unfinished-task table; the summary still gives the full count.
const maxUnfinishedRows = 100

var (
	// chartFont is the face every chart's text uses; WriteReport embeds it once in the page.
	chartFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
	// phaseFill shades a fault phase, warmupFill the warm-up.
	phaseFill  = color.NRGBA{R: 255, G: 170, B: 0, A: 60}
	warmupFill = color.NRGBA{R: 128, G: 128, B: 128, A: 45}
	// targetColor draws the target rate.
	targetColor = color.NRGBA{A: 255}
)

// WriteReport writes r as one self-contained HTML page: summary tables, then charts
// drawn with gonum/plot as inline SVG. The page loads nothing (its Content-Security-Policy
// forbids it): the font the charts were laid out with is embedded once as a data URL.
func WriteReport(w io.Writer, r *Result) error {
	if r == nil {
		return errors.New("load report: no result")
	}
	v, err := buildReportView(r)
	if err != nil {
		return fmt.Errorf("load report: %w", err)
	}
	if err := reportTemplate.Execute(w, v); err != nil {
		return fmt.Errorf("load report: writing the HTML: %w", err)
	}
	return nil
}

// reportView is what the HTML template shows, already formatted.
type reportView struct {
	Title            string
	Passed           bool
	Verdict          string
	FontCSS          template.CSS
	Summary          []summaryRow
	Problems         []string
	Thresholds       []thresholdRow
	Latency          []latencyRow
	Phases           []phaseRow
	Charts           []chartView
	Unfinished       []UnfinishedTask
	UnfinishedHidden int
}

// summaryRow is one line of the summary table; Warn highlights a bad value.
type summaryRow struct {
	Label, Value string
	Warn         bool
}

// thresholdRow is one --threshold check.
type thresholdRow struct {
	Expr, Actual string
	Passed       bool
}

// latencyRow is one line of the latency table.
type latencyRow struct {
	Name, Namespace, Weight, Created, Rate string
	Count, Mean, P50, P90, P99, P999, Max  string
}

// phaseRow is one fault phase.
type phaseRow struct {
	Name, Target, Start, End, Error string
}

// chartView is one chart: its SVG, or a note saying why there is none.
type chartView struct {
	Title string
	SVG   template.HTML
	Note  string
}

// buildReportView formats r and draws its charts.
func buildReportView(r *Result) (*reportView, error) {
	fontCSS, err := fontFaceCSS()
	if err != nil {
		return nil, err
	}
	charts, err := timeCharts(r)
	if err != nil {
		return nil, err
	}
	states, err := finalStatesChart(r)
	if err != nil {
		return nil, fmt.Errorf("chart %q: %w", states.Title, err)
	}
	v := &reportView{
		Title:      "Tasker load report",
		Passed:     r.Passed,
		Verdict:    verdict(r),
		FontCSS:    fontCSS,
		Summary:    append(runSummary(r), outcomeSummary(r)...),
		Problems:   r.Reconciliation.Problems,
		Thresholds: thresholdRows(r.Thresholds),
		Latency:    latencyRows(r),
		Phases:     phaseRows(r.Phases),
		Charts:     append(charts, states),
		Unfinished: r.Unfinished,
	}
	if !r.StartedAt.IsZero() {
		v.Title += " — " + r.StartedAt.UTC().Format(time.RFC3339)
	}
	if n := len(v.Unfinished); n > maxUnfinishedRows {
		v.Unfinished, v.UnfinishedHidden = v.Unfinished[:maxUnfinishedRows], n-maxUnfinishedRows
	}
	return v, nil
}

// verdict is the one-word outcome shown at the top.
func verdict(r *Result) string {
	s := "FAILED"
	if r.Passed {
		s = "PASSED"
	}
	if r.Interrupted {
		s += " (interrupted)"
	}
	return s
}

// runSummary describes how the run was driven and what it achieved.
func runSummary(r *Result) []summaryRow {
	model := r.Model
	if model == "closed" && r.Concurrency > 0 {
		model += fmt.Sprintf(", %d in flight", r.Concurrency)
	}
	rows := []summaryRow{
		{Label: "Model", Value: orNone(model, "unknown")},
		{Label: "Warm-up / measured", Value: fmtFloat(r.WarmupSeconds, 1) + " s / " + fmtFloat(r.MeasuredSeconds, 1) + " s"},
	}
	achieved := fmtFloat(r.AchievedRate, 2) + " tasks/s"
	if r.TargetRate > 0 {
		rows = append(rows, summaryRow{Label: "Target rate", Value: fmtFloat(r.TargetRate, 2) + " tasks/s"})
		share := 100 * r.AchievedRate / r.TargetRate
		achieved += " (" + fmtFloat(share, 1) + " % of target)"
		rows = append(rows, summaryRow{Label: "Achieved rate", Value: achieved, Warn: share < 95})
	} else {
		rows = append(rows, summaryRow{Label: "Achieved rate", Value: achieved})
	}
	return append(rows,
		summaryRow{Label: "Arrivals (measured)", Value: fmtInt(r.Arrivals)},
		summaryRow{Label: "Created (warm-up included)", Value: fmtInt(r.Created)},
		summaryRow{Label: "Missed (generator behind)", Value: fmtInt(r.Missed), Warn: r.Missed > 0},
		summaryRow{Label: "HTTP errors", Value: fmtCounts(r.HTTPErrors), Warn: sumCounts(r.HTTPErrors) > 0},
		summaryRow{Label: "Generator CPU", Value: fmtFloat(r.GeneratorCPUPercent, 1) + " %"},
	)
}

// outcomeSummary describes where the tasks ended and whether the run passed.
func outcomeSummary(r *Result) []summaryRow {
	rec := r.Reconciliation
	recText := "not checked (the orchestrator's /metrics could not be read)"
	if rec.Checked {
		recText = fmt.Sprintf("requests counted %d vs created %d; terminal counted %d vs seen %d",
			rec.RequestsCounted, rec.Created, rec.TerminalCounted, rec.Terminal)
	}
	return []summaryRow{
		{Label: "Final states", Value: fmtCounts(r.FinalStates)},
		{Label: "Unfinished", Value: fmtInt(int64(len(r.Unfinished))), Warn: len(r.Unfinished) > 0},
		{Label: "Reconciliation", Value: recText, Warn: !rec.Checked || len(rec.Problems) > 0},
		{Label: "Reconciliation problems", Value: fmtInt(int64(len(rec.Problems))), Warn: len(rec.Problems) > 0},
		{Label: "Thresholds", Value: thresholdSummary(r.Thresholds), Warn: !thresholdsPassed(r.Thresholds)},
		{Label: "Result", Value: verdict(r), Warn: !r.Passed},
	}
}

// thresholdSummary counts the checks that held.
func thresholdSummary(ts []ThresholdResult) string {
	if len(ts) == 0 {
		return "none set"
	}
	passed := 0
	for _, t := range ts {
		if t.Passed {
			passed++
		}
	}
	return fmt.Sprintf("%d of %d passed", passed, len(ts))
}

// thresholdsPassed says whether every check held.
func thresholdsPassed(ts []ThresholdResult) bool {
	for _, t := range ts {
		if !t.Passed {
			return false
		}
	}
	return true
}

// thresholdRows formats the --threshold checks.
func thresholdRows(ts []ThresholdResult) []thresholdRow {
	rows := make([]thresholdRow, 0, len(ts))
	for _, t := range ts {
		rows = append(rows, thresholdRow{Expr: t.Expr, Actual: fmtFloat(t.Actual, 2), Passed: t.Passed})
	}
	return rows
}

// latencyRows has one row for all shapes together, then one per shape.
func latencyRows(r *Result) []latencyRow {
	all := latencyRow{Name: "all shapes", Created: fmtInt(r.Created),
		Rate: fmtFloat(r.AchievedRate, 2)}
	fillLatency(&all, r.Overall)
	rows := []latencyRow{all}
	for _, s := range r.Shapes {
		row := latencyRow{Name: s.Name, Namespace: s.Namespace, Weight: strconv.Itoa(s.Weight),
			Created: fmtInt(s.Created), Rate: fmtFloat(s.AchievedRate, 2)}
		fillLatency(&row, s.Latency)
		rows = append(rows, row)
	}
	return rows
}

// fillLatency copies a latency summary into a row.
func fillLatency(row *latencyRow, l LatencySummary) {
	row.Count = fmtInt(l.Count)
	row.Mean, row.P50, row.P90 = fmtFloat(l.Mean, 1), fmtFloat(l.P50, 1), fmtFloat(l.P90, 1)
	row.P99, row.P999, row.Max = fmtFloat(l.P99, 1), fmtFloat(l.P999, 1), fmtFloat(l.Max, 1)
}

// phaseRows formats the fault phases.
func phaseRows(ps []PhaseResult) []phaseRow {
	rows := make([]phaseRow, 0, len(ps))
	for i, p := range ps {
		rows = append(rows, phaseRow{Name: phaseName(p, i), Target: p.Target,
			Start: fmtFloat(p.StartSeconds, 1), End: fmtFloat(p.EndSeconds, 1), Error: p.Error})
	}
	return rows
}

// phaseName is a phase's name, or its position when it has none.
func phaseName(p PhaseResult, i int) string {
	return orNone(p.Name, fmt.Sprintf("phase %d", i+1))
}

// fmtFloat formats v with prec decimals; NaN and infinities read "n/a".
func fmtFloat(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// fmtInt formats a count.
func fmtInt(v int64) string { return strconv.FormatInt(v, 10) }

// fmtCounts lists counts by key, keys sorted, or "none".
func fmtCounts(m map[string]int64) string {
	keys := sortedKeys(m)
	if len(keys) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+fmtInt(m[k]))
	}
	return strings.Join(parts, ", ")
}

// sumCounts adds up the counts.
func sumCounts(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// orNone returns s, or def when s is empty.
func orNone(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// fontFaceCSS embeds the charts' font as a data URL so the page renders the same
// everywhere without fetching anything.
func fontFaceCSS() (template.CSS, error) {
	face := font.DefaultCache.Lookup(chartFont, 10)
	if face.Face == nil {
		return "", fmt.Errorf("chart font %s is not in gonum's font cache", chartFont.Name())
	}
	family, err := face.Face.Name(&sfnt.Buffer{}, sfnt.NameIDFamily)
	if err != nil {
		return "", fmt.Errorf("reading the chart font's family name: %w", err)
	}
	var raw bytes.Buffer
	if _, err := face.Face.WriteSourceTo(nil, &raw); err != nil {
		return "", fmt.Errorf("reading the chart font: %w", err)
	}
	css := fmt.Sprintf("@font-face{font-family:%q;src:url(data:font/ttf;base64,%s) format(\"truetype\");}",
		family, base64.StdEncoding.EncodeToString(raw.Bytes()))
	return template.CSS(css), nil //nolint:gosec // built here from a name and base64 text only
}

// timeSeries is one line of a time chart: values[i] covers second [i, i+1).
type timeSeries struct {
	name   string
	values []float64
	color  color.Color
	dashed bool
}

// band is a shaded stretch of a time chart, in seconds from the start.
type band struct {
	name       string
	start, end float64
	fill       color.Color
}

// timeCharts draws the per-second charts: created, P99 latency and finished.
func timeCharts(r *Result) ([]chartView, error) {
	span := timelineSpan(r)
	bands := chartBands(r, span)
	created := append(shapeSeries(r, func(t ShapeTimeline) []float64 { return ints(t.Created) }),
		targetSeries(r)...)
	specs := []struct {
		title, yLabel string
		series        []timeSeries
		keep          func(float64) bool
	}{
		{"Tasks created per second", "tasks/s", created, isCount},
		{"P99 latency of the tasks finished in each second", "ms", shapeSeries(r, func(t ShapeTimeline) []float64 { return t.P99MS }), isPositive},
		{"Tasks finished per second", "tasks/s", shapeSeries(r, func(t ShapeTimeline) []float64 { return ints(t.Finished) }), isCount},
	}
	out := make([]chartView, 0, len(specs)+1)
	for _, s := range specs {
		cv, err := timeChart(s.title, s.yLabel, s.series, s.keep, bands, span)
		if err != nil {
			return nil, fmt.Errorf("chart %q: %w", s.title, err)
		}
		out = append(out, cv)
	}
	return out, nil
}

// isCount keeps finite values >= 0; isPositive keeps finite values > 0 (0 = no data).
func isCount(v float64) bool    { return v >= 0 && !math.IsInf(v, 1) }
func isPositive(v float64) bool { return v > 0 && !math.IsInf(v, 1) }

// ints converts counts to floats.
func ints(vs []int64) []float64 {
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = float64(v)
	}
	return out
}

// shapeSeries picks one series per shape from the timeline, in timeline order.
func shapeSeries(r *Result, pick func(ShapeTimeline) []float64) []timeSeries {
	out := make([]timeSeries, 0, len(r.Timeline))
	for i, t := range r.Timeline {
		out = append(out, timeSeries{name: shapeLabel(t.Shape, i), values: pick(t), color: seriesColor(i)})
	}
	return out
}

// targetSeries is the target rate as a dashed line, when the run has one.
func targetSeries(r *Result) []timeSeries {
	if len(r.TargetTimeline) == 0 {
		return nil
	}
	return []timeSeries{{name: "target", values: r.TargetTimeline, color: targetColor, dashed: true}}
}

// shapeLabel is a shape's name, or its position when it has none.
func shapeLabel(name string, i int) string {
	return orNone(name, fmt.Sprintf("shape %d", i+1))
}

// seriesColor gives shape i the same colour on every chart.
func seriesColor(i int) color.Color {
	return plotutil.DarkColors[i%len(plotutil.DarkColors)]
}

// timelineSpan is the length of the longest series, in seconds.
func timelineSpan(r *Result) float64 {
	n := len(r.TargetTimeline)
	for _, t := range r.Timeline {
		n = max(n, len(t.Created), len(t.Finished), len(t.P99MS))
	}
	return float64(n)
}

// chartBands lists the warm-up and the fault phases, clipped to [0, span].
func chartBands(r *Result, span float64) []band {
	all := []band{{name: "warm-up", start: 0, end: r.WarmupSeconds, fill: warmupFill}}
	for i, p := range r.Phases {
		all = append(all, band{name: phaseName(p, i), start: p.StartSeconds, end: p.EndSeconds, fill: phaseFill})
	}
	out := make([]band, 0, len(all))
	for _, b := range all {
		b.start, b.end = math.Max(b.start, 0), math.Min(b.end, span)
		if b.end > b.start { // false for NaN too
			out = append(out, b)
		}
	}
	return out
}

// timeChart draws series over time with the bands shaded behind them; with no value
// to draw it returns a note instead of a chart.
func timeChart(title, yLabel string, series []timeSeries, keep func(float64) bool, bands []band, span float64) (chartView, error) {
	cv := chartView{Title: title}
	top, ok := seriesMax(series, keep)
	if span <= 0 || !ok {
		cv.Note = "no data"
		return cv, nil
	}
	top = headroom(top)
	p := newPlot(title, "seconds since the start of the run", yLabel)
	if err := addBands(p, bands, span, top); err != nil {
		return cv, err
	}
	for _, s := range series {
		if err := addSeries(p, s, keep); err != nil {
			return cv, fmt.Errorf("series %q: %w", s.name, err)
		}
	}
	p.X.Min, p.X.Max = 0, span
	p.Y.Min, p.Y.Max = 0, top
	svg, err := renderSVG(p)
	cv.SVG = svg
	return cv, err
}

// seriesMax is the largest kept value; ok is false when no value is kept.
func seriesMax(series []timeSeries, keep func(float64) bool) (top float64, ok bool) {
	for _, s := range series {
		for _, v := range s.values {
			if keep(v) {
				top, ok = math.Max(top, v), true
			}
		}
	}
	return top, ok
}

// headroom leaves space above the data for the band labels and the legend.
func headroom(top float64) float64 {
	if top <= 0 {
		return 1
	}
	return top * 1.45
}

// newPlot is a plot with the report's fonts and a grid.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, xLabel, yLabel
	for _, f := range []*font.Font{&p.Title.TextStyle.Font, &p.X.Label.TextStyle.Font,
		&p.Y.Label.TextStyle.Font, &p.X.Tick.Label.Font, &p.Y.Tick.Label.Font, &p.Legend.TextStyle.Font} {
		f.Typeface, f.Variant = chartFont.Typeface, chartFont.Variant
	}
	p.Legend.TextStyle.Font.Size = 10
	p.Add(plotter.NewGrid())
	return p
}

// bandLabelRows is how many rows the band names are staggered over, so that names of
// bands that start close together do not print over one another.
const bandLabelRows = 3

// addBands shades each band from 0 to top and writes its name near its top edge.
func addBands(p *plot.Plot, bands []band, span, top float64) error {
	for i, b := range bands {
		poly, err := plotter.NewPolygon(plotter.XYs{{X: b.start, Y: 0}, {X: b.end, Y: 0}, {X: b.end, Y: top}, {X: b.start, Y: top}})
		if err != nil {
			return fmt.Errorf("band %q: %w", b.name, err)
		}
		poly.Color, poly.Width = b.fill, 0
		at, align, dx := b.start, text.XLeft, vg.Length(3)
		if b.start > span*0.75 { // near the right edge: hang the label leftwards from the end
			at, align, dx = b.end, text.XRight, -3
		}
		label, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: at, Y: top}}, Labels: []string{b.name}})
		if err != nil {
			return fmt.Errorf("band %q label: %w", b.name, err)
		}
		label.TextStyle[0].Font = font.From(chartFont, 9)
		label.TextStyle[0].XAlign, label.TextStyle[0].YAlign = align, text.YTop
		label.Offset = vg.Point{X: dx, Y: -3 - vg.Length(11*(i%bandLabelRows))}
		p.Add(poly, label)
	}
	return nil
}

// addSeries draws a series as lines through its runs of kept values (a gap where no
// value is kept), a lone value as a dot, and adds it to the legend.
func addSeries(p *plot.Plot, s timeSeries, keep func(float64) bool) error {
	var legend plot.Thumbnailer
	for _, run := range runsOf(s.values, keep) {
		pl, err := runPlotter(run, s)
		if err != nil {
			return err
		}
		p.Add(pl)
		if legend == nil {
			legend = pl
		}
	}
	if legend != nil {
		p.Legend.Add(s.name, legend)
	}
	return nil
}

// seriesPlotter draws part of a series and its legend entry.
type seriesPlotter interface {
	plot.Plotter
	plot.Thumbnailer
}

// runPlotter is a line through run, or a dot when run has one point.
func runPlotter(run plotter.XYs, s timeSeries) (seriesPlotter, error) {
	if len(run) == 1 {
		dot, err := plotter.NewScatter(run)
		if err != nil {
			return nil, fmt.Errorf("dot: %w", err)
		}
		dot.Color, dot.Radius = s.color, 1.5
		dot.Shape = draw.CircleGlyph{}
		return dot, nil
	}
	line, err := plotter.NewLine(run)
	if err != nil {
		return nil, fmt.Errorf("line: %w", err)
	}
	line.Color, line.Width = s.color, 1.5
	if s.dashed {
		line.Dashes = []vg.Length{6, 3}
	}
	return line, nil
}

// runsOf splits values into runs of kept values, each point at the middle of its second.
func runsOf(values []float64, keep func(float64) bool) []plotter.XYs {
	var runs []plotter.XYs
	var cur plotter.XYs
	for i, v := range values {
		if !keep(v) {
			if len(cur) > 0 {
				runs, cur = append(runs, cur), nil
			}
			continue
		}
		cur = append(cur, plotter.XY{X: float64(i) + 0.5, Y: v})
	}
	if len(cur) > 0 {
		runs = append(runs, cur)
	}
	return runs
}

// finalStatesChart draws a bar per terminal state for all shapes together and, when the
// mix has more than one shape, a bar per shape beside it.
func finalStatesChart(r *Result) (chartView, error) {
	cv := chartView{Title: "Final states of the created tasks"}
	states, groups := stateGroups(r)
	if len(states) == 0 {
		cv.Note = "no data"
		return cv, nil
	}
	p := newPlot(cv.Title, "", "tasks")
	slot := (chartWidth - 100) / vg.Length(len(states))
	barWidth := min(slot*0.8, 240) / vg.Length(len(groups))
	for j, g := range groups {
		vals := make(plotter.Values, len(states))
		for i, st := range states {
			vals[i] = float64(g.counts[st])
		}
		bars, err := plotter.NewBarChart(vals, barWidth)
		if err != nil {
			return cv, fmt.Errorf("bars %q: %w", g.name, err)
		}
		bars.Color, bars.LineStyle.Width = g.color, 0
		bars.Offset = (vg.Length(j) - vg.Length(len(groups)-1)/2) * barWidth
		p.Add(bars)
		p.Legend.Add(g.name, bars)
	}
	p.NominalX(states...)
	p.Y.Min, p.Y.Max = 0, headroom(p.Y.Max)
	svg, err := renderSVG(p)
	cv.SVG = svg
	return cv, err
}

// stateGroup is one set of bars: a name, its colour and its counts by state.
type stateGroup struct {
	name   string
	color  color.Color
	counts map[string]int64
}

// stateGroups lists the states with a non-zero count anywhere, sorted, and the bar
// groups: all shapes, then each shape when there is more than one.
func stateGroups(r *Result) ([]string, []stateGroup) {
	groups := []stateGroup{{name: "all shapes", color: color.NRGBA{R: 90, G: 90, B: 90, A: 255}, counts: r.FinalStates}}
	if len(r.Shapes) > 1 {
		for i, s := range r.Shapes {
			groups = append(groups, stateGroup{name: shapeLabel(s.Name, i), color: seriesColor(shapeIndex(r, s.Name, i)), counts: s.FinalStates})
		}
	}
	seen := map[string]int64{}
	for _, g := range groups {
		for st, n := range g.counts {
			if n > 0 {
				seen[st] += n
			}
		}
	}
	return sortedKeys(seen), groups
}

// shapeIndex is the shape's position in the timeline, so its bars take the colour of its
// lines; def when the timeline does not have it.
func shapeIndex(r *Result, name string, def int) int {
	for i, t := range r.Timeline {
		if t.Shape == name {
			return i
		}
	}
	return def
}

// renderSVG draws p as an SVG element ready to inline in HTML. gonum escapes the text
// it draws, so the markup is safe to embed as is. A panic inside gonum becomes an error.
func renderSVG(p *plot.Plot) (svg template.HTML, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("drawing the chart: %v", v)
		}
	}()
	c := vgsvg.New(chartWidth, chartHeight)
	drawWithLegendBeside(p, draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return "", fmt.Errorf("writing the SVG: %w", err)
	}
	s := buf.String()
	start := strings.Index(s, "<svg")
	if start < 0 {
		return "", errors.New("writing the SVG: no <svg> element in gonum's output")
	}
	return template.HTML(s[start:]), nil //nolint:gosec // gonum's SVG, text escaped by vgsvg
}

// drawWithLegendBeside draws p with its legend in a column on the right, outside the data
// area, so it never hides a line or a phase label.
func drawWithLegendBeside(p *plot.Plot, c draw.Canvas) {
	legend := p.Legend
	p.Legend = plot.NewLegend()
	width := legend.Rectangle(c).Size().X
	if width <= 0 {
		p.Draw(c)
		return
	}
	const gap = vg.Length(10)
	p.Draw(draw.Crop(c, 0, -(width + 2*gap), 0, 0))
	legend.Top, legend.Left, legend.Padding = true, true, 3
	// Start level with the top of the data area, below the title.
	top := -(p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y + p.Title.Padding)
	legend.Draw(draw.Crop(c, c.Size().X-width-gap, 0, 0, top))
}

// reportTemplate lays out the page; html/template escapes every value in it.
var reportTemplate = template.Must(template.New("report").Parse(reportHTML))

const reportHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; font-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
{{.FontCSS}}
body{font-family:"Liberation Sans",Arial,Helvetica,sans-serif;margin:1.5em auto;max-width:1000px;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}
h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{display:inline-block;padding:.15em .6em;border-radius:.3em;font-weight:bold;color:#fff}
.pass{background:#1a7f37}.fail{background:#c62828}
tr.warn td{background:#fff3e0}
figure{margin:1em 0}
figure svg{max-width:100%;height:auto;display:block}
figcaption{font-weight:bold;margin-bottom:.3em}
.nodata{color:#777;font-style:italic;border:1px dashed #ccc;padding:1em}
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p><span class="verdict {{if .Passed}}pass{{else}}fail{{end}}">{{.Verdict}}</span></p>

<h2>Summary</h2>
<table id="summary">
{{range .Summary}}<tr{{if .Warn}} class="warn"{{end}}><th>{{.Label}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
{{with .Problems}}<h3>Reconciliation problems</h3>
<ul id="problems">{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}

<h2>Thresholds</h2>
{{if .Thresholds}}<table id="thresholds"><tr><th>Check</th><th>Actual</th><th>Result</th></tr>
{{range .Thresholds}}<tr{{if not .Passed}} class="warn"{{end}}><td>{{.Expr}}</td><td class="num">{{.Actual}}</td><td>{{if .Passed}}passed{{else}}FAILED{{end}}</td></tr>
{{end}}</table>{{else}}<p>No thresholds were set.</p>{{end}}

<h2>Latency by shape (ms, intended start to terminal)</h2>
<table id="latency"><tr><th>Shape</th><th>Namespace</th><th>Weight</th><th>Created</th><th>Rate/s</th><th>Count</th><th>Mean</th><th>P50</th><th>P90</th><th>P99</th><th>P99.9</th><th>Max</th></tr>
{{range .Latency}}<tr><td>{{.Name}}</td><td>{{.Namespace}}</td><td class="num">{{.Weight}}</td><td class="num">{{.Created}}</td><td class="num">{{.Rate}}</td><td class="num">{{.Count}}</td><td class="num">{{.Mean}}</td><td class="num">{{.P50}}</td><td class="num">{{.P90}}</td><td class="num">{{.P99}}</td><td class="num">{{.P999}}</td><td class="num">{{.Max}}</td></tr>
{{end}}</table>

<h2>Fault phases</h2>
{{if .Phases}}<table id="phases"><tr><th>Phase</th><th>Target</th><th>Start (s)</th><th>End (s)</th><th>Error</th></tr>
{{range .Phases}}<tr{{if .Error}} class="warn"{{end}}><td>{{.Name}}</td><td>{{.Target}}</td><td class="num">{{.Start}}</td><td class="num">{{.End}}</td><td>{{.Error}}</td></tr>
{{end}}</table>{{else}}<p>No fault phases.</p>{{end}}

<h2>Charts</h2>
<p>Shaded bands: grey is the warm-up, amber a fault phase. Each point covers one second.</p>
{{range .Charts}}<figure>
{{if .SVG}}{{.SVG}}{{else}}<figcaption>{{.Title}}</figcaption>
<p class="nodata">{{.Note}}</p>{{end}}
</figure>
{{end}}
{{with .Unfinished}}<h2>Unfinished tasks</h2>
<table id="unfinished"><tr><th>Task</th><th>Shape</th><th>Last status</th></tr>
{{range .}}<tr><td>{{.TaskUUID}}</td><td>{{.Shape}}</td><td>{{.Status}}</td></tr>
{{end}}</table>{{end}}
{{if .UnfinishedHidden}}<p>… and {{.UnfinishedHidden}} more.</p>{{end}}
</body>
</html>
`
