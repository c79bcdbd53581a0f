package workflow

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// checkFields walks a decoded JSON document alongside the Go type it was decoded into
// and reports the first object key that the type has no field (or alias) for, with its
// path, e.g. "steps[2].retry.limit". Fields of type json.RawMessage or map[string]any are
// free-form; a shape:"object" tag requires an object (or null) there. Type mismatches are
// left to encoding/json, which has already reported them.
func checkFields(t reflect.Type, v any, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		return checkStruct(t, m, path)
	case reflect.Slice:
		a, ok := v.([]any)
		if !ok || t == rawMessageType {
			return nil
		}
		for i, e := range a {
			if err := checkFields(t.Elem(), e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkStruct(t reflect.Type, m map[string]any, path string) error {
	fields := map[string]reflect.StructField{}
	var names []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		fields[name] = f
		names = append(names, name)
		if alias := f.Tag.Get("alias"); alias != "" {
			fields[alias] = f
			names = append(names, alias)
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := k
		if path != "" {
			p = path + "." + k
		}
		f, ok := fields[k]
		if !ok {
			return fmt.Errorf("%s: unknown field: tasker-core's format has no such field here (allowed: %s)",
				p, strings.Join(names, ", "))
		}
		if _, isObj := m[k].(map[string]any); f.Tag.Get("shape") == "object" && !isObj && m[k] != nil {
			return fmt.Errorf("%s: must be an object", p)
		}
		if err := checkFields(f.Type, m[k], p); err != nil {
			return err
		}
	}
	return nil
}
