package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/tasker-sim/tasker-sim/pkg/api"
)

// stepPath is the path of one step of a task.
func stepPath(task, step string) string {
	return "/v1/tasks/" + url.PathEscape(task) + "/workflow_steps/" + url.PathEscape(step)
}

// GetStep fetches one step of a task.
func (c *Client) GetStep(ctx context.Context, task, step string) (*api.StepResponse, error) {
	return call[api.StepResponse](ctx, c, http.MethodGet, stepPath(task, step), nil)
}

// StepAction applies an operator action to a step (reset_for_retry, resolve_manually,
// complete_manually) and returns the step afterwards.
func (c *Client) StepAction(ctx context.Context, task, step string, act *api.StepManualAction) (*api.StepResponse, error) {
	return call[api.StepResponse](ctx, c, http.MethodPatch, stepPath(task, step), act)
}

// StepAudit lists a step's result submissions, newest first.
func (c *Client) StepAudit(ctx context.Context, task, step string) ([]api.StepAuditResponse, error) {
	return callList[api.StepAuditResponse](ctx, c, http.MethodGet, stepPath(task, step)+"/audit", nil)
}
