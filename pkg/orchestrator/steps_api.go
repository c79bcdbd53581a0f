package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
)

// stepRoutes registers the step routes of tasker-core's API: one step, its operator
// actions and its result audit.
func (o *Orchestrator) stepRoutes(route routeFunc) {
	const step = "/v1/tasks/{uuid}/workflow_steps/{step_uuid}"
	route("GET", step, o.handleGetStep)
	route("PATCH", step, o.handleStepAction)
	route("GET", step+"/audit", o.handleStepAudit)
}

// parseStepPath reads the task and step uuids of a step route; a malformed one gets a
// 400 INVALID_UUID naming which.
func parseStepPath(w http.ResponseWriter, r *http.Request) (task, step uuid.UUID, ok bool) {
	if task, ok = parseTaskUUID(w, r); !ok {
		return task, step, false
	}
	step, ok = parsePathUUID(w, r, "step_uuid", "step uuid")
	return task, step, ok
}

func (o *Orchestrator) handleGetStep(w http.ResponseWriter, r *http.Request) {
	task, step, ok := parseStepPath(w, r)
	if !ok {
		return
	}
	s, err := o.GetStep(r.Context(), task, step)
	o.answer(w, r, s, err)
}

func (o *Orchestrator) handleStepAction(w http.ResponseWriter, r *http.Request) {
	task, step, ok := parseStepPath(w, r)
	if !ok {
		return
	}
	body, err := readBody(w, r, api.MaxStepActionBytes)
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	act, err := parseStepAction(body)
	if err != nil {
		o.writeFailure(w, r, err)
		return
	}
	s, err := o.StepAction(r.Context(), task, step, act)
	o.answer(w, r, s, err)
}

func (o *Orchestrator) handleStepAudit(w http.ResponseWriter, r *http.Request) {
	task, step, ok := parseStepPath(w, r)
	if !ok {
		return
	}
	rows, err := o.StepAudit(r.Context(), task, step)
	o.answer(w, r, rows, err)
}

