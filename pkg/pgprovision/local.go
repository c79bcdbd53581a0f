package pgprovision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// debianBinGlob is where Debian and Ubuntu keep each installed major
// version's server binaries, which are not on PATH by default.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// errLocalUnavailable marks local-cluster errors that mean "this machine
// cannot make one" (as opposed to "making one failed"), so Start can move on.
var errLocalUnavailable = errors.New("local cluster unavailable")

// startTimeout bounds pg_ctl start and the first login; initdb --no-sync and
// a start normally take a second or two, so this only stops a hang.
const startTimeout = 60 * time.Second

// pgBinaries are the two programs a throwaway cluster needs, from one
// installation so their versions agree.
type pgBinaries struct {
	initdb string
	pgCtl  string
}

func lookPathExec(name string) (string, error) { return exec.LookPath(name) }

// findBinaries looks for initdb and pg_ctl in one directory: first where PATH
// finds them (and where their symlinks lead), then in the highest-versioned
// Debian directory. The string says why nothing was found.
func findBinaries(lookPath func(string) (string, error), glob string) (*pgBinaries, string) {
	var dirs []string
	for _, name := range []string{"initdb", "pg_ctl"} {
		p, err := lookPath(name)
		if err != nil {
			continue
		}
		dirs = append(dirs, filepath.Dir(p))
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	dirs = append(dirs, debianDirs(glob)...)
	seen := map[string]bool{}
	for _, d := range dirs {
		if seen[d] {
			continue
		}
		seen[d] = true
		initdb, pgCtl := filepath.Join(d, "initdb"), filepath.Join(d, "pg_ctl")
		if isExecutable(initdb) && isExecutable(pgCtl) {
			return &pgBinaries{initdb: initdb, pgCtl: pgCtl}, ""
		}
	}
	return nil, "initdb and pg_ctl not found together on PATH or in " + glob
}

// debianDirs returns the directories matching glob, highest version first,
// comparing versions numerically so that 16 beats 9.6.
func debianDirs(glob string) []string {
	matches, _ := filepath.Glob(glob)
	version := func(dir string) []int {
		var v []int
		for _, part := range strings.Split(filepath.Base(filepath.Dir(dir)), ".") {
			n, err := strconv.Atoi(part)
			if err != nil {
				return nil
			}
			v = append(v, n)
		}
		return v
	}
	sort.SliceStable(matches, func(i, j int) bool {
		a, b := version(matches[i]), version(matches[j])
		for k := 0; k < len(a) && k < len(b); k++ {
			if a[k] != b[k] {
				return a[k] > b[k]
			}
		}
		return len(a) > len(b)
	})
	return matches
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// localCluster is a PostgreSQL cluster that this process created and owns.
type localCluster struct {
	bins    *pgBinaries
	dir     string // removed on stop
	dataDir string
	sockDir string
	// extraSockDir is a short socket directory made outside dir when dir's
	// path is too long for a Unix socket name; removed on stop too.
	extraSockDir string
	logFile      string
	port         int
	// cred is the postgres user's identity when we are root, because the
	// server refuses to run as root.
	cred *syscall.Credential
	logf func(format string, args ...any)
}

func (lc *localCluster) adminURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", lc.port)
}

// startLocal creates and starts a throwaway cluster. On failure it leaves
// nothing behind: no directory, no server.
func startLocal(ctx context.Context, opts Options, bins *pgBinaries, logf func(string, ...any)) (_ *localCluster, err error) {
	lc := &localCluster{bins: bins, logf: logf}

	if os.Geteuid() == 0 {
		cred, err := postgresCredential()
		if err != nil {
			return nil, err
		}
		lc.cred = cred
	}

	if lc.dir, err = makeClusterDir(opts.Dir); err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if err == nil {
			return
		}
		if started {
			// Best effort: the caller's context may be what failed.
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startTimeout)
			_ = lc.pgCtl(stopCtx, "stop", "-m", "immediate", "-w", "-t", "60")
			cancel()
		}
		_ = lc.removeDirs() // best effort: the start error is what the caller needs
	}()

	lc.dataDir = filepath.Join(lc.dir, "data")
	lc.sockDir = filepath.Join(lc.dir, "sock")
	lc.logFile = filepath.Join(lc.dir, "postgres.log")
	for _, d := range []string{lc.dataDir, lc.sockDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("pgprovision: %w", err)
		}
	}
	// A Unix socket name is limited to 107 bytes; a long Options.Dir must
	// not make the start fail for a socket we barely use.
	if len(lc.sockDir)+len("/.s.PGSQL.65535") >= 107 {
		if lc.extraSockDir, err = os.MkdirTemp("/tmp", "pgsock-"); err != nil {
			return nil, fmt.Errorf("pgprovision: %w", err)
		}
		lc.sockDir = lc.extraSockDir
	}
	if lc.cred != nil {
		for _, d := range []string{lc.dir, lc.dataDir, lc.sockDir} {
			if err := os.Chown(d, int(lc.cred.Uid), int(lc.cred.Gid)); err != nil {
				return nil, fmt.Errorf("pgprovision: hand %s to the postgres user: %w", d, err)
			}
		}
		if err := checkSearchable(lc.dir, lc.cred); err != nil {
			return nil, err
		}
	}

	t0 := time.Now()
	logf("pgprovision: initdb %s", lc.dataDir)
	if out, err := lc.run(ctx, bins.initdb, "-D", lc.dataDir, "-A", "trust", "-U", "postgres",
		"--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		return nil, fmt.Errorf("pgprovision: initdb %s failed: %w\n%s", lc.dataDir, err, out)
	}
	logf("pgprovision: initdb done in %s", time.Since(t0).Round(time.Millisecond))

	// A port picked by us may be taken by someone else before the server
	// binds it; when we chose it, choose again.
	attempts := 1
	if opts.Port == 0 {
		attempts = 3
	}
	for attempt := 1; ; attempt++ {
		lc.port = opts.Port
		if lc.port == 0 {
			if lc.port, err = FreeLoopbackPort(ctx); err != nil {
				return nil, fmt.Errorf("pgprovision: pick a port: %w", err)
			}
		}
		logf("pgprovision: pg_ctl start on 127.0.0.1:%d", lc.port)
		started = true
		err = lc.pgCtl(ctx, "start", "-w", "-t", strconv.Itoa(int(startTimeout/time.Second)), "-l", lc.logFile,
			"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=300 "+
				"-c shared_buffers=128MB -c fsync=on -c log_min_messages=warning",
				lc.port, shellQuote(lc.sockDir)))
		if err == nil {
			break
		}
		tail := lc.logTail()
		if attempt < attempts && strings.Contains(tail, "could not bind") {
			logf("pgprovision: port %d was taken, trying another", lc.port)
			continue
		}
		return nil, fmt.Errorf("pgprovision: %w\n--- tail of %s ---\n%s", err, lc.logFile, tail)
	}

	if err := waitReady(ctx, lc.adminURL(), startTimeout); err != nil {
		return nil, fmt.Errorf("pgprovision: local cluster on port %d: %w\n--- tail of %s ---\n%s",
			lc.port, err, lc.logFile, lc.logTail())
	}
	logf("pgprovision: postgres ready on 127.0.0.1:%d in %s (dir %s)", lc.port, time.Since(t0).Round(time.Millisecond), lc.dir)
	return lc, nil
}

