package orchestrator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tasker-sim/tasker-sim/pkg/api"
)

// dlqEnum maps one of tasker-core's DLQ enums between its wire values (PascalCase) and the
// values the database stores (snake_case). It is the only place the two spellings meet.
type dlqEnum struct {
	wire, db []string
}

var (
	dlqResolutionStatuses = dlqEnum{
		wire: []string{api.DlqPending, api.DlqManuallyResolved, api.DlqPermanentlyFailed, api.DlqCancelled},
		db:   []string{"pending", "manually_resolved", "permanently_failed", "cancelled"},
	}
	dlqReasons = dlqEnum{
		wire: []string{api.DlqStalenessTimeout, api.DlqMaxRetriesExceeded, api.DlqDependencyCycleDetected,
			api.DlqWorkerUnavailable, api.DlqManualDlq},
		db: []string{"staleness_timeout", "max_retries_exceeded", "dependency_cycle_detected", "worker_unavailable", "manual_dlq"},
	}
)

// toDB converts a wire value; ok is false for a value that is not one of the enum's.
func (e dlqEnum) toDB(wire string) (string, bool) {
	if i := slices.Index(e.wire, wire); i >= 0 {
		return e.db[i], true
	}
	return "", false
}

// toWire converts a stored value (the schema's CHECK constraints admit only known ones).
func (e dlqEnum) toWire(db string) string {
	if i := slices.Index(e.db, db); i >= 0 {
		return e.wire[i]
	}
	return db
}

// The DLQ routes' limits: tasker-core has no maximum; the sim caps every limit.
const (
	dlqListLimitDefault  = 50
	dlqQueueLimitDefault = 100
	dlqLimitMax          = 1000
	dlqOffsetMax         = 1<<31 - 1
	dlqMaxPatchBytes     = 64 << 10
)

// dlqRoutes registers the dead-letter queue routes of tasker-core's API.
func (o *Orchestrator) dlqRoutes(route routeFunc) {
	route("GET", "/v1/dlq", o.handleDlqList)
	route("GET", "/v1/dlq/task/{task_uuid}", o.handleDlqByTask)
	route("PATCH", "/v1/dlq/entry/{dlq_entry_uuid}", o.handleDlqUpdate)
	route("GET", "/v1/dlq/stats", o.handleDlqStats)
	route("GET", "/v1/dlq/investigation-queue", o.handleDlqQueue)
	route("GET", "/v1/dlq/staleness", o.handleDlqStaleness)
}

// dlqQueryInt reads the integer query parameter name, def when absent; a value that is not
// an integer in [lo, hi] is a validation error naming the parameter.
func dlqQueryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, &ValidationError{Field: name, Rule: fmt.Sprintf("must be an integer from %d to %d", lo, hi)}
	}
	return n, nil
}

// dlqEntryColumns are the columns scanDlqEntry reads, in its order.
const dlqEntryColumns = `dlq_entry_uuid::text, task_uuid::text, original_state, dlq_reason, dlq_timestamp,
	resolution_status, resolution_timestamp, resolution_notes, resolved_by, task_snapshot, metadata, created_at, updated_at`

