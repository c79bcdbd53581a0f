package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tasker-sim/tasker-sim/pkg/faults"
)

// Fault targets: which processes a phase's faults go to.
const (
	TargetOrchestrator = "orchestrator"
	// TargetWorker is every worker, FFI ones included.
	TargetWorker = "worker"
	// TargetFFIWorker is the workers with an FFI handler type only.
	TargetFFIWorker = "ffi_worker"
)

var targets = []string{TargetOrchestrator, TargetWorker, TargetFFIWorker}

// Phase is one timed set of faults.
type Phase struct {
	Name   string
	At     time.Duration
	For    time.Duration
	Target string
	// Faults is the faults document, as /admin/faults takes it.
	Faults map[string]any
}

// LoopGap is the pause between two rounds of a looping scenario (at speed 1).
const LoopGap = 10 * time.Second

// Scenario is a list of fault phases on the run's clock.
type Scenario struct {
	Name   string
	Phases []Phase
	// Loop runs the phases again every Period() for as long as the run lasts (the
	// docker compose demo's chaos goes on for ever); faults are cleared between rounds.
	Loop bool
	// gap is LoopGap divided by the scenario's speed; zero means LoopGap.
	gap time.Duration
}

// Period is how often a looping scenario starts again: its length plus LoopGap (both
// divided by the speed).
func (s *Scenario) Period() time.Duration {
	if s.gap == 0 {
		return s.Length() + LoopGap
	}
	return s.Length() + s.gap
}

// Length is when the last phase ends.
func (s *Scenario) Length() time.Duration {
	var end time.Duration
	for _, p := range s.Phases {
		end = max(end, p.At+p.For)
	}
	return end
}

// Speed returns the scenario with every time divided by factor (for quick runs).
func (s *Scenario) Speed(factor float64) *Scenario {
	out := &Scenario{Name: s.Name, Loop: s.Loop, gap: time.Duration(float64(LoopGap) / factor)}
	for _, p := range s.Phases {
		p.At = time.Duration(float64(p.At) / factor)
		p.For = max(time.Duration(float64(p.For)/factor), time.Second)
		out.Phases = append(out.Phases, p)
	}
	return out
}

// scenarioFile is the TOML layout of a scenario file.
type scenarioFile struct {
	Name  string `toml:"name"`
	Phase []struct {
		Name   string         `toml:"name"`
		At     string         `toml:"at"`
		For    string         `toml:"for"`
		Target string         `toml:"target"`
		Faults map[string]any `toml:"faults"`
	} `toml:"phase"`
}

// ParseScenario reads a TOML scenario. Every error names the phase and the field.
//
//	name = "flaky afternoon"
//	[[phase]]
//	name = "handlers fail"
//	at = "60s"          # from the start of the run
//	for = "30s"
//	target = "worker"   # orchestrator, worker or ffi_worker
//	faults = { error_rate = 0.2, retryable = true }
func ParseScenario(doc []byte) (*Scenario, error) {
	var f scenarioFile
	md, err := toml.Decode(string(doc), &f)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	for _, key := range md.Undecoded() {
		// A phase's faults are decoded into a map whole; faults.Parse checks their fields.
		if len(key) > 2 && key[0] == "phase" && key[1] == "faults" {
			continue
		}
		return nil, fmt.Errorf("scenario: unknown field %q (a scenario takes name and [[phase]]; a phase takes name, at, for, target, faults)", key.String())
	}
	if len(f.Phase) == 0 {
		return nil, fmt.Errorf("scenario: must have at least one [[phase]]")
	}
	s := &Scenario{Name: f.Name}
	for i, ph := range f.Phase {
		where := fmt.Sprintf("scenario phase %d (%q)", i+1, ph.Name)
		p, err := parsePhase(ph.Name, ph.At, ph.For, ph.Target, ph.Faults)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		s.Phases = append(s.Phases, p)
	}
	return s, nil
}

func parsePhase(name, at, dur, target string, fs map[string]any) (Phase, error) {
	p := Phase{Name: name, Target: target, Faults: fs}
	var err error
	if p.At, err = time.ParseDuration(at); err != nil || p.At < 0 {
		return p, fmt.Errorf("at %q: must be a duration from the start, e.g. 60s", at)
	}
	if p.For, err = time.ParseDuration(dur); err != nil || p.For <= 0 {
		return p, fmt.Errorf("for %q: must be a positive duration, e.g. 30s", dur)
	}
	if !slices.Contains(targets, target) {
		return p, fmt.Errorf("target %q: must be one of %s", target, strings.Join(targets, ", "))
	}
	if len(fs) == 0 {
		return p, fmt.Errorf("faults: must set at least one fault")
	}
	doc, _ := json.Marshal(fs)
	if _, err := faults.Parse(doc); err != nil {
		return p, err
	}
	return p, nil
}

