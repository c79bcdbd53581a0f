package envconfig

import (
	"slices"

	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
	"github.com/tasker-sim/tasker-sim/pkg/workflow"
)

// Programs that read environment variables, for Variable.ReadBy.
const (
	ReadByOrchestrator = "orchestrator"
	ReadByWorker       = "worker"
	ReadByTaskerctl    = "taskerctl"
	ReadByTests        = "tests"
)

// Variable is one environment variable that a tasker-sim program reads.
type Variable struct {
	Name string
	// ReadBy names the programs that read it (ReadByOrchestrator, ...).
	ReadBy []string
}

// Reads says whether program reads v.
func (v Variable) Reads(program string) bool { return slices.Contains(v.ReadBy, program) }

var (
	services = []string{ReadByOrchestrator, ReadByWorker}
	all      = []string{ReadByOrchestrator, ReadByWorker, ReadByTaskerctl}
)

// Variables is every environment variable the programs read: the orchestrator and worker
// configuration above, the telemetry overrides, the standard OpenTelemetry variables the
// SDK reads, taskerctl's and the tests'. The README's configuration table documents each
// one, and internal/deploytest checks that docker-compose.yml sets no other (and that no
// name in the code is missing here).
var Variables = []Variable{
	{DatabaseURL, []string{ReadByOrchestrator, ReadByWorker, ReadByTaskerctl}},
	{DatabaseWait, services},
	{WebBindAddress, []string{ReadByOrchestrator}},
	{WorkerBindAddress, []string{ReadByWorker}},
	{PollIntervalMS, services},
	{VisibilityTimeoutMS, services},
	{PGMQMode, services},
	{BackoffBaseMS, []string{ReadByOrchestrator}},
	{BackoffMaxMS, []string{ReadByOrchestrator}},
	{WorkerID, []string{ReadByWorker}},
	{WorkerNamespaces, []string{ReadByWorker}},
	{TemplatePath, []string{ReadByWorker}},
	{workflow.SimulationProfilesEnv, []string{ReadByWorker}},
	{MaxHandlers, []string{ReadByWorker}},
	{LogLevel, services},
	{ConfigPath, services},
	{HandlerType, []string{ReadByWorker}},
	{FFIOverheadMS, []string{ReadByWorker}},
	{FFISlowSendMS, []string{ReadByWorker}},
	{BreakerFailures, services},
	{BreakerOpenMS, services},
	{BreakerSuccesses, services},
	{Faults, services},
	{AuthToken, all},

	{telemetry.EnvEnabled, services},
	{telemetry.EnvOTLPEnabled, services},
	{telemetry.EnvServiceName, services},
	{telemetry.EnvSampleRate, services},
	{telemetry.EnvDropCardinality, services},
	{"DEPLOYMENT_ENVIRONMENT", services},
	// Read by the OpenTelemetry SDK's exporters, readers and resource.
	{"OTEL_EXPORTER_OTLP_ENDPOINT", services},
	{"OTEL_EXPORTER_OTLP_PROTOCOL", services},
	{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", services},
	{"OTEL_METRIC_EXPORT_INTERVAL", services},
	{"OTEL_RESOURCE_ATTRIBUTES", services},

	{"TASKER_ORCHESTRATION_URL", []string{ReadByTaskerctl}},
	{"TASKER_WORKER_URL", []string{ReadByTaskerctl}},
	{"TASKER_LOAD_WORKER_URLS", []string{ReadByTaskerctl}},
	{"TASKER_LOAD_FFI_WORKER_URLS", []string{ReadByTaskerctl}},

	{"TASKER_TEST_DATABASE_URL", []string{ReadByTests, ReadByTaskerctl}},
	{"TASKER_TEST_PGMQ_MODE", []string{ReadByTests}},
	{"TASKER_TEST_NO_BROWSER", []string{ReadByTests}},
	{"TASKER_TEST_REPORT_DIR", []string{ReadByTests}},
	{"TASKER_TEST_VERBOSE", []string{ReadByTests}},
}

// Lookup returns the variable called name.
func Lookup(name string) (Variable, bool) {
	i := slices.IndexFunc(Variables, func(v Variable) bool { return v.Name == name })
	if i < 0 {
		return Variable{}, false
	}
	return Variables[i], true
}
