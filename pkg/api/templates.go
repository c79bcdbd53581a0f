package api

import (
	"encoding/json"
	"regexp"
	"time"
)

// TemplateList is the body of the orchestrator's GET /v1/templates, in tasker-core's
// shape.
type TemplateList struct {
	// Namespaces lists every registered namespace, whatever the filter.
	Namespaces []NamespaceSummary `json:"namespaces"`
	// Templates lists the registered templates, of the requested namespace only when
	// ?namespace= is given.
	Templates []TemplateSummary `json:"templates"`
	// TotalCount counts the templates of every namespace, before the filter (as core).
	TotalCount int `json:"total_count"`
}

// NamespaceSummary is one namespace of a TemplateList.
type NamespaceSummary struct {
	Name          string  `json:"name"`
	Description   *string `json:"description"`
	TemplateCount int     `json:"template_count"`
}

// TemplateSummary is one template of a TemplateList.
type TemplateSummary struct {
	Name        string  `json:"name"`
	Namespace   string  `json:"namespace"`
	Version     string  `json:"version"`
	Description *string `json:"description"`
	StepCount   int     `json:"step_count"`
}

// TemplateDetail is the body of the orchestrator's GET
// /v1/templates/{namespace}/{name}/{version}.
type TemplateDetail struct {
	Name        string  `json:"name"`
	Namespace   string  `json:"namespace"`
	Version     string  `json:"version"`
	Description *string `json:"description"`
	// Configuration is the stored template document. tasker-core always sends null here;
	// the sim sends the template it stored.
	Configuration json.RawMessage  `json:"configuration"`
	Steps         []StepDefinition `json:"steps"`
}

// StepDefinition is one step of a TemplateDetail.
type StepDefinition struct {
	Name               string  `json:"name"`
	Description        *string `json:"description"`
	DefaultRetryable   bool    `json:"default_retryable"`
	DefaultMaxAttempts int     `json:"default_max_attempts"`
	// ResultSchema is the step's result_schema, or null.
	ResultSchema json.RawMessage `json:"result_schema"`
}

// WorkerTemplateList is the body of the worker's GET /v1/templates.
type WorkerTemplateList struct {
	// SupportedNamespaces are the namespaces whose queues the worker serves.
	SupportedNamespaces []string `json:"supported_namespaces"`
	// TemplateCount counts the worker's templates in those namespaces.
	TemplateCount int `json:"template_count"`
	// CacheStats is always null: the worker holds its templates in memory, uncached.
	CacheStats json.RawMessage `json:"cache_stats"`
	// WorkerCapabilities is a fixed list.
	WorkerCapabilities []string `json:"worker_capabilities"`
}

// WorkerTemplate is the body of the worker's GET /v1/templates/{namespace}/{name}/{version}.
type WorkerTemplate struct {
	// Template is the template as the worker holds it.
	Template        json.RawMessage `json:"template"`
	HandlerMetadata HandlerMetadata `json:"handler_metadata"`
	// Cached is always true; CacheAgeSeconds and AccessCount are always null (as core).
	Cached          bool   `json:"cached"`
	CacheAgeSeconds *int64 `json:"cache_age_seconds"`
	AccessCount     *int64 `json:"access_count"`
}

// HandlerMetadata describes the handler of a worker template.
type HandlerMetadata struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	// HandlerClass is the first step's callable.
	HandlerClass string `json:"handler_class"`
	// DefaultDependentSystem is always null.
	DefaultDependentSystem *string `json:"default_dependent_system"`
	// RegisteredAt is when the worker registered its templates.
	RegisteredAt time.Time `json:"registered_at"`
}

// The naming rules of a template's path: namespace and name are lower-case identifiers,
// version is MAJOR.MINOR.PATCH.
var (
	templateIdentifierRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	templateVersionRE    = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
)

// CheckTemplatePath checks the path values of a template route against the naming rules.
// It returns "" when they pass, else a message naming the first field that breaks them.
func CheckTemplatePath(namespace, name, version string) string {
	switch {
	case !templateIdentifierRE.MatchString(namespace):
		return "namespace: must match ^[a-z][a-z0-9_]{0,63}$"
	case !templateIdentifierRE.MatchString(name):
		return "name: must match ^[a-z][a-z0-9_]{0,63}$"
	case !templateVersionRE.MatchString(version):
		return "version: must be MAJOR.MINOR.PATCH, e.g. 1.0.0"
	}
	return ""
}
