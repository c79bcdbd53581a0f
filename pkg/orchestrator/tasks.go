package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/faults"
	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// Errors the API maps to status codes.
var (
	// ErrNotFound: no such task, or no such template.
	ErrNotFound = errors.New("not found")
	// ErrDuplicate: a task with the same identity exists.
	ErrDuplicate = errors.New("duplicate task")
	// ErrConflict: the request is valid but the task's state forbids it.
	ErrConflict = errors.New("conflict")
)

// ValidationError is bad input; Field names the field and Rule the rule it broke.
type ValidationError struct {
	Field string
	Rule  string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Rule }

const identifierRule = `must match ^[a-z][a-z0-9_]{0,63}$`

var (
	identifierRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	versionRE    = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
)

// validateRequest checks everything that needs no database. It returns the parsed
// correlation ids and priority.
func (o *Orchestrator) validateRequest(req *api.TaskRequest) (corr, parent uuid.UUID, priority int, err error) {
	switch {
	case req.Name == "":
		return corr, parent, 0, &ValidationError{"name", "is required"}
	case !identifierRE.MatchString(req.Name):
		return corr, parent, 0, &ValidationError{"name", identifierRule}
	case req.Namespace == "":
		return corr, parent, 0, &ValidationError{"namespace", "is required"}
	case !identifierRE.MatchString(req.Namespace):
		return corr, parent, 0, &ValidationError{"namespace", identifierRule}
	case req.Version == "":
		return corr, parent, 0, &ValidationError{"version", "is required"}
	case !versionRE.MatchString(req.Version):
		return corr, parent, 0, &ValidationError{"version", "must be MAJOR.MINOR.PATCH, e.g. 1.0.0"}
	case len(bytes.TrimSpace(req.Context)) == 0 || string(bytes.TrimSpace(req.Context)) == "null":
		return corr, parent, 0, &ValidationError{"context", "is required and must be a JSON object"}
	case bytes.TrimSpace(req.Context)[0] != '{':
		return corr, parent, 0, &ValidationError{"context", "must be a JSON object"}
	case len(req.Context) > o.cfg.MaxContextBytes:
		return corr, parent, 0, &ValidationError{"context", fmt.Sprintf("must be at most %d bytes of JSON, got %d", o.cfg.MaxContextBytes, len(req.Context))}
	}
	// A task's own faults are checked when its steps run, except the process-only ones,
	// which a task can never carry.
	if fe := faults.RefuseProcessFaultsInContext(req.Context); fe != nil {
		return corr, parent, 0, &ValidationError{"context." + faults.ContextKey + "." + fe.Field, fe.Rule}
	}
	if err := checkText(req); err != nil {
		return corr, parent, 0, err
	}
	if err := checkCoreFields(req); err != nil {
		return corr, parent, 0, err
	}
	if req.Priority != nil {
		priority = *req.Priority
		if priority < -100 || priority > 100 {
			return corr, parent, 0, &ValidationError{"priority", "must be between -100 and 100"}
		}
	}
	if len(req.Tags) > 50 {
		return corr, parent, 0, &ValidationError{"tags", "must list at most 50 tags"}
	}
	corr, err = uuid.NewV7()
	if err != nil {
		return corr, parent, 0, err
	}
	if req.CorrelationID != "" {
		if corr, err = uuid.Parse(req.CorrelationID); err != nil {
			return corr, parent, 0, &ValidationError{"correlation_id", "must be a UUID"}
		}
	}
	if req.ParentCorrelationID != "" {
		if parent, err = uuid.Parse(req.ParentCorrelationID); err != nil {
			return corr, parent, 0, &ValidationError{"parent_correlation_id", "must be a UUID"}
		}
	}
	return corr, parent, priority, nil
}

