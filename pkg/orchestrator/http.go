package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/faults"
	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
)

// routeFunc registers an API handler for method and path (a ServeMux pattern) behind the
// bearer token and the web database breaker.
type routeFunc func(method, path string, h http.HandlerFunc)

func (o *Orchestrator) routes() http.Handler {
	mux := http.NewServeMux()
	// The task API and the admin endpoint take the optional bearer token; health and
	// metrics stay open for probes and scrapers.
	auth := func(h http.HandlerFunc) http.Handler { return api.RequireBearer(o.cfg.AuthToken, h) }
	mux.Handle("POST /v1/tasks", auth(o.guarded("/v1/tasks", o.handleCreate)))
	mux.Handle("GET /v1/tasks", auth(o.guarded("/v1/tasks", o.handleList)))
	mux.Handle("GET /v1/tasks/{uuid}", auth(o.guarded("/v1/tasks/{uuid}", o.handleGet)))
	mux.Handle("POST /v1/tasks/wait", auth(o.guarded("/v1/tasks/wait", o.handleWaitAny)))
	mux.Handle("DELETE /v1/tasks/{uuid}", auth(o.guarded("/v1/tasks/{uuid}", o.handleCancel)))
	mux.Handle("GET /v1/tasks/{uuid}/workflow_steps", auth(o.guarded("/v1/tasks/{uuid}/workflow_steps", o.handleSteps)))
	// Route groups in files of their own: steps_api.go, dlq_api.go, templates_api.go,
	// analytics_api.go.
	route := func(method, path string, h http.HandlerFunc) { mux.Handle(method+" "+path, auth(o.guarded(path, h))) }
	for _, group := range []func(routeFunc){o.stepRoutes, o.dlqRoutes, o.templateRoutes, o.analyticsRoutes} {
		group(route)
	}
	mux.HandleFunc("GET /health", o.handleHealth)
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, _ *http.Request) {
		api.WriteJSON(w, http.StatusOK, api.Health{Status: "alive", Timestamp: time.Now().UTC()})
	})
	mux.HandleFunc("GET /health/ready", o.handleReady)
	mux.HandleFunc("GET /health/detailed", o.handleDetailed)
	mux.Handle("GET /metrics", o.tel.MetricsHandler)
	mux.Handle("/admin/faults", api.RequireBearer(o.cfg.AuthToken, faults.Handler(o.faults)))
	return mux
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	api.WriteError(w, status, code, msg)
}

// writeFailure maps an error to its status code. Internal errors are logged, and the
// client gets a generic message rather than SQL details.
func (o *Orchestrator) writeFailure(w http.ResponseWriter, r *http.Request, err error) {
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, ve.Error())
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, api.CodeNotFound, err.Error())
	case errors.Is(err, ErrDuplicate):
		writeError(w, http.StatusConflict, api.CodeConflict, err.Error())
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, api.CodeConflict, err.Error())
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads an answer.
	case retryableDatabaseError(err):
		o.log.Warn("request failed; the client may retry", "method", r.Method, "path", r.URL.Path, "error", err)
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		writeError(w, http.StatusServiceUnavailable, api.CodeServiceUnavailable,
			"the database is busy or unreachable; retry after the Retry-After delay")
	default:
		o.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "internal error; see the orchestrator log")
	}
}

// retryAfterSeconds is the Retry-After given with a 503 for a passing database condition.
const retryAfterSeconds = 1

// retryableDatabaseError reports the database errors that mean "not now" rather than
// "never": no connection, a server shutting down or out of connections, a serialization
// failure or deadlock, a lock or statement timeout. A client retrying later can succeed.
func retryableDatabaseError(err error) bool {
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "40", "53": // connection exception, transaction rollback, insufficient resources
			return true
		}
		switch pgErr.Code {
		case "55P03", "57014", "57P01", "57P02", "57P03": // lock_not_available, query_canceled, shutdowns
			return true
		}
		return false
	}
	return pgconn.SafeToRetry(err)
}

