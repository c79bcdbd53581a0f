package api

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"
)

// The statuses of a HealthCheck, as tasker-core spells them.
const (
	StatusHealthy   = "healthy"
	StatusDegraded  = "degraded"
	StatusUnhealthy = "unhealthy"
)

// HealthResponse is the body of the orchestrator's GET /health ("healthy") and
// /health/live ("alive").
type HealthResponse struct {
	Status    string `json:"status"`
	Timestamp string `json:"timestamp"`
}

// ReadinessResponse is the body of the orchestrator's GET /health/ready when it is ready;
// when it is not, the route answers 503 with an ErrorResponse, as tasker-core does.
type ReadinessResponse struct {
	Status    string          `json:"status"`
	Timestamp string          `json:"timestamp"`
	Checks    ReadinessChecks `json:"checks"`
	Info      HealthInfo      `json:"info"`
}

// ReadinessChecks are tasker-core's five readiness checks.
type ReadinessChecks struct {
	WebDatabase           HealthCheck `json:"web_database"`
	OrchestrationDatabase HealthCheck `json:"orchestration_database"`
	CircuitBreaker        HealthCheck `json:"circuit_breaker"`
	OrchestrationSystem   HealthCheck `json:"orchestration_system"`
	CommandProcessor      HealthCheck `json:"command_processor"`
}

// DetailedHealthResponse is the body of the orchestrator's GET /health/detailed, always
// a 200: Status is "healthy" or "degraded".
type DetailedHealthResponse struct {
	Status    string               `json:"status"`
	Timestamp string               `json:"timestamp"`
	Checks    DetailedHealthChecks `json:"checks"`
	Info      HealthInfo           `json:"info"`
}

// DetailedHealthChecks are tasker-core's eight fixed detailed checks.
type DetailedHealthChecks struct {
	ReadinessChecks
	PoolUtilization   HealthCheck `json:"pool_utilization"`
	QueueDepth        HealthCheck `json:"queue_depth"`
	ChannelSaturation HealthCheck `json:"channel_saturation"`
}

// All is the checks by name.
func (c ReadinessChecks) All() map[string]HealthCheck {
	return map[string]HealthCheck{"web_database": c.WebDatabase, "orchestration_database": c.OrchestrationDatabase,
		"circuit_breaker": c.CircuitBreaker, "orchestration_system": c.OrchestrationSystem,
		"command_processor": c.CommandProcessor}
}

// All is the checks by name.
func (c DetailedHealthChecks) All() map[string]HealthCheck {
	all := c.ReadinessChecks.All()
	all["pool_utilization"], all["queue_depth"], all["channel_saturation"] = c.PoolUtilization, c.QueueDepth,
		c.ChannelSaturation
	return all
}

// HealthCheck is one check's result: Message is null when there is nothing to say, and
// DurationMS is whole milliseconds.
type HealthCheck struct {
	Status     string  `json:"status"`
	Message    *string `json:"message"`
	DurationMS int64   `json:"duration_ms"`
}

// HealthInfo describes the orchestrator in its readiness and detailed health.
type HealthInfo struct {
	Version                       string               `json:"version"`
	Environment                   string               `json:"environment"`
	OperationalState              string               `json:"operational_state"`
	WebDatabasePoolSize           int32                `json:"web_database_pool_size"`
	OrchestrationDatabasePoolSize int32                `json:"orchestration_database_pool_size"`
	CircuitBreakerState           string               `json:"circuit_breaker_state"`
	PoolUtilization               *PoolUtilizationInfo `json:"pool_utilization,omitempty"`
}

// PoolUtilizationInfo is the connection pools' use. tasker-sim has one pool per
// process, so TaskerPool and PGMQPool describe the same pool.
type PoolUtilizationInfo struct {
	TaskerPool PoolDetail `json:"tasker_pool"`
	PGMQPool   PoolDetail `json:"pgmq_pool"`
}

// PoolDetail is one pool's use. MaxAcquireTimeMS is 0: pgxpool keeps no maximum.
type PoolDetail struct {
	ActiveConnections  int32   `json:"active_connections"`
	IdleConnections    int32   `json:"idle_connections"`
	MaxConnections     int32   `json:"max_connections"`
	UtilizationPercent float64 `json:"utilization_percent"`
	TotalAcquires      int64   `json:"total_acquires"`
	SlowAcquires       int64   `json:"slow_acquires"`
	AcquireErrors      int64   `json:"acquire_errors"`
	AverageAcquireMS   float64 `json:"average_acquire_time_ms"`
	MaxAcquireTimeMS   float64 `json:"max_acquire_time_ms"`
}