// checkText checks the request's free text: the audit fields are required and short, and
// nothing holds a character PostgreSQL cannot store.
func checkText(req *api.TaskRequest) error {
	if field := nulField(req.Context); field != "" {
		return &ValidationError{field, nulRule}
	}
	for _, f := range []struct{ name, value string }{
		{"initiator", req.Initiator}, {"source_system", req.SourceSystem}, {"reason", req.Reason},
	} {
		switch {
		case f.value == "":
			return &ValidationError{f.name, "is required"}
		case len(f.value) > 255:
			return &ValidationError{f.name, "must be at most 255 characters"}
		case strings.ContainsRune(f.value, 0):
			return &ValidationError{f.name, nulRule}
		}
	}
	if len(req.IdempotencyKey) > 255 {
		return &ValidationError{"idempotency_key", "must be at most 255 characters"}
	}
	for i, tag := range req.Tags {
		if strings.ContainsRune(tag, 0) {
			return &ValidationError{fmt.Sprintf("tags[%d]", i), nulRule}
		}
	}
	return nil
}

// checkCoreFields checks the fields tasker-core's clients send that tasker-sim accepts
// without using: requested_at must be a date-time, options a JSON object.
func checkCoreFields(req *api.TaskRequest) error {
	if req.RequestedAt != "" {
		_, err := time.Parse(time.RFC3339Nano, req.RequestedAt)
		if _, naive := time.Parse("2006-01-02T15:04:05.999999999", req.RequestedAt); err != nil && naive != nil {
			return &ValidationError{"requested_at", "must be a date-time such as 2026-12-01T10:00:00Z"}
		}
	}
	if o := bytes.TrimSpace(req.Options); len(o) > 0 && string(o) != "null" && o[0] != '{' {
		return &ValidationError{"options", "must be a JSON object"}
	}
	return nil
}

// nulRule is the rule for text PostgreSQL cannot store: neither text nor jsonb holds the
// NUL character.
const nulRule = `must not contain the NUL character (\u0000): PostgreSQL cannot store it`

// nulField returns the path (context.a.b[2]) of the first key or string in the JSON
// document doc that holds a NUL character, or "" when none does or doc does not decode
// (the schema check reports that).
func nulField(doc []byte) string {
	if !bytes.Contains(doc, []byte(`\u0000`)) {
		return "" // the only way JSON text can spell a NUL
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return ""
	}
	return findNul("context", v)
}

func findNul(path string, v any) string {
	switch x := v.(type) {
	case string:
		if strings.ContainsRune(x, 0) {
			return path
		}
	case []any:
		for i, e := range x {
			if p := findNul(fmt.Sprintf("%s[%d]", path, i), e); p != "" {
				return p
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if strings.ContainsRune(k, 0) {
				return path + " (a key)"
			}
			if p := findNul(path+"."+k, x[k]); p != "" {
				return p
			}
		}
	}
	return ""
}

// namedTask is a registered template as orchestration sees it.
type namedTask struct {
	uuid      uuid.UUID
	updatedAt time.Time
	template  *workflow.Template
	stepUUIDs map[string]uuid.UUID // step name → named_step_uuid
	// outcomeSteps are the decision and batchable steps, whose results create steps, by
	// named_step_uuid.
	outcomeSteps map[uuid.UUID]*workflow.StepTemplate
	// initial are the steps a task starts with, and initialEdges the edges among them:
	// the same for every task of the template, so worked out once.
	initial      []*workflow.StepTemplate
	initialEdges []workflow.Edge
}

// templateCache keeps parsed templates (and their compiled input schemas) by named task,
// each as of its row's updated_at, and which named task a namespace, name and version
// resolve to. A registration's notification drops both for what it names (see forget);
// a resolved name is also read again after templateNameTTL, in case its notification was
// lost (a listener that is down).
type templateCache struct {
	mu     sync.Mutex
	byTask map[uuid.UUID]*namedTask
	byName map[templateKey]resolvedName
	// epoch counts forget calls: a lookup that read the database before the latest one
	// does not store what it read, which may be the template's older version.
	epoch uint64
	now   func() time.Time
}

// templateNameTTL bounds how long a resolved name is used without reading its row again.
const templateNameTTL = 10 * time.Second

// templateKey names a template as a task request does.
type templateKey struct{ namespace, name, version string }

// resolvedName is what a templateKey resolved to, and when.
type resolvedName struct {
	nt *namedTask
	at time.Time
}

func newTemplateCache() *templateCache {
	return &templateCache{byTask: map[uuid.UUID]*namedTask{}, byName: map[templateKey]resolvedName{}, now: time.Now}
}

// forget drops every resolved name and the parsed template of named task id (all of them
// for uuid.Nil), so the next request reads the rows again. It runs on each template
// registration's notification (id is its named task) and on each (re)connect of the
// listener that hears them (uuid.Nil: what it missed is unknown).
func (c *templateCache) forget(id uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.byName)
	if id == uuid.Nil {
		clear(c.byTask)
	} else {
		delete(c.byTask, id)
	}
	c.epoch++
}