func (o *Orchestrator) handleCreate(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, o.cfg.MaxRequestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, api.CodePayloadTooLarge,
				fmt.Sprintf("request body: must be at most %d bytes", o.cfg.MaxRequestBytes))
			return
		}
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "request body: "+err.Error())
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req api.TaskRequest
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "request body: malformed JSON: "+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "request body: must hold exactly one JSON object")
		return
	}
	task, err := o.CreateTask(r.Context(), &req)
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/tasks/"+task.TaskUUID)
	api.WriteJSON(w, http.StatusCreated, task)
}

func parseTaskUUID(w http.ResponseWriter, r *http.Request) (uuid.UUID, bool) {
	return parsePathUUID(w, r, "uuid", "task uuid")
}

// parsePathUUID reads the path value name as a UUID; a malformed one gets a 400 with
// tasker-core's INVALID_UUID code, naming what it should have been (what).
func parsePathUUID(w http.ResponseWriter, r *http.Request, name, what string) (uuid.UUID, bool) {
	id, err := uuid.Parse(r.PathValue(name))
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalidUUID, fmt.Sprintf("%s: must be a UUID, got %q", what, r.PathValue(name)))
		return uuid.Nil, false
	}
	return id, true
}

func (o *Orchestrator) handleGet(w http.ResponseWriter, r *http.Request) {
	id, ok := parseTaskUUID(w, r)
	if !ok {
		return
	}
	var task *api.TaskResponse
	var err error
	if v := r.URL.Query().Get("wait"); v != "" {
		d, perr := time.ParseDuration(v)
		if perr != nil || d <= 0 || d > maxWait {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("wait: must be a duration such as 5s, at most %s", maxWait))
			return
		}
		task, err = o.WaitTask(r.Context(), id, d)
	} else {
		task, err = o.GetTask(r.Context(), id)
	}
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, task)
}

// maxWait caps a long-poll so proxies and clients do not time out first.
const maxWait = 60 * time.Second

// handleWaitAny answers POST /v1/tasks/wait: see WaitAny.
func (o *Orchestrator) handleWaitAny(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64*api.MaxWaitTasks))
	dec.DisallowUnknownFields()
	var req api.WaitRequest
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "request body: malformed JSON: "+err.Error())
		return
	}
	if len(req.TaskUUIDs) == 0 || len(req.TaskUUIDs) > api.MaxWaitTasks {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("task_uuids: must hold 1 to %d task uuids", api.MaxWaitTasks))
		return
	}
	if req.TimeoutMS < 0 || req.TimeoutMS > api.MaxWaitTimeoutMS {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("timeout_ms: must be from 0 to %d", api.MaxWaitTimeoutMS))
		return
	}
	ids := make([]uuid.UUID, len(req.TaskUUIDs))
	for i, s := range req.TaskUUIDs {
		id, err := uuid.Parse(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("task_uuids[%d]: must be a UUID", i))
			return
		}
		ids[i] = id
	}
	res, err := o.WaitAny(r.Context(), ids, time.Duration(req.TimeoutMS)*time.Millisecond)
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

func (o *Orchestrator) handleCancel(w http.ResponseWriter, r *http.Request) {
	id, ok := parseTaskUUID(w, r)
	if !ok {
		return
	}
	if err := o.CancelTask(r.Context(), id); err != nil {
		o.writeFailure(w, r, err)
		return
	}
	task, err := o.GetTask(r.Context(), id)
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, task)
}

func (o *Orchestrator) handleSteps(w http.ResponseWriter, r *http.Request) {
	id, ok := parseTaskUUID(w, r)
	if !ok {
		return
	}
	steps, err := o.ListSteps(r.Context(), id)
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, steps)
}

