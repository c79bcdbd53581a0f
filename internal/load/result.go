package load

import "time"

// SchemaVersion names the layout of Result; it changes when a field changes meaning.
const SchemaVersion = "tasker-sim/load/v1"

// Result is everything a load run measured. `taskerctl load -o json` prints it, and the
// HTML report is drawn from it. Times are in seconds from the start of the run unless a
// field says otherwise; latencies are in milliseconds and run from a task's intended
// start (its arrival time in the open model) to the moment it was seen terminal.
type Result struct {
	// Schema is SchemaVersion.
	Schema string `json:"schema"`
	// StartedAt is when the first arrival was due (wall clock).
	StartedAt time.Time `json:"started_at"`
	// Model is "open" (arrivals at a rate) or "closed" (a fixed number in flight).
	Model string `json:"model"`
	// Concurrency is the closed model's number of tasks in flight.
	Concurrency int `json:"concurrency,omitempty"`
	// WarmupSeconds is the start of the run left out of the figures.
	WarmupSeconds float64 `json:"warmup_seconds"`
	// MeasuredSeconds is the length of the measured window (after the warm-up, until
	// arrivals stopped).
	MeasuredSeconds float64 `json:"measured_seconds"`
	// TargetRate is the mean target arrival rate over the measured window, tasks/s (open
	// model only).
	TargetRate float64 `json:"target_rate,omitempty"`
	// AchievedRate is the rate at which tasks were created in the measured window, tasks/s.
	AchievedRate float64 `json:"achieved_rate"`
	// Arrivals counts tasks due in the measured window: created, refused and missed.
	Arrivals int64 `json:"arrivals"`
	// Created counts tasks the API accepted (201), warm-up included.
	Created int64 `json:"created"`
	// Missed counts arrivals the generator could not start on time because every sender
	// was busy: the generator, not the system, fell behind.
	Missed int64 `json:"missed"`
	// HTTPErrors counts refused creations by HTTP status ("503") or "network".
	HTTPErrors map[string]int64 `json:"http_errors"`
	// FinalStates counts created tasks by the terminal state they reached.
	FinalStates map[string]int64 `json:"final_states"`
	// Unfinished lists tasks that had not reached a terminal state when the run ended.
	Unfinished []UnfinishedTask `json:"unfinished"`
	// Shapes has the figures of each task template in the mix, in mix order.
	Shapes []ShapeResult `json:"shapes"`
	// Overall is the latency over every shape.
	Overall LatencySummary `json:"overall_latency_ms"`
	// Timeline has one point per second of the run, per shape.
	Timeline []ShapeTimeline `json:"timeline"`
	// TargetTimeline is the target arrival rate at each second (open model).
	TargetTimeline []float64 `json:"target_timeline,omitempty"`
	// Phases are the fault phases of the scenario, as applied.
	Phases []PhaseResult `json:"phases"`
	// Reconciliation compares what the run saw with the processes' own counters.
	Reconciliation Reconciliation `json:"reconciliation"`
	// Thresholds are the --threshold checks and whether each passed.
	Thresholds []ThresholdResult `json:"thresholds"`
	// GeneratorCPUPercent is the CPU the generator process used, as a share of the
	// machine's cores over the run (100 = every core busy).
	GeneratorCPUPercent float64 `json:"generator_cpu_percent"`
	// Interrupted says the run was stopped early (Ctrl-C).
	Interrupted bool `json:"interrupted"`
	// Passed is false when a task was lost, the counters disagree, or a threshold failed.
	Passed bool `json:"passed"`
}

// ShapeResult is one template's figures.
type ShapeResult struct {
	// Name is the template name, e.g. mathematical_sequence.
	Name string `json:"name"`
	// Namespace is the template's namespace.
	Namespace string `json:"namespace"`
	// Weight is the shape's weight in the mix.
	Weight int `json:"weight"`
	// Created counts this shape's accepted creations.
	Created int64 `json:"created"`
	// FinalStates counts this shape's tasks by terminal state.
	FinalStates map[string]int64 `json:"final_states"`
	// AchievedRate is this shape's creation rate in the measured window, tasks/s.
	AchievedRate float64 `json:"achieved_rate"`
	// Latency summarises create → terminal in the measured window.
	Latency LatencySummary `json:"latency_ms"`
}

// LatencySummary is a latency distribution in milliseconds.
type LatencySummary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// ShapeTimeline is one shape's per-second series; index i covers [i, i+1) seconds.
type ShapeTimeline struct {
	// Shape is the template name.
	Shape string `json:"shape"`
	// Created counts creations accepted in each second.
	Created []int64 `json:"created"`
	// Finished counts tasks seen terminal in each second.
	Finished []int64 `json:"finished"`
	// P99MS is the P99 latency of the tasks that finished in each second (0 when none did).
	P99MS []float64 `json:"p99_ms"`
}

// PhaseResult is one fault phase as it was applied.
type PhaseResult struct {
	// Name is the phase's name from the scenario.
	Name string `json:"name"`
	// Target is the process kind the faults went to: orchestrator, worker or ffi_worker.
	Target string `json:"target"`
	// StartSeconds and EndSeconds bound the phase, from the start of the run.
	StartSeconds float64 `json:"start_seconds"`
	EndSeconds   float64 `json:"end_seconds"`
	// Faults is the faults document the phase applied.
	Faults map[string]any `json:"faults"`
	// Error is set when applying or clearing the phase failed.
	Error string `json:"error,omitempty"`
}

// UnfinishedTask is a task the run created that never reached a terminal state.
type UnfinishedTask struct {
	TaskUUID string `json:"task_uuid"`
	Shape    string `json:"shape"`
	// Status is the last state the API reported.
	Status string `json:"status"`
}

// Reconciliation compares the run's own counts with the processes' counters.
type Reconciliation struct {
	// Checked is false when the orchestrator's /metrics could not be read.
	Checked bool `json:"checked"`
	// RequestsCounted is the rise in tasker_tasks_requests_total during the run.
	RequestsCounted int64 `json:"requests_counted"`
	// TerminalCounted is the rise in tasker_tasks_completions_total plus
	// tasker_tasks_failures_total during the run.
	TerminalCounted int64 `json:"terminal_counted"`
	// Created and Terminal are the run's own counts to compare with.
	Created  int64 `json:"created"`
	Terminal int64 `json:"terminal"`
	// Problems says in words what did not match; empty when all did.
	Problems []string `json:"problems"`
}

// ThresholdResult is one --threshold check.
type ThresholdResult struct {
	// Expr is the check as given, e.g. "p99<500ms".
	Expr string `json:"expr"`
	// Actual is the measured value, in the check's unit (ms or %).
	Actual float64 `json:"actual"`
	// Passed says whether the check held.
	Passed bool `json:"passed"`
}
