package orchestrator

// dlqRoutes registers the dead-letter queue routes of tasker-core's API.
func (o *Orchestrator) dlqRoutes(_ routeFunc) {}