// named returns the template a name resolved to, if known and fresh, and the epoch.
func (c *templateCache) named(k templateKey) (*namedTask, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.byName[k]
	if !ok || c.now().Sub(r.at) >= templateNameTTL {
		return nil, c.epoch
	}
	return r.nt, c.epoch
}

// rememberName stores what k resolved to, unless a registration was heard since epoch.
func (c *templateCache) rememberName(k templateKey, nt *namedTask, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch == epoch {
		c.byName[k] = resolvedName{nt: nt, at: c.now()}
	}
}

// task returns the parsed template of named task id, if cached, and the current epoch.
func (c *templateCache) task(id uuid.UUID) (*namedTask, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byTask[id], c.epoch
}

// keep stores a parsed template read at epoch, unless a registration was heard since
// (it may be the older version) or the cache holds a later version; it returns the
// latest of the two.
func (c *templateCache) keep(nt *namedTask, epoch uint64) *namedTask {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.byTask[nt.uuid]; cur != nil && cur.updatedAt.After(nt.updatedAt) {
		return cur
	}
	if c.epoch == epoch {
		c.byTask[nt.uuid] = nt
	}
	return nt
}

// lookupTemplate resolves a task request's template: from the cache while no template
// has been registered since it was read (no statement at all), else from its row.
func (o *Orchestrator) lookupTemplate(ctx context.Context, namespace, name, version string) (*namedTask, error) {
	key := templateKey{namespace, name, version}
	cached, epoch := o.templates.named(key)
	if cached != nil {
		return cached, nil
	}
	nt, err := o.readTemplate(ctx, namespace, name, version)
	if err != nil {
		return nil, err
	}
	o.templates.rememberName(key, nt, epoch)
	return nt, nil
}

