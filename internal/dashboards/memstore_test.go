package dashboards_test

import (
	"context"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/tasker-sim/tasker-sim/internal/dashboards/fixture"
)

// memStore holds the fixture's series in memory as a PromQL engine's storage: a few
// thousand series need no TSDB (and the test binary none of its dependencies).
type memStore struct {
	series []storage.Series
}

// newMemStore loads a fixture, adding a staleness marker where a series stopped being
// served, as a Prometheus scrape would.
func newMemStore(f *fixture.Fixture) *memStore {
	m := &memStore{}
	for _, s := range f.Series {
		var samples []chunks.Sample
		for i, v := range s.Values {
			switch {
			case v != nil:
				samples = append(samples, floatSample{t: f.Timestamps[i], f: *v})
			case i > 0 && s.Values[i-1] != nil:
				samples = append(samples, floatSample{t: f.Timestamps[i], f: math.Float64frombits(value.StaleNaN)})
			}
		}
		m.series = append(m.series, storage.NewListSeries(labels.FromMap(s.Labels), samples))
	}
	slices.SortFunc(m.series, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return m
}

// Querier implements storage.Queryable; the engine seeks within the returned series, so
// the time range needs no filtering here.
func (m *memStore) Querier(int64, int64) (storage.Querier, error) { return m, nil }

// Select returns the series every matcher matches, sorted by labels.
func (m *memStore) Select(_ context.Context, _ bool, _ *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	var out []storage.Series
	for _, s := range m.series {
		ls := s.Labels()
		if !slices.ContainsFunc(matchers, func(mt *labels.Matcher) bool { return !mt.Matches(ls.Get(mt.Name)) }) {
			out = append(out, s)
		}
	}
	return &seriesSet{series: out, at: -1}
}

// LabelValues is not needed by instant queries.
func (m *memStore) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

// LabelNames is not needed by instant queries.
func (m *memStore) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

// Close has nothing to release.
func (m *memStore) Close() error { return nil }

type seriesSet struct {
	series []storage.Series
	at     int
}

func (s *seriesSet) Next() bool                        { s.at++; return s.at < len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.at] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// floatSample is one float sample.
type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }
