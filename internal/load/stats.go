package load

import (
	"slices"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1 µs to 1 hour with 3 significant digits.
const (
	histMinUS   = 1
	histMaxUS   = int64(time.Hour / time.Microsecond)
	histSigFigs = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMinUS, histMaxUS, histSigFigs) }

// shapeStats is one shape's share of the recorder.
type shapeStats struct {
	hist            *hdrhistogram.Histogram
	created         int64
	createdMeasured int64
	final           map[string]int64
	createdAt       []int64     // per second
	finishedAt      []int64     // per second
	latencyAt       [][]float64 // per second, ms; emptied once the second is folded into p99At
	p99At           []float64   // per second, ms, for the seconds already folded
}

// keepSeconds is how many recent seconds keep their raw latencies (the live view needs
// the last liveWindow); older ones are folded into their P99, so a run of days stays small.
const keepSeconds = 2 * liveWindow

// fold replaces the raw latencies of the seconds before upTo with their P99.
func (s *shapeStats) fold(upTo int) {
	for i := len(s.p99At); i < upTo && i < len(s.latencyAt); i++ {
		s.p99At = append(s.p99At, quantile(s.latencyAt[i], 0.99))
		s.latencyAt[i] = nil
	}
}

// p99s returns the P99 of every second so far.
func (s *shapeStats) p99s() []float64 {
	out := slices.Clone(s.p99At)
	for i := len(s.p99At); i < len(s.latencyAt); i++ {
		out = append(out, quantile(s.latencyAt[i], 0.99))
	}
	return out
}

// recorder collects every event of a run. It is the single place figures come from, so
// the summary, the JSON and the report agree.
type recorder struct {
	mu       sync.Mutex
	warmup   time.Duration
	shapes   []*shapeStats
	overall  *hdrhistogram.Histogram
	refused  map[string]int64
	final    map[string]int64
	arrivals int64 // due in the measured window
	missed   int64
	created  int64
	finished int64
}

func newRecorder(shapes int, warmup time.Duration) *recorder {
	r := &recorder{warmup: warmup, overall: newHist(), refused: map[string]int64{}, final: map[string]int64{}}
	for range shapes {
		r.shapes = append(r.shapes, &shapeStats{hist: newHist(), final: map[string]int64{}})
	}
	return r
}

func grow[T any](s []T, i int) []T {
	if i < len(s) {
		return s
	}
	return append(s, make([]T, i+1-len(s))...)
}

func second(at time.Duration) int { return max(int(at/time.Second), 0) }

// arrival notes a task due at intended (offset from the run's start).
func (r *recorder) arrival(intended time.Duration) {
	if intended < r.warmup {
		return
	}
	r.mu.Lock()
	r.arrivals++
	r.mu.Unlock()
}

// miss notes an arrival the generator could not start on time.
func (r *recorder) miss() {
	r.mu.Lock()
	r.missed++
	r.mu.Unlock()
}

// refuse notes a creation the API refused, by status ("503") or "network".
func (r *recorder) refuse(status string) {
	r.mu.Lock()
	r.refused[status]++
	r.mu.Unlock()
}

// create notes an accepted creation at offset at.
func (r *recorder) create(shape int, intended, at time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.shapes[shape]
	s.created++
	r.created++
	if intended >= r.warmup {
		s.createdMeasured++
	}
	i := second(at)
	s.createdAt = grow(s.createdAt, i)
	s.createdAt[i]++
}

// finish notes a task seen terminal at offset at, in state status.
func (r *recorder) finish(shape int, intended, at time.Duration, status string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.shapes[shape]
	s.final[status]++
	r.final[status]++
	r.finished++
	i := second(at)
	s.finishedAt = grow(s.finishedAt, i)
	s.finishedAt[i]++
	if intended < r.warmup {
		return
	}
	lat := at - intended
	us := max(lat.Microseconds(), histMinUS)
	_ = s.hist.RecordValue(min(us, histMaxUS)) // clamped into range, so it cannot fail
	_ = r.overall.RecordValue(min(us, histMaxUS))
	s.latencyAt = grow(s.latencyAt, i)
	s.latencyAt[i] = append(s.latencyAt[i], float64(lat.Microseconds())/1000)
	s.fold(i - keepSeconds)
}

// live is what the progress line shows.
type live struct {
	Created, Finished, Missed int64
	Refused                   int64
	Rate                      float64 // created per second over the last window
	P99MS                     float64 // over the last window
}

// liveWindow is how many whole seconds the live rate and P99 cover.
const liveWindow = 5

// live summarises the run so far; now is the offset of the moment asked about.
func (r *recorder) live(now time.Duration) live {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := live{Created: r.created, Finished: r.finished, Missed: r.missed}
	for _, n := range r.refused {
		l.Refused += n
	}
	end := second(now) // the current, unfinished second is left out
	from := max(end-liveWindow, 0)
	var lat []float64
	var created int64
	for _, s := range r.shapes {
		for i := from; i < end; i++ {
			if i < len(s.createdAt) {
				created += s.createdAt[i]
			}
			if i < len(s.latencyAt) {
				lat = append(lat, s.latencyAt[i]...)
			}
		}
	}
	if end > from {
		l.Rate = float64(created) / float64(end-from)
	}
	l.P99MS = quantile(lat, 0.99)
	return l
}

// quantile returns the q-quantile (nearest rank) of xs, 0 for none.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

func summarise(h *hdrhistogram.Histogram) LatencySummary {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	if h.TotalCount() == 0 {
		return LatencySummary{}
	}
	return LatencySummary{Count: h.TotalCount(), Mean: h.Mean() / 1000,
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max())}
}

// fill writes the recorder's figures into res; measured is the measured window's length.
func (r *recorder) fill(res *Result, mix *Mix, measured time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res.Arrivals, res.Missed, res.Created = r.arrivals, r.missed, r.created
	res.HTTPErrors, res.FinalStates = cloneCounts(r.refused), cloneCounts(r.final)
	res.Overall = summarise(r.overall)
	var createdMeasured int64
	for i, s := range r.shapes {
		e := mix.Entries[i]
		sr := ShapeResult{Name: e.Name, Namespace: e.Namespace, Weight: e.Weight, Created: s.created,
			FinalStates: cloneCounts(s.final), Latency: summarise(s.hist)}
		if measured > 0 {
			sr.AchievedRate = float64(s.createdMeasured) / measured.Seconds()
		}
		createdMeasured += s.createdMeasured
		res.Shapes = append(res.Shapes, sr)
		tl := ShapeTimeline{Shape: e.Name, Created: slices.Clone(s.createdAt), Finished: slices.Clone(s.finishedAt),
			P99MS: s.p99s()}
		res.Timeline = append(res.Timeline, tl)
	}
	if measured > 0 {
		res.AchievedRate = float64(createdMeasured) / measured.Seconds()
	}
}

func cloneCounts(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
