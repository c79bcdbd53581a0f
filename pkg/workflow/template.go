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
	"path"
	"path/filepath"
	"reflect"
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

// Template is one task template, in tasker-core's format. Fields that tasker-sim does not
// use yet are still read, checked for shape, and kept, so the form stored in
// tasker.named_tasks.configuration carries the whole template.
type Template struct {
	Name               string              `json:"name"`
	NamespaceName      string              `json:"namespace_name"`
	Version            string              `json:"version"`
	Description        string              `json:"description,omitempty"`
	Metadata           json.RawMessage     `json:"metadata,omitempty" shape:"object"`
	SystemDependencies *SystemDependencies `json:"system_dependencies,omitempty"`
	DomainEvents       []DomainEvent       `json:"domain_events,omitempty"`
	InputSchema        json.RawMessage     `json:"input_schema,omitempty"`
	Steps              []StepTemplate      `json:"steps"`
	Environments       json.RawMessage     `json:"environments,omitempty" shape:"object"`
	Lifecycle          json.RawMessage     `json:"lifecycle,omitempty" shape:"object"`

	// Source is the file the template was read from; empty for a template read back
	// from the database.
	Source string `json:"-"`

	schema *jsonschema.Schema
}

// SystemDependencies names the external systems a template talks to (informational).
type SystemDependencies struct {
	Primary   string   `json:"primary,omitempty"`
	Secondary []string `json:"secondary,omitempty"`
}

// DomainEvent is a template-level domain event definition (informational).
type DomainEvent struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
}

// StepTemplate is one step of a template.
type StepTemplate struct {
	Name        string      `json:"name"`
	Description string      `json:"description,omitempty"`
	Handler     HandlerSpec `json:"handler"`
	// Type is the step's kind; Parse sets StepStandard when the template gives none.
	// tasker-core also accepts the key step_type.
	Type             StepType `json:"type,omitempty" alias:"step_type"`
	SystemDependency string   `json:"system_dependency,omitempty"`
	// Dependencies name the steps that must complete first (alias depends_on).
	Dependencies    []string           `json:"dependencies" alias:"depends_on"`
	Retry           RetrySpec          `json:"retry"`
	TimeoutSeconds  int                `json:"timeout_seconds,omitempty"`
	PublishesEvents []EventDeclaration `json:"publishes_events,omitempty"`
	BatchConfig     *BatchConfig       `json:"batch_config,omitempty"`
	ResultSchema    json.RawMessage    `json:"result_schema,omitempty"`
	Composition     json.RawMessage    `json:"composition,omitempty"`
}

// HandlerSpec names the handler that runs a step and its fixed configuration.
type HandlerSpec struct {
	// Callable is a key of the handler registry, e.g. "math.square_even_number".
	Callable string `json:"callable"`
	// Method is the handler method to call (tasker-core's default is "call"); kept, unused.
	Method string `json:"method,omitempty"`
	// Resolver names how tasker-core resolves the callable; kept, unused.
	Resolver       string         `json:"resolver,omitempty"`
	Initialization map[string]any `json:"initialization,omitempty"`
}

// EventDeclaration is a domain event a step publishes (kept, not acted on).
type EventDeclaration struct {
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	Condition    string          `json:"condition,omitempty"`
	Schema       json.RawMessage `json:"schema,omitempty"`
	DeliveryMode string          `json:"delivery_mode,omitempty"`
	Publisher    string          `json:"publisher,omitempty"`
}

// RetrySpec is a step's retry policy.
type RetrySpec struct {
	// Retryable defaults to true.
	Retryable *bool `json:"retryable,omitempty"`
	// MaxAttempts counts every execution, the first included; absent means
	// DefaultMaxAttempts. 0 is kept as 0, which, as in tasker-core, means one
	// execution and no retry.
	MaxAttempts *int `json:"max_attempts,omitempty"`
	// Backoff is the backoff kind (tasker-core's default is exponential). Kept only:
	// backoff is configured globally, as in tasker-core's orchestration.
	Backoff       Backoff `json:"backoff,omitempty"`
	BackoffBaseMS *int64  `json:"backoff_base_ms,omitempty"`
	MaxBackoffMS  *int64  `json:"max_backoff_ms,omitempty"`
}

// DefaultMaxAttempts is max_attempts when a step's retry block does not give one.
const DefaultMaxAttempts = 3

// MaxMaxAttempts is the largest max_attempts a template may give.
const MaxMaxAttempts = 100

