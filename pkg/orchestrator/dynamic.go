package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// Decision points. When a decision step completes, its result's decision_point_outcome
// names the branch to create; the steps of that branch (and the deferred convergence
// steps that join it) are created in the same transaction as the step's completion, so
// the task's next plan enqueues them. As in tasker-core, an outcome that cannot be
// applied (missing, malformed, or naming steps outside the decision's descendants)
// creates nothing: it is logged, and the task carries on with the steps it has.

// decision is a decision step that completes in the batch.
type decision struct {
	task *taskRef
	step uuid.UUID
	name string
	nt   *namedTask
}

// branchesOf returns the steps and edges the batch's completing decision steps create.
// Batches without a decision step cost nothing more; others, one round trip.
func (o *Orchestrator) branchesOf(ctx context.Context, tx pgx.Tx, finals []lifecycle.StepFinalization,
	tasks map[uuid.UUID]*taskRef, steps map[uuid.UUID]*stepRow) (stepRows, error) {
	ds, err := o.decisionsIn(ctx, finals, tasks, steps)
	if err != nil || len(ds) == 0 {
		return stepRows{}, err
	}
	outcomes, existing, err := readDecisions(ctx, tx, ds)
	if err != nil {
		return stepRows{}, err
	}
	var added stepRows
	for _, d := range ds {
		have := existing[d.task.uuid]
		if have == nil {
			have = map[string]uuid.UUID{}
			existing[d.task.uuid] = have
		}
		if err := o.addBranch(&added, d, outcomes[d.step], have); err != nil {
			o.log.Warn("decision outcome not applied; the task goes on without a branch", "task_uuid", d.task.uuid,
				"correlation_id", d.task.correlationID, "step", d.name, "error", err)
		}
	}
	return added, nil
}

// decisionsIn picks the steps of finals that are decision steps moving to complete.
func (o *Orchestrator) decisionsIn(ctx context.Context, finals []lifecycle.StepFinalization,
	tasks map[uuid.UUID]*taskRef, steps map[uuid.UUID]*stepRow) ([]decision, error) {
	var out []decision
	for _, f := range finals {
		st := steps[f.Step]
		if f.To != lifecycle.StepComplete || st == nil || tasks[st.task] == nil {
			continue
		}
		t := tasks[st.task]
		nt, err := o.templateByID(ctx, t.namedTask)
		if err != nil {
			return nil, err
		}
		name := nt.stepNames[st.namedStep]
		if s := nt.template.Step(name); s != nil && s.Type == workflow.StepDecision {
			out = append(out, decision{task: t, step: f.Step, name: name, nt: nt})
		}
	}
	return out, nil
}

// readDecisions reads the decision steps' outcomes and, by task, the steps each of their
// tasks has (name → uuid).
func readDecisions(ctx context.Context, tx pgx.Tx, ds []decision) (map[uuid.UUID]json.RawMessage,
	map[uuid.UUID]map[string]uuid.UUID, error) {
	stepIDs, taskIDs := make([]uuid.UUID, len(ds)), make([]uuid.UUID, len(ds))
	for i, d := range ds {
		stepIDs[i], taskIDs[i] = d.step, d.task.uuid
	}
	outcomes := map[uuid.UUID]json.RawMessage{}
	existing := map[uuid.UUID]map[string]uuid.UUID{}
	b := &pgx.Batch{}
	b.Queue(`SELECT workflow_step_uuid, results -> 'result' -> '`+workflow.DecisionKey+`'
	           FROM tasker.workflow_steps WHERE workflow_step_uuid = ANY ($1)`, stepIDs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id uuid.UUID
			var raw json.RawMessage
			if err := rows.Scan(&id, &raw); err != nil {
				return err
			}
			outcomes[id] = raw
		}
		return rows.Err()
	})
	b.Queue(`SELECT ws.task_uuid, ns.name, ws.workflow_step_uuid
	           FROM tasker.workflow_steps AS ws
	           JOIN tasker.named_steps AS ns ON ns.named_step_uuid = ws.named_step_uuid
	          WHERE ws.task_uuid = ANY ($1)`, taskIDs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var task, step uuid.UUID
			var name string
			if err := rows.Scan(&task, &name, &step); err != nil {
				return err
			}
			if existing[task] == nil {
				existing[task] = map[string]uuid.UUID{}
			}
			existing[task][name] = step
		}
		return rows.Err()
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("read %d decision outcomes: %w", len(ds), err)
	}
	return outcomes, existing, nil
}

// addBranch adds to added the steps and edges d's outcome creates. have (the task's steps
// by name) gains the new steps, so a second decision of the same task sees them.
func (o *Orchestrator) addBranch(added *stepRows, d decision, raw json.RawMessage, have map[string]uuid.UUID) error {
	outcome, err := workflow.ParseDecisionOutcome(raw)
	if err != nil {
		return err
	}
	names := make(map[string]bool, len(have))
	for n := range have {
		names[n] = true
	}
	branch, err := d.nt.template.Branch(d.name, outcome, names)
	if err != nil || len(branch) == 0 {
		return err
	}
	ids, err := added.addSteps(d.task.uuid, d.nt, branch)
	if err != nil {
		return err
	}
	for n, id := range ids {
		have[n], names[n] = id, true
	}
	from, to := edgeUUIDs(d.nt.template.EdgesAmong(branch, names, d.name), have)
	added.edgeFrom, added.edgeTo = append(added.edgeFrom, from...), append(added.edgeTo, to...)
	return nil
}
