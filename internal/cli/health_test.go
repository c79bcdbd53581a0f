package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/cli"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/pgprovision"
)

// taskerctl health is the containers' healthcheck: exit 0 only on a 200 from /health/ready.
func TestHealthCommand(t *testing.T) {
	t.Parallel()
	health := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := cli.Execute(context.Background(), append([]string{"health"}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	t.Run("real processes", func(t *testing.T) {
		t.Parallel()
		env := harness.New(t, cluster, harness.Options{Workers: 1})
		for _, u := range []string{env.Orchestrators[0].URL(), "http://" + env.Workers[0].Addr()} {
			code, out, errOut := health("--url", u)
			require.Equal(t, 0, code, errOut)
			require.Equal(t, u+"/health/ready answered 200\n", out)
		}
	})
	t.Run("not ready", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			require.Equal(t, "/health/ready", r.URL.Path)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"status":"not_ready"}`)
		}))
		defer srv.Close()
		code, _, errOut := health("--url", srv.URL+"/")
		require.Equal(t, 1, code)
		require.Equal(t, "taskerctl: "+srv.URL+`/health/ready answered 503: {"status":"not_ready"}`+"\n", errOut)
	})
	t.Run("nothing listening", func(t *testing.T) {
		t.Parallel()
		port, err := pgprovision.FreeLoopbackPort(context.Background())
		require.NoError(t, err)
		u := fmt.Sprintf("http://127.0.0.1:%d", port)
		code, _, errOut := health("--url", u)
		require.Equal(t, 1, code)
		require.Contains(t, errOut, u+"/health/ready: no answer:")
		require.Contains(t, errOut, "connection refused")
		require.NotContains(t, errOut, "make demo", "no orchestrator hint: the URL may be a worker's")
	})
	t.Run("too slow", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
		defer srv.Close()
		defer close(release)
		start := time.Now()
		code, _, errOut := health("--url", srv.URL, "--timeout", "200ms")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "no answer")
		require.Less(t, time.Since(start), 5*time.Second)
	})
}
