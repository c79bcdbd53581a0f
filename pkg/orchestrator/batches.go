package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// Batch processing. A completing batchable step's outcome lists cursor ranges; each
// becomes a worker step named <batch_worker step>_<batch id>, made from the template's
// batch_worker step, that depends on the batchable step and carries its range in its
// inputs. A no_batches outcome makes one placeholder worker (batch id 000, is_no_op), so
// the convergence step still has something to wait for. Each deferred convergence step
// that depends on the batch_worker step by name is created once, waiting for all workers.

// workerPlan is one batch worker to create.
type workerPlan struct {
	task   *taskRef
	parent uuid.UUID // the batchable step
	nt     *namedTask
	spec   *workflow.StepTemplate // the batch_worker step it is made from
	name   string                 // e.g. process_csv_batch_001
	inputs []byte
}

// planWorkers lists the workers a batchable step's outcome asks for; workers the task
// has already (by name) are left out, so applying an outcome twice adds nothing.
func planWorkers(d outcomeStep, raw json.RawMessage, have map[string]uuid.UUID) ([]workerPlan, error) {
	o, err := workflow.ParseBatchOutcome(raw)
	if err != nil {
		return nil, err
	}
	template, cursors, noOp := o.WorkerTemplateName, o.CursorConfigs, false
	if o.Type == workflow.OutcomeNoBatches {
		template, _ = d.spec.Handler.Initialization["worker_template_name"].(string)
		cursors, noOp = []workflow.CursorConfig{{BatchID: workflow.NoOpBatchID, StartCursor: json.RawMessage("0"),
			EndCursor: json.RawMessage("0")}}, true
	}
	spec := d.nt.template.Step(template)
	if spec == nil || spec.Type != workflow.StepBatchWorker || spec.BatchConfig == nil {
		return nil, fmt.Errorf("worker template %q: must name a batch_worker step of %s", template, d.nt.template.Key())
	}
	var out []workerPlan
	for _, c := range cursors {
		name := workflow.WorkerStepName(template, c.BatchID)
		if _, ok := have[name]; ok {
			continue
		}
		inputs, err := workerInputs(spec, c, noOp)
		if err != nil {
			return nil, err
		}
		out = append(out, workerPlan{task: d.task, parent: d.step, nt: d.nt, spec: spec, name: name, inputs: inputs})
	}
	return out, nil
}

// workerInputs is a worker's inputs: its template step's handler initialization, with
// its range, its batch configuration and the name of the step it was made from.
func workerInputs(spec *workflow.StepTemplate, c workflow.CursorConfig, noOp bool) ([]byte, error) {
	in := maps.Clone(spec.Handler.Initialization)
	if in == nil {
		in = map[string]any{}
	}
	in["cursor"] = c
	in["batch_metadata"] = workflow.BatchMetadata{CursorField: spec.BatchConfig.CursorField,
		FailureStrategy: spec.BatchConfig.FailureStrategy}
	in["is_no_op"] = noOp
	in["__template_step_name"] = spec.Name
	return json.Marshal(in)
}

// addWorkers adds the planned workers to added, with their edges and the convergence
// steps that join them. Workers are named steps of their own: their names are made
// sure of first, in one round trip.
func (o *Orchestrator) addWorkers(ctx context.Context, tx pgx.Tx, added *stepRows, plans []workerPlan,
	existing map[uuid.UUID]map[string]uuid.UUID) error {
	names := make([]string, 0, len(plans))
	for _, p := range plans {
		names = append(names, p.name)
	}
	named, err := ensureNamedSteps(ctx, tx, names)
	if err != nil {
		return err
	}
	type group struct {
		task   *taskRef
		nt     *namedTask
		tmpl   string
		worker []uuid.UUID
	}
	var groups []*group
	for _, p := range plans {
		id := uuid.Must(uuid.NewV7())
		added.add(p.task.uuid, id, named[p.name], p.spec, p.inputs)
		existing[p.task.uuid][p.name] = id
		added.edgeFrom, added.edgeTo = append(added.edgeFrom, p.parent), append(added.edgeTo, id)
		i := slices.IndexFunc(groups, func(g *group) bool { return g.task == p.task && g.tmpl == p.spec.Name })
		if i < 0 {
			i, groups = len(groups), append(groups, &group{task: p.task, nt: p.nt, tmpl: p.spec.Name})
		}
		groups[i].worker = append(groups[i].worker, id)
	}
	for _, g := range groups {
		if err := addConvergence(added, g.task, g.nt, g.tmpl, g.worker, existing[g.task.uuid]); err != nil {
			return err
		}
	}
	return nil
}

// addConvergence creates (once) each deferred convergence step that depends on the
// batch_worker step tmpl, waiting for every worker, and for its other dependencies that
// exist.
func addConvergence(added *stepRows, t *taskRef, nt *namedTask, tmpl string, workers []uuid.UUID,
	have map[string]uuid.UUID) error {
	for i := range nt.template.Steps {
		c := &nt.template.Steps[i]
		if c.Type != workflow.StepDeferredConvergence || !slices.Contains(c.Dependencies, tmpl) {
			continue
		}
		id, ok := have[c.Name]
		if !ok {
			ids, err := added.addSteps(t.uuid, nt, []*workflow.StepTemplate{c})
			if err != nil {
				return err
			}
			id, have[c.Name] = ids[c.Name], ids[c.Name]
			for _, d := range c.Dependencies {
				if p, ok := have[d]; ok && d != tmpl {
					added.edgeFrom, added.edgeTo = append(added.edgeFrom, p), append(added.edgeTo, id)
				}
			}
		}
		for _, w := range workers {
			added.edgeFrom, added.edgeTo = append(added.edgeFrom, w), append(added.edgeTo, id)
		}
	}
	return nil
}

// ensureNamedSteps returns the named step of each name, creating those that do not exist.
func ensureNamedSteps(ctx context.Context, tx pgx.Tx, names []string) (map[string]uuid.UUID, error) {
	slices.Sort(names)
	names = slices.Compact(names)
	rows, err := tx.Query(ctx, `
		INSERT INTO tasker.named_steps (name, description)
		SELECT n, 'a batch worker, made at run time' FROM unnest($1::text[]) AS n ORDER BY n
		    ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
		RETURNING name, named_step_uuid`, names)
	if err != nil {
		return nil, fmt.Errorf("named steps of %d batch workers: %w", len(names), err)
	}
	out := map[string]uuid.UUID{}
	for rows.Next() {
		var n string
		var id uuid.UUID
		if err := rows.Scan(&n, &id); err != nil {
			rows.Close()
			return nil, err
		}
		out[n] = id
	}
	rows.Close()
	return out, rows.Err()
}