func (o *Orchestrator) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := ListFilter{Namespace: q.Get("namespace"), Status: q.Get("status"), Initiator: q.Get("initiator"),
		SourceSystem: q.Get("source_system"), Page: 1, PerPage: defaultPerPage}
	for _, p := range []struct {
		name string
		dst  *int
		max  int
	}{{"page", &f.Page, 1 << 30}, {"per_page", &f.PerPage, maxPerPage}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > p.max {
				writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("%s: must be an integer from 1 to %d", p.name, p.max))
				return
			}
			*p.dst = n
		}
	}
	if f.Status != "" && !lifecycle.TaskState(f.Status).Valid() {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("status: must be one of %v", lifecycle.TaskStates))
		return
	}
	list, err := o.ListTasks(r.Context(), f)
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, list)
}

func (o *Orchestrator) handleHealth(w http.ResponseWriter, _ *http.Request) {
	api.WriteJSON(w, http.StatusOK, api.Health{Status: "healthy", Timestamp: time.Now().UTC()})
}

func (o *Orchestrator) handleReady(w http.ResponseWriter, r *http.Request) {
	c := api.DatabaseCheck(r.Context(), o.pool)
	h := api.Health{Status: "ready", Timestamp: time.Now().UTC(), Checks: map[string]api.Check{"web_database": c}}
	status := http.StatusOK
	if c.Status != "healthy" {
		h.Status, status = "not_ready", http.StatusServiceUnavailable
	}
	api.WriteJSON(w, status, h)
}

func (o *Orchestrator) handleDetailed(w http.ResponseWriter, r *http.Request) {
	checks := map[string]api.Check{"web_database": api.DatabaseCheck(r.Context(), o.pool)}
	st := o.pool.Stat()
	util := float64(st.AcquiredConns()) / float64(max(st.MaxConns(), 1)) * 100
	checks["pool_utilization"] = api.Check{Status: "healthy",
		Message: fmt.Sprintf("%d of %d connections in use (%.0f%%)", st.AcquiredConns(), st.MaxConns(), util)}
	if queues, err := messaging.QueueChecks(r.Context(), o.pool, nil); err != nil {
		checks["queues"] = api.Check{Status: "unhealthy", Message: "queue metrics: " + err.Error()}
	} else {
		maps.Copy(checks, queues)
	}
	for _, b := range []*resilience.Breaker{o.web, o.readiness, o.queue} {
		checks["circuit_breaker_"+b.Name()] = b.Check()
	}
	checks["result_channel"] = api.Check{Status: "healthy",
		Message: fmt.Sprintf("%d of %d slots used", o.results.Len(), o.results.Cap())}
	overall, code := api.Overall(checks)
	api.WriteJSON(w, code, api.Health{Status: overall, Timestamp: time.Now().UTC(), Checks: checks,
		Info: map[string]string{
			"processor_uuid": o.cfg.ProcessorUUID.String(),
			"pgmq_provider":  o.pgmqProvider,
			"uptime_seconds": strconv.FormatFloat(time.Since(o.started).Seconds(), 'f', 0, 64),
		}})
}

// guarded runs a task endpoint through the web_database breaker. While the breaker is
// open the endpoint answers 503 with Retry-After and counts the rejection; a 5xx answer
// (the database failing) counts against the breaker, anything else for it.
func (o *Orchestrator) guarded(endpoint string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		done, err := o.web.Allow()
		if err != nil {
			o.tel.Instruments.APIRequestRejected(r.Context(), endpoint)
			w.Header().Set("Retry-After", strconv.Itoa(int(o.web.RetryAfter().Seconds())))
			writeError(w, http.StatusServiceUnavailable, api.CodeServiceUnavailable,
				"the database circuit breaker is open; retry after the Retry-After delay")
			return
		}
		if o.faults.Get().DatabaseUnavailable {
			// Injected fault: the API's database is unreachable, as the breaker sees it.
			writeError(w, http.StatusInternalServerError, api.CodeInternal, "database unavailable (injected fault)")
			done(false)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h(rec, r)
		done(rec.status < 500)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader notes the status on its way out.
func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