// NewCheck is a check that took since start; an empty message is null.
func NewCheck(status, message string, start time.Time) HealthCheck {
	c := HealthCheck{Status: status, DurationMS: time.Since(start).Milliseconds()}
	if message != "" {
		c.Message = &message
	}
	return c
}

// Healthy reports whether every check is healthy, and otherwise names those that are
// not, with their messages ("circuit_breaker degraded: ...").
func Healthy(checks map[string]HealthCheck) (bool, string) {
	var bad []string
	for name, c := range checks {
		if c.Status != StatusHealthy {
			s := name + " " + c.Status
			if c.Message != nil {
				s += ": " + *c.Message
			}
			bad = append(bad, s)
		}
	}
	sort.Strings(bad)
	return len(bad) == 0, strings.Join(bad, "; ")
}

// DatabaseCheck pings the database (within 2 s) and describes the outcome.
func DatabaseCheck(ctx context.Context, db interface{ Ping(context.Context) error }) HealthCheck {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := db.Ping(ctx); err != nil {
		return NewCheck(StatusUnhealthy, "database unreachable: "+err.Error(), start)
	}
	return NewCheck(StatusHealthy, "database reachable", start)
}

// CoreTimestamp is now as tasker-core's orchestration health writes it: RFC 3339 in UTC
// with a +00:00 offset.
func CoreTimestamp() string {
	return time.Now().UTC().Format("2006-01-02T15:04:05.999999999-07:00")
}

// Version is the running binary's module version ("dev" for a build from a work tree).
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Environment is the deployment environment: DEPLOYMENT_ENVIRONMENT, else "development"
// (as the telemetry resource names it).
func Environment() string {
	return cmp.Or(os.Getenv("DEPLOYMENT_ENVIRONMENT"), "development")
}

// WorkerBasicHealth is the body of a worker's GET /health ("healthy") and /health/live
// ("alive").
type WorkerBasicHealth struct {
	Status    string    `json:"status"`
	Timestamp time.Time `json:"timestamp"`
	WorkerID  string    `json:"worker_id"`
}

// WorkerReadinessResponse is the body of a worker's GET /health/ready when it is ready.
type WorkerReadinessResponse struct {
	Status     string                `json:"status"`
	Timestamp  time.Time             `json:"timestamp"`
	WorkerID   string                `json:"worker_id"`
	Checks     WorkerReadinessChecks `json:"checks"`
	SystemInfo WorkerSystemInfo      `json:"system_info"`
}

// WorkerReadinessChecks are tasker-core's three worker readiness checks.
type WorkerReadinessChecks struct {
	Database         WorkerHealthCheck `json:"database"`
	CommandProcessor WorkerHealthCheck `json:"command_processor"`
	QueueProcessing  WorkerHealthCheck `json:"queue_processing"`
}

// WorkerDetailedHealthResponse is the body of a worker's GET /health/detailed, always a
// 200: Status is "healthy" or "degraded".
type WorkerDetailedHealthResponse struct {
	Status     string               `json:"status"`
	Timestamp  time.Time            `json:"timestamp"`
	WorkerID   string               `json:"worker_id"`
	Checks     WorkerDetailedChecks `json:"checks"`
	SystemInfo WorkerSystemInfo     `json:"system_info"`
}

// WorkerDetailedChecks are tasker-core's six worker detailed checks.
type WorkerDetailedChecks struct {
	WorkerReadinessChecks
	EventSystem     WorkerHealthCheck `json:"event_system"`
	StepProcessing  WorkerHealthCheck `json:"step_processing"`
	CircuitBreakers WorkerHealthCheck `json:"circuit_breakers"`
}

// All is the checks by name.
func (c WorkerReadinessChecks) All() map[string]HealthCheck {
	return map[string]HealthCheck{"database": c.Database.HealthCheck, "command_processor": c.CommandProcessor.HealthCheck,
		"queue_processing": c.QueueProcessing.HealthCheck}
}

// All is the checks by name.
func (c WorkerDetailedChecks) All() map[string]HealthCheck {
	all := c.WorkerReadinessChecks.All()
	all["event_system"], all["step_processing"], all["circuit_breakers"] = c.EventSystem.HealthCheck,
		c.StepProcessing.HealthCheck, c.CircuitBreakers.HealthCheck
	return all
}

