// Package workflow holds task templates (the DAG shapes tasker-sim runs) and the step
// handlers that compute their results.
//
// Templates are data: JSON documents embedded from templates/ (or loaded from a
// directory), which the worker registers in the database at start. Orchestration reads
// them back from tasker.named_tasks.configuration to build each task's steps and edges.
package workflow

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed templates/*.json
var embedded embed.FS

// identifierRule is the rule for namespace, task and step names: they become parts of
// queue and table names, so they are plain lower-case identifiers.
const identifierRule = `^[a-z][a-z0-9_]{0,63}$`

var (
	identifierRE = regexp.MustCompile(identifierRule)
	versionRE    = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
)

// MaxNamespaceLength keeps worker_<namespace>_queue within pgmq's queue-name limit.
const MaxNamespaceLength = 34

// Template is one task template.
type Template struct {
	Name          string          `json:"name"`
	NamespaceName string          `json:"namespace_name"`
	Version       string          `json:"version"`
	Description   string          `json:"description,omitempty"`
	InputSchema   json.RawMessage `json:"input_schema,omitempty"`
	Steps         []StepTemplate  `json:"steps"`

	schema *jsonschema.Schema
}

// StepTemplate is one step of a template.
type StepTemplate struct {
	Name           string      `json:"name"`
	Description    string      `json:"description,omitempty"`
	Handler        HandlerSpec `json:"handler"`
	Dependencies   []string    `json:"dependencies"`
	Retry          RetrySpec   `json:"retry"`
	TimeoutSeconds int         `json:"timeout_seconds,omitempty"`
}

// HandlerSpec names the handler that runs a step and its fixed configuration.
type HandlerSpec struct {
	// Callable is a key of the handler registry, e.g. "math.square_even_number".
	Callable       string         `json:"callable"`
	Initialization map[string]any `json:"initialization,omitempty"`
}

// RetrySpec is a step's retry policy.
type RetrySpec struct {
	// Retryable defaults to true.
	Retryable *bool `json:"retryable,omitempty"`
	// MaxAttempts counts every attempt, the first included. Default 3.
	MaxAttempts int `json:"max_attempts,omitempty"`
}

// IsRetryable reports the step's retryable flag (default true).
func (r RetrySpec) IsRetryable() bool { return r.Retryable == nil || *r.Retryable }

// Attempts returns the step's max_attempts (default 3).
func (r RetrySpec) Attempts() int {
	if r.MaxAttempts <= 0 {
		return 3
	}
	return r.MaxAttempts
}

// Key returns "namespace/name/version".
func (t *Template) Key() string { return t.NamespaceName + "/" + t.Name + "/" + t.Version }

// QueueName is the worker queue that carries this template's steps.
func (t *Template) QueueName() string { return WorkerQueue(t.NamespaceName) }

// WorkerQueue names the queue of a namespace's steps.
func WorkerQueue(namespace string) string { return "worker_" + namespace + "_queue" }

// NamespaceOf is WorkerQueue's inverse; it returns "unknown" for any other queue name.
func NamespaceOf(queue string) string {
	ns, ok := strings.CutPrefix(queue, "worker_")
	if ns, ok2 := strings.CutSuffix(ns, "_queue"); ok && ok2 && ns != "" {
		return ns
	}
	return "unknown"
}

// Step returns the named step, or nil.
func (t *Template) Step(name string) *StepTemplate {
	for i := range t.Steps {
		if t.Steps[i].Name == name {
			return &t.Steps[i]
		}
	}
	return nil
}

// Parse decodes and validates a template document.
func Parse(doc []byte) (*Template, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	var t Template
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("template %s: %w", t.Key(), err)
	}
	return &t, nil
}

func (t *Template) validate() error {
	if !identifierRE.MatchString(t.Name) {
		return fmt.Errorf("name %q: must match %s", t.Name, identifierRule)
	}
	if !identifierRE.MatchString(t.NamespaceName) || len(t.NamespaceName) > MaxNamespaceLength {
		return fmt.Errorf("namespace_name %q: must match %s and be at most %d characters",
			t.NamespaceName, identifierRule, MaxNamespaceLength)
	}
	if !versionRE.MatchString(t.Version) {
		return fmt.Errorf("version %q: must be MAJOR.MINOR.PATCH", t.Version)
	}
	if len(t.Steps) == 0 {
		return fmt.Errorf("steps: must list at least one step")
	}
	seen := map[string]bool{}
	for _, s := range t.Steps {
		if !identifierRE.MatchString(s.Name) {
			return fmt.Errorf("step name %q: must match %s", s.Name, identifierRule)
		}
		if seen[s.Name] {
			return fmt.Errorf("step %s: defined twice", s.Name)
		}
		seen[s.Name] = true
		if s.Handler.Callable == "" {
			return fmt.Errorf("step %s: handler.callable is required", s.Name)
		}
		if s.Retry.MaxAttempts < 0 {
			return fmt.Errorf("step %s: retry.max_attempts must be >= 0", s.Name)
		}
	}
	for _, s := range t.Steps {
		for _, d := range s.Dependencies {
			if !seen[d] {
				return fmt.Errorf("step %s: dependency %q is not a step of this template", s.Name, d)
			}
		}
	}
	if cycle := t.findCycle(); cycle != nil {
		return fmt.Errorf("steps: dependency cycle %s", strings.Join(cycle, " -> "))
	}
	if len(t.InputSchema) > 0 {
		sch, err := compileSchema(t.Key(), t.InputSchema)
		if err != nil {
			return fmt.Errorf("input_schema: %w", err)
		}
		t.schema = sch
	}
	return nil
}

// findCycle returns one dependency cycle, or nil when the steps form a DAG.
func (t *Template) findCycle() []string {
	const (
		unvisited = iota
		active
		done
	)
	mark := map[string]int{}
	var path []string
	var visit func(name string) []string
	visit = func(name string) []string {
		switch mark[name] {
		case active:
			i := slices.Index(path, name)
			return append(slices.Clone(path[i:]), name)
		case done:
			return nil
		}
		mark[name] = active
		path = append(path, name)
		for _, d := range t.Step(name).Dependencies {
			if c := visit(d); c != nil {
				return c
			}
		}
		path = path[:len(path)-1]
		mark[name] = done
		return nil
	}
	for _, s := range t.Steps {
		if c := visit(s.Name); c != nil {
			return c
		}
	}
	return nil
}

func compileSchema(name string, schema json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	url := "mem://" + strings.ReplaceAll(name, "/", "_") + ".json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// ValidateInput checks a task context against the template's input_schema. The error
// names the field and the rule it broke.
func (t *Template) ValidateInput(context []byte) error {
	if t.schema == nil {
		return nil
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(context))
	if err != nil {
		return fmt.Errorf("context: %w", err)
	}
	err = t.schema.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("context: %w", err)
	}
	var msgs []string
	for _, u := range ve.BasicOutput().Errors {
		if u.Error == nil || u.Error.String() == "" {
			continue
		}
		field := "context" + strings.ReplaceAll(u.InstanceLocation, "/", ".")
		msgs = append(msgs, field+": "+u.Error.String())
	}
	msgs = slices.Compact(msgs)
	if len(msgs) == 0 {
		return fmt.Errorf("context: %s", ve.Error())
	}
	// The root-level summary ("validation failed") adds nothing when details exist.
	msgs = slices.DeleteFunc(msgs, func(m string) bool { return strings.HasPrefix(m, "context: validation failed") })
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

// Embedded returns the templates shipped with tasker-sim, sorted by key.
func Embedded() ([]*Template, error) {
	return load(embedded, "templates")
}

// LoadDir reads every *.json template in dir. A missing directory, or one without
// templates, is an error: a mistyped path should not go unnoticed.
func LoadDir(dir string) ([]*Template, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, err
	} else if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	ts, err := load(os.DirFS(dir), ".")
	if err == nil && len(ts) == 0 {
		err = fmt.Errorf("no *.json templates in %s", dir)
	}
	return ts, err
}

func load(fsys fs.FS, dir string) ([]*Template, error) {
	names, err := fs.Glob(fsys, filepath.ToSlash(filepath.Join(dir, "*.json")))
	if err != nil {
		return nil, err
	}
	var out []*Template
	keys := map[string]string{}
	for _, n := range names {
		doc, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		t, err := Parse(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		if prev, dup := keys[t.Key()]; dup {
			return nil, fmt.Errorf("%s: template %s is also defined in %s", n, t.Key(), prev)
		}
		keys[t.Key()] = n
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, nil
}
