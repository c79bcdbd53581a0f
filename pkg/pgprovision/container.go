package pgprovision

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// containerImage is pinned so every run tests against the same server and
// pgmq extension; a floating tag would change under us.
const containerImage = "ghcr.io/pgmq/pg17-pgmq:v1.5.1"

// containerStartTimeout covers an image pull on a cold machine.
const containerStartTimeout = 5 * time.Minute

// dockerProbeTimeout keeps Start fast on machines without Docker: the probe
// is a local socket, which answers in microseconds when it answers at all.
const dockerProbeTimeout = time.Second

type containerCluster struct {
	adminURL string
	stop     func(ctx context.Context) error
}

// startContainer runs the pinned image and waits until it takes logins.
func startContainer(ctx context.Context, logf func(string, ...any)) (*containerCluster, error) {
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        containerImage,
			ExposedPorts: []string{"5432/tcp"},
			Env: map[string]string{
				"POSTGRES_USER":     "postgres",
				"POSTGRES_PASSWORD": "postgres",
				"POSTGRES_DB":       "postgres",
			},
			// Same server settings as a local cluster, so results compare.
			Cmd: []string{"postgres", "-c", "max_connections=300", "-c", "fsync=on"},
			// The entrypoint starts the server once to run init scripts and
			// then again for real; only the second "ready" means ready.
			WaitingFor: wait.ForLog("database system is ready to accept connections").
				WithOccurrence(2).
				WithStartupTimeout(containerStartTimeout),
		},
		Started: true,
		Logger:  printfLogger(logf),
	})
	terminate := func(ctx context.Context) error {
		return testcontainers.TerminateContainer(ctr, testcontainers.StopContext(ctx))
	}
	if err != nil {
		_ = terminate(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgprovision: start container %s: %w", containerImage, err)
	}
	hostPort, err := ctr.PortEndpoint(ctx, "5432/tcp", "")
	if err != nil {
		_ = terminate(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgprovision: container %s port: %w", containerImage, err)
	}
	adminURL := "postgres://postgres:postgres@" + hostPort + "/postgres?sslmode=disable"
	if err := waitReady(ctx, adminURL, startTimeout); err != nil {
		_ = terminate(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgprovision: container %s: %w", containerImage, err)
	}
	logf("pgprovision: postgres ready on %s (container %s)", hostPort, containerImage)
	return &containerCluster{adminURL: adminURL, stop: terminate}, nil
}

// printfLogger routes testcontainers' chatter to Options.Logf instead of
// stderr.
type printfLogger func(string, ...any)

// Printf satisfies testcontainers' logger interface.
func (f printfLogger) Printf(format string, args ...any) { f(format, args...) }

// dockerReachable says quickly whether a Docker engine answers, and why not
// when it does not, so that machines without Docker lose no time here.
func dockerReachable(ctx context.Context) (bool, string) {
	if host := os.Getenv("DOCKER_HOST"); host != "" {
		u, err := url.Parse(host)
		if err != nil {
			return false, fmt.Sprintf("DOCKER_HOST=%s: %v", host, err)
		}
		switch u.Scheme {
		case "unix":
			if err := pingDockerSocket(ctx, u.Path); err != nil {
				return false, fmt.Sprintf("DOCKER_HOST=%s does not answer: %v", host, err)
			}
		case "tcp":
			// Likely TLS; an open port is as much as we check here.
			d := net.Dialer{Timeout: dockerProbeTimeout}
			c, err := d.DialContext(ctx, "tcp", u.Host)
			if err != nil {
				return false, fmt.Sprintf("DOCKER_HOST=%s does not answer: %v", host, err)
			}
			c.Close()
		}
		// Other schemes (ssh, npipe): trust the setting.
		return true, "DOCKER_HOST=" + host
	}
	candidates := []string{"/var/run/docker.sock"}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		candidates = append(candidates, filepath.Join(d, "docker.sock"))
	}
	for _, sock := range candidates {
		if _, err := os.Stat(sock); err != nil {
			continue
		}
		if err := pingDockerSocket(ctx, sock); err != nil {
			return false, fmt.Sprintf("%s does not answer: %v", sock, err)
		}
		return true, sock
	}
	return false, "no Docker engine (DOCKER_HOST unset and /var/run/docker.sock absent)"
}

// pingDockerSocket sends the engine's /_ping over a Unix socket; a stale
// socket file left by a stopped daemon refuses or never answers.
func pingDockerSocket(ctx context.Context, path string) error {
	d := net.Dialer{Timeout: dockerProbeTimeout}
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(dockerProbeTimeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")); err != nil {
		return err
	}
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.Contains(status, " 200") {
		return fmt.Errorf("unexpected answer %q", strings.TrimSpace(status))
	}
	return nil
}
