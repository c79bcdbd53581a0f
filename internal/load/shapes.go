package load

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/tasker-sim/tasker-sim/pkg/api"
)

// Shape is one task template the generator can create, with its input generator.
type Shape struct {
	// Name and Namespace identify the template (version 1.0.0).
	Name, Namespace string
	// input returns a fresh, valid context for one task.
	input func(rnd *rand.Rand) map[string]any
}

// Input returns a fresh, valid context for one task of this shape.
func (s *Shape) Input(rnd *rand.Rand) map[string]any { return s.input(rnd) }

// evenNumber draws the even_number input the arithmetic shapes take: 2 to 20, so results
// stay readable while still varying.
func evenNumber(rnd *rand.Rand) map[string]any {
	return map[string]any{"even_number": 2 * (1 + rnd.IntN(10))}
}

func noInput(*rand.Rand) map[string]any { return map[string]any{} }

// shortSleep makes slow_step a one-step task whose handler waits 0 to 20 ms, like an
// I/O-bound call: the cheapest shape for the system, so the generator's rate shows.
func shortSleep(rnd *rand.Rand) map[string]any { return map[string]any{"sleep_ms": rnd.IntN(21)} }

// approval draws a conditional approval request whose amount takes each of the three
// routes about equally often (below 1000, below 5000, from 5000).
func approval(rnd *rand.Rand) map[string]any {
	amount := []int{1 + rnd.IntN(999), 1000 + rnd.IntN(4000), 5000 + rnd.IntN(45000)}[rnd.IntN(3)]
	return map[string]any{"amount": amount, "requester": "taskerctl-load", "purpose": "generated load"}
}

// dataset draws a batch of 25 to 100 items: one to four workers.
func dataset(rnd *rand.Rand) map[string]any { return map[string]any{"dataset_size": 25 + rnd.IntN(76)} }

// Shapes lists the shapes --mix may name, in the order help text shows them.
var Shapes = []Shape{
	{"mathematical_sequence", "rust_e2e_linear", evenNumber},
	{"diamond_pattern", "rust_e2e_diamond", evenNumber},
	{"complex_dag", "rust_e2e_mixed_dag", evenNumber},
	{"hierarchical_tree", "rust_e2e_tree", evenNumber},
	{"retry_mechanics_test", "rust_e2e_retry", noInput},
	{"retry_exhaustion_test", "rust_e2e_retry", noInput},
	{"slow_step", "tasker_sim_test", shortSleep},
	{"approval_routing", "conditional_approval_rust", approval},
	{"dataset_batch", "tasker_sim_batch", dataset},
}

// DefaultMix is the mix used when --mix is not given.
const DefaultMix = "mathematical_sequence=4,diamond_pattern=2,complex_dag=1,hierarchical_tree=1,retry_mechanics_test=1"

// MixEntry is one shape of the mix with its weight.
type MixEntry struct {
	Shape
	Weight int
}

// Mix picks shapes in proportion to their weights.
type Mix struct {
	Entries []MixEntry
	total   int
}

// ParseMix reads "name=weight,name=weight". The error names the entry and the rule.
func ParseMix(spec string) (*Mix, error) {
	m := &Mix{}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		if !ok {
			w = "1"
		}
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(Shapes, func(s Shape) bool { return s.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("--mix %q: unknown shape %q; known: %s", spec, name, strings.Join(shapeNames(), ", "))
		}
		weight, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || weight < 1 || weight > 1000 {
			return nil, fmt.Errorf("--mix %q: weight of %s must be an integer from 1 to 1000", spec, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("--mix %q: %s is named twice", spec, name)
		}
		seen[name] = true
		m.Entries = append(m.Entries, MixEntry{Shape: Shapes[i], Weight: weight})
		m.total += weight
	}
	if len(m.Entries) == 0 {
		return nil, fmt.Errorf("--mix %q: must name at least one shape, e.g. %s", spec, DefaultMix)
	}
	return m, nil
}

func shapeNames() []string {
	names := make([]string, len(Shapes))
	for i, s := range Shapes {
		names[i] = s.Name
	}
	return names
}

// Pick draws an entry index with probability proportional to its weight.
func (m *Mix) Pick(rnd *rand.Rand) int {
	n := rnd.IntN(m.total)
	for i, e := range m.Entries {
		if n < e.Weight {
			return i
		}
		n -= e.Weight
	}
	return len(m.Entries) - 1
}

// request builds the creation request for one task of entry e. A UUIDv7 _run_id keeps
// every identity distinct, so no task is refused as a duplicate by accident; padding adds
// a string of that many bytes under _padding, for payload-size experiments.
func (e *MixEntry) request(rnd *rand.Rand, padding int) *api.TaskRequest {
	ctx := e.Input(rnd)
	ctx["_run_id"] = uuid.Must(uuid.NewV7()).String()
	if padding > 0 {
		ctx["_padding"] = strings.Repeat("x", padding)
	}
	body, _ := json.Marshal(ctx) // maps of strings and numbers always marshal
	return &api.TaskRequest{Name: e.Name, Namespace: e.Namespace, Version: "1.0.0", Context: body,
		Initiator: "taskerctl", SourceSystem: "load", Reason: "load generation",
		CorrelationID: uuid.Must(uuid.NewV7()).String()}
}
