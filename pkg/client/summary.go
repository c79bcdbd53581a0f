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
	var out api.TaskSummaryResponse
	if err := c.do(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(taskUUID)+"/summary", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Config fetches the orchestrator's configuration that is safe to show (GET /config).
func (c *Client) Config(ctx context.Context) (*api.OrchestrationConfigResponse, error) {
	var out api.OrchestrationConfigResponse
	if err := c.do(ctx, http.MethodGet, "/config", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
