// Package faults is tasker-sim's fault injection: declared, on-demand failures that drive
// the resilience mechanisms and their metrics, so dashboards and alerts can be exercised.
//
// Faults come per task (the "_faults" object of a task's context) or per process (the
// TASKER_FAULTS environment variable, or POST /admin/faults on a running process). A
// task's own faults win over the process's for that task. Some faults act on a whole
// process (ProcessOnly) and are refused per task.
package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// ContextKey is the task-context key that carries per-task faults.
const ContextKey = "_faults"

// Faults is a set of faults. The zero value injects nothing.
type Faults struct {
	// ErrorRate is the chance, 0 to 1, that a handler fails instead of running.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// Retryable says whether those injected failures may be retried.
	Retryable bool `json:"retryable,omitempty"`
	// Latency adds a delay, uniform between MinMS and MaxMS, before the handler runs.
	Latency *Range `json:"latency_ms,omitempty"`
	// TimeoutRate is the chance, 0 to 1, that a handler hangs until its timeout.
	TimeoutRate float64 `json:"timeout_rate,omitempty"`
	// SlowCompletionMS makes each FFI completion send take this much longer: the foreign
	// side stalls while handing the completion back, so the send's measured latency is at
	// least this (worker, FFI handler types only; per task, only that task's steps).
	SlowCompletionMS int `json:"slow_completion_ms,omitempty"`
	// DatabaseUnavailable makes the API's database work fail (orchestrator; process only).
	DatabaseUnavailable bool `json:"database_unavailable,omitempty"`
	// FloodChannel pushes this many empty items through the process's intake channel at
	// once, once, to exercise backpressure (process only).
	FloodChannel int `json:"flood_channel,omitempty"`
	// AbandonRate is the chance, 0 to 1, that a worker drops a step message it has read,
	// as if it crashed before claiming it: the message comes back after its visibility
	// timeout as a redelivery (worker; process only).
	AbandonRate float64 `json:"abandon_rate,omitempty"`
	// QueueErrorRate is the chance, 0 to 1, that a fallback poll's PGMQ read fails as if
	// the database refused it: the read error is handled and counted, and the next read
	// of that queue is a retry (both processes; process only).
	QueueErrorRate float64 `json:"queue_error_rate,omitempty"`
}

// ProcessOnly lists the faults that act on a whole process and so are refused per task,
// by their JSON names.
var ProcessOnly = []string{"database_unavailable", "flood_channel", "abandon_rate", "queue_error_rate"}

// processOnlyRule is why a process-only fault is refused per task.
const processOnlyRule = "a process fault; set it with taskerctl fault set or POST /admin/faults, not per task"

// Range is an inclusive range of milliseconds.
type Range struct {
	MinMS int `json:"min"`
	MaxMS int `json:"max"`
}

// Validate checks every field; the error names the field and the rule.
func (f Faults) Validate() error {
	switch {
	case f.ErrorRate < 0 || f.ErrorRate > 1:
		return fmt.Errorf("error_rate %v: must be from 0 to 1", f.ErrorRate)
	case f.TimeoutRate < 0 || f.TimeoutRate > 1:
		return fmt.Errorf("timeout_rate %v: must be from 0 to 1", f.TimeoutRate)
	case f.Latency != nil && (f.Latency.MinMS < 0 || f.Latency.MaxMS < f.Latency.MinMS || f.Latency.MaxMS > 600_000):
		return fmt.Errorf("latency_ms {min %d, max %d}: need 0 <= min <= max <= 600000", f.Latency.MinMS, f.Latency.MaxMS)
	case f.SlowCompletionMS < 0 || f.SlowCompletionMS > 60_000:
		return fmt.Errorf("slow_completion_ms %d: must be from 0 to 60000", f.SlowCompletionMS)
	case f.FloodChannel < 0 || f.FloodChannel > 1_000_000:
		return fmt.Errorf("flood_channel %d: must be from 0 to 1000000", f.FloodChannel)
	case f.AbandonRate < 0 || f.AbandonRate > 1:
		return fmt.Errorf("abandon_rate %v: must be from 0 to 1", f.AbandonRate)
	case f.QueueErrorRate < 0 || f.QueueErrorRate > 1:
		return fmt.Errorf("queue_error_rate %v: must be from 0 to 1", f.QueueErrorRate)
	}
	return nil
}