func scanDlqEntry(row pgx.CollectableRow) (api.DlqEntry, error) {
	var e api.DlqEntry
	err := row.Scan(&e.DlqEntryUUID, &e.TaskUUID, &e.OriginalState, &e.DlqReason, &e.DlqTimestamp, &e.ResolutionStatus,
		&e.ResolutionTimestamp, &e.ResolutionNotes, &e.ResolvedBy, &e.TaskSnapshot, &e.Metadata, &e.CreatedAt, &e.UpdatedAt)
	e.DlqReason = dlqReasons.toWire(e.DlqReason)
	e.ResolutionStatus = dlqResolutionStatuses.toWire(e.ResolutionStatus)
	e.DlqTimestamp, e.CreatedAt, e.UpdatedAt = e.DlqTimestamp.UTC(), e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	e.ResolutionTimestamp = utcPtr(e.ResolutionTimestamp)
	return e, err
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// handleDlqList answers GET /v1/dlq: entries newest first, optionally of one resolution
// status, paged by limit and offset.
func (o *Orchestrator) handleDlqList(w http.ResponseWriter, r *http.Request) {
	limit, err := dlqQueryInt(r, "limit", dlqListLimitDefault, 1, dlqLimitMax)
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	offset, err := dlqQueryInt(r, "offset", 0, 0, dlqOffsetMax)
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	// Two statements rather than "$1 IS NULL OR ...", so that each plans onto its index.
	sql := `SELECT ` + dlqEntryColumns + ` FROM tasker.tasks_dlq
		ORDER BY dlq_timestamp DESC, dlq_entry_uuid DESC LIMIT $1 OFFSET $2`
	args := []any{limit, offset}
	if v := r.URL.Query().Get("resolution_status"); v != "" {
		status, ok := dlqResolutionStatuses.toDB(v)
		if !ok {
			o.writeFailure(w, r, &ValidationError{Field: "resolution_status",
				Rule: fmt.Sprintf("must be one of %v", dlqResolutionStatuses.wire)})
			return
		}
		sql = `SELECT ` + dlqEntryColumns + ` FROM tasker.tasks_dlq WHERE resolution_status = $3
			ORDER BY dlq_timestamp DESC, dlq_entry_uuid DESC LIMIT $1 OFFSET $2`
		args = append(args, status)
	}
	rows, _ := o.pool.Query(r.Context(), sql, args...)
	entries, err := pgx.CollectRows(rows, scanDlqEntry)
	o.answer(w, r, entries, err)
}

// handleDlqByTask answers GET /v1/dlq/task/{task_uuid}: the task's most recent entry,
// whatever its resolution status.
func (o *Orchestrator) handleDlqByTask(w http.ResponseWriter, r *http.Request) {
	id, ok := parsePathUUID(w, r, "task_uuid", "task_uuid")
	if !ok {
		return
	}
	rows, _ := o.pool.Query(r.Context(), `SELECT `+dlqEntryColumns+` FROM tasker.tasks_dlq WHERE task_uuid = $1
		ORDER BY dlq_timestamp DESC, dlq_entry_uuid DESC LIMIT 1`, id)
	entry, err := pgx.CollectExactlyOneRow(rows, scanDlqEntry)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		writeError(w, http.StatusNotFound, api.CodeNotFound, "DLQ entry not found for task "+id.String())
	case err != nil:
		o.writeFailure(w, r, err)
	default:
		api.WriteJSON(w, http.StatusOK, entry)
	}
}

// handleDlqUpdate answers PATCH /v1/dlq/entry/{dlq_entry_uuid}: it overwrites the fields
// given in one statement. The task is not touched.
func (o *Orchestrator) handleDlqUpdate(w http.ResponseWriter, r *http.Request) {
	id, ok := parsePathUUID(w, r, "dlq_entry_uuid", "dlq_entry_uuid")
	if !ok {
		return
	}
	upd, err := decodeInvestigationUpdate(w, r)
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	var status *string
	if upd.ResolutionStatus != nil {
		s, _ := dlqResolutionStatuses.toDB(*upd.ResolutionStatus) // checked by the decoder
		status = &s
	}
	metadata := []byte(upd.Metadata) // nil, for a metadata not given, is NULL
	tag, err := o.pool.Exec(r.Context(), `
		UPDATE tasker.tasks_dlq
		   SET resolution_status = COALESCE($2, resolution_status),
		       resolution_timestamp = CASE WHEN $2::text IS NULL THEN resolution_timestamp ELSE now() END,
		       resolution_notes = COALESCE($3, resolution_notes),
		       resolved_by = COALESCE($4, resolved_by),
		       metadata = COALESCE($5::jsonb, metadata),
		       updated_at = now()
		 WHERE dlq_entry_uuid = $1`, id, status, upd.ResolutionNotes, upd.ResolvedBy, metadata)
	if err != nil {
		o.writeDlqUpdateFailure(w, r, err)
		return
	}
	if tag.RowsAffected() == 0 {
		writeError(w, http.StatusNotFound, api.CodeNotFound, "DLQ entry not found: "+id.String())
		return
	}
	api.WriteJSON(w, http.StatusOK, api.UpdateInvestigationResponse{Success: true,
		Message: "Investigation status updated successfully", DlqEntryUUID: id.String()})
}