// WorkerHealthCheck is a worker's check: a HealthCheck with when it was made.
type WorkerHealthCheck struct {
	HealthCheck
	LastChecked time.Time `json:"last_checked"`
}

// At is c made at t, as a worker reports it.
func (c HealthCheck) At(t time.Time) WorkerHealthCheck {
	return WorkerHealthCheck{HealthCheck: c, LastChecked: t}
}

// WorkerSystemInfo describes a worker in its readiness and detailed health.
type WorkerSystemInfo struct {
	Version                string               `json:"version"`
	Environment            string               `json:"environment"`
	UptimeSeconds          int64                `json:"uptime_seconds"`
	WorkerType             string               `json:"worker_type"`
	DatabasePoolSize       int32                `json:"database_pool_size"`
	CommandProcessorActive bool                 `json:"command_processor_active"`
	SupportedNamespaces    []string             `json:"supported_namespaces"`
	PoolUtilization        *PoolUtilizationInfo `json:"pool_utilization,omitempty"`
}

// PoolStat is what the health checks read of a connection pool (*pgxpool.Stat has it).
type PoolStat interface {
	AcquiredConns() int32
	IdleConns() int32
	MaxConns() int32
	AcquireCount() int64
	EmptyAcquireCount() int64
	CanceledAcquireCount() int64
	AcquireDuration() time.Duration
}

// PoolUtilization describes st as both of tasker-core's pools. Slow acquires are those
// that waited for a connection; acquire errors are the cancelled ones.
func PoolUtilization(st PoolStat) *PoolUtilizationInfo {
	d := PoolDetail{ActiveConnections: st.AcquiredConns(), IdleConnections: st.IdleConns(),
		MaxConnections: st.MaxConns(), UtilizationPercent: poolPercent(st), TotalAcquires: st.AcquireCount(),
		SlowAcquires: st.EmptyAcquireCount(), AcquireErrors: st.CanceledAcquireCount()}
	if n := st.AcquireCount(); n > 0 {
		d.AverageAcquireMS = float64(st.AcquireDuration().Microseconds()) / 1000 / float64(n)
	}
	return &PoolUtilizationInfo{TaskerPool: d, PGMQPool: d}
}

func poolPercent(st PoolStat) float64 {
	return float64(st.AcquiredConns()) / float64(max(st.MaxConns(), 1)) * 100
}

// PoolCheck is the pool_utilization check: degraded from 90% of the connections in use.
func PoolCheck(st PoolStat, start time.Time) HealthCheck {
	pct := poolPercent(st)
	status := StatusHealthy
	if pct >= 90 {
		status = StatusDegraded
	}
	return NewCheck(status, fmt.Sprintf("%d of %d connections in use (%.0f%%)", st.AcquiredConns(), st.MaxConns(), pct), start)
}

// ChannelCheck describes a bounded channel: degraded from 95% full.
func ChannelCheck(length, capacity int) Check {
	c := Check{Status: StatusHealthy, Message: fmt.Sprintf("%d of %d slots used", length, capacity)}
	if length*100 >= capacity*95 {
		c.Status = StatusDegraded
	}
	return c
}

// Fold turns the sim's finer checks into one of tasker-core's: the worst status, and a
// message of every part's ("name: message"), in name order.
func Fold(parts map[string]Check, start time.Time) HealthCheck {
	rank := map[string]int{StatusHealthy: 0, StatusDegraded: 1, StatusUnhealthy: 2}
	status := StatusHealthy
	var msgs []string
	for _, name := range slices.Sorted(maps.Keys(parts)) {
		c := parts[name]
		if rank[c.Status] > rank[status] {
			status = c.Status
		}
		msgs = append(msgs, name+": "+c.Message)
	}
	return NewCheck(status, strings.Join(msgs, "; "), start)
}

// BreakersCheck folds the circuit breakers' checks (by breaker name) into one: degraded
// while any is not closed, naming those.
func BreakersCheck(breakers map[string]Check, start time.Time) HealthCheck {
	var bad []string
	for _, name := range slices.Sorted(maps.Keys(breakers)) {
		if c := breakers[name]; c.Status != StatusHealthy {
			bad = append(bad, name+": "+c.Message)
		}
	}
	if len(bad) > 0 {
		return NewCheck(StatusDegraded, strings.Join(bad, "; "), start)
	}
	return NewCheck(StatusHealthy, "closed: "+strings.Join(slices.Sorted(maps.Keys(breakers)), ", "), start)
}
