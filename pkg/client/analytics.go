package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tasker-sim/tasker-sim/pkg/api"
)

// Performance fetches GET /v1/analytics/performance; hours < 0 leaves the server's
// default (24), and 0 means one hour.
func (c *Client) Performance(ctx context.Context, hours int) (*api.PerformanceMetrics, error) {
	path := "/v1/analytics/performance"
	if hours >= 0 {
		path += "?hours=" + strconv.Itoa(hours)
	}
	return call[api.PerformanceMetrics](ctx, c, http.MethodGet, path, nil)
}

// Bottlenecks fetches GET /v1/analytics/bottlenecks; a zero limit or minExecutions leaves
// the server's default (10 and 5).
func (c *Client) Bottlenecks(ctx context.Context, limit, minExecutions int) (*api.BottleneckAnalysis, error) {
	q := url.Values{}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if minExecutions != 0 {
		q.Set("min_executions", strconv.Itoa(minExecutions))
	}
	return call[api.BottleneckAnalysis](ctx, c, http.MethodGet, withQuery("/v1/analytics/bottlenecks", q), nil)
}
