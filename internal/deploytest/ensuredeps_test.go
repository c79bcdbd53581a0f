package deploytest_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// machine is a pretend machine for scripts/ensure-deps.sh: the commands it has (on a
// PATH of empty executables) and the overrides for who runs it.
type machine struct {
	uid      string
	commands []string
	env      []string
	pgDirs   []string // Debian-style /usr/lib/postgresql/<ver>/bin with initdb and pg_ctl
	docker   bool     // a Docker socket
	pgUser   bool     // the postgres system user exists
}

// ensure runs the script in dry-run mode on m and returns its output and exit status.
func (m machine) ensure(t *testing.T, needs ...string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.Mkdir(bin, 0o755))
	for _, c := range m.commands {
		require.NoError(t, os.WriteFile(filepath.Join(bin, c), []byte("#!/bin/sh\nexit 0\n"), 0o755))
	}
	for _, v := range m.pgDirs {
		d := filepath.Join(dir, "lib", "postgresql", v, "bin")
		require.NoError(t, os.MkdirAll(d, 0o755))
		for _, c := range []string{"initdb", "pg_ctl"} {
			require.NoError(t, os.WriteFile(filepath.Join(d, c), []byte("#!/bin/sh\n"), 0o755))
		}
	}
	// A short path: a socket's path must fit in 108 bytes, and test names are long.
	sockDir, err := os.MkdirTemp("", "sock")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "docker.sock")
	if m.docker {
		var lc net.ListenConfig
		l, err := lc.Listen(context.Background(), "unix", sock)
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
	}
	user := "0"
	if m.pgUser {
		user = "1"
	}
	cmd := exec.Command("/bin/bash", filepath.Join(root(t), "scripts", "ensure-deps.sh"))
	cmd.Args = append(cmd.Args, needs...)
	cmd.Env = append([]string{"PATH=" + bin, "ENSURE_DEPS_DRY_RUN=1", "ENSURE_DEPS_UID=" + m.uid,
		"ENSURE_DEPS_PG_GLOB=" + filepath.Join(dir, "lib", "postgresql", "*", "bin"),
		"ENSURE_DEPS_DOCKER_SOCK=" + sock, "ENSURE_DEPS_HAVE_USER=" + user}, m.env...)
	out, err := cmd.CombinedOutput()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return string(out), code
}

// wouldRun lists the commands a dry run printed.
func wouldRun(out string) []string {
	var cmds []string
	for _, m := range regexp.MustCompile(`(?m)^ensure-deps: would run: (.*)$`).FindAllStringSubmatch(out, -1) {
		cmds = append(cmds, m[1])
	}
	return cmds
}