// readTemplate resolves a template by its row.
func (o *Orchestrator) readTemplate(ctx context.Context, namespace, name, version string) (*namedTask, error) {
	var id uuid.UUID
	var updated time.Time
	err := o.pool.QueryRow(ctx, `
		SELECT nt.named_task_uuid, nt.updated_at
		  FROM tasker.named_tasks AS nt
		  JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid
		 WHERE tn.name = $1 AND nt.name = $2 AND nt.version = $3`, namespace, name, version).Scan(&id, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("template %s/%s/%s is not registered (is a worker for namespace %s running?): %w",
			namespace, name, version, namespace, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return o.namedTask(ctx, id, updated)
}

// templateByID returns the template of a named task (as a task's named_task_uuid names
// it), from the cache when it holds it.
func (o *Orchestrator) templateByID(ctx context.Context, id uuid.UUID) (*namedTask, error) {
	cached, epoch := o.templates.task(id)
	if cached != nil {
		return cached, nil
	}
	return o.loadNamedTask(ctx, id, epoch)
}

// namedTask returns the template of named task id as of its row's updated_at: the cached
// one when it is that version, else the stored one, parsed (and its queue ensured).
func (o *Orchestrator) namedTask(ctx context.Context, id uuid.UUID, updated time.Time) (*namedTask, error) {
	cached, epoch := o.templates.task(id)
	if cached != nil && cached.updatedAt.Equal(updated) {
		return cached, nil
	}
	return o.loadNamedTask(ctx, id, epoch)
}

// loadNamedTask reads, parses and caches (see templateCache.keep) the template of named
// task id as its row is now; epoch is the cache's as of before the read.
func (o *Orchestrator) loadNamedTask(ctx context.Context, id uuid.UUID, epoch uint64) (*namedTask, error) {
	var config []byte
	var updated time.Time
	if err := o.pool.QueryRow(ctx, `SELECT configuration, updated_at FROM tasker.named_tasks WHERE named_task_uuid = $1`,
		id).Scan(&config, &updated); err != nil {
		return nil, fmt.Errorf("named task %s: %w", id, err)
	}
	tmpl, err := workflow.Parse(config)
	if err != nil {
		return nil, fmt.Errorf("stored template of named task %s: %w", id, err)
	}
	rows, err := o.pool.Query(ctx, `
		SELECT ns.name, ns.named_step_uuid FROM tasker.named_tasks_named_steps AS nn
		  JOIN tasker.named_steps AS ns ON ns.named_step_uuid = nn.named_step_uuid
		 WHERE nn.named_task_uuid = $1`, id)
	if err != nil {
		return nil, err
	}
	steps := map[string]uuid.UUID{}
	for rows.Next() {
		var n string
		var u uuid.UUID
		if err := rows.Scan(&n, &u); err != nil {
			rows.Close()
			return nil, err
		}
		steps[n] = u
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Workers create their queues at start, but a task may be created before any worker of
	// its namespace runs; creating the queue here (idempotent) lets its steps wait there.
	if err := messaging.EnsureQueue(ctx, o.pool, tmpl.QueueName()); err != nil {
		return nil, err
	}
	initial := tmpl.InitialSteps()
	nt := &namedTask{uuid: id, updatedAt: updated, template: tmpl, stepUUIDs: steps,
		outcomeSteps: map[uuid.UUID]*workflow.StepTemplate{},
		initial:      initial, initialEdges: tmpl.EdgesAmong(initial, stepNames(initial), "")}
	for n, u := range steps {
		if s := tmpl.Step(n); s != nil && (s.Type == workflow.StepDecision || s.Type == workflow.StepBatchable) {
			nt.outcomeSteps[u] = s
		}
	}
	return o.templates.keep(nt, epoch), nil
}

// CreateTask validates a request and, in one transaction, creates the task, its steps,
// edges and initial transitions, and enqueues the root steps. Concurrent calls share that
// transaction (package groupcommit): a lone request commits at once, a burst in batches.
// It returns the task as it stood right after the commit.
func (o *Orchestrator) CreateTask(ctx context.Context, req *api.TaskRequest) (*api.TaskResponse, error) {
	start := time.Now()
	corr, parent, priority, err := o.validateRequest(req)
	if err != nil {
		return nil, err
	}
	nt, err := o.lookupTemplate(ctx, req.Namespace, req.Name, req.Version)
	if err != nil {
		return nil, err
	}
	// Counted once the template is known, so the labels stay a bounded set.
	o.tel.Instruments.TaskRequested(ctx, corr.String(), req.Name, req.Namespace)
	ctx, span := o.tel.Tracer.Start(ctx, "create_task", trace.WithAttributes(
		attribute.String("correlation_id", corr.String()), attribute.String("task_name", req.Name),
		attribute.String("namespace", req.Namespace)))
	defer span.End()
	if err := nt.template.ValidateInput(req.Context); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			return nil, err
		}
		return nil, &ValidationError{Field: "context", Rule: err.Error()}
	}
	identity, err := lifecycle.IdentityHash(nt.uuid, req.Context, req.IdempotencyKey)
	if err != nil {
		return nil, &ValidationError{Field: "context", Rule: err.Error()}
	}
	c, err := newCreation(nt, req, corr, parent, priority, identity)
	if err != nil {
		return nil, err
	}
	c.span, c.headers = span, messaging.Headers(ctx)
	span.SetAttributes(attribute.String("task_uuid", c.task.String()))
	done, err := o.creations.Do(ctx, c)
	if err != nil {
		span.RecordError(err)
		return nil, err
	}
	o.tel.Instruments.TaskInitialized(ctx, corr.String(), nt.template.Name, time.Since(start))
	o.recordCommitted(ctx, done.ref)
	o.log.Info("task created", "correlation_id", corr, "task_uuid", c.task, "namespace", nt.template.NamespaceName,
		"task_name", nt.template.Name, "steps", len(c.steps))
	return done.task, nil
}

// createBatchMax bounds how many task creations share a transaction.
const createBatchMax = 32

// creation is a validated task request with the rows it will write.
type creation struct {
	stepRows
	task, namedTask, correlationID uuid.UUID
	parent                         pgtype.UUID
	req                            *api.TaskRequest
	tags                           []byte // JSON array
	identity                       string
	priority                       int32
	namespace, key                 string
	span                           trace.Span // create_task: the task's trace starts here
	headers                        []byte     // the span's context, stored as the task's trace_context
}

// stepRows are new workflow_steps rows, each with its task, and the edges into them.
type stepRows struct {
	steps, tasks, namedSteps []uuid.UUID
	retryable                []bool
	maxAttempts              []int32
	inputs                   [][]byte // a step's own input (batch workers); nil for template steps
	edgeFrom, edgeTo         []uuid.UUID
}

// newCreation gives the task and each of its template's steps a time-ordered uuid and
// lists the edges.
func newCreation(nt *namedTask, req *api.TaskRequest, corr, parent uuid.UUID, priority int, identity string) (*creation, error) {
	tmpl := nt.template
	tags := req.Tags
	if tags == nil {
		tags = []string{}
	}
	tagsJSON, err := json.Marshal(tags)
	if err != nil {
		return nil, err
	}
	c := &creation{task: uuid.Must(uuid.NewV7()), namedTask: nt.uuid, correlationID: corr, req: req, tags: tagsJSON,
		identity: identity, priority: int32(priority), namespace: tmpl.NamespaceName, key: tmpl.Key(),
		parent: pgtype.UUID{Bytes: parent, Valid: parent != uuid.Nil}}
	ids, err := c.addSteps(c.task, nt, nt.initial)
	if err != nil {
		return nil, err
	}
	c.edgeFrom, c.edgeTo = edgeUUIDs(nt.initialEdges, ids)
	return c, nil
}

// created is a committed creation: what it did, for recordCommitted, and the task as the
// API shows it.
type created struct {
	ref  *taskRef
	task *api.TaskResponse
}

// addSteps gives each of task's steps a time-ordered uuid and adds its row's fields to c.
// It returns the uuids by step name.
func (c *stepRows) addSteps(task uuid.UUID, nt *namedTask, steps []*workflow.StepTemplate) (map[string]uuid.UUID, error) {
	ids := map[string]uuid.UUID{}
	for _, s := range steps {
		ns, ok := nt.stepUUIDs[s.Name]
		if !ok {
			return nil, fmt.Errorf("template %s: step %s is not registered", nt.template.Key(), s.Name)
		}
		id := uuid.Must(uuid.NewV7())
		ids[s.Name] = id
		c.add(task, id, ns, s, nil)
	}
	return ids, nil
}

// add appends one step row: step, of task, named named, made from the template step s,
// with its own inputs (nil for a template step).
func (c *stepRows) add(task, step, named uuid.UUID, s *workflow.StepTemplate, inputs []byte) {
	c.steps, c.tasks, c.namedSteps = append(c.steps, step), append(c.tasks, task), append(c.namedSteps, named)
	c.retryable, c.maxAttempts = append(c.retryable, s.Retry.IsRetryable()), append(c.maxAttempts, int32(s.Retry.Attempts()))
	c.inputs = append(c.inputs, inputs)
}

// stepNames is the set of the steps' names.
func stepNames(steps []*workflow.StepTemplate) map[string]bool {
	out := make(map[string]bool, len(steps))
	for _, s := range steps {
		out[s.Name] = true
	}
	return out
}

// edgeUUIDs turns edges between named steps into parallel uuid lists.
func edgeUUIDs(edges []workflow.Edge, ids map[string]uuid.UUID) (from, to []uuid.UUID) {
	for _, e := range edges {
		from, to = append(from, ids[e.From]), append(to, ids[e.To])
	}
	return from, to
}

// createTasks is the creation transaction for a batch of requests: their rows and first
// transitions, and their snapshots, in one round trip; then each task's plan, which
// enqueues its root steps. After the commit one statement reads the new tasks back.
func (o *Orchestrator) createTasks(ctx context.Context, cs []*creation) ([]created, error) {
	refs := make([]*taskRef, len(cs))
	err := pgx.BeginTxFunc(ctx, o.pool, hotTx, func(tx pgx.Tx) error {
		ids := make([]uuid.UUID, len(cs))
		for i, c := range cs {
			ids[i] = c.task
			refs[i] = &taskRef{uuid: c.task, correlationID: c.correlationID, namespace: c.namespace,
				state: lifecycle.TaskPending, traceContext: c.headers}
		}
		snaps := map[uuid.UUID]*snapshot{}
		b := &pgx.Batch{}
		o.queueCreations(b, cs)
		queueSnapshots(b, ids, snaps)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return creationError(cs, err)
		}
		ps := make([]planned, len(cs))
		for i, c := range cs {
			snap := snaps[c.task]
			if snap == nil {
				return fmt.Errorf("execution context of new task %s: no row", c.task)
			}
			ps[i] = planned{task: refs[i], snap: snap, ctx: trace.ContextWithSpan(ctx, c.span)}
		}
		return o.applyPlans(ctx, tx, ps, "task_created")
	})
	if err != nil {
		return nil, err
	}
	ids := make([]uuid.UUID, len(cs))
	for i, c := range cs {
		ids[i] = c.task
	}
	tasks, err := o.readTasks(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read %d created tasks: %w", len(cs), err)
	}
	out := make([]created, len(cs))
	for i, c := range cs {
		if out[i] = (created{ref: refs[i], task: tasks[c.task]}); out[i].task == nil {
			return nil, fmt.Errorf("created task %s: %w", c.task, ErrNotFound)
		}
	}
	return out, nil
}

