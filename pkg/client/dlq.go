package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tasker-sim/tasker-sim/pkg/api"
)

// DlqListOptions filters and pages ListDlq. Zero values mean no filter and the server's
// defaults (limit 50, offset 0).
type DlqListOptions struct {
	// ResolutionStatus is one of the api.Dlq* resolution statuses (PascalCase).
	ResolutionStatus string
	Limit            int
	Offset           int
}

// ListDlq lists DLQ entries, newest first (GET /v1/dlq).
func (c *Client) ListDlq(ctx context.Context, o DlqListOptions) ([]api.DlqEntry, error) {
	q := url.Values{}
	if o.ResolutionStatus != "" {
		q.Set("resolution_status", o.ResolutionStatus)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Offset > 0 {
		q.Set("offset", strconv.Itoa(o.Offset))
	}
	return callList[api.DlqEntry](ctx, c, http.MethodGet, withQuery("/v1/dlq", q), nil)
}

// GetDlqEntryForTask fetches a task's most recent DLQ entry (GET /v1/dlq/task/{task_uuid}).
func (c *Client) GetDlqEntryForTask(ctx context.Context, taskUUID string) (*api.DlqEntry, error) {
	return call[api.DlqEntry](ctx, c, http.MethodGet, "/v1/dlq/task/"+url.PathEscape(taskUUID), nil)
}

// UpdateDlqInvestigation overwrites the given fields of a DLQ entry
// (PATCH /v1/dlq/entry/{dlq_entry_uuid}).
func (c *Client) UpdateDlqInvestigation(ctx context.Context, entryUUID string,
	req *api.UpdateInvestigationRequest) (*api.UpdateInvestigationResponse, error) {
	return call[api.UpdateInvestigationResponse](ctx, c, http.MethodPatch, "/v1/dlq/entry/"+url.PathEscape(entryUUID), req)
}

// DlqStats counts DLQ entries per reason (GET /v1/dlq/stats).
func (c *Client) DlqStats(ctx context.Context) ([]api.DlqStats, error) {
	return callList[api.DlqStats](ctx, c, http.MethodGet, "/v1/dlq/stats", nil)
}

// DlqInvestigationQueue lists pending DLQ entries, most urgent first
// (GET /v1/dlq/investigation-queue); limit 0 takes the server's default (100).
func (c *Client) DlqInvestigationQueue(ctx context.Context, limit int) ([]api.DlqInvestigationQueueEntry, error) {
	return callList[api.DlqInvestigationQueueEntry](ctx, c, http.MethodGet, withQuery("/v1/dlq/investigation-queue", dlqLimitQuery(limit)), nil)
}

// DlqStaleness lists unfinished tasks in a waiting state with their staleness class,
// stale first (GET /v1/dlq/staleness); limit 0 takes the server's default (100).
func (c *Client) DlqStaleness(ctx context.Context, limit int) ([]api.StalenessMonitoring, error) {
	return callList[api.StalenessMonitoring](ctx, c, http.MethodGet, withQuery("/v1/dlq/staleness", dlqLimitQuery(limit)), nil)
}

func dlqLimitQuery(limit int) url.Values {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}

// withQuery is path with q as its query string (none when q is empty).
func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
