// Package stack runs a whole tasker-sim as real processes, for `taskerctl demo` and
// `taskerctl bench`: a throwaway PostgreSQL (or TASKER_DATABASE_URL), then the built
// orchestrator and worker binaries, each on a free loopback port.
package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/tasker-sim/tasker-sim/pkg/pgprovision"
)

// Options configures Start.
type Options struct {
	// DatabaseURL, when set, is used instead of a throwaway cluster.
	DatabaseURL string
	// Cluster, when set (and DatabaseURL is not), is a running server on which Start
	// creates the stack's own fresh database instead of starting a throwaway cluster.
	// Stop drops that database and leaves the cluster running: its owner stops it.
	Cluster *pgprovision.Cluster
	// BinDir holds the orchestrator and worker binaries. Default: the directory of the
	// running executable, then ./bin.
	BinDir string
	// Orchestrators to start, each on its own port. Default 1.
	Orchestrators int
	// Workers to start. Default 1.
	Workers int
	// FFIWorkers to start besides, with TASKER_HANDLER_TYPE=ruby (the simulated FFI path).
	FFIWorkers int
	// Env adds variables to every process (e.g. TASKER_POLL_INTERVAL_MS=200).
	Env []string
	// Logf receives progress lines; nil is silent.
	Logf func(format string, args ...any)
}

// Stack is a running set of processes.
type Stack struct {
	// URL is the orchestration API (the first orchestrator's, when there are several).
	URL string
	// OrchestratorURLs are every orchestrator's API address, URL first.
	OrchestratorURLs []string
	// WorkerURLs are the workers' health and metrics addresses, FFI workers last.
	WorkerURLs []string
	// FFIWorkerURLs are the FFI workers' addresses (also in WorkerURLs).
	FFIWorkerURLs []string
	// DatabaseURL is the database every process uses.
	DatabaseURL string
	// LogDir holds each process's log file.
	LogDir  string
	cluster *pgprovision.Cluster
	// ownCluster says whether Stop also stops the cluster (Start started it).
	ownCluster bool
	dbName     string
	procs      []*process
	logf       func(string, ...any)
}

// Process is one process a Stack started.
type Process struct {
	// Name is the process's role and number, e.g. "orchestrator" or "worker-1"; its log
	// is LogDir/Name.log.
	Name string
	// PID is its operating-system process id.
	PID int
}

// Processes lists the processes the stack started, in start order (orchestrators first).
func (s *Stack) Processes() []Process {
	out := make([]Process, 0, len(s.procs))
	for _, p := range s.procs {
		out = append(out, Process{Name: p.name, PID: p.cmd.Process.Pid})
	}
	return out
}

// Start provisions the database and starts the processes, returning when all are ready.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin, err := findBinaries(opts.BinDir)
	if err != nil {
		return nil, err
	}
	logDir, err := os.MkdirTemp("", "tasker-sim-logs-")
	if err != nil {
		return nil, err
	}
	s := &Stack{LogDir: logDir, logf: logf, DatabaseURL: opts.DatabaseURL}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if s.DatabaseURL == "" {
		if err := s.createDatabase(ctx, opts.Cluster); err != nil {
			return nil, err
		}
	}
	base := append(os.Environ(), "TASKER_DATABASE_URL="+s.DatabaseURL)
	base = append(base, opts.Env...)
	for i := range max(opts.Orchestrators, 1) {
		name := "orchestrator"
		if opts.Orchestrators > 1 {
			name = fmt.Sprintf("orchestrator-%d", i+1)
		}
		url, err := s.startOrchestrator(ctx, bin, name, base)
		if err != nil {
			return nil, err
		}
		s.OrchestratorURLs = append(s.OrchestratorURLs, url)
	}
	s.URL = s.OrchestratorURLs[0]
	for i := range max(opts.Workers, 1) + opts.FFIWorkers {
		name, env := fmt.Sprintf("worker-%d", i+1), base
		ffi := i >= max(opts.Workers, 1)
		if ffi {
			name, env = fmt.Sprintf("ffi-worker-%d", i+1-max(opts.Workers, 1)), append(base[:len(base):len(base)], "TASKER_HANDLER_TYPE=ruby")
		}
		url, err := s.startWorker(ctx, bin, name, env)
		if err != nil {
			return nil, err
		}
		s.WorkerURLs = append(s.WorkerURLs, url)
		if ffi {
			s.FFIWorkerURLs = append(s.FFIWorkerURLs, url)
		}
	}
	return s, nil
}

