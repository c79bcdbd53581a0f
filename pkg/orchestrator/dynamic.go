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

// Dynamic steps. When a decision step completes, its result's decision_point_outcome
// names the branch to create; when a batchable step completes, its
// batch_processing_outcome lists the cursor ranges of the workers to create. The new
// steps (and the deferred convergence steps that join them) are created in the same
// transaction as the step's completion, so the task's next plan enqueues them. As in
// tasker-core, an outcome that cannot be applied (missing, malformed, or naming steps the
// template does not allow) creates nothing: it is logged, and the task goes on with the
// steps it has.

// outcomeStep is a decision or batchable step that completes in the batch.
type outcomeStep struct {
	task *taskRef
	step uuid.UUID
	spec *workflow.StepTemplate
	nt   *namedTask
}

// outcomes are the results' outcome objects of outcome steps, by step.
type outcomes struct {
	decision, batch map[uuid.UUID]json.RawMessage
}

// branchesOf returns the steps and edges the batch's completing decision and batchable
// steps create. Batches without such a step cost nothing more; others, a round trip (two
// when workers are made).
func (o *Orchestrator) branchesOf(ctx context.Context, tx pgx.Tx, finals []lifecycle.StepFinalization,
	tasks map[uuid.UUID]*taskRef, steps map[uuid.UUID]*stepRow) (stepRows, error) {
	ds, err := o.outcomeStepsIn(ctx, finals, tasks, steps)
	if err != nil || len(ds) == 0 {
		return stepRows{}, err
	}
	outs, existing, err := readOutcomes(ctx, tx, ds)
	if err != nil {
		return stepRows{}, err
	}
	var added stepRows
	var workers []workerPlan
	for _, d := range ds {
		have := existing[d.task.uuid]
		if have == nil {
			have = map[string]uuid.UUID{}
			existing[d.task.uuid] = have
		}
		var err error
		if d.spec.Type == workflow.StepDecision {
			err = o.addBranch(&added, d, outs.decision[d.step], have)
		} else {
			var ws []workerPlan
			ws, err = planWorkers(d, outs.batch[d.step], have)
			workers = append(workers, ws...)
		}
		if err != nil {
			o.log.Warn("step outcome not applied; the task goes on without the steps it asked for", "task_uuid", d.task.uuid,
				"correlation_id", d.task.correlationID, "step", d.spec.Name, "error", err)
		}
	}
	if len(workers) > 0 {
		if err := o.addWorkers(ctx, tx, &added, workers, existing); err != nil {
			return stepRows{}, err
		}
	}
	return added, nil
}

// outcomeStepsIn picks the steps of finals that are decision or batchable steps moving to
// complete.
func (o *Orchestrator) outcomeStepsIn(ctx context.Context, finals []lifecycle.StepFinalization,
	tasks map[uuid.UUID]*taskRef, steps map[uuid.UUID]*stepRow) ([]outcomeStep, error) {
	var out []outcomeStep
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
		if s := nt.outcomeSteps[st.namedStep]; s != nil {
			out = append(out, outcomeStep{task: t, step: f.Step, spec: s, nt: nt})
		}
	}
	return out, nil
}

// readOutcomes reads the steps' outcomes and, by task, the steps each of their tasks
// has (name → uuid).
func readOutcomes(ctx context.Context, tx pgx.Tx, ds []outcomeStep) (outcomes, map[uuid.UUID]map[string]uuid.UUID, error) {
	stepIDs, taskIDs := make([]uuid.UUID, len(ds)), make([]uuid.UUID, len(ds))
	for i, d := range ds {
		stepIDs[i], taskIDs[i] = d.step, d.task.uuid
	}
	outs := outcomes{decision: map[uuid.UUID]json.RawMessage{}, batch: map[uuid.UUID]json.RawMessage{}}
	existing := map[uuid.UUID]map[string]uuid.UUID{}
	b := &pgx.Batch{}
	b.Queue(`SELECT workflow_step_uuid, results -> 'result' -> $2::text, results -> 'result' -> $3::text
	           FROM tasker.workflow_steps WHERE workflow_step_uuid = ANY ($1)`,
		stepIDs, workflow.DecisionKey, workflow.BatchKey).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id uuid.UUID
			var decision, batch json.RawMessage
			if err := rows.Scan(&id, &decision, &batch); err != nil {
				return err
			}
			outs.decision[id], outs.batch[id] = decision, batch
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
		return outs, nil, fmt.Errorf("read %d step outcomes: %w", len(ds), err)
	}
	return outs, existing, nil
}

// addBranch adds to added the steps and edges d's decision outcome creates. have (the
// task's steps by name) gains the new steps, so a later outcome of the same task sees them.
func (o *Orchestrator) addBranch(added *stepRows, d outcomeStep, raw json.RawMessage, have map[string]uuid.UUID) error {
	outcome, err := workflow.ParseDecisionOutcome(raw)
	if err != nil {
		return err
	}
	names := make(map[string]bool, len(have))
	for n := range have {
		names[n] = true
	}
	branch, err := d.nt.template.Branch(d.spec.Name, outcome, names)
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
	from, to := edgeUUIDs(d.nt.template.EdgesAmong(branch, names, d.spec.Name), have)
	added.edgeFrom, added.edgeTo = append(added.edgeFrom, from...), append(added.edgeTo, to...)
	return nil
}
