package orchestrator

// templateRoutes registers the template routes of tasker-core's API.
func (o *Orchestrator) templateRoutes(_ routeFunc) {}