// writeDlqUpdateFailure explains the update's constraint failures; others go to writeFailure.
func (o *Orchestrator) writeDlqUpdateFailure(w http.ResponseWriter, r *http.Request, err error) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "idx_tasks_dlq_one_pending" {
		writeError(w, http.StatusConflict, api.CodeConflict, "resolution_status: the task already has a Pending DLQ entry, "+
			"and a task may have only one; resolve or cancel that entry first")
		return
	}
	o.writeFailure(w, r, err)
}

// investigationFields are the fields of UpdateInvestigationRequest.
var investigationFields = []string{"resolution_status", "resolution_notes", "resolved_by", "metadata"}

// decodeInvestigationUpdate reads and checks a PATCH body: one JSON object of at most
// dlqMaxPatchBytes, with known fields only and at least one of them not null.
func decodeInvestigationUpdate(w http.ResponseWriter, r *http.Request) (*api.UpdateInvestigationRequest, error) {
	body, err := readBody(w, r, dlqMaxPatchBytes)
	if err != nil {
		return nil, err
	}
	objectRule := fmt.Sprintf("must be a JSON object with at least one of %v", investigationFields)
	dec := json.NewDecoder(bytes.NewReader(body))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil || fields == nil || dec.More() {
		return nil, &ValidationError{Field: "request body", Rule: objectRule}
	}
	var upd api.UpdateInvestigationRequest
	given := 0
	for name, raw := range fields {
		if !slices.Contains(investigationFields, name) {
			return nil, &ValidationError{Field: name, Rule: fmt.Sprintf("unknown field; the fields are %v", investigationFields)}
		}
		if string(raw) == "null" {
			continue
		}
		given++
		if err := decodeInvestigationField(&upd, name, raw); err != nil {
			return nil, err
		}
	}
	if given == 0 {
		return nil, &ValidationError{Field: "request body", Rule: objectRule + " not null"}
	}
	return &upd, nil
}

// decodeInvestigationField sets one non-null field of upd from its JSON.
func decodeInvestigationField(upd *api.UpdateInvestigationRequest, name string, raw json.RawMessage) error {
	if name == "metadata" {
		if nulField(raw) != "" {
			return &ValidationError{Field: name, Rule: nulRule}
		}
		upd.Metadata = raw
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		rule := "must be a string or null"
		if name == "resolution_status" {
			rule = fmt.Sprintf("must be one of %v, or null", dlqResolutionStatuses.wire)
		}
		return &ValidationError{Field: name, Rule: rule}
	}
	if strings.ContainsRune(s, 0) {
		return &ValidationError{Field: name, Rule: nulRule}
	}
	switch name {
	case "resolution_status":
		if _, ok := dlqResolutionStatuses.toDB(s); !ok {
			return &ValidationError{Field: name, Rule: fmt.Sprintf("must be one of %v, or null", dlqResolutionStatuses.wire)}
		}
		upd.ResolutionStatus = &s
	case "resolution_notes":
		upd.ResolutionNotes = &s
	case "resolved_by":
		upd.ResolvedBy = &s
	}
	return nil
}

