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
	q := url.Values{}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	return call[api.TemplateList](ctx, c, http.MethodGet, withQuery("/v1/templates", q), nil)
}

// Template describes one registered template (GET /v1/templates/{namespace}/{name}/{version}).
func (c *Client) Template(ctx context.Context, namespace, name, version string) (*api.TemplateDetail, error) {
	return call[api.TemplateDetail](ctx, c, http.MethodGet, templatePath(namespace, name, version), nil)
}

// WorkerTemplates asks a worker (a client made with the worker's URL) which namespaces and
// how many templates it serves.
func (c *Client) WorkerTemplates(ctx context.Context) (*api.WorkerTemplateList, error) {
	return call[api.WorkerTemplateList](ctx, c, http.MethodGet, "/v1/templates", nil)
}

// WorkerTemplate fetches one template from a worker (a client made with the worker's URL).
func (c *Client) WorkerTemplate(ctx context.Context, namespace, name, version string) (*api.WorkerTemplate, error) {
	return call[api.WorkerTemplate](ctx, c, http.MethodGet, templatePath(namespace, name, version), nil)
}

func templatePath(namespace, name, version string) string {
	return "/v1/templates/" + url.PathEscape(namespace) + "/" + url.PathEscape(name) + "/" + url.PathEscape(version)
}
