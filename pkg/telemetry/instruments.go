package telemetry

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// ScopeName is the instrumentation scope of every instrument.
const ScopeName = "github.com/tasker-sim/tasker-sim"

// Options tune Instruments.
type Options struct {
	// DropHighCardinality leaves correlation_id off every metric (it stays on spans and
	// logs, and exemplars still link metrics to traces). Use it for long runs.
	DropHighCardinality bool
}

// Instruments holds one instrument per catalog entry, built once.
type Instruments struct {
	opts     Options
	meter    metric.Meter
	counters map[string]metric.Int64Counter
	updowns  map[string]metric.Int64UpDownCounter
	hists    map[string]metric.Float64Histogram
	igauges  map[string]metric.Int64ObservableGauge
	fgauges  map[string]metric.Float64ObservableGauge
	sqlAttrs sync.Map // sqlKey → sqlOpts
}

// Noop returns instruments that record nothing, for components started without telemetry.
func Noop() *Instruments {
	in, err := New(noop.NewMeterProvider(), Options{})
	if err != nil {
		panic(err) // a no-op provider cannot fail
	}
	return in
}

// New walks the catalog and builds every instrument from mp.
func New(mp metric.MeterProvider, opts Options) (*Instruments, error) {
	m := mp.Meter(ScopeName)
	in := &Instruments{opts: opts, meter: m,
		counters: map[string]metric.Int64Counter{}, updowns: map[string]metric.Int64UpDownCounter{},
		hists: map[string]metric.Float64Histogram{}, igauges: map[string]metric.Int64ObservableGauge{},
		fgauges: map[string]metric.Float64ObservableGauge{}}
	for _, c := range Catalog {
		var err error
		switch {
		case c.Kind == Counter:
			in.counters[c.Name], err = m.Int64Counter(c.Name, metric.WithDescription(c.Description), metric.WithUnit(c.Unit))
		case c.Kind == UpDownCounter:
			in.updowns[c.Name], err = m.Int64UpDownCounter(c.Name, metric.WithDescription(c.Description), metric.WithUnit(c.Unit))
		case c.Kind == Histogram:
			in.hists[c.Name], err = m.Float64Histogram(c.Name, metric.WithDescription(c.Description), metric.WithUnit(c.Unit))
		case c.Kind == Gauge && c.Float:
			in.fgauges[c.Name], err = m.Float64ObservableGauge(c.Name, metric.WithDescription(c.Description), metric.WithUnit(c.Unit))
		case c.Kind == Gauge:
			in.igauges[c.Name], err = m.Int64ObservableGauge(c.Name, metric.WithDescription(c.Description), metric.WithUnit(c.Unit))
		default:
			err = fmt.Errorf("unknown kind %q", c.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("telemetry: instrument %s: %w", c.Name, err)
		}
	}
	return in, nil
}

// attrs builds an attribute set, leaving correlation_id out when asked to.
func (in *Instruments) attrs(kv ...attribute.KeyValue) metric.MeasurementOption {
	if in.opts.DropHighCardinality {
		kept := kv[:0:0]
		for _, a := range kv {
			if a.Key != LabelCorrelationID {
				kept = append(kept, a)
			}
		}
		kv = kept
	}
	return metric.WithAttributes(kv...)
}

func (in *Instruments) add(ctx context.Context, name string, n int64, kv ...attribute.KeyValue) {
	in.counters[name].Add(ctx, n, in.attrs(kv...))
}

func (in *Instruments) record(ctx context.Context, name string, d time.Duration, kv ...attribute.KeyValue) {
	in.hists[name].Record(ctx, ms(d), in.attrs(kv...))
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func corr(id string) attribute.KeyValue { return attribute.String(LabelCorrelationID, id) }

// TaskRequested counts a task creation request.
func (in *Instruments) TaskRequested(ctx context.Context, correlationID, taskType, namespace string) {
	in.add(ctx, MetricTasksRequests, 1, corr(correlationID),
		attribute.String(LabelTaskType, taskType), attribute.String(LabelNamespace, namespace))
}

// TaskInitialized records how long creating a task (its steps, edges and first enqueue) took.
func (in *Instruments) TaskInitialized(ctx context.Context, correlationID, taskType string, d time.Duration) {
	in.record(ctx, MetricTaskInitDuration, d, corr(correlationID), attribute.String(LabelTaskType, taskType))
}

// StepsEnqueued counts the steps just sent to a worker queue.
func (in *Instruments) StepsEnqueued(ctx context.Context, correlationID, namespace string, stepNames []string) {
	for _, s := range stepNames {
		in.add(ctx, MetricStepsEnqueued, 1, corr(correlationID),
			attribute.String(LabelNamespace, namespace), attribute.String(LabelStepName, s))
	}
}

// TaskFinalized records a task reaching a terminal state: a completion or a failure,
// and the duration of the finalization that got it there.
func (in *Instruments) TaskFinalized(ctx context.Context, correlationID, finalState string, d time.Duration) {
	switch finalState {
	case "complete":
		in.add(ctx, MetricTasksCompletions, 1, corr(correlationID))
	case "error":
		in.add(ctx, MetricTasksFailures, 1, corr(correlationID))
	}
	in.record(ctx, MetricTaskFinalDuration, d, corr(correlationID), attribute.String(LabelFinalState, finalState))
}

// StepResultProcessed records one step result finalized by orchestration.
func (in *Instruments) StepResultProcessed(ctx context.Context, correlationID, resultType string, d time.Duration) {
	in.add(ctx, MetricStepResultsProcessed, 1, corr(correlationID), attribute.String(LabelResultType, resultType))
	in.record(ctx, MetricStepResultProcDuration, d, corr(correlationID), attribute.String(LabelResultType, resultType))
}

// StepClaimed records a successful claim.
func (in *Instruments) StepClaimed(ctx context.Context, namespace, method string, d time.Duration) {
	kv := []attribute.KeyValue{attribute.String(LabelNamespace, namespace), attribute.String(LabelClaimMethod, method)}
	in.add(ctx, MetricStepsClaimed, 1, kv...)
	in.record(ctx, MetricStepClaimDuration, d, kv...)
}

// StepExecuted records one execution: its outcome and the handler's run time. errorType
// is empty on success.
func (in *Instruments) StepExecuted(ctx context.Context, correlationID, namespace, errorType string, d time.Duration) {
	in.add(ctx, MetricStepsExecutions, 1, corr(correlationID))
	result := "success"
	if errorType == "" {
		in.add(ctx, MetricStepsSuccesses, 1, corr(correlationID), attribute.String(LabelNamespace, namespace))
	} else {
		result = "error"
		in.add(ctx, MetricStepsFailures, 1, corr(correlationID), attribute.String(LabelNamespace, namespace),
			attribute.String(LabelErrorType, errorType))
	}
	in.record(ctx, MetricStepExecutionDuration, d, corr(correlationID), attribute.String(LabelNamespace, namespace),
		attribute.String(LabelResult, result))
}

// StepFailedEarly counts a step that failed before its handler ran (claim or lookup).
func (in *Instruments) StepFailedEarly(ctx context.Context, correlationID, namespace, errorType string) {
	in.add(ctx, MetricStepsFailures, 1, corr(correlationID), attribute.String(LabelNamespace, namespace),
		attribute.String(LabelErrorType, errorType))
}

// ResultSubmitted records a result handed to orchestration.
func (in *Instruments) ResultSubmitted(ctx context.Context, correlationID string, d time.Duration) {
	kv := []attribute.KeyValue{corr(correlationID), attribute.String(LabelResultType, "completion")}
	in.add(ctx, MetricStepsResultsSubmitted, 1, kv...)
	in.record(ctx, MetricStepResultSubmitDuration, d, kv...)
}

// ActiveExecution moves the running-steps gauge by delta (+1 at start, -1 at end).
func (in *Instruments) ActiveExecution(ctx context.Context, namespace, handlerType string, delta int64) {
	in.updowns[MetricStepsActiveExecutions].Add(ctx, delta, metric.WithAttributes(
		attribute.String(LabelNamespace, namespace), attribute.String(LabelHandlerType, handlerType)))
}

// MessagesSent records n messages sent to queue by one statement that took d.
func (in *Instruments) MessagesSent(ctx context.Context, queue string, n int, d time.Duration) {
	if n <= 0 {
		return
	}
	in.add(ctx, MetricQueueMessagesSent, int64(n), attribute.String(LabelQueue, queue))
	in.record(ctx, MetricQueueSendDuration, d, attribute.String(LabelQueue, queue))
}

// MessageReceived counts one message received by notification ("event") or read
// ("poll"); a redelivery (its visibility timeout ran out before it was acknowledged) is
// counted as such too.
func (in *Instruments) MessageReceived(ctx context.Context, queue, method string, redelivered bool) {
	in.add(ctx, MetricQueueMessagesReceived, 1, attribute.String(LabelQueue, queue), attribute.String(LabelClaimMethod, method))
	if redelivered {
		in.add(ctx, MetricQueueVisibilityTimeouts, 1, attribute.String(LabelQueue, queue))
	}
}

// QueueRead records the duration of one read of up to a batch of messages.
func (in *Instruments) QueueRead(ctx context.Context, queue string, d time.Duration) {
	in.record(ctx, MetricQueueReceiveDuration, d, attribute.String(LabelQueue, queue))
}

// MessagesDeleted counts messages removed from queue by op ("archive" or "delete").
func (in *Instruments) MessagesDeleted(ctx context.Context, queue, op string, n int) {
	if n > 0 {
		in.add(ctx, MetricQueueMessagesDeleted, int64(n), attribute.String(LabelQueue, queue), attribute.String(LabelOperation, op))
	}
}

// QueueError counts a failed queue operation.
func (in *Instruments) QueueError(ctx context.Context, queue, op string) {
	in.add(ctx, MetricQueueErrors, 1, attribute.String(LabelQueue, queue), attribute.String(LabelOperation, op))
}

// QueueRetry counts a queue operation tried again after a failure.
func (in *Instruments) QueueRetry(ctx context.Context, op string) {
	in.add(ctx, MetricQueueRetryAttempts, 1, attribute.String(LabelOperation, op))
}

// APIRequestRejected counts a request refused because the web breaker is open.
func (in *Instruments) APIRequestRejected(ctx context.Context, endpoint string) {
	in.add(ctx, MetricAPIRequestsRejected, 1, attribute.String(LabelEndpoint, endpoint))
}

// FFISlowSend counts a completion send at or above the slow threshold.
func (in *Instruments) FFISlowSend(ctx context.Context) { in.add(ctx, MetricFFISlowSends, 1) }

// FFICircuitRejection counts a completion refused by the open ffi_completion breaker.
func (in *Instruments) FFICircuitRejection(ctx context.Context) {
	in.add(ctx, MetricFFICircuitRejections, 1)
}

// ChannelFull counts a send that found a bounded channel full and had to wait.
func (in *Instruments) ChannelFull(ctx context.Context, channel, component string) {
	in.add(ctx, MetricChannelFullEvents, 1, attribute.String(LabelChannel, channel), attribute.String(LabelComponent, component))
}

// SQLQuery records one statement. It runs for every statement, so its attribute sets
// are built once per (operation, outcome) and reused.
func (in *Instruments) SQLQuery(ctx context.Context, operation string, failed bool, d time.Duration) {
	key := sqlKey{operation, failed}
	opts, ok := in.sqlAttrs.Load(key)
	if !ok {
		outcome := "ok"
		if failed {
			outcome = "error"
		}
		opts, _ = in.sqlAttrs.LoadOrStore(key, sqlOpts{
			count: metric.WithAttributeSet(attribute.NewSet(attribute.String(LabelOperation, operation), attribute.String(LabelOutcome, outcome))),
			dur:   metric.WithAttributeSet(attribute.NewSet(attribute.String(LabelOperation, operation))),
		})
	}
	o := opts.(sqlOpts)
	in.counters[MetricSQLQueries].Add(ctx, 1, o.count)
	in.hists[MetricSQLQueryDuration].Record(ctx, ms(d), o.dur)
}

type sqlKey struct {
	operation string
	failed    bool
}

type sqlOpts struct {
	count metric.AddOption
	dur   metric.RecordOption
}

// Transaction records an explicit transaction that ended in outcome ("commit" or "rollback").
func (in *Instruments) Transaction(ctx context.Context, outcome string, d time.Duration) {
	in.add(ctx, MetricDBTransactions, 1, attribute.String(LabelOutcome, outcome))
	in.record(ctx, MetricDBTransactionDuration, d, attribute.String(LabelOutcome, outcome))
}

// PoolWait records how long acquiring a pool connection took.
func (in *Instruments) PoolWait(ctx context.Context, pool string, d time.Duration) {
	in.record(ctx, MetricPoolWaitDuration, d, attribute.String(LabelPool, pool))
}
