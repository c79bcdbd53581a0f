package orchestrator

// stepRoutes registers the step routes of tasker-core's API: one step, its operator
// actions and its result audit.
func (o *Orchestrator) stepRoutes(_ routeFunc) {}
