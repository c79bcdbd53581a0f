package load

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Stage moves the target rate linearly from the previous stage's rate (or From, for the
// first) to Rate over Duration; k6's stages work the same way.
type Stage struct {
	Rate     float64
	Duration time.Duration
}

// Schedule is the open model's target rate over time.
type Schedule struct {
	// Start is the rate at time 0.
	Start float64
	// Stages follow one another; after the last, its rate holds.
	Stages []Stage
}

// MaxRate bounds any target rate, tasks/s.
const MaxRate = 100000

// ConstantRate is a schedule that holds rate for ever.
func ConstantRate(rate float64) Schedule { return Schedule{Start: rate} }

// ParseRamp reads --ramp FROM:TO:DURATION, e.g. 10:200:5m.
func ParseRamp(spec string) (Schedule, error) {
	parts := strings.Split(spec, ":")
	if len(parts) != 3 {
		return Schedule{}, fmt.Errorf("--ramp %q: must be FROM:TO:DURATION, e.g. 10:200:5m", spec)
	}
	from, err := parseRate("--ramp", spec, parts[0])
	if err != nil {
		return Schedule{}, err
	}
	to, err := parseRate("--ramp", spec, parts[1])
	if err != nil {
		return Schedule{}, err
	}
	d, err := time.ParseDuration(parts[2])
	if err != nil || d <= 0 {
		return Schedule{}, fmt.Errorf("--ramp %q: duration %q must be positive, e.g. 5m", spec, parts[2])
	}
	return Schedule{Start: from, Stages: []Stage{{Rate: to, Duration: d}}}, nil
}

// ParseStages reads --stages RATE:DURATION,..., starting from start (the --rate).
func ParseStages(start float64, spec string) (Schedule, error) {
	s := Schedule{Start: start}
	for part := range strings.SplitSeq(spec, ",") {
		rate, dur, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return Schedule{}, fmt.Errorf("--stages %q: each stage must be RATE:DURATION, e.g. 200:5m", spec)
		}
		r, err := parseRate("--stages", spec, rate)
		if err != nil {
			return Schedule{}, err
		}
		d, err := time.ParseDuration(dur)
		if err != nil || d <= 0 {
			return Schedule{}, fmt.Errorf("--stages %q: duration %q must be positive, e.g. 5m", spec, dur)
		}
		s.Stages = append(s.Stages, Stage{Rate: r, Duration: d})
	}
	return s, nil
}

func parseRate(flag, spec, v string) (float64, error) {
	r, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || r <= 0 || r > MaxRate {
		return 0, fmt.Errorf("%s %q: rate %q must be a number of tasks/s above 0 and at most %d", flag, spec, v, MaxRate)
	}
	return r, nil
}

// Length is how long the stages last (0 for a constant rate).
func (s Schedule) Length() time.Duration {
	var total time.Duration
	for _, st := range s.Stages {
		total += st.Duration
	}
	return total
}

// RateAt is the target rate t after the start.
func (s Schedule) RateAt(t time.Duration) float64 {
	from := s.Start
	for _, st := range s.Stages {
		if t < st.Duration {
			return from + (st.Rate-from)*float64(t)/float64(st.Duration)
		}
		t -= st.Duration
		from = st.Rate
	}
	return from
}

// arrivals yields the intended start times of an open-model run: the n-th arrival is due
// when the integral of the rate reaches n. The times are fixed in advance of anything the
// system does, which is what keeps latency honest when the system slows down.
type arrivals struct {
	sched Schedule
	t     time.Duration // the last arrival's offset
}

// next returns the offset of the next arrival.
func (a *arrivals) next() time.Duration {
	// Integrate in steps of at most 10 ms so that ramps stay accurate at low rates.
	const step = 10 * time.Millisecond
	need := 1.0
	t := a.t
	for {
		r := a.sched.RateAt(t)
		gain := r * step.Seconds()
		if gain >= need {
			t += time.Duration(need / r * float64(time.Second))
			a.t = t
			return t
		}
		need -= gain
		t += step
	}
}