// GetStep returns one step of a task. A step that is unknown, or belongs to another
// task, is ErrNotFound.
func (o *Orchestrator) GetStep(ctx context.Context, task, step uuid.UUID) (*api.StepResponse, error) {
	s, err := scanStep(o.pool.QueryRow(ctx, stepSelect+` WHERE ws.workflow_step_uuid = $2`, task, step))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, stepOwner(ctx, o.pool, task, step)
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// stepOwner says why a step of a task was not found: the task is unknown, the step is,
// or the step belongs to another task. It returns nil when the step is the task's.
func stepOwner(ctx context.Context, db lifecycle.DB, task, step uuid.UUID) error {
	var taskExists bool
	var owner *uuid.UUID
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tasker.tasks WHERE task_uuid = $1),
	         (SELECT task_uuid FROM tasker.workflow_steps WHERE workflow_step_uuid = $2)`, task, step).Scan(&taskExists, &owner); err != nil {
		return err
	}
	switch {
	case !taskExists:
		return fmt.Errorf("task %s: %w", task, ErrNotFound)
	case owner == nil:
		return fmt.Errorf("step %s: %w", step, ErrNotFound)
	case *owner != task:
		return fmt.Errorf("step %s does not belong to task %s: %w", step, task, ErrNotFound)
	}
	return nil
}

// stepSelect reads the steps of task $1 as StepResponse (scanStep); callers add a
// filter or an order.
const stepSelect = `
	SELECT r.workflow_step_uuid::text, r.task_uuid::text, r.name, ws.created_at, ws.updated_at, r.current_state,
	       r.dependencies_satisfied, r.retry_eligible, r.ready_for_execution, r.total_parents, r.completed_parents,
	       r.attempts, r.max_attempts, ws.processed_at, r.last_failure_at, r.next_retry_at, r.last_attempted_at,
	       ws.results,
	       coalesce((SELECT array_agg(pns.name::text ORDER BY pns.name)
	                   FROM tasker.workflow_step_edges AS e
	                   JOIN tasker.workflow_steps AS p ON p.workflow_step_uuid = e.from_step_uuid
	                   JOIN tasker.named_steps AS pns ON pns.named_step_uuid = p.named_step_uuid
	                  WHERE e.to_step_uuid = r.workflow_step_uuid), '{}'),
	       ws.retryable
	  FROM tasker.get_step_readiness_status($1) AS r
	  JOIN tasker.workflow_steps AS ws ON ws.workflow_step_uuid = r.workflow_step_uuid`

// scanStep reads one stepSelect row, times in UTC.
func scanStep(row pgx.Row) (api.StepResponse, error) {
	var s api.StepResponse
	err := row.Scan(&s.StepUUID, &s.TaskUUID, &s.Name, &s.CreatedAt, &s.UpdatedAt, &s.CurrentState,
		&s.DependenciesSatisfied, &s.RetryEligible, &s.ReadyForExecution, &s.TotalParents, &s.CompletedParents,
		&s.Attempts, &s.MaxAttempts, &s.CompletedAt, &s.LastFailureAt, &s.NextRetryAt, &s.LastAttemptedAt,
		&s.Results, &s.Dependencies, &s.Retryable)
	if s.Results == nil {
		s.Results = json.RawMessage("null")
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	for _, t := range []**time.Time{&s.CompletedAt, &s.LastFailureAt, &s.NextRetryAt, &s.LastAttemptedAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	return s, err
}

// stepActionFields are the fields each action_type takes besides action_type; every one
// is required.
var stepActionFields = map[string][]string{
	api.ActionResetForRetry:    {"reason", "reset_by"},
	api.ActionResolveManually:  {"reason", "resolved_by"},
	api.ActionCompleteManually: {"completion_data", "reason", "completed_by"},
}

// maxOperatorText bounds reason and the *_by fields.
const maxOperatorText = 1000

// parseStepAction decodes and checks a PATCH body: a JSON object tagged by action_type
// with exactly the fields of its action, each present and non-empty. Errors are
// *ValidationError naming the field and the rule.
func parseStepAction(body []byte) (*api.StepManualAction, error) {
	fields, err := jsonObject("request body", body)
	if err != nil {
		return nil, err
	}
	var kind string
	if raw, ok := fields["action_type"]; !ok {
		return nil, &ValidationError{"action_type", "is required: one of reset_for_retry, resolve_manually, complete_manually"}
	} else if json.Unmarshal(raw, &kind) != nil || stepActionFields[kind] == nil {
		return nil, &ValidationError{"action_type", "must be one of reset_for_retry, resolve_manually, complete_manually, got " + string(raw)}
	}
	allowed := stepActionFields[kind]
	for name := range fields {
		if name != "action_type" && !slices.Contains(allowed, name) {
			return nil, &ValidationError{name, fmt.Sprintf("is not a field of action_type %s (it takes %v)", kind, allowed)}
		}
	}
	act := &api.StepManualAction{ActionType: kind}
	text := map[string]*string{"reason": &act.Reason, "reset_by": &act.ResetBy, "resolved_by": &act.ResolvedBy,
		"completed_by": &act.CompletedBy}
	for _, name := range allowed {
		raw, ok := fields[name]
		if !ok {
			return nil, &ValidationError{name, "is required for action_type " + kind}
		}
		if name == "completion_data" {
			if act.CompletionData, err = parseCompletionData(raw); err != nil {
				return nil, err
			}
			continue
		}
		if err := operatorText(name, raw, text[name]); err != nil {
			return nil, err
		}
	}
	return act, nil
}

// jsonObject decodes doc, which must be one JSON object, into its fields.
func jsonObject(field string, doc []byte) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	trimmed := bytes.TrimSpace(doc)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, &ValidationError{field, "must be a JSON object"}
	}
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return nil, &ValidationError{field, "must be a JSON object: malformed JSON: " + err.Error()}
	}
	return fields, nil
}

// operatorText decodes a required free-text field into dst: a non-empty string of at
// most maxOperatorText characters that PostgreSQL can store.
func operatorText(name string, raw json.RawMessage, dst *string) error {
	if err := json.Unmarshal(raw, dst); err != nil || string(bytes.TrimSpace(raw)) == "null" {
		return &ValidationError{name, "must be a string"}
	}
	switch {
	case len(bytes.TrimSpace([]byte(*dst))) == 0:
		return &ValidationError{name, "must not be empty"}
	case len([]rune(*dst)) > maxOperatorText:
		return &ValidationError{name, fmt.Sprintf("must be at most %d characters", maxOperatorText)}
	case strings.ContainsRune(*dst, 0):
		return &ValidationError{name, nulRule}
	}
	return nil
}

// parseCompletionData checks complete_manually's completion_data: an object with a
// result (any JSON value) and an optional metadata, and nothing else.
func parseCompletionData(raw json.RawMessage) (*api.ManualCompletionData, error) {
	fields, err := jsonObject("completion_data", raw)
	if err != nil {
		return nil, err
	}
	for name := range fields {
		if name != "result" && name != "metadata" {
			return nil, &ValidationError{"completion_data." + name, "is not a field of completion_data (it takes result and metadata)"}
		}
	}
	d := &api.ManualCompletionData{Result: fields["result"], Metadata: fields["metadata"]}
	if d.Result == nil {
		return nil, &ValidationError{"completion_data.result", "is required: the step's result, any JSON value"}
	}
	for name, doc := range map[string][]byte{"completion_data.result": d.Result, "completion_data.metadata": d.Metadata} {
		if nulField(doc) != "" {
			return nil, &ValidationError{name, nulRule}
		}
	}
	return d, nil
}

// StepAction applies an operator's action to a step, in one transaction: the task is
// locked, then the step; the step moves (lifecycle.ApplyOperatorAction); then the task
// is planned again, so it goes on from where the action left it (tasker-core leaves the
// task alone). A finished task, or a step state the action does not take, is a
// *ValidationError; an unknown or foreign step ErrNotFound. It returns the step as it
// stands after the commit.
func (o *Orchestrator) StepAction(ctx context.Context, task, step uuid.UUID, act *api.StepManualAction) (*api.StepResponse, error) {
	start := time.Now()
	var locked *taskRef
	err := pgx.BeginTxFunc(ctx, o.pool, hotTx, func(tx pgx.Tx) error {
		t, ok, err := lockTask(ctx, tx, task, false)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("task %s: %w", task, ErrNotFound)
		}
		from, err := lockStep(ctx, tx, task, step)
		if err != nil {
			return err
		}
		if t.state.Terminal() {
			return &ValidationError{"task", fmt.Sprintf("task %s is %s: the steps of a finished task cannot be changed", task, t.state)}
		}
		op, err := operatorAction(step, from, act)
		if err != nil {
			return err
		}
		if err := lifecycle.ApplyOperatorAction(ctx, tx, op); err != nil {
			return err
		}
		locked = t
		return o.moveOn(ctx, tx, t, op.Metadata)
	})
	if err != nil {
		return nil, err
	}
	if locked.finalized {
		locked.finalTook = time.Since(start)
	}
	o.recordCommitted(ctx, locked)
	o.log.Info("operator step action", "correlation_id", locked.correlationID, "task_uuid", task, "step_uuid", step,
		"action", act.ActionType, "task_state", locked.state)
	return o.GetStep(ctx, task, step)
}

// lockStep takes the step row (after its task's, the order every writer follows) and
// then reads its state, in a statement that starts after the lock was granted.
func lockStep(ctx context.Context, tx pgx.Tx, task, step uuid.UUID) (lifecycle.StepState, error) {
	var owner uuid.UUID
	err := tx.QueryRow(ctx, `SELECT task_uuid FROM tasker.workflow_steps WHERE workflow_step_uuid = $1 FOR UPDATE`, step).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && owner != task) {
		return "", stepOwner(ctx, tx, task, step)
	}
	if err != nil {
		return "", err
	}
	var state string
	if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT to_state FROM tasker.workflow_step_transitions
	                             WHERE workflow_step_uuid = $1 AND most_recent), 'pending')`, step).Scan(&state); err != nil {
		return "", err
	}
	return lifecycle.StepState(state), nil
}