// readTasks returns the tasks named, by uuid, as GetTask shows them.
func (o *Orchestrator) readTasks(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]*api.TaskResponse, error) {
	rows, err := o.pool.Query(ctx, tasksSelectByID, ids)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*api.TaskResponse, error) { return scanTask(r) })
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]*api.TaskResponse, len(list))
	for _, t := range list {
		id, err := uuid.Parse(t.TaskUUID)
		if err != nil {
			return nil, err
		}
		out[id] = t
	}
	return out, nil
}

// queueCreations adds to b the inserts of the tasks, their steps and edges, and their
// first transitions, each one statement for the whole batch.
func (o *Orchestrator) queueCreations(b *pgx.Batch, cs []*creation) {
	n := len(cs)
	tasks, named, corr := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
	parents := make([]pgtype.UUID, n)
	initiators, sources, reasons, identities := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	tags, contexts, traces := make([][]byte, n), make([][]byte, n), make([][]byte, n)
	priorities := make([]int32, n)
	var steps stepRows
	for i, c := range cs {
		tasks[i], named[i], corr[i], parents[i] = c.task, c.namedTask, c.correlationID, c.parent
		initiators[i], sources[i], reasons[i], identities[i] = c.req.Initiator, c.req.SourceSystem, c.req.Reason, c.identity
		tags[i], contexts[i], traces[i], priorities[i] = c.tags, []byte(c.req.Context), c.headers, c.priority
		steps.append(&c.stepRows)
	}
	b.Queue(`INSERT INTO tasker.tasks (task_uuid, named_task_uuid, initiator, source_system, reason, tags,
	             context, identity_hash, priority, correlation_id, parent_correlation_id, trace_context)
	         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::jsonb[],
	                              $7::jsonb[], $8::text[], $9::int[], $10::uuid[], $11::uuid[], $12::jsonb[])`,
		tasks, named, initiators, sources, reasons, tags, contexts, identities, priorities, corr, parents, traces)
	steps.queue(b)
	lifecycle.QueueCreateTransitions(b, tasks, corr, steps.steps, o.cfg.ProcessorUUID)
}

