package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/tasker-sim/tasker-sim/pkg/api"
)

// TaskSummary fetches the one-call view of a task: the task, its template's steps, its
// steps with their errors, and its pending DLQ entry (GET /v1/tasks/{uuid}/summary).
func (c *Client) TaskSummary(ctx context.Context, taskUUID string) (*api.TaskSummaryResponse, error) {
	return call[api.TaskSummaryResponse](ctx, c, http.MethodGet, "/v1/tasks/"+url.PathEscape(taskUUID)+"/summary", nil)
}

// Config fetches the orchestrator's configuration that is safe to show (GET /config).
func (c *Client) Config(ctx context.Context) (*api.OrchestrationConfigResponse, error) {
	return call[api.OrchestrationConfigResponse](ctx, c, http.MethodGet, "/config", nil)
}
