// Package contract checks HTTP exchanges against an OpenAPI document: tasker-core's
// published one, pinned under testdata/ with its source and licence.
//
// Each answer of a documented route must carry a documented status, and its JSON body
// must match that status's schema, with no property the schema does not list (every
// object schema that lists properties is made closed). Schemas are JSON Schema 2020-12,
// as OpenAPI 3.1 defines them, checked by santhosh-tekuri/jsonschema. A route the
// document does not have is not judged: Check reports ErrUndocumented.
//
// tasker-core's document is known to differ from what tasker-core itself sends in a few
// places; those are corrected by the errata a caller passes to Load, each with its reason.
package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// ErrUndocumented means the document has no operation for the exchange's method and path.
var ErrUndocumented = errors.New("route not in the document")

// Erratum corrects the document where it is known to be wrong. Fix edits the decoded
// document in place.
type Erratum struct {
	Reason string
	Fix    func(doc map[string]any) error
}

// Document is a loaded OpenAPI document, ready to check exchanges.
type Document struct {
	doc      map[string]any
	json     []byte // the document as checked, for serving
	routes   []route
	compiler *jsonschema.Compiler

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema
}

type route struct {
	template string // as the document writes it, e.g. /v1/tasks/{uuid}
	re       *regexp.Regexp
}

// resource is the URL the document is known by inside the schema compiler.
const resource = "urn:tasker-contract:openapi.json"

// Load reads a YAML or JSON OpenAPI document, applies the errata, and closes its object
// schemas.
func Load(path string, errata ...Erratum) (*Document, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, raw, errata...)
}

// parse is Load of a document already read; path names it in errors.
func parse(path string, raw []byte, errata ...Erratum) (*Document, error) {
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: not an object", path)
	}
	for _, e := range errata {
		if err := e.Fix(doc); err != nil {
			return nil, fmt.Errorf("%s: erratum %q: %w", path, e.Reason, err)
		}
	}
	closeObjects(doc["components"])
	closeObjects(doc["paths"])
	served, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	d := &Document{doc: doc, json: served, compiler: jsonschema.NewCompiler(), schemas: map[string]*jsonschema.Schema{}}
	d.compiler.DefaultDraft(jsonschema.Draft2020)
	if err := d.compiler.AddResource(resource, doc); err != nil {
		return nil, err
	}
	paths, _ := doc["paths"].(map[string]any)
	for p := range paths {
		d.routes = append(d.routes, route{template: p, re: templateRE(p)})
	}
	// Literal paths before templated ones: /v1/dlq/stats is not /v1/dlq/task/{uuid}.
	sort.Slice(d.routes, func(i, j int) bool {
		return strings.Count(d.routes[i].template, "{") < strings.Count(d.routes[j].template, "{")
	})
	return d, nil
}

// templateRE matches a concrete path against a path template.
func templateRE(p string) *regexp.Regexp {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			parts[i] = `[^/]+`
		} else {
			parts[i] = regexp.QuoteMeta(s)
		}
	}
	return regexp.MustCompile("^" + strings.Join(parts, "/") + "$")
}

// closeObjects makes every object schema that lists properties refuse others.
func closeObjects(v any) {
	switch x := v.(type) {
	case map[string]any:
		if _, has := x["properties"]; has {
			if _, set := x["additionalProperties"]; !set {
				x["additionalProperties"] = false
			}
		}
		for _, c := range x {
			closeObjects(c)
		}
	case []any:
		for _, c := range x {
			closeObjects(c)
		}
	}
}

// JSON is the document as it checks answers: errata applied, objects closed.
func (d *Document) JSON() []byte { return d.json }

// Route returns the document's path template that path matches, if any.
func (d *Document) Route(path string) (string, bool) {
	for _, r := range d.routes {
		if r.re.MatchString(path) {
			return r.template, true
		}
	}
	return "", false
}

// Check judges one answer: the route's operation must document status, and a JSON body
// must match its schema.
func (d *Document) Check(method, path string, status int, contentType string, body []byte) error {
	tmpl, ok := d.Route(path)
	if !ok {
		return ErrUndocumented
	}
	op := lookup(d.doc, "paths", tmpl, strings.ToLower(method))
	if op == nil {
		return ErrUndocumented
	}
	responses, _ := op["responses"].(map[string]any)
	code := strconv.Itoa(status)
	resp, ok := responses[code].(map[string]any)
	if !ok {
		if resp, ok = responses["default"].(map[string]any); !ok {
			return fmt.Errorf("%s %s: status %d is not documented (documented: %s)", method, tmpl, status, keys(responses))
		}
		code = "default"
	}
	content, _ := resp["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	if media == nil || !strings.HasPrefix(contentType, "application/json") {
		return nil // nothing to check: no JSON documented, or none sent
	}
	sch, err := d.schema(pointer("paths", tmpl, strings.ToLower(method), "responses", code, "content", "application/json", "schema"))
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s %d: body is not JSON: %w", method, tmpl, status, err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("%s %s %d: %w", method, tmpl, status, err)
	}
	return nil
}

// lookup walks nested objects by key; nil when a step is missing or not an object.
func lookup(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

// schema compiles (once) the schema at a JSON pointer into the document.
func (d *Document) schema(ptr string) (*jsonschema.Schema, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.schemas[ptr]; ok {
		return s, nil
	}
	s, err := d.compiler.Compile(resource + "#" + ptr)
	if err != nil {
		return nil, err
	}
	d.schemas[ptr] = s
	return s, nil
}

// pointer builds a JSON pointer from its tokens.
func pointer(tokens ...string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteString("/")
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

func keys(m map[string]any) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