// queue adds to b the inserts of the steps and their edges.
func (r *stepRows) queue(b *pgx.Batch) {
	b.Queue(`INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid, retryable, max_attempts, inputs)
	         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bool[], $5::int[], $6::jsonb[])`,
		r.steps, r.tasks, r.namedSteps, r.retryable, r.maxAttempts, r.inputs)
	b.Queue(`INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid)
	         SELECT * FROM unnest($1::uuid[], $2::uuid[])`, r.edgeFrom, r.edgeTo)
}

// append adds other's rows to r.
func (r *stepRows) append(other *stepRows) {
	r.steps, r.tasks, r.namedSteps = append(r.steps, other.steps...), append(r.tasks, other.tasks...), append(r.namedSteps, other.namedSteps...)
	r.retryable, r.maxAttempts = append(r.retryable, other.retryable...), append(r.maxAttempts, other.maxAttempts...)
	r.inputs = append(r.inputs, other.inputs...)
	r.edgeFrom, r.edgeTo = append(r.edgeFrom, other.edgeFrom...), append(r.edgeTo, other.edgeTo...)
}

// creationError names a duplicate: for a batch of one, the template whose task it
// duplicates (a larger batch that fails is retried a request at a time).
func creationError(cs []*creation, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "idx_tasks_identity_hash" {
		return fmt.Errorf("a task of %s with the same identity (context or idempotency_key) exists: %w",
			cs[0].key, ErrDuplicate)
	}
	return fmt.Errorf("create %d tasks: %w", len(cs), err)
}