// Parse decodes and validates a faults document.
func Parse(doc []byte) (Faults, error) {
	var f Faults
	if len(doc) == 0 {
		return f, nil
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("faults: %w", err)
	}
	return f, f.Validate()
}

// FromTaskContext reads a task's own faults from its context, if it has any.
func FromTaskContext(taskContext []byte) (Faults, bool, error) {
	// Every step asks; most contexts carry no faults, so skip the decode for them.
	if !bytes.Contains(taskContext, []byte(`"`+ContextKey+`"`)) {
		return Faults{}, false, nil
	}
	var c map[string]json.RawMessage
	_ = json.Unmarshal(taskContext, &c) // a context that is not an object carries no faults
	raw, ok := c[ContextKey]
	if !ok {
		return Faults{}, false, nil
	}
	f, err := Parse(raw)
	return f, true, err
}

// ErrInjected is the error an injected handler failure returns.
var ErrInjected = errors.New("injected fault")

// BeforeHandler applies a step's handler faults: it waits out any injected latency, and
// returns an error when the step must fail (ctx's deadline for a timeout).
func (f Faults) BeforeHandler(ctx context.Context, rnd *rand.Rand) error {
	if f.Latency != nil && f.Latency.MaxMS > 0 {
		d := time.Duration(f.Latency.MinMS+rnd.IntN(f.Latency.MaxMS-f.Latency.MinMS+1)) * time.Millisecond
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
	if f.TimeoutRate > 0 && rnd.Float64() < f.TimeoutRate {
		<-ctx.Done() // hang until the step's timeout
		return context.Cause(ctx)
	}
	if f.ErrorRate > 0 && rnd.Float64() < f.ErrorRate {
		return ErrInjected
	}
	return nil
}

// Abandon rolls the abandon_rate fault for one received message: true means drop it.
func (f Faults) Abandon() bool {
	return f.AbandonRate > 0 && rand.Float64() < f.AbandonRate
}

// ErrQueueRefused is the error an injected PGMQ read failure returns.
var ErrQueueRefused = errors.New("injected fault: the queue read was refused")

// FailQueueRead rolls the queue_error_rate fault for one read: true means fail it.
func (f Faults) FailQueueRead() bool {
	return f.QueueErrorRate > 0 && rand.Float64() < f.QueueErrorRate
}

// Switch holds a process's current faults; safe for concurrent use.
type Switch struct {
	mu sync.RWMutex
	f  Faults
	// check, when set, holds the process's own rules, after Validate's.
	check func(Faults) error
	// changed, when set, runs after every Set (for one-shot faults such as a flood).
	changed func(Faults)
}

// NewSwitch returns a switch starting at f; onSet runs after every Set.
func NewSwitch(f Faults, onSet func(Faults)) *Switch { return &Switch{f: f, changed: onSet} }

// NewCheckedSwitch is NewSwitch for a process that cannot inject every fault: Set also
// refuses faults that check rejects (check's error should name the field and the rule).
func NewCheckedSwitch(f Faults, check func(Faults) error, onSet func(Faults)) *Switch {
	return &Switch{f: f, check: check, changed: onSet}
}

// Get returns the current faults.
func (s *Switch) Get() Faults {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.f
}

// Set replaces the faults after validating them.
func (s *Switch) Set(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if s.check != nil {
		if err := s.check(f); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.f = f
	s.mu.Unlock()
	if s.changed != nil {
		s.changed(f)
	}
	return nil
}