// stop shuts the server down fast and deletes its files. It only deletes
// them once the server is known to be gone, so a failed stop can be retried.
func (lc *localCluster) stop(ctx context.Context) error {
	err := lc.pgCtl(ctx, "stop", "-m", "fast", "-w", "-t", "60")
	if err != nil && lc.running() {
		if err2 := lc.pgCtl(ctx, "stop", "-m", "immediate", "-w", "-t", "60"); err2 != nil && lc.running() {
			return fmt.Errorf("pgprovision: stop local cluster on port %d: %w", lc.port, err)
		}
	}
	lc.logf("pgprovision: stopped postgres on 127.0.0.1:%d; removing %s", lc.port, lc.dir)
	return lc.removeDirs()
}

// running reports whether a postmaster may still own the data directory:
// the server removes postmaster.pid as the last step of a shutdown.
func (lc *localCluster) running() bool {
	_, err := os.Stat(filepath.Join(lc.dataDir, "postmaster.pid"))
	return !errors.Is(err, fs.ErrNotExist)
}

func (lc *localCluster) removeDirs() error {
	var errs []error
	if lc.extraSockDir != "" {
		errs = append(errs, os.RemoveAll(lc.extraSockDir))
	}
	errs = append(errs, os.RemoveAll(lc.dir))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pgprovision: remove cluster directory: %w", err)
	}
	return nil
}

