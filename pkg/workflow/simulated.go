package workflow

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/yaml"
)

// SimulationProfilesEnv names the environment variable that holds the path of a JSON or
// YAML file mapping namespaces (and "default") to simulation profiles.
const SimulationProfilesEnv = "TASKER_SIMULATION_PROFILES"

// SimulateKey is the key of a step's handler.initialization that holds its simulation
// profile.
const SimulateKey = "simulate"

// DefaultProfileName is the entry of a profiles file used for namespaces it does not name.
const DefaultProfileName = "default"

// Limits of a simulation profile.
const (
	// MaxSimulatedLatency caps every latency a profile sets or a draw produces.
	MaxSimulatedLatency = 10 * time.Minute
	// MaxResultBytes caps a profile's result_bytes.
	MaxResultBytes = 1 << 20
)

// Simulated error types and codes: a simulated failure says so.
const (
	SimulatedErrorType        = "SimulatedError"
	SimulatedRetryableCode    = "SIMULATED_RETRYABLE_ERROR"
	SimulatedNonRetryableCode = "SIMULATED_PERMANENT_ERROR"
)

const (
	z99          = 2.3263478740408408 // the standard normal's 99th percentile
	maxLatencyMS = float64(MaxSimulatedLatency / time.Millisecond)
	// simulatedKeyPrefix starts the registry keys of simulated handlers, which no real
	// callable starts with.
	simulatedKeyPrefix = "\x00simulated\x00"
)