const (
	taskSelectFrom = `
	SELECT t.task_uuid::text, nt.name, tn.name, nt.version, c.status, t.correlation_id::text,
	       t.parent_correlation_id::text, t.context, coalesce(t.initiator, ''), coalesce(t.source_system, ''),
	       coalesce(t.reason, ''), t.priority, t.tags, t.created_at, t.updated_at, t.completed_at,
	       c.total_steps, c.pending_steps, c.in_progress_steps, c.completed_steps, c.failed_steps, c.ready_steps,
	       c.execution_status, c.recommended_action, c.completion_percentage::float8, c.health_status
	  FROM tasker.tasks AS t
	  JOIN tasker.named_tasks AS nt ON nt.named_task_uuid = t.named_task_uuid
	  JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid`
	// taskSelect reads tasks with their execution contexts, one context per row.
	taskSelect = taskSelectFrom + `
	  CROSS JOIN LATERAL tasker.get_task_execution_context(t.task_uuid) AS c`
	// tasksSelectByID reads the tasks listed in $1, their contexts in one call for all.
	tasksSelectByID = taskSelectFrom + `
	  JOIN tasker.task_execution_contexts($1) AS c ON c.task_uuid = t.task_uuid
	 WHERE t.task_uuid = ANY ($1)`
)

func scanTask(row pgx.Row) (*api.TaskResponse, error) {
	var r api.TaskResponse
	err := row.Scan(&r.TaskUUID, &r.Name, &r.Namespace, &r.Version, &r.Status, &r.CorrelationID,
		&r.ParentCorrelationID, &r.Context, &r.Initiator, &r.SourceSystem, &r.Reason, &r.Priority, &r.Tags,
		&r.CreatedAt, &r.UpdatedAt, &r.CompletedAt, &r.TotalSteps, &r.PendingSteps, &r.InProgressSteps,
		&r.CompletedSteps, &r.FailedSteps, &r.ReadySteps, &r.ExecutionStatus, &r.RecommendedAction,
		&r.CompletionPct, &r.HealthStatus)
	r.Steps = []api.StepReadiness{}
	return &r, err
}

// GetTask returns a task with its step counts and execution status.
func (o *Orchestrator) GetTask(ctx context.Context, id uuid.UUID) (*api.TaskResponse, error) {
	r, err := o.readTask(ctx, id)
	return o.withSteps(ctx, id, r, err)
}

// readTask reads a task without its steps' readiness.
func (o *Orchestrator) readTask(ctx context.Context, id uuid.UUID) (*api.TaskResponse, error) {
	r, err := scanTask(o.pool.QueryRow(ctx, taskSelect+" WHERE t.task_uuid = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	return r, err
}

// withSteps adds each step's readiness to task id as readTask read it (unless that failed).
func (o *Orchestrator) withSteps(ctx context.Context, id uuid.UUID, r *api.TaskResponse, err error) (*api.TaskResponse, error) {
	if err != nil {
		return nil, err
	}
	if r.Steps, err = o.stepReadiness(ctx, id); err != nil {
		return nil, err
	}
	return r, nil
}

// stepReadiness returns each step of a task with its readiness, in step order.
func (o *Orchestrator) stepReadiness(ctx context.Context, id uuid.UUID) ([]api.StepReadiness, error) {
	rows, err := o.pool.Query(ctx, `
		SELECT workflow_step_uuid::text, task_uuid::text, named_step_uuid::text, name, current_state,
		       dependencies_satisfied, retry_eligible, ready_for_execution, total_parents, completed_parents,
		       attempts, max_attempts, ceil(backoff_request_seconds)::bigint, last_attempted_at, last_failure_at, next_retry_at
		  FROM tasker.get_step_readiness_status($1)
		 ORDER BY workflow_step_uuid`, id)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.StepReadiness, error) {
		var s api.StepReadiness
		err := r.Scan(&s.WorkflowStepUUID, &s.TaskUUID, &s.NamedStepUUID, &s.Name, &s.CurrentState,
			&s.DependenciesSatisfied, &s.RetryEligible, &s.ReadyForExecution, &s.TotalParents, &s.CompletedParents,
			&s.Attempts, &s.MaxAttempts, &s.BackoffRequestSeconds, &s.LastAttemptedAt, &s.LastFailureAt, &s.NextRetryAt)
		return s, err
	})
}

