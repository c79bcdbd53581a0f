// Package client is a Go client for the tasker-sim orchestration REST API, used by
// taskerctl, the harness and tests.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
)

// DefaultURL is the orchestration API's default address (TASKER_ORCHESTRATION_URL).
const DefaultURL = "http://127.0.0.1:8080"

// Client talks to one orchestrator.
type Client struct {
	base  string
	http  *http.Client
	token string
}

// WithToken returns a copy of the client that sends "Authorization: Bearer token".
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

// New returns a client for baseURL (e.g. http://127.0.0.1:8080). A nil httpClient uses
// one with keep-alives and no overall timeout (long-polls set their own).
func New(baseURL string, httpClient *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("orchestration url %q: must be an http(s) URL such as %s", baseURL, DefaultURL)
	}
	if httpClient == nil {
		httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), http: httpClient}, nil
}

// APIError is a non-2xx answer.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("orchestrator answered %d %s: %s", e.Status, e.Code, e.Message)
}

// call sends one request and decodes the answer into a new T.
func call[T any](ctx context.Context, c *Client, method, path string, body any) (*T, error) {
	var out T
	if err := c.do(ctx, method, path, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// callList sends one request whose answer is a JSON array.
func callList[T any](ctx context.Context, c *Client, method, path string, body any) ([]T, error) {
	out, err := call[[]T](ctx, c, method, path, body)
	if err != nil {
		return nil, err
	}
	return *out, nil
}

// IsStatus reports whether err is an *APIError with the given HTTP status.
func IsStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e api.ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Error.Code == "" {
			e.Error = api.ErrorDetail{Code: http.StatusText(resp.StatusCode), Message: strings.TrimSpace(string(data))}
		}
		return &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// WaitAny watches many tasks with one long poll (POST /v1/tasks/wait): it answers with those
// that are settled (terminal, or blocked_by_failures) or unknown as soon as there is one,
// or with none after timeout.
func (c *Client) WaitAny(ctx context.Context, ids []string, timeout time.Duration) (*api.WaitResponse, error) {
	var out api.WaitResponse
	req := api.WaitRequest{TaskUUIDs: ids, TimeoutMS: int(timeout.Milliseconds())}
	if err := c.do(ctx, http.MethodPost, "/v1/tasks/wait", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateTask posts a task request.
func (c *Client) CreateTask(ctx context.Context, req *api.TaskRequest) (*api.TaskResponse, error) {
	return call[api.TaskResponse](ctx, c, http.MethodPost, "/v1/tasks", req)
}

// GetTask fetches one task.
func (c *Client) GetTask(ctx context.Context, id string) (*api.TaskResponse, error) {
	return call[api.TaskResponse](ctx, c, http.MethodGet, "/v1/tasks/"+url.PathEscape(id), nil)
}

// WaitTask blocks until the task settles, in a terminal state (complete, error, cancelled,
// resolved_manually) or blocked_by_failures, where a failed task waits for an operator,
// or until ctx ends. It long-polls, so it returns as soon as the orchestrator finalizes
// the task rather than on a polling tick.
func (c *Client) WaitTask(ctx context.Context, id string) (*api.TaskResponse, error) {
	for {
		var out api.TaskResponse
		err := c.do(ctx, http.MethodGet, "/v1/tasks/"+url.PathEscape(id)+"?wait=30s", nil, &out)
		if err != nil {
			return nil, err
		}
		if lifecycle.TaskState(out.Status).Settled() {
			return &out, nil
		}
		if err := ctx.Err(); err != nil {
			return &out, err
		}
	}
}

// ListOptions filters ListTasks. Zero values mean no filter and the server's defaults.
type ListOptions struct {
	Namespace string
	Status    string
	Page      int
	PerPage   int
	// Initiator and SourceSystem keep the tasks with that initiator or source system.
	Initiator, SourceSystem string
}

// ListTasks lists tasks, newest first.
func (c *Client) ListTasks(ctx context.Context, o ListOptions) (*api.TaskList, error) {
	q := url.Values{}
	if o.Namespace != "" {
		q.Set("namespace", o.Namespace)
	}
	if o.Status != "" {
		q.Set("status", o.Status)
	}
	if o.Initiator != "" {
		q.Set("initiator", o.Initiator)
	}
	if o.SourceSystem != "" {
		q.Set("source_system", o.SourceSystem)
	}
	if o.Page > 0 {
		q.Set("page", strconv.Itoa(o.Page))
	}
	if o.PerPage > 0 {
		q.Set("per_page", strconv.Itoa(o.PerPage))
	}
	return call[api.TaskList](ctx, c, http.MethodGet, withQuery("/v1/tasks", q), nil)
}

// CancelTask cancels a task.
func (c *Client) CancelTask(ctx context.Context, id string) (*api.TaskResponse, error) {
	return call[api.TaskResponse](ctx, c, http.MethodDelete, "/v1/tasks/"+url.PathEscape(id), nil)
}

// Steps lists a task's workflow steps.
func (c *Client) Steps(ctx context.Context, id string) ([]api.StepResponse, error) {
	return callList[api.StepResponse](ctx, c, http.MethodGet, "/v1/tasks/"+url.PathEscape(id)+"/workflow_steps", nil)
}
