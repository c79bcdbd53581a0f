package faults

import (
	"bytes"
	"encoding/json"
)

// FieldError is a fault a per-task faults object may not carry; Field is the fault's
// JSON name and Rule the rule it broke.
type FieldError struct {
	Field string
	Rule  string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Rule }

// RefuseProcessFaults checks a per-task faults object (a task context's "_faults") for
// process-only faults, and returns a *FieldError naming the first one it sets, even to a
// zero value: such a key means nothing per task. A document that is not a JSON object
// carries none; Parse reports what else is wrong with it.
func RefuseProcessFaults(doc []byte) *FieldError {
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(doc, &keys) // not an object: no keys, and Parse says what is wrong
	for _, name := range ProcessOnly {
		if _, ok := keys[name]; ok {
			return &FieldError{Field: name, Rule: processOnlyRule}
		}
	}
	return nil
}

// ValidateForTask checks a per-task faults object, as taskerctl task create --faults
// gives it: it may set no process-only fault, and every field must pass Parse.
func ValidateForTask(doc []byte) error {
	if fe := RefuseProcessFaults(doc); fe != nil {
		return fe
	}
	_, err := Parse(doc)
	return err
}

// RefuseProcessFaultsInContext applies RefuseProcessFaults to a task context's "_faults"
// object, if it has one. The rest of a task's faults is checked when its steps run.
func RefuseProcessFaultsInContext(taskContext []byte) *FieldError {
	if !bytes.Contains(taskContext, []byte(`"`+ContextKey+`"`)) {
		return nil
	}
	var c map[string]json.RawMessage
	_ = json.Unmarshal(taskContext, &c) // a context that is not an object carries no faults
	raw, ok := c[ContextKey]
	if !ok {
		return nil
	}
	return RefuseProcessFaults(raw)
}