// ListFilter narrows ListTasks.
type ListFilter struct {
	Namespace    string
	Status       string
	Initiator    string
	SourceSystem string
	Page         int
	PerPage      int
}

// ListTasks returns one page of tasks, newest first.
func (o *Orchestrator) ListTasks(ctx context.Context, f ListFilter) (*api.TaskList, error) {
	where := ` WHERE ($1 = '' OR tn.name = $1) AND ($2 = '' OR tasker.get_current_task_state(t.task_uuid) = $2)
	             AND ($3 = '' OR t.initiator = $3) AND ($4 = '' OR t.source_system = $4)`
	var total int
	if err := o.pool.QueryRow(ctx, `SELECT count(*) FROM tasker.tasks AS t
		  JOIN tasker.named_tasks AS nt ON nt.named_task_uuid = t.named_task_uuid
		  JOIN tasker.task_namespaces AS tn ON tn.task_namespace_uuid = nt.task_namespace_uuid`+where,
		f.Namespace, f.Status, f.Initiator, f.SourceSystem).Scan(&total); err != nil {
		return nil, err
	}
	rows, err := o.pool.Query(ctx, taskSelect+where+` ORDER BY t.created_at DESC, t.task_uuid DESC LIMIT $5 OFFSET $6`,
		f.Namespace, f.Status, f.Initiator, f.SourceSystem, f.PerPage, (f.Page-1)*f.PerPage)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := &api.TaskList{Tasks: []api.TaskResponse{}}
	for rows.Next() {
		r, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		list.Tasks = append(list.Tasks, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	pages := (total + f.PerPage - 1) / f.PerPage
	list.Pagination = api.Pagination{Page: f.Page, PerPage: f.PerPage, TotalCount: total, TotalPages: pages,
		HasNext: f.Page < pages, HasPrevious: f.Page > 1}
	return list, nil
}

// CancelTask cancels a task that has not finished, and every step of it that has not.
func (o *Orchestrator) CancelTask(ctx context.Context, id uuid.UUID) error {
	start := time.Now()
	var cancelled *taskRef
	err := pgx.BeginTxFunc(ctx, o.pool, hotTx, func(tx pgx.Tx) error {
		t, ok, err := lockTask(ctx, tx, id, false)
		if err != nil {
			return err
		}
		cancelled = t
		if !ok {
			return fmt.Errorf("task %s: %w", id, ErrNotFound)
		}
		if t.state.Terminal() {
			return &ValidationError{"task", fmt.Sprintf("cannot cancel a finished task: %s is already %s", id, t.state)}
		}
		if err := lifecycle.TransitionTask(ctx, tx, id, t.state, lifecycle.TaskCancelled, o.cfg.ProcessorUUID,
			map[string]any{"trigger": "api_cancel"}); err != nil {
			return err
		}
		if err := lifecycle.CancelSteps(ctx, tx, id); err != nil {
			return err
		}
		return lifecycle.FinishTask(ctx, tx, id)
	})
	if err == nil {
		cancelled.state, cancelled.finalized, cancelled.finalTook = lifecycle.TaskCancelled, true, time.Since(start)
		o.recordCommitted(ctx, cancelled)
	}
	return err
}

// ListSteps returns a task's steps with their readiness and results, ordered by
// created_at then uuid. An unknown task is ErrNotFound (tasker-core answers []).
func (o *Orchestrator) ListSteps(ctx context.Context, id uuid.UUID) ([]api.StepResponse, error) {
	var exists bool
	if err := o.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tasker.tasks WHERE task_uuid = $1)`, id).Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		return nil, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	rows, err := o.pool.Query(ctx, stepSelect+` ORDER BY ws.created_at, ws.workflow_step_uuid`, id)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.StepResponse, error) { return scanStep(r) })
}