// Cluster is the server the stack's database is on, when Start made that database (nil
// when it was given a DatabaseURL).
func (s *Stack) Cluster() *pgprovision.Cluster { return s.cluster }

// createDatabase makes the stack's fresh database on cluster, or on a throwaway cluster
// of its own when cluster is nil.
func (s *Stack) createDatabase(ctx context.Context, cluster *pgprovision.Cluster) error {
	if cluster == nil {
		s.logf("starting a throwaway PostgreSQL cluster")
		c, err := pgprovision.Start(ctx, pgprovision.Options{Logf: s.logf})
		if err != nil {
			return err
		}
		cluster, s.ownCluster = c, true
	}
	s.cluster = cluster
	s.dbName = fmt.Sprintf("tasker_sim_%d", time.Now().UnixNano())
	var err error
	s.DatabaseURL, err = cluster.CreateDatabase(ctx, s.dbName, "")
	if err != nil {
		s.dbName = ""
	}
	return err
}

// startOrchestrator starts one orchestrator on a free loopback port and returns its API address.
func (s *Stack) startOrchestrator(ctx context.Context, bin, name string, env []string) (string, error) {
	port, err := pgprovision.FreeLoopbackPort(ctx)
	if err != nil {
		return "", err
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	s.logf("starting the %s on %s", name, url)
	env = append(env[:len(env):len(env)], "TASKER_WEB_BIND_ADDRESS=127.0.0.1:"+strconv.Itoa(port))
	if err := s.spawn(ctx, filepath.Join(bin, "orchestrator"), name, env, url+"/health/ready"); err != nil {
		return "", err
	}
	return url, nil
}

// startWorker starts one worker on a free loopback port and returns its address.
func (s *Stack) startWorker(ctx context.Context, bin, name string, env []string) (string, error) {
	wport, err := pgprovision.FreeLoopbackPort(ctx)
	if err != nil {
		return "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(wport)
	s.logf("starting %s on %s", name, addr)
	env = append(env[:len(env):len(env)], "TASKER_WORKER_BIND_ADDRESS="+addr, "TASKER_WORKER_ID=demo-"+name)
	if err := s.spawn(ctx, filepath.Join(bin, "worker"), name, env, "http://"+addr+"/health/ready"); err != nil {
		return "", err
	}
	return "http://" + addr, nil
}

func findBinaries(dir string) (string, error) {
	var candidates []string
	if dir != "" {
		candidates = append(candidates, dir)
	} else {
		if exe, err := os.Executable(); err == nil {
			candidates = append(candidates, filepath.Dir(exe))
		}
		candidates = append(candidates, "bin")
	}
	for _, d := range candidates {
		if isFile(filepath.Join(d, "orchestrator")) && isFile(filepath.Join(d, "worker")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("the orchestrator and worker binaries were not found in %v: run `make build` first", candidates)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// spawn starts a process with its output in a log file and waits until health answers 200.
func (s *Stack) spawn(ctx context.Context, path, name string, env []string, health string) error {
	logPath := filepath.Join(s.LogDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	// Not tied to ctx: Stop ends the processes gracefully with SIGTERM.
	cmd := exec.CommandContext(context.WithoutCancel(ctx), path)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	_ = f.Close()
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	s.procs = append(s.procs, p)
	deadline := time.Now().Add(60 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, health, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during start-up (%w); its log:\n%s", name, p.err, tail(logPath))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not become ready within a minute; its log:\n%s", name, tail(logPath))
		}
	}
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Stop sends SIGTERM to every process (workers first), waits up to 15 s for each (then
// kills it), drops the stack's database, stops the cluster when Start started it, and
// removes the logs.
func (s *Stack) Stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	s.procs = nil
	if s.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if s.dbName != "" {
			// Matters when the cluster is a shared server (TASKER_TEST_DATABASE_URL).
			_ = s.cluster.DropDatabase(ctx, s.dbName)
		}
		if s.ownCluster {
			if err := s.cluster.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
				s.logf("stopping the cluster: %v", err)
			}
		}
		s.cluster = nil
	}
	_ = os.RemoveAll(s.LogDir)
}

type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}