// operatorAction checks act against the step's state and builds the move: its audit
// metadata and, for complete_manually, the step's new results.
func operatorAction(step uuid.UUID, from lifecycle.StepState, act *api.StepManualAction) (lifecycle.OperatorAction, error) {
	action := lifecycle.StepAction(act.ActionType)
	if err := lifecycle.CheckOperatorAction(action, from); err != nil {
		return lifecycle.OperatorAction{}, &ValidationError{"action_type", err.Error()}
	}
	by := map[string]string{api.ActionResetForRetry: act.ResetBy, api.ActionResolveManually: act.ResolvedBy,
		api.ActionCompleteManually: act.CompletedBy}[act.ActionType]
	op := lifecycle.OperatorAction{Step: step, From: from, Action: action,
		Metadata: map[string]any{"trigger": "operator", "action": act.ActionType, "reason": act.Reason, "by": by}}
	if action == lifecycle.ActionCompleteManually {
		results, err := manualResults(step, act)
		if err != nil {
			return op, err
		}
		op.Results = results
	}
	return op, nil
}

// manualResults is the StepExecutionResult a manual completion stores: the operator's
// result, and in metadata.custom the operator's metadata (a value that is not an object
// under operator_metadata) with who completed the step and why.
func manualResults(step uuid.UUID, act *api.StepManualAction) ([]byte, error) {
	custom := map[string]any{}
	if md := bytes.TrimSpace(act.CompletionData.Metadata); len(md) > 0 && string(md) != "null" {
		if md[0] != '{' || json.Unmarshal(md, &custom) != nil {
			custom = map[string]any{"operator_metadata": json.RawMessage(md)}
		}
	}
	custom["manually_completed"] = true
	custom["completed_by"] = act.CompletedBy
	custom["completion_reason"] = act.Reason
	return json.Marshal(map[string]any{
		"step_uuid": step, "success": true, "status": "completed", "result": act.CompletionData.Result, "error": nil,
		"metadata": map[string]any{"execution_time_ms": 0, "retryable": false,
			"completed_at": time.Now().UTC().Format(time.RFC3339Nano), "custom": custom},
	})
}

