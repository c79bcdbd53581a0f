package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/contract"
	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/orchestrator"
	"github.com/tasker-sim/tasker-sim/pkg/resilience"
)

// healthGet GETs url with client and decodes the JSON answer into a map.
func healthGet(t *testing.T, client *http.Client, url string) (int, []byte, map[string]any) {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"), url)
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m), "%s: %s", url, body)
	return resp.StatusCode, body, m
}

// The health routes answer in tasker-core's shapes: the orchestrator's through the suite's
// contract check (the default transport), the worker's against the worker document.
func TestHealthShapes(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastOptions())
	orch := env.Orchestrators[0].URL()
	for path, status := range map[string]string{"/health": "healthy", "/health/live": "alive",
		"/health/ready": "ready", "/health/detailed": "healthy"} {
		code, body, m := healthGet(t, http.DefaultClient, orch+path)
		require.Equal(t, http.StatusOK, code, path)
		require.Equal(t, status, m["status"], "%s: %s", path, body)
		require.True(t, strings.HasSuffix(m["timestamp"].(string), "+00:00"), path)
	}
	_, _, m := healthGet(t, http.DefaultClient, orch+"/health/detailed")
	info := m["info"].(map[string]any)
	require.Equal(t, "Closed", info["circuit_breaker_state"])
	require.Equal(t, "Normal", info["operational_state"])

	doc, err := contract.Load(filepath.Join(filepath.Dir(contract.CoreDocument()), "worker-openapi.yaml"))
	require.NoError(t, err)
	// Not through the suite's recorder: it judges by the orchestration document.
	plain := &http.Client{Transport: &http.Transport{}}
	worker := "http://" + env.Workers[0].Addr()
	for path, status := range map[string]string{"/health": "healthy", "/health/live": "alive",
		"/health/ready": "ready", "/health/detailed": "healthy"} {
		code, body, m := healthGet(t, plain, worker+path)
		require.Equal(t, http.StatusOK, code, path)
		require.Equal(t, status, m["status"], "%s: %s", path, body)
		require.NotEmpty(t, m["worker_id"], path)
		require.NoError(t, doc.Check(http.MethodGet, path, code, "application/json", body))
	}
}

// A degraded orchestrator (its web breaker open) still answers /health/detailed with 200
// "degraded", naming the open breaker, and /health/ready with 503 SERVICE_UNAVAILABLE.
func TestHealthBreakerOpenIsDegraded(t *testing.T) {
	t.Parallel()
	opts := fastOptions()
	opts.Orchestrator = func(_ int, c *orchestrator.Config) {
		c.WebBreaker = resilience.BreakerConfig{FailureThreshold: 2, OpenTimeout: time.Minute, SuccessThreshold: 1}
	}
	env := harness.New(t, cluster, opts)
	orch := env.Orchestrators[0].URL()
	setFaults(t, orch, `{"database_unavailable": true}`)
	// The injected fault's 500s are the sim's own, so not through the suite's recorder.
	plain := &http.Client{Transport: &http.Transport{}}
	for range 2 {
		resp, err := plain.Get(orch + "/v1/tasks/0199c3e0-ccdb-7581-87ab-3f67daeaa4a5")
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	}
	setFaults(t, orch, `{}`)

	code, body, m := healthGet(t, http.DefaultClient, orch+"/health/detailed")
	require.Equal(t, http.StatusOK, code, "detailed is always 200")
	require.Equal(t, "degraded", m["status"], string(body))
	breaker := m["checks"].(map[string]any)["circuit_breaker"].(map[string]any)
	require.Equal(t, "degraded", breaker["status"])
	require.Contains(t, breaker["message"], resilience.WebDatabase)
	require.Equal(t, "Open", m["info"].(map[string]any)["circuit_breaker_state"])
	require.Equal(t, "healthy", m["checks"].(map[string]any)["web_database"].(map[string]any)["status"])

	code, body, _ = healthGet(t, http.DefaultClient, orch+"/health/ready")
	require.Equal(t, http.StatusServiceUnavailable, code)
	var e api.ErrorResponse
	require.NoError(t, json.Unmarshal(body, &e))
	require.Equal(t, api.CodeServiceUnavailable, e.Error.Code)
	require.Contains(t, e.Error.Message, "circuit_breaker degraded")
	require.Contains(t, e.Error.Message, resilience.WebDatabase)

	code, _, _ = healthGet(t, http.DefaultClient, orch+"/health")
	require.Equal(t, http.StatusOK, code, "/health stays 200")
}