// Latency is a simulated handler's latency distribution in milliseconds: log-normal with
// the given median and 99th percentile, or fixed when they are equal. In JSON it is a
// number (fixed), {"fixed": n} or {"p50": a, "p99": b}.
type Latency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// UnmarshalJSON reads the three JSON forms of a latency.
func (l *Latency) UnmarshalJSON(b []byte) error {
	var fixed float64
	if err := json.Unmarshal(b, &fixed); err == nil {
		*l = Latency{P50: fixed, P99: fixed}
		return nil
	}
	var o struct {
		P50   *float64 `json:"p50"`
		P99   *float64 `json:"p99"`
		Fixed *float64 `json:"fixed"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return fmt.Errorf("latency_ms: must be a number of milliseconds, {\"fixed\": ms} or {\"p50\": ms, \"p99\": ms} (%s)",
			strings.TrimPrefix(err.Error(), "json: "))
	}
	switch {
	case o.Fixed != nil && o.P50 == nil && o.P99 == nil:
		*l = Latency{P50: *o.Fixed, P99: *o.Fixed}
	case o.Fixed == nil && o.P50 != nil && o.P99 != nil:
		*l = Latency{P50: *o.P50, P99: *o.P99}
	default:
		return errors.New("latency_ms: must give either fixed, or both p50 and p99")
	}
	return nil
}

func (l Latency) validate() error {
	switch {
	case l.P50 < 0 || l.P99 < 0:
		return errors.New("latency_ms: must not be negative")
	case l.P99 < l.P50:
		return fmt.Errorf("latency_ms.p99: must be at least p50 (%g), got %g", l.P50, l.P99)
	case l.P50 == 0 && l.P99 > 0:
		return errors.New("latency_ms.p50: must be positive when p99 is")
	case l.P99 > maxLatencyMS:
		return fmt.Errorf("latency_ms: must be at most %g ms, got %g", maxLatencyMS, l.P99)
	}
	return nil
}

// Sample draws one latency from the distribution, capped at MaxSimulatedLatency.
func (l Latency) Sample(r *rand.Rand) time.Duration {
	ms := l.P50
	if l.P99 > l.P50 {
		sigma := math.Log(l.P99/l.P50) / z99
		ms = l.P50 * math.Exp(sigma*r.NormFloat64())
	}
	return min(time.Duration(ms*float64(time.Millisecond)), MaxSimulatedLatency)
}

// SimulationProfile describes how a simulated handler behaves.
type SimulationProfile struct {
	// Latency is how long each attempt "works".
	Latency Latency `json:"latency_ms"`
	// ErrorRate is the probability (0..1) that an attempt fails.
	ErrorRate float64 `json:"error_rate"`
	// RetryableShare is the probability (0..1) that a failure is retryable.
	RetryableShare float64 `json:"retryable_share"`
	// ResultBytes is the approximate size of the result JSON object.
	ResultBytes int `json:"result_bytes"`
	// Seed, when set, makes the handler's draws reproducible.
	Seed *uint64 `json:"seed,omitempty"`
}

// DefaultSimulationProfile is the built-in profile: p50 5 ms, p99 50 ms, no errors and
// 64-byte results.
func DefaultSimulationProfile() SimulationProfile {
	return SimulationProfile{Latency: Latency{P50: 5, P99: 50}, RetryableShare: 1, ResultBytes: 64}
}

// Validate returns an error naming the first field that breaks its rule.
func (p SimulationProfile) Validate() error {
	if err := p.Latency.validate(); err != nil {
		return err
	}
	if !(p.ErrorRate >= 0 && p.ErrorRate <= 1) {
		return fmt.Errorf("error_rate: must be between 0 and 1, got %g", p.ErrorRate)
	}
	if !(p.RetryableShare >= 0 && p.RetryableShare <= 1) {
		return fmt.Errorf("retryable_share: must be between 0 and 1, got %g", p.RetryableShare)
	}
	if p.ResultBytes < 0 || p.ResultBytes > MaxResultBytes {
		return fmt.Errorf("result_bytes: must be between 0 and %d, got %d", MaxResultBytes, p.ResultBytes)
	}
	return nil
}

// overlay returns p with the fields doc sets replaced, validated.
func (p SimulationProfile) overlay(doc []byte) (SimulationProfile, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, decodeError(err)
	}
	return p, p.Validate()
}

// decodeError rewrites a JSON decoding error as "field: rule".
func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		kind := map[string]string{"float64": "a number", "int": "an integer", "uint64": "a non-negative integer",
			"workflow.SimulationProfile": "an object"}[te.Type.String()]
		return fmt.Errorf("%s: must be %s, got %s", cmp.Or(te.Field, "profile"), cmp.Or(kind, te.Type.String()), te.Value)
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field") {
		return fmt.Errorf("%s: not a profile field (known: latency_ms, error_rate, retryable_share, result_bytes, seed)", msg)
	}
	return errors.New(msg)
}

// SimulationProfiles maps namespaces to profiles, as read from a profiles file.
type SimulationProfiles struct {
	source      string
	byNamespace map[string]SimulationProfile
}

// LoadSimulationProfiles reads a profiles file: a JSON object (or YAML mapping, for a
// .yaml or .yml file) from namespace, or "default", to profile. Each profile's missing
// fields come from the "default" entry, then from DefaultSimulationProfile. An empty path
// gives no profiles (nil).
func LoadSimulationProfiles(path string) (*SimulationProfiles, error) {
	if path == "" {
		return nil, nil
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SimulationProfilesEnv, err)
	}
	if ext := strings.ToLower(filepath.Ext(path)); ext == ".yaml" || ext == ".yml" {
		if doc, err = yaml.YAMLToJSONStrict(doc); err != nil {
			return nil, fmt.Errorf("%s %s: %w", SimulationProfilesEnv, path, err)
		}
	}
	ps, err := ParseSimulationProfiles(doc)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", SimulationProfilesEnv, path, err)
	}
	ps.source = path
	return ps, nil
}

// ParseSimulationProfiles reads the JSON form of a profiles file.
func ParseSimulationProfiles(doc []byte) (*SimulationProfiles, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(doc, &raw); err != nil || raw == nil {
		return nil, errors.New("must be an object mapping namespaces (and \"default\") to profiles")
	}
	base := DefaultSimulationProfile()
	if d, ok := raw[DefaultProfileName]; ok {
		var err error
		if base, err = base.overlay(d); err != nil {
			return nil, fmt.Errorf("profile %s: %w", DefaultProfileName, err)
		}
	}
	ps := &SimulationProfiles{byNamespace: map[string]SimulationProfile{DefaultProfileName: base}}
	for ns, d := range raw {
		if ns == DefaultProfileName {
			continue
		}
		p, err := base.overlay(d)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", ns, err)
		}
		ps.byNamespace[ns] = p
	}
	return ps, nil
}

// For returns the profile of namespace: its own entry, else the "default" entry, else
// DefaultSimulationProfile. A nil receiver gives DefaultSimulationProfile.
func (ps *SimulationProfiles) For(namespace string) SimulationProfile {
	if ps == nil {
		return DefaultSimulationProfile()
	}
	if p, ok := ps.byNamespace[namespace]; ok {
		return p
	}
	return ps.byNamespace[DefaultProfileName]
}

// StepProfile returns the profile of step s of template t: the step's
// handler.initialization.simulate over the namespace's profile in ps. The error names the
// template step, the field and the rule.
func StepProfile(t *Template, s *StepTemplate, ps *SimulationProfiles) (SimulationProfile, error) {
	p := ps.For(t.NamespaceName)
	v, ok := s.Handler.Initialization[SimulateKey]
	if !ok {
		return p, nil
	}
	doc, err := json.Marshal(v)
	if err == nil {
		p, err = p.overlay(doc)
	}
	if err != nil {
		return p, fmt.Errorf("template %s step %s: %w", t.Key(), s.Name, underField("handler.initialization."+SimulateKey, err))
	}
	return p, nil
}

// fieldPath matches an error that starts with the field it is about.
var fieldPath = regexp.MustCompile(`^[a-z0-9_.]+: `)

// underField puts err, which may name a field of a profile, under the profile's own path.
func underField(path string, err error) error {
	if fieldPath.MatchString(err.Error()) {
		return fmt.Errorf("%s.%w", path, err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// simulated is a stand-in handler for a callable without a Go implementation.
type simulated struct {
	callable string
	profile  SimulationProfile
	mu       sync.Mutex
	rng      *rand.Rand
	// outcome, for a decision or batchable step, draws the outcome its result carries.
	outcome func(r *rand.Rand) (*DecisionOutcome, *BatchOutcome)
}

// draw is what one attempt of a simulated handler will do.
type draw struct {
	latency   time.Duration
	fail      bool
	retryable bool
	decision  *DecisionOutcome
	batch     *BatchOutcome
}

// NewSimulatedHandler returns a handler that stands in for callable as profile says.
// stream separates the random draws of handlers that share a seed (e.g. the step's key).
func NewSimulatedHandler(callable, stream string, profile SimulationProfile) Handler {
	return newSimulated(callable, stream, profile).handle
}

func newSimulated(callable, stream string, profile SimulationProfile) *simulated {
	h := fnv.New64a()
	_, _ = h.Write([]byte(stream))
	seed := rand.Uint64()
	if profile.Seed != nil {
		seed = *profile.Seed
	}
	return &simulated{callable: callable, profile: profile, rng: rand.New(rand.NewPCG(seed, h.Sum64()))}
}

func (h *simulated) next() draw {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := draw{latency: h.profile.Latency.Sample(h.rng)}
	if h.profile.ErrorRate > 0 && h.rng.Float64() < h.profile.ErrorRate {
		d.fail = true
		d.retryable = h.rng.Float64() < h.profile.RetryableShare
	}
	if h.outcome != nil {
		d.decision, d.batch = h.outcome(h.rng)
	}
	return d
}

// handle "works" for a drawn latency (giving up when ctx ends), then fails or returns a
// result padded to the profile's result_bytes.
func (h *simulated) handle(ctx context.Context, in StepInput) (any, error) {
	d := h.next()
	if err := wait(ctx, d.latency); err != nil {
		return nil, fmt.Errorf("simulated handler %s interrupted: %w", h.callable, err)
	}
	if d.fail {
		code := SimulatedNonRetryableCode
		if d.retryable {
			code = SimulatedRetryableCode
		}
		return nil, &StepError{Message: fmt.Sprintf("simulated failure of %s (error_rate %g)", h.callable, h.profile.ErrorRate),
			ErrorType: SimulatedErrorType, ErrorCode: code, Retryable: d.retryable}
	}
	return h.result(in, d), nil
}

// simulatedResult is a simulated handler's result; Payload pads it to result_bytes.
type simulatedResult struct {
	Simulated bool             `json:"simulated"`
	Callable  string           `json:"callable"`
	Step      string           `json:"step"`
	Attempt   int              `json:"attempt"`
	LatencyMS float64          `json:"latency_ms"`
	Decision  *DecisionOutcome `json:"decision_point_outcome,omitempty"`
	Batch     *BatchOutcome    `json:"batch_processing_outcome,omitempty"`
	Payload   string           `json:"payload"`
}

func (h *simulated) result(in StepInput, d draw) json.RawMessage {
	r := simulatedResult{Simulated: true, Callable: h.callable, Step: in.StepName, Attempt: in.Attempt,
		LatencyMS: float64(d.latency.Microseconds()) / 1000, Decision: d.decision, Batch: d.batch}
	body, _ := json.Marshal(r) // cannot fail: strings and numbers only
	if pad := h.profile.ResultBytes - len(body); pad > 0 {
		// Payload is the last field, encoded as "": fill it in place rather than encode
		// the whole result again.
		padded := make([]byte, len(body)+pad)
		n := copy(padded, body[:len(body)-2])
		for i := n; i < n+pad; i++ {
			padded[i] = 'x'
		}
		copy(padded[n+pad:], `"}`)
		body = padded
	}
	return body
}

