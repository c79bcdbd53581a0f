package orchestrator

// analyticsRoutes registers the analytics routes of tasker-core's API.
func (o *Orchestrator) analyticsRoutes(_ routeFunc) {}
