package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/tasker-sim/tasker-sim/pkg/api"
)

// Templates lists the registered namespaces and templates (GET /v1/templates); a non-empty
// namespace filters the templates.
func (c *Client) Templates(ctx context.Context, namespace string) (*api.TemplateList, error) {
	path := "/v1/templates"
	if namespace != "" {
		path += "?" + url.Values{"namespace": {namespace}}.Encode()
	}
	var out api.TemplateList
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Template describes one registered template (GET /v1/templates/{namespace}/{name}/{version}).
func (c *Client) Template(ctx context.Context, namespace, name, version string) (*api.TemplateDetail, error) {
	var out api.TemplateDetail
	if err := c.do(ctx, http.MethodGet, templatePath(namespace, name, version), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WorkerTemplates asks a worker (a client made with the worker's URL) which namespaces and
// how many templates it serves.
func (c *Client) WorkerTemplates(ctx context.Context) (*api.WorkerTemplateList, error) {
	var out api.WorkerTemplateList
	if err := c.do(ctx, http.MethodGet, "/v1/templates", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WorkerTemplate fetches one template from a worker (a client made with the worker's URL).
func (c *Client) WorkerTemplate(ctx context.Context, namespace, name, version string) (*api.WorkerTemplate, error) {
	var out api.WorkerTemplate
	if err := c.do(ctx, http.MethodGet, templatePath(namespace, name, version), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func templatePath(namespace, name, version string) string {
	return "/v1/templates/" + url.PathEscape(namespace) + "/" + url.PathEscape(name) + "/" + url.PathEscape(version)
}
