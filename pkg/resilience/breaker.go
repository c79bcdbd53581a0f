// Package resilience holds the mechanisms the reference's resilience metrics observe:
// circuit breakers (sony/gobreaker) with the reference's state numbering, and the
// monitored bounded channel every internal queue of work is built from.
package resilience

import (
	"cmp"
	"errors"
	"log/slog"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// State is a breaker state with the reference's numbering.
type State int64

// Breaker states, as api_circuit_breaker_state and tasker_circuit_breaker_state report them.
const (
	Closed   State = 0
	HalfOpen State = 1
	Open     State = 2
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "unknown"
}

// Breaker components.
const (
	WebDatabase   = telemetry.BreakerWebDatabase
	TaskReadiness = "task_readiness"
	PGMQ          = "pgmq"
	FFICompletion = "ffi_completion"
)

// Defaults from tasker-core's circuit breaker configuration.
const (
	FailureThresholdDefault = 5
	OpenTimeoutDefault      = 30 * time.Second
	SuccessThresholdDefault = 2
)

// BreakerConfig sets when a breaker opens and how it recovers.
type BreakerConfig struct {
	// FailureThreshold consecutive failures open the breaker. Default 5.
	FailureThreshold uint32
	// OpenTimeout is how long it stays open before letting a trial call through
	// (half-open). Default 30 s.
	OpenTimeout time.Duration
	// SuccessThreshold successful trial calls close it again. Default 2.
	SuccessThreshold uint32
}

// ErrOpen is returned while a breaker refuses calls.
var ErrOpen = errors.New("circuit breaker open")

// Breaker guards one component.
type Breaker struct {
	name    string
	timeout time.Duration
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}]
}

// NewBreaker builds a breaker; state changes are logged.
func NewBreaker(name string, cfg BreakerConfig, log *slog.Logger) *Breaker {
	threshold := cmp.Or(cfg.FailureThreshold, FailureThresholdDefault)
	timeout := cmp.Or(cfg.OpenTimeout, OpenTimeoutDefault)
	if log == nil {
		log = slog.Default()
	}
	return &Breaker{name: name, timeout: timeout, cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: cmp.Or(cfg.SuccessThreshold, SuccessThresholdDefault),
		Timeout:     timeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= threshold },
		OnStateChange: func(name string, from, to gobreaker.State) {
			log.Warn("circuit breaker changed state", "component", name, "from", convert(from).String(), "to", convert(to).String())
		},
	})}
}

func convert(s gobreaker.State) State {
	switch s {
	case gobreaker.StateClosed:
		return Closed
	case gobreaker.StateHalfOpen:
		return HalfOpen
	case gobreaker.StateOpen:
		return Open
	}
	return Open
}

// Name is the breaker's component name.
func (b *Breaker) Name() string { return b.name }

// State is the breaker's current state.
func (b *Breaker) State() State { return convert(b.cb.State()) }

// RetryAfter is how long a refused caller should wait: the open timeout.
func (b *Breaker) RetryAfter() time.Duration { return b.timeout }

// Allow asks to make one call. When the breaker refuses, it returns ErrOpen; otherwise
// the caller must report the call's outcome through done.
func (b *Breaker) Allow() (done func(success bool), err error) {
	report, err := b.cb.Allow()
	if err != nil {
		return nil, ErrOpen
	}
	return func(success bool) {
		if success {
			report(nil)
		} else {
			report(errFailed)
		}
	}, nil
}

var errFailed = errors.New("call failed")

// Check describes the breaker for /health/detailed: closed is healthy, half-open
// degraded, open unhealthy.
func (b *Breaker) Check() api.Check {
	c := api.Check{Status: "healthy", Message: "circuit breaker " + b.State().String()}
	switch b.State() {
	case HalfOpen:
		c.Status = "degraded"
	case Open:
		c.Status = "unhealthy"
	case Closed:
	}
	return c
}
