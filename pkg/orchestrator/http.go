package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tasker-sim/tasker-sim/internal/contract"
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
	// analytics_api.go, summary_api.go.
	route := func(method, path string, h http.HandlerFunc) { mux.Handle(method+" "+path, auth(o.guarded(path, h))) }
	for _, group := range []func(routeFunc){o.stepRoutes, o.dlqRoutes, o.templateRoutes, o.analyticsRoutes,
		o.summaryRoutes} {
		group(route)
	}
	mux.HandleFunc("GET /api-docs/openapi.json", contract.Serve(contract.OrchestrationDocument))
	mux.HandleFunc("GET /health", o.handleHealth)
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, _ *http.Request) {
		api.WriteJSON(w, http.StatusOK, api.HealthResponse{Status: "alive", Timestamp: api.CoreTimestamp()})
	})
	mux.HandleFunc("GET /health/ready", o.handleReady)
	mux.HandleFunc("GET /health/detailed", o.handleDetailed)
	mux.Handle("GET /metrics", o.tel.MetricsHandler)
	mux.Handle("/admin/faults", api.RequireBearer(o.cfg.AuthToken, faults.Handler(o.faults)))
	return api.Service("orchestrator", mux)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	api.WriteError(w, status, code, msg)
}

// answer writes v with 200, or err's failure when err is not nil.
func (o *Orchestrator) answer(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, v)
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

// readBody reads a request body of at most limit bytes. A larger or unreadable body is a
// ValidationError of the request body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &ValidationError{"request body", fmt.Sprintf("must be at most %d bytes", limit)}
	case err != nil:
		return nil, &ValidationError{"request body", "could not be read: " + err.Error()}
	}
	return body, nil
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
	o.answer(w, r, task, err)
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
	o.answer(w, r, res, err)
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
	o.answer(w, r, task, err)
}

func (o *Orchestrator) handleSteps(w http.ResponseWriter, r *http.Request) {
	id, ok := parseTaskUUID(w, r)
	if !ok {
		return
	}
	steps, err := o.ListSteps(r.Context(), id)
	o.answer(w, r, steps, err)
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
	o.answer(w, r, list, err)
}

func (o *Orchestrator) handleHealth(w http.ResponseWriter, _ *http.Request) {
	api.WriteJSON(w, http.StatusOK, api.HealthResponse{Status: "healthy", Timestamp: api.CoreTimestamp()})
}

// handleReady answers 200 with tasker-core's readiness body when its five checks are
// healthy, else 503 SERVICE_UNAVAILABLE naming those that are not (as tasker-core does).
func (o *Orchestrator) handleReady(w http.ResponseWriter, r *http.Request) {
	checks := o.readinessChecks(r.Context())
	if ok, why := api.Healthy(checks.All()); !ok {
		writeError(w, http.StatusServiceUnavailable, api.CodeServiceUnavailable, "not ready: "+why)
		return
	}
	api.WriteJSON(w, http.StatusOK, api.ReadinessResponse{Status: "ready", Timestamp: api.CoreTimestamp(),
		Checks: checks, Info: o.healthInfo()})
}

// handleDetailed always answers 200: healthy, or degraded when any of tasker-core's
// eight checks is not healthy. The sim's finer checks (each breaker, each queue) are
// folded into those checks' messages.
func (o *Orchestrator) handleDetailed(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := api.DetailedHealthChecks{ReadinessChecks: o.readinessChecks(ctx),
		PoolUtilization: api.PoolCheck(o.pool.Stat(), time.Now()), QueueDepth: o.queueDepthCheck(ctx),
		ChannelSaturation: api.Fold(map[string]api.Check{
			resultChannel: api.ChannelCheck(o.results.Len(), o.results.Cap())}, time.Now())}
	status := api.StatusHealthy
	if ok, _ := api.Healthy(checks.All()); !ok {
		status = api.StatusDegraded
	}
	api.WriteJSON(w, http.StatusOK, api.DetailedHealthResponse{Status: status, Timestamp: api.CoreTimestamp(),
		Checks: checks, Info: o.healthInfo()})
}