// The install decisions of scripts/ensure-deps.sh, which .ci/run and `make demo` share,
// on pretend machines (nothing is installed: the script runs dry).
func TestEnsureDeps(t *testing.T) {
	t.Parallel()
	all := []string{"postgres", "chromium", "promtool"}
	t.Run("root with apt installs what is missing, in one go", func(t *testing.T) {
		t.Parallel()
		out, code := machine{uid: "0", commands: []string{"apt-get"}}.ensure(t, all...)
		require.Equal(t, 0, code, out)
		require.Equal(t, []string{
			"apt-get update -q",
			"apt-get install -y -q postgresql chromium",
			"apt-get install -y -q --no-install-recommends prometheus",
			"useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres",
		}, wouldRun(out))
	})
	t.Run("root with everything installs nothing", func(t *testing.T) {
		t.Parallel()
		out, code := machine{uid: "0", commands: []string{"apt-get", "initdb", "pg_ctl", "chromium", "promtool"}, pgUser: true}.ensure(t, all...)
		require.Equal(t, 0, code, out)
		require.Empty(t, wouldRun(out))
		require.Contains(t, out, "postgres: found initdb and pg_ctl on PATH")
		require.Contains(t, out, "promtool: found")
	})
	t.Run("only the missing one", func(t *testing.T) {
		t.Parallel()
		out, code := machine{uid: "0", commands: []string{"apt-get", "chromium"}, pgDirs: []string{"15"}, pgUser: true}.ensure(t, all...)
		require.Equal(t, 0, code, out)
		require.Contains(t, out, "postgres: found initdb and pg_ctl in ")
		require.Equal(t, []string{"apt-get update -q", "apt-get install -y -q --no-install-recommends prometheus"}, wouldRun(out))
	})
	t.Run("the postgres user is made when the server came another way", func(t *testing.T) {
		t.Parallel()
		out, code := machine{uid: "0", commands: []string{"initdb", "pg_ctl"}}.ensure(t, "postgres")
		require.Equal(t, 0, code, out)
		require.Equal(t, []string{"useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres"}, wouldRun(out))
	})
	t.Run("not root: the one command to run", func(t *testing.T) {
		t.Parallel()
		out, code := machine{uid: "1000", commands: []string{"apt-get"}}.ensure(t, "postgres")
		require.Equal(t, 1, code)
		require.Empty(t, wouldRun(out))
		require.Contains(t, out, "ensure-deps: missing: postgres. Run:\n  sudo apt-get install -y postgresql\n")
		require.Contains(t, out, "TASKER_DATABASE_URL")
	})
	t.Run("not root, on a Mac", func(t *testing.T) {
		t.Parallel()
		out, code := machine{uid: "501", commands: []string{"brew"}}.ensure(t, "postgres", "promtool")
		require.Equal(t, 1, code)
		require.Contains(t, out, "\n  brew install postgresql@17 prometheus\n")
	})
	t.Run("root without apt", func(t *testing.T) {
		t.Parallel()
		out, code := machine{uid: "0"}.ensure(t, "chromium")
		require.Equal(t, 1, code)
		require.Empty(t, wouldRun(out))
		require.Contains(t, out, "install chromium with your package manager (Debian: apt-get install -y chromium")
	})
	t.Run("a database URL or Docker will do for postgres", func(t *testing.T) {
		t.Parallel()
		out, code := machine{uid: "1000", env: []string{"TASKER_TEST_DATABASE_URL=postgres://u@db/x"}}.ensure(t, "postgres")
		require.Equal(t, 0, code, out)
		require.Contains(t, out, "postgres: found a server named by TASKER_TEST_DATABASE_URL")
		// The demo's own variable counts only where the caller says so (make demo does).
		out, code = machine{uid: "1000", env: []string{"TASKER_DATABASE_URL=postgres://u@db/x"}}.ensure(t, "postgres")
		require.Equal(t, 1, code, out)
		out, code = machine{uid: "1000", env: []string{"TASKER_DATABASE_URL=postgres://u@db/x",
			"ENSURE_DEPS_URL_VARS=TASKER_DATABASE_URL TASKER_TEST_DATABASE_URL"}}.ensure(t, "postgres")
		require.Equal(t, 0, code, out)
		require.Contains(t, out, "postgres: found a server named by TASKER_DATABASE_URL")
		out, code = machine{uid: "1000", docker: true}.ensure(t, "postgres")
		require.Equal(t, 0, code, out)
		require.Contains(t, out, "postgres: found a Docker socket")
	})
	t.Run("an unknown need", func(t *testing.T) {
		t.Parallel()
		out, code := machine{uid: "0"}.ensure(t, "redis")
		require.Equal(t, 2, code)
		require.Contains(t, out, "unknown need 'redis'")
	})
}

// .ci/run and `make demo` both set up through the script.
func TestCIAndDemoUseEnsureDeps(t *testing.T) {
	t.Parallel()
	require.Contains(t, read(t, ".ci/run"), "\nbash scripts/ensure-deps.sh postgres chromium promtool\n")
	demo := regexp.MustCompile(`(?m)^demo:.*\n((?:\t.*\n)+)`).FindStringSubmatch(read(t, "Makefile"))
	require.NotNil(t, demo)
	lines := strings.Split(strings.TrimSpace(demo[1]), "\n")
	require.Equal(t, "\t@ENSURE_DEPS_URL_VARS=\"TASKER_DATABASE_URL TASKER_TEST_DATABASE_URL\" bash scripts/ensure-deps.sh postgres",
		"\t"+strings.TrimSpace(lines[0]))
	require.Equal(t, "bin/taskerctl demo", strings.TrimSpace(lines[len(lines)-1]))
	info, err := os.Stat(filepath.Join(root(t), "scripts", "ensure-deps.sh"))
	require.NoError(t, err)
	require.NotZero(t, info.Mode()&0o111, "executable")
}
