package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// templateRoutes registers the template routes of tasker-core's API.
func (o *Orchestrator) templateRoutes(route routeFunc) {
	route("GET", "/v1/templates", o.handleTemplates)
	route("GET", "/v1/templates/{namespace}/{name}/{version}", o.handleTemplate)
}

// handleTemplates answers GET /v1/templates?namespace=: every namespace, and the
// templates of the given namespace (all when none is given; none when it is unknown).
func (o *Orchestrator) handleTemplates(w http.ResponseWriter, r *http.Request) {
	list, err := o.ListTemplates(r.Context(), r.URL.Query().Get("namespace"))
	o.answer(w, r, list, err)
}

// handleTemplate answers GET /v1/templates/{namespace}/{name}/{version}.
func (o *Orchestrator) handleTemplate(w http.ResponseWriter, r *http.Request) {
	ns, name, version := r.PathValue("namespace"), r.PathValue("name"), r.PathValue("version")
	if msg := api.CheckTemplatePath(ns, name, version); msg != "" {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, msg)
		return
	}
	detail, err := o.GetTemplate(r.Context(), ns, name, version)
	o.answer(w, r, detail, err)
}

// ListTemplates lists the registered namespaces and templates, the templates filtered by
// namespace when it is not empty. TotalCount counts all templates, as tasker-core does.
func (o *Orchestrator) ListTemplates(ctx context.Context, namespace string) (*api.TemplateList, error) {
	list := &api.TemplateList{Namespaces: []api.NamespaceSummary{}, Templates: []api.TemplateSummary{}}
	rows, err := o.pool.Query(ctx, `
		SELECT tn.name, NULLIF(tn.description, ''), count(nt.named_task_uuid)::int
		  FROM tasker.task_namespaces AS tn
		  LEFT JOIN tasker.named_tasks AS nt ON nt.task_namespace_uuid = tn.task_namespace_uuid
		 GROUP BY tn.task_namespace_uuid
		 ORDER BY tn.name`)
	if err != nil {
		return nil, err
	}
	list.Namespaces, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.NamespaceSummary, error) {
		var n api.NamespaceSummary
		err := row.Scan(&n.Name, &n.Description, &n.TemplateCount)
		list.TotalCount += n.TemplateCount
		return n, err
	})
	if err != nil {
		return nil, err
	}
	// step_count is read from the stored template (0 if it has no steps array), as core does.
	rows, err = o.pool.Query(ctx, `
		SELECT nt.name, tn.name, nt.version, NULLIF(nt.description, ''),
		       CASE WHEN jsonb_typeof(nt.configuration->'steps') = 'array'
		            THEN jsonb_array_length(nt.configuration->'steps') ELSE 0 END
		  FROM tasker.named_tasks AS nt
		  JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
		 WHERE $1 = '' OR tn.name = $1
		 ORDER BY tn.name, nt.name, nt.version`, namespace)
	if err != nil {
		return nil, err
	}
	list.Templates, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.TemplateSummary, error) {
		var t api.TemplateSummary
		err := row.Scan(&t.Name, &t.Namespace, &t.Version, &t.Description, &t.StepCount)
		return t, err
	})
	if err != nil {
		return nil, err
	}
	return list, nil
}

// GetTemplate describes one registered template: the stored template document and its
// steps' retry defaults. An unknown template is ErrNotFound.
func (o *Orchestrator) GetTemplate(ctx context.Context, namespace, name, version string) (*api.TemplateDetail, error) {
	d := &api.TemplateDetail{Name: name, Namespace: namespace, Version: version}
	err := o.pool.QueryRow(ctx, `
		SELECT NULLIF(nt.description, ''), nt.configuration
		  FROM tasker.named_tasks AS nt
		  JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
		 WHERE tn.name = $1 AND nt.name = $2 AND nt.version = $3`,
		namespace, name, version).Scan(&d.Description, &d.Configuration)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, &templateNotRegisteredError{key: namespace + "/" + name + "/" + version}
	}
	if err != nil {
		return nil, err
	}
	tmpl, err := workflow.Parse(d.Configuration)
	if err != nil {
		return nil, fmt.Errorf("stored template %s/%s/%s: %w", namespace, name, version, err)
	}
	d.Steps = make([]api.StepDefinition, len(tmpl.Steps))
	for i, s := range tmpl.Steps {
		d.Steps[i] = api.StepDefinition{Name: s.Name, DefaultRetryable: s.Retry.IsRetryable(),
			DefaultMaxAttempts: s.Retry.Attempts(), ResultSchema: templateJSONOrNull(s.ResultSchema)}
		if s.Description != "" {
			d.Steps[i].Description = &s.Description
		}
	}
	return d, nil
}

// templateNotRegisteredError is an unknown template; it is ErrNotFound, with a message of its own.
type templateNotRegisteredError struct{ key string }

func (e *templateNotRegisteredError) Error() string {
	return "template " + e.key + " is not registered"
}

// Is makes errors.Is(err, ErrNotFound) hold.
func (e *templateNotRegisteredError) Is(target error) bool { return target == ErrNotFound }

// templateJSONOrNull returns raw, or the JSON null when raw is empty.
func templateJSONOrNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}
