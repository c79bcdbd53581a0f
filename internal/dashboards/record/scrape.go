package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// target is one process to scrape.
type target struct {
	job, instance, url string
}

// round is one scrape of every target; bodies are each target's /metrics text, gzipped
// (the correlation_id series make them large until assemble drops that label). at is
// when the last target answered: no value of the round was observed after it, so a
// round stamped before a fault phase began saw no effect of that fault.
type round struct {
	at     time.Time
	bodies [][]byte
}

// scraper reads every target's /metrics at a fixed interval.
type scraper struct {
	targets  []target
	interval time.Duration
	client   *http.Client
	rounds   []round
}

func newScraper(ts []target, interval time.Duration) *scraper {
	// A large /metrics (every task's correlation_id series) can take longer than the
	// interval to serve; the ticker then drops the rounds that could not start.
	return &scraper{targets: ts, interval: interval, client: &http.Client{Timeout: max(interval, 10*time.Second)}}
}

// loop scrapes until ctx ends. A round where some target does not answer is skipped.
func (s *scraper) loop(ctx context.Context) {
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		r, err := s.scrape(ctx)
		if err != nil {
			logf("round at %s skipped: %v", time.Now().Format(time.TimeOnly), err)
		} else {
			s.rounds = append(s.rounds, r)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *scraper) scrape(ctx context.Context) (round, error) {
	var r round
	for _, t := range s.targets {
		body, err := s.fetch(ctx, t.url+"/metrics")
		if err != nil {
			return r, fmt.Errorf("%s: %w", t.job, err)
		}
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, _ = zw.Write(body)
		_ = zw.Close()
		r.bodies = append(r.bodies, z.Bytes())
	}
	r.at = time.Now()
	return r, nil
}

func (s *scraper) fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// sample is one series' value in one round.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parse reads one gzipped /metrics body into samples, histograms as their _bucket (with
// le), _sum and _count series, each labelled with the target's job and instance.
func parse(body []byte, t target) ([]sample, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.job, err)
	}
	var out []sample
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			labels := map[string]string{"job": t.job, "instance": t.instance}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out = append(out, flatten(name, fam.GetType(), m, labels)...)
		}
	}
	return out, nil
}

func flatten(name string, kind dto.MetricType, m *dto.Metric, labels map[string]string) []sample {
	switch kind {
	case dto.MetricType_COUNTER:
		return []sample{{name, labels, m.GetCounter().GetValue()}}
	case dto.MetricType_GAUGE:
		return []sample{{name, labels, m.GetGauge().GetValue()}}
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		out := []sample{{name + "_count", labels, float64(h.GetSampleCount())}, {name + "_sum", labels, h.GetSampleSum()}}
		sawInf := false
		for _, b := range h.GetBucket() {
			sawInf = sawInf || math.IsInf(b.GetUpperBound(), 1)
			out = append(out, sample{name + "_bucket", with(labels, "le", formatLE(b.GetUpperBound())), float64(b.GetCumulativeCount())})
		}
		if !sawInf {
			out = append(out, sample{name + "_bucket", with(labels, "le", "+Inf"), float64(h.GetSampleCount())})
		}
		return out
	default:
		return []sample{{name, labels, m.GetUntyped().GetValue()}}
	}
}

func formatLE(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func with(labels map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(labels)+1)
	for lk, lv := range labels {
		out[lk] = lv
	}
	out[k] = v
	return out
}
