package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/pgprovision"
)

// The processes start before their database (as in docker compose): each waits, logging
// every try, and carries on once the database answers. Here the database "comes up" when
// a forwarder to the real cluster starts listening on the port they were given.
func TestProcessesWaitForALateDatabase(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t, 3*time.Minute)
	dbURL, err := cluster.CreateDatabase(ctx, fmt.Sprintf("dbwait_%d", time.Now().UnixNano()), "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = cluster.DropDatabase(context.Background(), dbName(t, dbURL)) })
	port := freePort(t)
	lateURL := throughPort(t, dbURL, port)

	orchAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	workerAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	orch := startLogged(t, "orchestrator", "TASKER_DATABASE_URL="+lateURL, "TASKER_WEB_BIND_ADDRESS="+orchAddr,
		"TASKER_DATABASE_WAIT=90s", "LOG_LEVEL=info", "TASKER_PGMQ_MODE="+string(pgmqMode()))
	wrk := startLogged(t, "worker", "TASKER_DATABASE_URL="+lateURL, "TASKER_WORKER_BIND_ADDRESS="+workerAddr,
		"TASKER_DATABASE_WAIT=90s", "LOG_LEVEL=info", "TASKER_PGMQ_MODE="+string(pgmqMode()))

	// Both are waiting, and say so on every try, rather than exiting.
	for _, p := range []*loggedProcess{orch, wrk} {
		waitFor(t, 30*time.Second, p.name+" retrying", func() bool {
			return strings.Count(p.logs.String(), "database not reachable yet; retrying") >= 2
		})
		require.Nil(t, p.cmd.ProcessState, "%s exited while its database was down:\n%s", p.name, p.logs.String())
	}
	require.Contains(t, orch.logs.String(), `"attempt":2`)

	forward(t, port, dbURL) // the database comes up
	for _, u := range []string{"http://" + orchAddr, "http://" + workerAddr} {
		waitFor(t, 60*time.Second, u+" ready", func() bool { return ready(u) })
	}
	for _, p := range []*loggedProcess{orch, wrk} {
		require.Contains(t, p.logs.String(), "database reachable", p.name)
	}
	c := clientFor(t, "http://"+orchAddr)
	task, err := c.CreateTask(ctx, request("rust_e2e_linear", "mathematical_sequence", map[string]any{"even_number": 6}))
	require.NoError(t, err)
	done, err := c.WaitTask(ctx, task.TaskUUID)
	require.NoError(t, err)
	require.Equal(t, "complete", done.Status)
	orch.stop(t)
	wrk.stop(t)
}

// When the limit runs out each process exits with an error that names the database with
// its password hidden.
func TestProcessesGiveUpNamingTheRedactedURL(t *testing.T) {
	t.Parallel()
	port := freePort(t) // nothing listens there
	dead := fmt.Sprintf("postgres://tasker:s3cret-pw@127.0.0.1:%d/tasker?sslmode=disable", port)
	redacted := fmt.Sprintf("postgres://tasker:xxxxx@127.0.0.1:%d/tasker?sslmode=disable", port)
	for _, bin := range []string{"orchestrator", "worker"} {
		t.Run(bin, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			p := startLogged(t, bin, "TASKER_DATABASE_URL="+dead, "TASKER_DATABASE_WAIT=2s",
				"TASKER_WEB_BIND_ADDRESS=127.0.0.1:0", "TASKER_WORKER_BIND_ADDRESS=127.0.0.1:0")
			err := p.wait(30 * time.Second)
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "%s must fail:\n%s", bin, p.logs.String())
			require.Equal(t, 1, exit.ExitCode())
			require.GreaterOrEqual(t, time.Since(start), 2*time.Second, "it waited for the limit")
			out := p.logs.String()
			require.NotContains(t, out, "s3cret-pw")
			require.GreaterOrEqual(t, strings.Count(out, "database not reachable yet; retrying"), 2, out)
			last := lastLine(out)
			require.True(t, strings.HasPrefix(last, bin+": "), last)
			require.NotContains(t, last, bin+": "+bin+":", "named once")
			require.Contains(t, last, "database not reachable: "+redacted+" after ")
			require.Contains(t, last, "TASKER_DATABASE_WAIT")
			require.Contains(t, last, "connection refused")
		})
	}
}

type loggedProcess struct {
	name string
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLogged runs a built binary with env added to the test's, keeping its output.
func startLogged(t *testing.T, bin string, env ...string) *loggedProcess {
	t.Helper()
	p := &loggedProcess{name: bin, cmd: exec.Command(filepath.Join(binDir, bin)), logs: &lockedBuffer{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	require.NoError(t, p.cmd.Start())
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.wait(30 * time.Second) // killed: its exit status says so
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", bin, p.logs.String())
		}
	})
	return p
}

func (p *loggedProcess) wait(limit time.Duration) error {
	select {
	case err := <-p.done:
		return err
	case <-time.After(limit):
		return fmt.Errorf("%s still running after %s", p.name, limit)
	}
}

// stop ends the process with SIGTERM, as docker does, and expects a clean exit.
func (p *loggedProcess) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(30*time.Second), "%s on SIGTERM", p.name)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := pgprovision.FreeLoopbackPort(context.Background())
	require.NoError(t, err)
	return port
}

func ready(base string) bool {
	resp, err := http.Get(base + "/health/ready")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func dbName(t *testing.T, dbURL string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	require.NoError(t, err)
	return cfg.Database
}

// throughPort is dbURL's database, user and password at 127.0.0.1:port.
func throughPort(t *testing.T, dbURL string, port int) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	require.NoError(t, err)
	u := url.URL{Scheme: "postgres", Host: "127.0.0.1:" + strconv.Itoa(port), Path: "/" + cfg.Database,
		RawQuery: "sslmode=disable", User: url.User(cfg.User)}
	if cfg.Password != "" {
		u.User = url.UserPassword(cfg.User, cfg.Password)
	}
	return u.String()
}

// forward listens on 127.0.0.1:port and relays every connection to dbURL's server, until
// the test ends.
func forward(t *testing.T, port int, dbURL string) {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	require.NoError(t, err)
	network, target := "tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	if strings.HasPrefix(cfg.Host, "/") {
		network, target = "unix", filepath.Join(cfg.Host, ".s.PGSQL."+strconv.Itoa(int(cfg.Port)))
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			var d net.Dialer
			out, err := d.DialContext(context.Background(), network, target)
			if err != nil {
				_ = in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Go(func() { relay(in, out) })
			wg.Go(func() { relay(out, in) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// relay copies until either side closes, then closes both, which ends the other direction.
func relay(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}
