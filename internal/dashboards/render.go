package dashboards

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/gauge"
	"github.com/grafana/grafana-foundation-sdk/go/piechart"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// panelHeight is every panel's height in grid units.
const panelHeight = 8

// defaultWidth is a panel's width when it does not set one: three to a row.
const defaultWidth = 8

// datasource is the provisioned Prometheus datasource every query goes to.
func datasource() common.DataSourceRef {
	return common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr(DatasourceUID)}
}

// RenderJSON renders a dashboard as Grafana's JSON model, indented, newline-terminated.
func RenderJSON(d Dashboard) ([]byte, error) {
	// The classic (v1) JSON model: it is what Grafana's file provisioning loads without
	// feature flags, where the SDK's preferred dashboardv2 needs them.
	b := dashboard.NewDashboardBuilder(d.Title) //nolint:staticcheck // see above
	b.Uid(d.UID).Description(d.Description).Tags([]string{"tasker"}).Editable().Refresh("30s").
		Time("now-1h", "now").Timezone(common.TimeZoneBrowser).Tooltip(dashboard.DashboardCursorSyncCrosshair)
	for _, v := range d.Variables {
		b.WithVariable(dashboard.NewQueryVariableBuilder(v.Name).Label(v.Label).Datasource(datasource()).
			Query(dashboard.StringOrMap{String: ptr(v.Query())}).Definition(v.Query()).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalDesc))
	}
	id := uint32(0)
	for _, r := range d.Rows {
		id++
		b.WithRow(dashboard.NewRowBuilder(r.Title).Id(id))
		for _, p := range r.Panels {
			id++
			panel, err := build(p, id)
			if err != nil {
				return nil, fmt.Errorf("dashboard %s panel %q: %w", d.UID, p.Title, err)
			}
			b.WithPanel(panel)
		}
	}
	model, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", d.UID, err)
	}
	out, err := json.MarshalIndent(model, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", d.UID, err)
	}
	return append(out, '\n'), nil
}

// panelBuilder is what every visualization's builder of the SDK offers.
type panelBuilder[B any] interface {
	cog.Builder[dashboard.Panel]
	Id(id uint32) B
	Title(title string) B
	Description(description string) B
	Datasource(datasource common.DataSourceRef) B
	Height(h uint32) B
	Span(w uint32) B
	Unit(unit string) B
	Min(min float64) B
	Max(max float64) B
	Mappings(mappings []dashboard.ValueMapping) B
	Thresholds(thresholds cog.Builder[dashboard.ThresholdsConfig]) B
	NoValue(noValue string) B
	WithTarget(target cog.Builder[variants.Dataquery]) B
}

// build picks the visualization's builder and sets what is particular to it.
func build(p Panel, id uint32) (cog.Builder[dashboard.Panel], error) {
	last := common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false)
	tooltip := common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending)
	legend := common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).
		Placement(common.LegendPlacementBottom).ShowLegend(true)
	switch p.Viz {
	case TimeSeries:
		b := configure(timeseries.NewPanelBuilder(), p, id).FillOpacity(10).Tooltip(tooltip).Legend(legend)
		if p.Stacked {
			b.FillOpacity(40).Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
		}
		return b, nil
	case Stat:
		return configure(stat.NewPanelBuilder(), p, id).ReduceOptions(last).Orientation(common.VizOrientationAuto).
			ColorMode(common.BigValueColorModeValue).GraphMode(common.BigValueGraphModeNone), nil
	case Gauge:
		return configure(gauge.NewPanelBuilder(), p, id).ReduceOptions(last).Orientation(common.VizOrientationAuto), nil
	case StateTimeline:
		return configure(statetimeline.NewPanelBuilder(), p, id).MergeValues(true).FillOpacity(80).
			Tooltip(tooltip).Legend(legend), nil
	case PieChart:
		return configure(piechart.NewPanelBuilder(), p, id).ReduceOptions(last).PieType(piechart.PieChartTypeDonut).
			Orientation(common.VizOrientationAuto).Tooltip(tooltip).
			Legend(piechart.NewPieChartLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).
				Placement(common.LegendPlacementRight).ShowLegend(true)).
			DisplayLabels([]piechart.PieChartLabels{piechart.PieChartLabelsName, piechart.PieChartLabelsPercent}), nil
	case BarGauge:
		return configure(bargauge.NewPanelBuilder(), p, id).ReduceOptions(last).Legend(legend).
			Orientation(common.VizOrientationHorizontal).DisplayMode(common.BarGaugeDisplayModeBasic), nil
	}
	return nil, fmt.Errorf("viz %q: must be one of timeseries, stat, gauge, state-timeline, piechart, bargauge", p.Viz)
}

// configure sets what every visualization shares: identity, size, unit, range,
// thresholds, mappings and the queries.
func configure[B panelBuilder[B]](b B, p Panel, id uint32) B {
	width := p.Width
	if width == 0 {
		width = defaultWidth
	}
	b.Id(id).Title(p.Title).Datasource(datasource()).Height(panelHeight).Span(width)
	if p.Description != "" {
		b.Description(p.Description)
	}
	if p.Unit != "" {
		b.Unit(p.Unit)
	}
	if p.NoValue != "" {
		b.NoValue(p.NoValue)
	}
	if p.Min != nil {
		b.Min(*p.Min)
	}
	if p.Max != nil {
		b.Max(*p.Max)
	}
	if len(p.Thresholds) > 0 {
		b.Thresholds(thresholds(p.Thresholds))
	}
	if len(p.Mappings) > 0 {
		b.Mappings(mappings(p.Mappings))
	}
	for i, query := range p.Queries {
		t := prometheus.NewDataqueryBuilder().Datasource(datasource()).RefId(string(rune('A' + i))).
			Expr(query.Expr).LegendFormat(query.Legend)
		if query.Instant {
			t.Instant()
		} else {
			t.Range()
		}
		b.WithTarget(t)
	}
	return b
}

func thresholds(steps []Step) *dashboard.ThresholdsConfigBuilder {
	out := make([]dashboard.Threshold, len(steps))
	for i, s := range steps {
		out[i] = dashboard.Threshold{Color: s.Color}
		if i > 0 { // the base step has no value (-Infinity)
			out[i].Value = ptr(s.Value)
		}
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(out)
}

func mappings(ms []Mapping) []dashboard.ValueMapping {
	options := map[string]dashboard.ValueMappingResult{}
	for i, m := range ms {
		options[m.Value] = dashboard.ValueMappingResult{Text: ptr(m.Text), Color: ptr(m.Color), Index: ptr(int32(i))}
	}
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: options}}}
}
