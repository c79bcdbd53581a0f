package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/telemetry"
)

// Replicas of one service (docker compose up --scale worker=3) must not share a series:
// every process carries its own service.instance.id (OTEL_RESOURCE_ATTRIBUTES may name
// one instead, read once per process). target_info on /metrics shows the resource.
func TestEveryProcessHasAnInstanceID(t *testing.T) {
	t.Parallel()
	targetInfo := func() string {
		p, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "tasker-worker"},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
		require.NoError(t, err)
		defer func() { _ = p.Shutdown(context.Background()) }()
		rec := httptest.NewRecorder()
		p.MetricsHandler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	host, err := os.Hostname()
	require.NoError(t, err)
	require.Contains(t, targetInfo(), fmt.Sprintf(`service_instance_id="%s-%d"`, host, os.Getpid()))
}