// handleDlqStats answers GET /v1/dlq/stats: counts per reason present.
func (o *Orchestrator) handleDlqStats(w http.ResponseWriter, r *http.Request) {
	rows, _ := o.pool.Query(r.Context(), `
		SELECT dlq_reason, count(*),
		       count(*) FILTER (WHERE resolution_status = 'pending'),
		       count(*) FILTER (WHERE resolution_status = 'manually_resolved'),
		       count(*) FILTER (WHERE resolution_status = 'permanently_failed'),
		       count(*) FILTER (WHERE resolution_status = 'cancelled'),
		       min(dlq_timestamp), max(dlq_timestamp),
		       avg(extract(epoch FROM COALESCE(resolution_timestamp, now()) - dlq_timestamp) / 60)::float8
		  FROM tasker.tasks_dlq GROUP BY dlq_reason ORDER BY dlq_reason`)
	stats, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.DlqStats, error) {
		var s api.DlqStats
		err := row.Scan(&s.DlqReason, &s.TotalEntries, &s.Pending, &s.ManuallyResolved, &s.PermanentFailures,
			&s.Cancelled, &s.OldestEntry, &s.NewestEntry, &s.AvgResolutionTimeMinutes)
		s.DlqReason = dlqReasons.toWire(s.DlqReason)
		s.OldestEntry, s.NewestEntry = utcPtr(s.OldestEntry), utcPtr(s.NewestEntry)
		return s, err
	})
	o.answer(w, r, stats, err)
}

// dlqQueueSQL lists pending entries by priority. The namespace, task name and state come
// from the snapshot when it has tasker-core's keys, else from the task itself; the time in
// state from the metadata, else from the transition into original_state.
const dlqQueueSQL = `
	WITH q AS (
		SELECT d.dlq_entry_uuid, d.task_uuid, d.original_state, d.dlq_reason, d.dlq_timestamp,
		       extract(epoch FROM now() - d.dlq_timestamp)::float8 / 60 AS minutes_in_dlq,
		       COALESCE(d.task_snapshot->>'namespace', ns.name) AS namespace_name,
		       COALESCE(d.task_snapshot->>'task_name', nt.name) AS task_name,
		       COALESCE(d.task_snapshot->>'current_state', tt.to_state) AS current_state,
		       COALESCE(CASE WHEN jsonb_typeof(d.metadata->'time_in_state_minutes') = 'number' THEN
		                     CASE WHEN abs((d.metadata->'time_in_state_minutes')::numeric) < 2147483647
		                          THEN floor((d.metadata->'time_in_state_minutes')::numeric)::int END END,
		                floor(extract(epoch FROM d.dlq_timestamp - entered.created_at) / 60)::int) AS time_in_state_minutes,
		       CASE d.dlq_reason WHEN 'dependency_cycle_detected' THEN 1000 WHEN 'max_retries_exceeded' THEN 500
		            WHEN 'staleness_timeout' THEN 100 WHEN 'worker_unavailable' THEN 50 ELSE 10 END AS base
		  FROM tasker.tasks_dlq AS d
		  JOIN tasker.tasks AS t ON t.task_uuid = d.task_uuid
		  JOIN tasker.named_tasks AS nt ON nt.named_task_uuid = t.named_task_uuid
		  JOIN tasker.task_namespaces AS ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
		  LEFT JOIN tasker.task_transitions AS tt ON tt.task_uuid = d.task_uuid AND tt.most_recent
		  LEFT JOIN LATERAL (
		        SELECT e.created_at FROM tasker.task_transitions AS e
		         WHERE e.task_uuid = d.task_uuid AND e.to_state = d.original_state AND e.created_at <= d.dlq_timestamp
		         ORDER BY e.sort_key DESC LIMIT 1) AS entered ON true
		 WHERE d.resolution_status = 'pending')
	SELECT dlq_entry_uuid::text, task_uuid::text, original_state, dlq_reason, dlq_timestamp, minutes_in_dlq,
	       namespace_name, task_name, current_state, time_in_state_minutes, base + minutes_in_dlq AS priority_score
	  FROM q ORDER BY priority_score DESC, dlq_entry_uuid LIMIT $1`

// handleDlqQueue answers GET /v1/dlq/investigation-queue: pending entries, most urgent first.
func (o *Orchestrator) handleDlqQueue(w http.ResponseWriter, r *http.Request) {
	limit, err := dlqQueryInt(r, "limit", dlqQueueLimitDefault, 1, dlqLimitMax)
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	rows, _ := o.pool.Query(r.Context(), dlqQueueSQL, limit)
	queue, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.DlqInvestigationQueueEntry, error) {
		var e api.DlqInvestigationQueueEntry
		err := row.Scan(&e.DlqEntryUUID, &e.TaskUUID, &e.OriginalState, &e.DlqReason, &e.DlqTimestamp, &e.MinutesInDlq,
			&e.NamespaceName, &e.TaskName, &e.CurrentState, &e.TimeInStateMinutes, &e.PriorityScore)
		e.DlqReason = dlqReasons.toWire(e.DlqReason)
		e.DlqTimestamp = e.DlqTimestamp.UTC()
		return e, err
	})
	o.answer(w, r, queue, err)
}