// simulatedBatchWorkers and simulatedBatchItems shape a simulated batchable step's
// outcome: that many workers of that many items each.
const (
	simulatedBatchWorkers = 3
	simulatedBatchItems   = 100
)

// simulatedOutcome is how a simulated decision or batchable step shapes its task, so
// that a template's dynamic steps run without its handlers: a decision picks one of the
// steps below it at random; a batchable step splits simulatedBatchWorkers ranges for the
// batch_worker step that depends on it. Nil for other steps.
func simulatedOutcome(t *Template, s *StepTemplate) func(*rand.Rand) (*DecisionOutcome, *BatchOutcome) {
	var kids []string
	var worker string
	for _, c := range t.Steps {
		if !slices.Contains(c.Dependencies, s.Name) {
			continue
		}
		switch c.Type {
		case StepBatchWorker:
			worker = cmp.Or(worker, c.Name)
		case StepDeferredConvergence:
		default:
			kids = append(kids, c.Name)
		}
	}
	switch {
	case s.Type == StepDecision && len(kids) > 0:
		return func(r *rand.Rand) (*DecisionOutcome, *BatchOutcome) {
			return &DecisionOutcome{Type: OutcomeCreateSteps, StepNames: []string{kids[r.IntN(len(kids))]}}, nil
		}
	case s.Type == StepBatchable && worker != "":
		return func(*rand.Rand) (*DecisionOutcome, *BatchOutcome) {
			o := &BatchOutcome{Type: OutcomeCreateBatches, WorkerTemplateName: worker, WorkerCount: simulatedBatchWorkers,
				TotalItems: simulatedBatchWorkers * simulatedBatchItems}
			for i := range simulatedBatchWorkers {
				o.CursorConfigs = append(o.CursorConfigs, CursorConfig{BatchID: fmt.Sprintf("%03d", i+1),
					StartCursor: json.RawMessage(strconv.Itoa(i * simulatedBatchItems)),
					EndCursor:   json.RawMessage(strconv.Itoa((i + 1) * simulatedBatchItems)), BatchSize: simulatedBatchItems})
			}
			return nil, o
		}
	}
	return nil
}

