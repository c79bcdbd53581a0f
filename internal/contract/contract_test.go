package contract_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/contract"
)

func load(t *testing.T) *contract.Document {
	t.Helper()
	doc, err := contract.Load(contract.CoreDocument(), append(contract.CoreErrata, contract.SimExtensions...)...)
	require.NoError(t, err)
	return doc
}

const health = `{"status": "healthy", "timestamp": "2026-12-01T10:00:00Z"}`

func TestCheckJudgesStatusAndBody(t *testing.T) {
	t.Parallel()
	doc := load(t)
	const js = "application/json"
	require.NoError(t, doc.Check("GET", "/health", 200, js, []byte(health)))
	require.ErrorContains(t, doc.Check("GET", "/health", 200, js, []byte(`{"status": "healthy", "timestamp": "x", "extra": 1}`)),
		"extra", "an undocumented field fails")
	require.ErrorContains(t, doc.Check("GET", "/health", 200, js, []byte(`{"status": "healthy"}`)), "timestamp",
		"a missing required field fails")
	require.ErrorContains(t, doc.Check("GET", "/health", 418, js, []byte(health)), "status 418 is not documented")
	require.NoError(t, doc.Check("GET", "/v1/tasks/0199c3e0-ccdb-7581-87ab-3f67daeaa4a5", 404, js,
		[]byte(`{"error": {"code": "NOT_FOUND", "message": "task …: not found"}}`)), "errors in core's wire shape")
	require.Error(t, doc.Check("GET", "/v1/tasks/0199c3e0-ccdb-7581-87ab-3f67daeaa4a5", 404, js,
		[]byte(`{"error": "not_found", "message": "x"}`)), "the old flat error body fails")
	require.ErrorIs(t, doc.Check("POST", "/v1/tasks/wait", 200, js, []byte(`{}`)), contract.ErrUndocumented)
	require.ErrorIs(t, doc.Check("PUT", "/health", 200, js, []byte(health)), contract.ErrUndocumented)
}

func TestWorkerDocumentLoads(t *testing.T) {
	t.Parallel()
	doc, err := contract.Load(contract.CoreWorkerDocument(), contract.WorkerSimExtensions...)
	require.NoError(t, err)
	require.NoError(t, doc.Check("GET", "/health/ready", 503, "application/json",
		[]byte(`{"error": {"code": "SERVICE_UNAVAILABLE", "message": "not ready: database"}}`)))
}

func TestRoutesMatchTemplatesLiteralFirst(t *testing.T) {
	t.Parallel()
	doc := load(t)
	for path, want := range map[string]string{
		"/v1/dlq/stats":                  "/v1/dlq/stats",
		"/v1/dlq/task/abc":               "/v1/dlq/task/{task_uuid}",
		"/v1/tasks/abc/workflow_steps":   "/v1/tasks/{uuid}/workflow_steps",
		"/v1/tasks/abc/workflow_steps/x": "/v1/tasks/{uuid}/workflow_steps/{step_uuid}",
		"/health/ready":                  "/health/ready",
	} {
		got, ok := doc.Route(path)
		require.True(t, ok, path)
		require.Equal(t, want, got, path)
	}
}

func TestErrataThatNoLongerApplyFailLoudly(t *testing.T) {
	t.Parallel()
	_, err := contract.Load(contract.CoreDocument(), contract.Erratum{Reason: "a path that is not there",
		Fix: func(doc map[string]any) error {
			return contract.CoreErrata[1].Fix(map[string]any{"paths": map[string]any{}})
		}})
	require.ErrorContains(t, err, "a path that is not there")
}