// pgCtl runs pg_ctl on this cluster's data directory, folding its output
// into the error because pg_ctl explains failures on stdout/stderr.
func (lc *localCluster) pgCtl(ctx context.Context, action string, args ...string) error {
	out, err := lc.run(ctx, lc.bins.pgCtl, append([]string{action, "-D", lc.dataDir}, args...)...)
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w: %s", action, err, bytes.TrimSpace(out))
	}
	return nil
}

// run executes a server program as the postgres user when we are root. The
// working directory is the cluster's own, since the postgres user may not
// be allowed into ours.
func (lc *localCluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = lc.dir
	cmd.Env = childEnv()
	if lc.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: lc.cred}
	}
	return cmd.CombinedOutput()
}

// childEnv is our environment without the PG* variables, which would
// otherwise silently change where initdb and pg_ctl look and listen.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// logTail returns the last lines of the server log, which is where a failed
// start explains itself.
func (lc *localCluster) logTail() string {
	b, err := os.ReadFile(lc.logFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// postgresCredential is the identity to run the server as when we are root:
// the postgres system user that the server packages create.
func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: running as root, which PostgreSQL refuses, and there is no postgres user to run it as (%v); "+
			"create one with: useradd --system --home /var/lib/postgresql postgres", errLocalUnavailable, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("%w: postgres user has a non-numeric id: %w", errLocalUnavailable, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// makeClusterDir returns a fresh directory for a cluster. A given directory
// must be empty or absent, because Stop deletes it.
func makeClusterDir(dir string) (string, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "pgprovision-")
		if err != nil {
			return "", fmt.Errorf("pgprovision: %w", err)
		}
		return d, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("pgprovision: %w", err)
	}
	entries, err := os.ReadDir(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Parents stay enterable so the postgres user can reach the
		// cluster when we are root; the cluster directory itself is private.
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			return "", fmt.Errorf("pgprovision: %w", err)
		}
		if err := os.Mkdir(abs, 0o700); err != nil {
			return "", fmt.Errorf("pgprovision: %w", err)
		}
	case err != nil:
		return "", fmt.Errorf("pgprovision: Options.Dir: %w", err)
	case len(entries) > 0:
		return "", fmt.Errorf("pgprovision: Options.Dir %s is not empty; it is deleted on Stop, so give an empty or new directory", abs)
	}
	return abs, nil
}

// checkSearchable makes sure the postgres user can reach dir through every
// parent, so that a root-only parent (t.TempDir() makes those) gives a clear
// error instead of a "Permission denied" from deep inside initdb.
func checkSearchable(dir string, cred *syscall.Credential) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgprovision: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			perm := fi.Mode().Perm()
			var can bool
			switch {
			case st.Uid == cred.Uid:
				can = perm&0o100 != 0
			case st.Gid == cred.Gid:
				can = perm&0o010 != 0
			default:
				can = perm&0o001 != 0
			}
			if !can {
				return fmt.Errorf("pgprovision: the postgres user (uid %d), which runs the server because we are root, "+
					"cannot enter %s (mode %s); put the cluster directory somewhere it can reach, such as under /tmp",
					cred.Uid, p, perm)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// FreeLoopbackPort asks the kernel for an unused TCP port on 127.0.0.1. Another
// process may take it before the caller binds it, so callers retry on "address in use".
func FreeLoopbackPort(ctx context.Context) (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// shellQuote quotes s for /bin/sh, which pg_ctl hands its -o options to.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// pause stops the server fast, leaving its files in place for resume.
func (lc *localCluster) pause(ctx context.Context) error {
	if err := lc.pgCtl(ctx, "stop", "-m", "fast", "-w", "-t", "60"); err != nil {
		return fmt.Errorf("pgprovision: pause: %w", err)
	}
	return nil
}

// resume starts a paused server again on the same port, with the options it had (the
// last command line, which the server keeps in postmaster.opts).
func (lc *localCluster) resume(ctx context.Context) error {
	opts, err := os.ReadFile(filepath.Join(lc.dataDir, "postmaster.opts"))
	if err != nil {
		return fmt.Errorf("pgprovision: resume: %w", err)
	}
	_, args, _ := strings.Cut(strings.TrimSpace(string(opts)), " ")
	if err := lc.pgCtl(ctx, "start", "-w", "-t", strconv.Itoa(int(startTimeout/time.Second)), "-l", lc.logFile,
		"-o", args); err != nil {
		return fmt.Errorf("pgprovision: resume: %w\n--- tail of %s ---\n%s", err, lc.logFile, lc.logTail())
	}
	return waitReady(ctx, lc.adminURL(), startTimeout)
}