// Resolve returns a copy of r in which every step of ts whose callable has no Go handler
// runs a simulated handler (see Lookup), with the profile StepProfile gives. It also
// returns the simulated callables, sorted and distinct. An invalid profile is an error
// naming the template step, the field and the rule. A step with a Go handler ignores any
// simulation profile.
func (r Registry) Resolve(ts []*Template, ps *SimulationProfiles) (Registry, []string, error) {
	out := make(Registry, len(r))
	for k, h := range r {
		if !strings.HasPrefix(k, simulatedKeyPrefix) {
			out[k] = h
		}
	}
	seen := map[string]bool{}
	var callables []string
	for _, t := range ts {
		for i := range t.Steps {
			s := &t.Steps[i]
			if _, ok := out[s.Handler.Callable]; ok {
				continue
			}
			p, err := StepProfile(t, s, ps)
			if err != nil {
				return nil, nil, err
			}
			key := t.Key() + "/" + s.Name
			h := newSimulated(s.Handler.Callable, key, p)
			h.outcome = simulatedOutcome(t, s)
			out[simulatedKeyPrefix+key] = h.handle
			if !seen[s.Handler.Callable] {
				seen[s.Handler.Callable] = true
				callables = append(callables, s.Handler.Callable)
			}
		}
	}
	sort.Strings(callables)
	return out, callables, nil
}

// Lookup returns the handler of step s of template t: the Go handler registered for its
// callable, else the simulated handler Resolve added for the step, else nil.
func (r Registry) Lookup(t *Template, s *StepTemplate) Handler {
	if h, ok := r[s.Handler.Callable]; ok {
		return h
	}
	return r[simulatedKeyPrefix+t.Key()+"/"+s.Name]
}