// Chaos is the built-in scenario (--scenario chaos). On processes with default settings,
// one of them an FFI worker, it drives every metric of the reference within three minutes:
// retryable and permanent step failures, messages abandoned before their claim (visibility
// timeouts 30 s later), slow FFI completions until the ffi_completion breaker opens, queue
// reads refused (queue errors, then retries), the API's database gone until the web
// breaker opens, and a flood of the intake channels.
func Chaos() *Scenario {
	return &Scenario{Name: "chaos", Phases: []Phase{
		{"retryable handler errors", 10 * time.Second, 30 * time.Second, TargetWorker,
			map[string]any{"error_rate": 0.25, "retryable": true}},
		{"messages abandoned before claim", 15 * time.Second, 15 * time.Second, TargetWorker,
			map[string]any{"abandon_rate": 0.3}},
		{"permanent handler errors", 40 * time.Second, 5 * time.Second, TargetWorker,
			map[string]any{"error_rate": 0.5}},
		{"slow FFI completions", 50 * time.Second, 30 * time.Second, TargetFFIWorker,
			map[string]any{"slow_completion_ms": 150}},
		{"orchestrator queue reads refused", 60 * time.Second, 10 * time.Second, TargetOrchestrator,
			map[string]any{"queue_error_rate": 1}},
		{"worker queue reads refused", 60 * time.Second, 10 * time.Second, TargetWorker,
			map[string]any{"queue_error_rate": 1}},
		{"API database unavailable", 90 * time.Second, 15 * time.Second, TargetOrchestrator,
			map[string]any{"database_unavailable": true}},
		{"intake channel flood", 110 * time.Second, time.Second, TargetOrchestrator,
			map[string]any{"flood_channel": 2000}},
		{"worker channel flood", 110 * time.Second, time.Second, TargetWorker,
			map[string]any{"flood_channel": 2000}},
	}}
}

// Targets maps each fault target to the base URLs of its processes.
type Targets map[string][]string

// Check reports a phase whose target has no process to go to.
func (t Targets) Check(s *Scenario) error {
	for i, p := range s.Phases {
		if len(t[p.Target]) == 0 {
			return fmt.Errorf("scenario phase %d (%q): target %s: no such process is known; give its address with --%s-url",
				i+1, p.Name, p.Target, strings.ReplaceAll(p.Target, "_", "-"))
		}
	}
	return nil
}

// applier sets each process's faults as phases begin and end. Where phases overlap on a
// process, their documents merge in scenario order (a later phase's field wins).
type applier struct {
	scenario *Scenario
	targets  Targets
	token    string
	http     *http.Client
	applied  map[string]string // url -> last document set
	errs     map[int]string    // phase index -> first error
}

func newApplier(s *Scenario, t Targets, token string) *applier {
	return &applier{scenario: s, targets: t, token: token, http: &http.Client{Timeout: 10 * time.Second},
		applied: map[string]string{}, errs: map[int]string{}}
}

// boundaries lists the offsets at which some phase starts or ends, in order.
func (a *applier) boundaries() []time.Duration {
	var out []time.Duration
	for _, p := range a.scenario.Phases {
		out = append(out, p.At, p.At+p.For)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// documents computes each process's faults at offset t.
func (a *applier) documents(t time.Duration) map[string]map[string]any {
	docs := map[string]map[string]any{}
	for _, p := range a.scenario.Phases {
		if t < p.At || t >= p.At+p.For {
			continue
		}
		for _, u := range a.targets[p.Target] {
			if docs[u] == nil {
				docs[u] = map[string]any{}
			}
			maps.Copy(docs[u], p.Faults)
		}
	}
	return docs
}

// run applies the scenario on the clock that started at start, until the last phase ends
// (for a looping scenario: until ctx ends, a round every Period) or ctx ends; either way
// it clears every fault it set before returning.
func (a *applier) run(ctx context.Context, start time.Time) {
	defer a.clear()
	for round := time.Duration(0); ; round++ {
		offset := round * a.scenario.Period()
		for _, b := range a.boundaries() {
			t := time.NewTimer(time.Until(start.Add(offset + b)))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			a.applyAt(ctx, b)
		}
		if !a.scenario.Loop {
			return
		}
		a.clear() // the last boundary left nothing set; this makes sure before the gap
	}
}

func (a *applier) applyAt(ctx context.Context, b time.Duration) {
	docs := a.documents(b)
	for _, urls := range a.targets {
		for _, u := range urls {
			doc, _ := json.Marshal(docs[u])
			if docs[u] == nil {
				doc = []byte("{}")
			}
			if a.applied[u] == string(doc) || (a.applied[u] == "" && string(doc) == "{}") {
				continue
			}
			if err := a.post(ctx, u, doc); err != nil {
				a.noteError(u, b, err)
				continue
			}
			a.applied[u] = string(doc)
		}
	}
}

// clear removes every fault this applier set.
func (a *applier) clear() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for u, doc := range a.applied {
		if doc == "{}" {
			continue
		}
		if err := a.post(ctx, u, []byte("{}")); err != nil {
			a.noteError(u, a.scenario.Length(), err)
			continue
		}
		a.applied[u] = "{}"
	}
}

func (a *applier) noteError(url string, at time.Duration, err error) {
	for i, p := range a.scenario.Phases {
		if (at == p.At || at == p.At+p.For) && slices.Contains(a.targets[p.Target], url) && a.errs[i] == "" {
			a.errs[i] = fmt.Sprintf("%s: %v", url, err)
		}
	}
}

func (a *applier) post(ctx context.Context, base string, doc []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/admin/faults", bytes.NewReader(doc))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /admin/faults answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// results describes the phases as applied, for the Result.
func (a *applier) results() []PhaseResult {
	out := make([]PhaseResult, 0, len(a.scenario.Phases))
	for i, p := range a.scenario.Phases {
		out = append(out, PhaseResult{Name: p.Name, Target: p.Target, StartSeconds: p.At.Seconds(),
			EndSeconds: (p.At + p.For).Seconds(), Faults: p.Faults, Error: a.errs[i]})
	}
	return out
}