// moveOn plans a locked task again after an operator action on one of its steps. A
// blocked task whose failed steps are all dealt with, or a task waiting for a retry that
// no longer waits for anything, first re-enters evaluating_results
// (lifecycle.OperatorReentry); then the usual plan applies: what became ready is
// enqueued, a task with every step done completes.
func (o *Orchestrator) moveOn(ctx context.Context, tx pgx.Tx, t *taskRef, meta map[string]any) error {
	var status string
	if err := tx.QueryRow(ctx, `SELECT execution_status FROM tasker.get_task_execution_context($1)`, t.uuid).Scan(&status); err != nil {
		return fmt.Errorf("execution context of task %s: %w", t.uuid, err)
	}
	if lifecycle.OperatorReentry(t.state, lifecycle.ExecutionStatus(status)) {
		m := map[string]any{"execution_status": status}
		for k, v := range meta {
			m[k] = v
		}
		if err := lifecycle.TransitionTask(ctx, tx, t.uuid, t.state, lifecycle.TaskEvaluatingResults, o.cfg.ProcessorUUID, m); err != nil {
			return err
		}
		t.state = lifecycle.TaskEvaluatingResults
	}
	return o.advance(ctx, tx, t, fmt.Sprintf("operator_%s", meta["action"]))
}

// stepAuditSQL lists a step's worker result submissions (its transitions into
// enqueued_for_orchestration or enqueued_as_error_for_orchestration), newest first. The
// transition metadata holds the worker id, success and execution time; the correlation
// id is the task's. The result is not kept per submission: the newest row carries the
// step's current results, unless a later attempt started or an operator completed the
// step since (then no row has a result).
const stepAuditSQL = `
	SELECT st.workflow_step_transition_uuid::text, st.workflow_step_uuid::text, ws.task_uuid::text, st.created_at,
	       st.metadata ->> 'worker_id', t.correlation_id::text,
	       coalesce((st.metadata ->> 'success')::boolean, st.to_state = 'enqueued_for_orchestration'),
	       CASE WHEN jsonb_typeof(st.metadata -> 'execution_time_ms') = 'number'
	            THEN round((st.metadata ->> 'execution_time_ms')::numeric)::bigint END,
	       CASE WHEN st.sort_key = max(st.sort_key) OVER ()
	             AND NOT EXISTS (SELECT 1 FROM tasker.workflow_step_transitions AS l
	                              WHERE l.workflow_step_uuid = st.workflow_step_uuid AND l.sort_key > st.sort_key
	                                AND (l.to_state = 'in_progress' OR l.metadata ->> 'action' = 'complete_manually'))
	            THEN ws.results END,
	       ns.name::text, st.from_state, st.to_state
	  FROM tasker.workflow_step_transitions AS st
	  JOIN tasker.workflow_steps AS ws ON ws.workflow_step_uuid = st.workflow_step_uuid
	  JOIN tasker.tasks AS t ON t.task_uuid = ws.task_uuid
	  JOIN tasker.named_steps AS ns ON ns.named_step_uuid = ws.named_step_uuid
	 WHERE st.workflow_step_uuid = $1
	   AND st.to_state IN ('enqueued_for_orchestration', 'enqueued_as_error_for_orchestration')
	 ORDER BY st.sort_key DESC`

// StepAudit returns a step's result submissions, newest first (tasker-core's
// StepAuditResponse, derived from the step's transitions: the audit and transition
// uuids are the transition's). A step that is unknown, or belongs to another task, is
// ErrNotFound.
func (o *Orchestrator) StepAudit(ctx context.Context, task, step uuid.UUID) ([]api.StepAuditResponse, error) {
	if err := stepOwner(ctx, o.pool, task, step); err != nil {
		return nil, err
	}
	rows, err := o.pool.Query(ctx, stepAuditSQL, step)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.StepAuditResponse, error) {
		var a api.StepAuditResponse
		err := r.Scan(&a.TransitionUUID, &a.WorkflowStepUUID, &a.TaskUUID, &a.RecordedAt, &a.WorkerUUID, &a.CorrelationID,
			&a.Success, &a.ExecutionTimeMS, &a.Result, &a.StepName, &a.FromState, &a.ToState)
		a.AuditUUID, a.RecordedAt = a.TransitionUUID, a.RecordedAt.UTC()
		return a, err
	})
}