// IsRetryable reports the step's retryable flag (default true).
func (r RetrySpec) IsRetryable() bool { return r.Retryable == nil || *r.Retryable }

// Attempts returns the step's effective max_attempts: the given value, 0 included, or
// DefaultMaxAttempts when absent.
func (r RetrySpec) Attempts() int {
	if r.MaxAttempts == nil {
		return DefaultMaxAttempts
	}
	return *r.MaxAttempts
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

// Parse decodes and validates a JSON template document: tasker-core's format, or the
// form Register stores. A field that is not part of the format is an error naming its
// path, e.g. steps[2].retry.limit.
func Parse(doc []byte) (*Template, error) {
	var t Template
	if err := json.Unmarshal(doc, &t); err != nil {
		return nil, fmt.Errorf("template: %w", typeError(err))
	}
	var generic any
	if err := json.Unmarshal(doc, &generic); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	if err := checkFields(reflect.TypeFor[Template](), generic, ""); err != nil {
		return nil, fmt.Errorf("template %s: %w", t.Key(), err)
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("template %s: %w", t.Key(), err)
	}
	return &t, nil
}

// typeError rewords encoding/json's type mismatch to name the field's path and the type
// it needs, e.g. "steps.retry.max_attempts: a string cannot be read as int".
// encoding/json gives the path without list indices.
func typeError(err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Field == "" {
		return err
	}
	field := strings.ReplaceAll(te.Field, ".plain", "")
	want, hint := te.Type.String(), ""
	switch te.Type.Kind() {
	case reflect.Struct, reflect.Map:
		want = "an object"
	case reflect.String:
		hint = " (in YAML, quote a value such as 1.0 that must stay a string)"
	}
	return fmt.Errorf("%s: a %s cannot be read as %s%s", field, te.Value, want, hint)
}

func (t *Template) validate() error {
	if err := t.validateNames(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range t.Steps {
		s := &t.Steps[i]
		if seen[s.Name] {
			return fmt.Errorf("step %s: defined twice", s.Name)
		}
		seen[s.Name] = true
		if err := s.validate(); err != nil {
			return fmt.Errorf("step %s: steps[%d].%w", s.Name, i, err)
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
	if len(t.InputSchema) > 0 && string(t.InputSchema) != "null" {
		sch, err := compileSchema(t.Key(), t.InputSchema)
		if err != nil {
			return fmt.Errorf("input_schema: %w", err)
		}
		t.schema = sch
	}
	return nil
}

// validateNames checks the template's name, namespace, version and step names.
func (t *Template) validateNames() error {
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
	for i, s := range t.Steps {
		if !identifierRE.MatchString(s.Name) {
			return fmt.Errorf("steps[%d].name: step name %q must match %s", i, s.Name, identifierRule)
		}
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
	return load(embedded, "templates", "templates")
}

// LoadDir reads every template in dir: *.yaml and *.yml files in tasker-core's YAML
// format, and *.json files. A missing directory, or one without templates, is an error:
// a mistyped path should not go unnoticed.
func LoadDir(dir string) ([]*Template, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, err
	} else if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	ts, err := load(os.DirFS(dir), ".", dir)
	if err == nil && len(ts) == 0 {
		err = fmt.Errorf("no *.yaml, *.yml or *.json templates in %s", dir)
	}
	return ts, err
}

// templateFiles lists the template files of dir in fsys, sorted.
func templateFiles(fsys fs.FS, dir string) ([]string, error) {
	var names []string
	for _, pattern := range []string{"*.yaml", "*.yml", "*.json"} {
		found, err := fs.Glob(fsys, path.Join(dir, pattern))
		if err != nil {
			return nil, err
		}
		names = append(names, found...)
	}
	slices.Sort(names)
	return names, nil
}

// load parses every template file of dir in fsys; shown is dir as error messages and
// Template.Source name it.
func load(fsys fs.FS, dir, shown string) ([]*Template, error) {
	names, err := templateFiles(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []*Template
	keys := map[string]string{}
	for _, n := range names {
		file := filepath.Join(shown, path.Base(n))
		doc, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		parse := Parse
		if path.Ext(n) != ".json" {
			parse = ParseYAML
		}
		t, err := parse(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if prev, dup := keys[t.Key()]; dup {
			return nil, fmt.Errorf("%s: template %s is also defined in %s", file, t.Key(), prev)
		}
		t.Source = file
		keys[t.Key()] = file
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, nil
}
