package workflow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Dynamic workflows: which steps exist when a task is created, and which a decision
// step's outcome adds. The rules follow tasker-core's: a decision step's descendants are
// created only when a decision chooses them, and a deferred convergence step is created
// once any of its dependencies is, with edges from just the dependencies that exist.

// Edge is a dependency between two steps of a template, by name: From must complete
// before To may run.
type Edge struct{ From, To string }

// DecisionOutcome is what a decision step's handler returns under
// result.decision_point_outcome: {"type": "create_steps", "step_names": [...]} or
// {"type": "no_branches"}.
type DecisionOutcome struct {
	Type      string   `json:"type"`
	StepNames []string `json:"step_names,omitempty"`
}

// The outcome types of DecisionOutcome.
const (
	OutcomeCreateSteps = "create_steps"
	OutcomeNoBranches  = "no_branches"
)

// DecisionKey is the key of a decision step's result that holds its DecisionOutcome.
const DecisionKey = "decision_point_outcome"

// ParseDecisionOutcome reads a decision step's outcome. A missing outcome is an error,
// as is an unknown type or a create_steps without step names.
func ParseDecisionOutcome(raw json.RawMessage) (DecisionOutcome, error) {
	var o DecisionOutcome
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return o, fmt.Errorf("result.%s: is required of a decision step", DecisionKey)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return o, fmt.Errorf("result.%s: %w", DecisionKey, err)
	}
	switch {
	case o.Type == OutcomeNoBranches:
		return o, nil
	case o.Type != OutcomeCreateSteps:
		return o, fmt.Errorf("result.%s.type: %q is not allowed: must be %s or %s", DecisionKey, o.Type,
			OutcomeCreateSteps, OutcomeNoBranches)
	case len(o.StepNames) == 0:
		return o, fmt.Errorf("result.%s.step_names: must name at least one step", DecisionKey)
	}
	return o, nil
}

// children maps each step to the steps that depend on it.
func (t *Template) children() map[string][]string {
	out := map[string][]string{}
	for _, s := range t.Steps {
		for _, d := range s.Dependencies {
			out[d] = append(out[d], s.Name)
		}
	}
	return out
}

// descendants returns every step reachable from name through dependents, name excluded.
func (t *Template) descendants(name string) map[string]bool {
	kids := t.children()
	seen := map[string]bool{}
	queue := slices.Clone(kids[name])
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if !seen[n] {
			seen[n] = true
			queue = append(queue, kids[n]...)
		}
	}
	return seen
}

// createdLater reports whether a step of this type waits for another step's outcome to
// be created.
func createdLater(s *StepTemplate) bool {
	return s.Type == StepDeferredConvergence || s.Type == StepBatchWorker
}

// InitialSteps returns the steps created with a task, in template order: every step but
// batch workers, deferred convergence steps and the descendants of decision steps.
func (t *Template) InitialSteps() []*StepTemplate {
	later := map[string]bool{}
	for _, s := range t.Steps {
		if s.Type == StepDecision {
			for n := range t.descendants(s.Name) {
				later[n] = true
			}
		}
	}
	var out []*StepTemplate
	for i := range t.Steps {
		if s := &t.Steps[i]; !later[s.Name] && !createdLater(s) {
			out = append(out, s)
		}
	}
	return out
}

// EdgesAmong returns the template's edges between the steps in present, for steps that
// are to be created (to): an edge from a step that does not exist is left out for a
// deferred convergence step, and replaced by one from decision (when not "") for others.
func (t *Template) EdgesAmong(to []*StepTemplate, present map[string]bool, decision string) []Edge {
	var out []Edge
	for _, s := range to {
		for _, d := range s.Dependencies {
			switch {
			case present[d]:
				out = append(out, Edge{d, s.Name})
			case s.Type == StepDeferredConvergence || decision == "":
			default:
				out = append(out, Edge{decision, s.Name})
			}
		}
	}
	return slices.Compact(out)
}

// Branch returns the steps a decision step's outcome creates, in template order, given
// the steps that exist already: the chosen steps, which must be descendants of the
// decision; then, repeatedly, each descendant that depends on a step being created: a
// deferred convergence step at once, another step when its other dependencies exist too.
func (t *Template) Branch(decision string, o DecisionOutcome, existing map[string]bool) ([]*StepTemplate, error) {
	if o.Type == OutcomeNoBranches {
		return nil, nil
	}
	below := t.descendants(decision)
	chosen := map[string]bool{}
	for _, n := range o.StepNames {
		if !below[n] {
			return nil, fmt.Errorf("decision %s chose %q, which is not one of its descendant steps", decision, n)
		}
		chosen[n] = true
	}
	for grew := true; grew; {
		grew = false
		for i := range t.Steps {
			s := &t.Steps[i]
			if chosen[s.Name] || existing[s.Name] || !below[s.Name] || s.Type == StepBatchWorker {
				continue
			}
			if t.joins(s, chosen, existing, decision) {
				chosen[s.Name], grew = true, true
			}
		}
	}
	var out []*StepTemplate
	for i := range t.Steps {
		if chosen[t.Steps[i].Name] {
			out = append(out, &t.Steps[i])
		}
	}
	return out, nil
}

// joins reports whether s is created along with the chosen steps. Either way one of its
// dependencies must be chosen; a deferred convergence step needs no more, another step
// needs each of its other dependencies to exist already or to be the decision itself.
func (t *Template) joins(s *StepTemplate, chosen, existing map[string]bool, decision string) bool {
	if !slices.ContainsFunc(s.Dependencies, func(d string) bool { return chosen[d] }) {
		return false
	}
	return s.Type == StepDeferredConvergence || !slices.ContainsFunc(s.Dependencies, func(d string) bool {
		return !chosen[d] && !existing[d] && d != decision
	})
}