// dlqStalenessSQL classifies the unfinished tasks in a waiting state. It starts from
// tasker.unfinished_task_states (the unfinished tasks' current states; MATERIALIZED keeps
// the planner from starting elsewhere), so it reads only the tasks in flight, never the
// history nor the finished tasks. A template's lifecycle
// max_*_minutes (a positive number) overrides the orchestrator's thresholds ($1-$3, in
// seconds).
const dlqStalenessSQL = `
	WITH cur AS MATERIALIZED (
		SELECT u.task_uuid, u.state AS to_state, u.entered_at AS entered
		  FROM tasker.unfinished_task_states AS u
		 WHERE u.state IN ('waiting_for_dependencies', 'waiting_for_retry', 'steps_in_process')),
	m AS (
		SELECT c.task_uuid, ns.name AS namespace_name, nt.name AS task_name, c.to_state, t.priority,
		       extract(epoch FROM now() - c.entered)::float8 AS in_state,
		       extract(epoch FROM now() - t.created_at)::float8 AS age,
		       COALESCE(CASE WHEN jsonb_typeof(l.v) = 'number' THEN
		                     CASE WHEN l.v::numeric > 0 THEN LEAST(l.v::numeric, 1000000000)::float8 * 60 END END,
		                CASE c.to_state WHEN 'waiting_for_dependencies' THEN $1::float8
		                     WHEN 'waiting_for_retry' THEN $2::float8 ELSE $3::float8 END) AS threshold
		  FROM cur AS c
		  JOIN tasker.tasks AS t ON t.task_uuid = c.task_uuid AND NOT t.complete
		  JOIN tasker.named_tasks AS nt ON nt.named_task_uuid = t.named_task_uuid
		  JOIN tasker.task_namespaces AS ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
		  CROSS JOIN LATERAL (SELECT nt.configuration->'lifecycle'->('max_' || c.to_state || '_minutes') AS v) AS l),
	h AS (
		SELECT m.*, CASE WHEN in_state >= threshold THEN 'stale' WHEN in_state >= 0.8 * threshold THEN 'warning'
		                 ELSE 'healthy' END AS health
		  FROM m)
	SELECT task_uuid::text, namespace_name, task_name, to_state, floor(in_state / 60)::int, floor(age / 60)::int,
	       floor(threshold / 60)::int, in_state, threshold, health, priority
	  FROM h
	 ORDER BY CASE health WHEN 'stale' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, in_state DESC, task_uuid
	 LIMIT $4`

// handleDlqStaleness answers GET /v1/dlq/staleness: tasks in a waiting state, stale first.
func (o *Orchestrator) handleDlqStaleness(w http.ResponseWriter, r *http.Request) {
	limit, err := dlqQueryInt(r, "limit", dlqQueueLimitDefault, 1, dlqLimitMax)
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	st := o.cfg.Staleness
	rows, _ := o.pool.Query(r.Context(), dlqStalenessSQL, st.WaitingForDependencies.Seconds(),
		st.WaitingForRetry.Seconds(), st.StepsInProcess.Seconds(), limit)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (api.StalenessMonitoring, error) {
		var s api.StalenessMonitoring
		err := row.Scan(&s.TaskUUID, &s.NamespaceName, &s.TaskName, &s.CurrentState, &s.TimeInStateMinutes,
			&s.TaskAgeMinutes, &s.StalenessThresholdMinutes, &s.TimeInStateSeconds, &s.StalenessThresholdSeconds,
			&s.HealthStatus, &s.Priority)
		return s, err
	})
	o.answer(w, r, out, err)
}