// readinessChecks are tasker-core's five readiness checks. tasker-sim has one database
// pool, so one ping answers for both databases.
func (o *Orchestrator) readinessChecks(ctx context.Context) api.ReadinessChecks {
	db := api.DatabaseCheck(ctx, o.pool)
	start := time.Now()
	breakers := map[string]api.Check{}
	for _, b := range []*resilience.Breaker{o.web, o.readiness, o.queue} {
		breakers[b.Name()] = b.Check()
	}
	return api.ReadinessChecks{WebDatabase: db, OrchestrationDatabase: db,
		CircuitBreaker: api.BreakersCheck(breakers, start), OrchestrationSystem: o.systemCheck(),
		CommandProcessor: o.commandProcessorCheck()}
}

// systemCheck is orchestration_system: the intake (LISTEN plus the fallback poll) runs.
func (o *Orchestrator) systemCheck() api.HealthCheck {
	start := time.Now()
	about := fmt.Sprintf("processor %s, up %d s", o.cfg.ProcessorUUID, int64(time.Since(o.started).Seconds()))
	if o.pgmqProvider != "" {
		about += ", pgmq provider " + o.pgmqProvider
	}
	if o.loops.intake.Load() == 0 {
		return api.NewCheck(api.StatusUnhealthy, "step result intake stopped; "+about, start)
	}
	return api.NewCheck(api.StatusHealthy, fmt.Sprintf("step result intake listening, polling every %s; %s",
		o.cfg.PollInterval, about), start)
}

// commandProcessorCheck is command_processor: the result workers run.
func (o *Orchestrator) commandProcessorCheck() api.HealthCheck {
	start := time.Now()
	n, want := o.loops.results.Load(), int32(o.cfg.ResultConcurrency)
	status := api.StatusHealthy
	switch {
	case n == 0:
		status = api.StatusUnhealthy
	case n < want:
		status = api.StatusDegraded
	}
	return api.NewCheck(status, fmt.Sprintf("%d of %d step result workers running", n, want), start)
}

// queueDepthCheck is queue_depth: the orchestration queues' depths.
func (o *Orchestrator) queueDepthCheck(ctx context.Context) api.HealthCheck {
	start := time.Now()
	only := map[string]bool{}
	for _, q := range messaging.OrchestrationQueues {
		only[q] = true
	}
	queues, err := messaging.QueueChecks(ctx, o.pool, only)
	if err != nil {
		return api.NewCheck(api.StatusUnhealthy, "queue metrics: "+err.Error(), start)
	}
	return api.Fold(queues, start)
}

// healthInfo is tasker-core's HealthInfo; circuit_breaker_state is the web breaker's.
func (o *Orchestrator) healthInfo() api.HealthInfo {
	st := o.pool.Stat()
	state := "Normal"
	if o.loops.intake.Load() == 0 {
		state = "Stopped"
	}
	return api.HealthInfo{Version: api.Version(), Environment: api.Environment(), OperationalState: state,
		WebDatabasePoolSize: st.MaxConns(), OrchestrationDatabasePoolSize: st.MaxConns(),
		CircuitBreakerState: debugState(o.web.State()), PoolUtilization: api.PoolUtilization(st)}
}

// debugState spells a breaker state as tasker-core's Debug does.
func debugState(s resilience.State) string {
	switch s {
	case resilience.Closed:
		return "Closed"
	case resilience.HalfOpen:
		return "HalfOpen"
	case resilience.Open:
		return "Open"
	}
	return "Unknown"
}

// loopState counts the background loops that run, for the health checks.
type loopState struct {
	intake  atomic.Int32
	results atomic.Int32
}

// tracked runs f as a background loop counted in n while it runs.
func (o *Orchestrator) tracked(n *atomic.Int32, f func()) {
	n.Add(1)
	o.goLoop(func() {
		defer n.Add(-1)
		f()
	})
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
