package deploytest_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/tasker-sim/tasker-sim/internal/cli"
	"github.com/tasker-sim/tasker-sim/internal/envconfig"
)

// The services the demo needs, and the program each tasker-sim one runs.
var (
	taskerServices = map[string]string{
		"orchestrator": "orchestrator", "worker": "worker", "worker-ruby": "worker", "load": "taskerctl",
	}
	otherServices = []string{"postgres", "observability"}
)

// loadCompose loads docker-compose.yml as `docker compose` does, with env as the
// variables of the shell and the .env file together.
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	dir := root(t)
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "docker-compose.yml")}},
		Environment: env,
	})
	require.NoError(t, err, "docker-compose.yml must load as docker compose loads it")
	return p
}

// envExample is .env.example as docker compose would read it from .env.
func envExample(t *testing.T) map[string]string {
	t.Helper()
	env, err := dotenv.GetEnvFromFile(map[string]string{}, []string{filepath.Join(root(t), ".env.example")})
	require.NoError(t, err)
	return env
}

func TestComposeLoadsWithTheServices(t *testing.T) {
	t.Parallel()
	for name, env := range map[string]map[string]string{"no .env": {}, ".env from .env.example": envExample(t)} {
		t.Run(name, func(t *testing.T) {
			p := loadCompose(t, env)
			require.Equal(t, "tasker-sim", p.Name)
			want := slices.Sorted(maps.Keys(taskerServices))
			want = append(want, otherServices...)
			slices.Sort(want)
			require.Equal(t, want, p.ServiceNames())
			require.ElementsMatch(t, []string{"pgdata", "lgtm-data"}, slices.Collect(maps.Keys(p.Volumes)),
				"named volumes only, so `docker compose down -v` leaves nothing behind")
		})
	}
}

// Every image is pinned (a tag other than latest, or a digest), except the one the
// orchestrator service builds from the Dockerfile, which the other tasker-sim services
// run and never pull.
func TestComposeImagesArePinned(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, nil)
	built := map[string]string{}
	for _, s := range p.Services {
		if s.Build != nil {
			require.NotEmpty(t, s.Image, "%s: a built image is named, so the other services can run it", s.Name)
			require.Equal(t, "Dockerfile", s.Build.Dockerfile, s.Name)
			require.Equal(t, root(t), s.Build.Context, s.Name)
			built[s.Image] = s.Name
		}
	}
	require.Equal(t, map[string]string{"tasker-sim:local": "orchestrator"}, built)
	for _, s := range p.Services {
		if _, ok := built[s.Image]; ok {
			if s.Build == nil {
				require.Equal(t, types.PullPolicyNever, s.PullPolicy, "%s runs the built image: never pull it", s.Name)
			}
			continue
		}
		ref, err := reference.ParseNormalizedNamed(s.Image)
		require.NoError(t, err, s.Name)
		tagged, hasTag := ref.(reference.Tagged)
		_, hasDigest := ref.(reference.Digested)
		require.True(t, hasTag || hasDigest, "%s: image %q has neither tag nor digest", s.Name, s.Image)
		if hasTag {
			require.NotEqual(t, "latest", tagged.Tag(), "%s: image %q", s.Name, s.Image)
			require.Regexp(t, `\d+\.\d+`, tagged.Tag(), "%s: a version tag, not a moving name", s.Name)
		}
	}
	require.Equal(t, "ghcr.io/pgmq/pg17-pgmq:v1.5.1", p.Services["postgres"].Image)
	require.Regexp(t, `^grafana/otel-lgtm:\d+\.\d+\.\d+$`, p.Services["observability"].Image)
}

// Start-up never races: every service has a healthcheck, or waits for dependencies that
// are healthy; every dependency is on health, never mere start.
func TestComposeHealthchecksAndDependencies(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, nil)
	for _, s := range p.Services {
		hasCheck := s.HealthCheck != nil && !s.HealthCheck.Disable && len(s.HealthCheck.Test) > 1
		require.True(t, hasCheck || len(s.DependsOn) > 0, "%s: neither a healthcheck nor a dependency", s.Name)
		for dep, d := range s.DependsOn {
			require.Equal(t, types.ServiceConditionHealthy, d.Condition, "%s depends on %s", s.Name, dep)
			ds := p.Services[dep]
			require.NotNil(t, ds.HealthCheck, "%s depends on %s being healthy, which has no healthcheck", s.Name, dep)
		}
	}
	require.Contains(t, p.Services["orchestrator"].DependsOn, "postgres")
	require.Contains(t, p.Services["orchestrator"].DependsOn, "observability")
	require.Subset(t, slices.Collect(maps.Keys(p.Services["load"].DependsOn)), []string{"orchestrator", "worker", "worker-ruby"})

	// The tasker-sim services check themselves with `taskerctl health` (the image has no
	// shell or curl), on the address their process listens on.
	for name, program := range taskerServices {
		if program == "taskerctl" {
			continue
		}
		s := p.Services[name]
		test := []string(s.HealthCheck.Test)
		require.Equal(t, []string{"CMD", "/usr/local/bin/taskerctl", "health", "--url"}, test[:4], name)
		require.Len(t, test, 5, name)
		cmd := taskerctl(t, test[2:])
		require.Equal(t, "health", cmd.Name())
		u, err := url.Parse(test[4])
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1", u.Hostname(), "%s checks itself", name)
		require.Equal(t, bindPort(t, s), u.Port(), "%s checks the port it listens on", name)
	}
	pg := p.Services["postgres"]
	require.Contains(t, strings.Join(pg.HealthCheck.Test, " "), "pg_isready")
	require.Contains(t, strings.Join(pg.HealthCheck.Test, " "), "-U "+*pg.Environment["POSTGRES_USER"])
}

// Published ports bind 127.0.0.1, except Grafana's 3000; workers publish nothing, so
// `docker compose up --scale worker=3` has no port to fight over.
func TestComposePorts(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, nil)
	published := map[string]string{}
	for _, s := range p.Services {
		for _, port := range s.Ports {
			if port.Target == 3000 {
				require.Equal(t, "observability", s.Name)
				require.Contains(t, []string{"", "0.0.0.0"}, port.HostIP, "Grafana is published on every interface")
			} else {
				require.Equal(t, "127.0.0.1", port.HostIP, "%s publishes %d beyond this machine", s.Name, port.Target)
			}
			published[fmt.Sprintf("%s:%d", s.Name, port.Target)] = port.Published
		}
	}
	require.Equal(t, map[string]string{
		"observability:3000": "3000", "observability:9090": "9090", "observability:4317": "4317",
		"observability:4318": "4318", "orchestrator:8080": "8080",
	}, published)
}

// The tasker-sim services set only variables their program reads (envconfig.Variables,
// which the README's table documents), and export OTLP to the observability service.
func TestComposeEnvironment(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, envExample(t))
	names := map[string]bool{}
	for name, program := range taskerServices {
		s := p.Services[name]
		require.NotEmpty(t, s.Command, name)
		require.Equal(t, "/usr/local/bin/"+program, s.Command[0], "%s runs %s", name, program)
		for k := range s.Environment {
			v, ok := envconfig.Lookup(k)
			require.True(t, ok, "%s sets %s, which no tasker-sim program reads", name, k)
			require.True(t, v.Reads(program), "%s sets %s, which %s does not read (read by %v)", name, k, program, v.ReadBy)
		}
		if program == "taskerctl" {
			continue
		}
		env := func(k string) string {
			require.Contains(t, s.Environment, k, name)
			return *s.Environment[k]
		}
		require.Equal(t, "true", env("TELEMETRY_OTLP_ENABLED"), name)
		require.Equal(t, "http://observability:4317", env("OTEL_EXPORTER_OTLP_ENDPOINT"), name)
		require.Equal(t, "10000", env("OTEL_METRIC_EXPORT_INTERVAL"), name)
		require.Equal(t, "grpc", env("OTEL_EXPORTER_OTLP_PROTOCOL"), name)
		require.Equal(t, "60s", env(envconfig.DatabaseWait), name)
		svc := env("OTEL_SERVICE_NAME")
		require.False(t, names[svc], "%s: OTEL_SERVICE_NAME %s is another service's", name, svc)
		names[svc] = true
		db, err := url.Parse(env(envconfig.DatabaseURL))
		require.NoError(t, err)
		require.Equal(t, "postgres:5432", db.Host, "%s uses the postgres service", name)
		require.Equal(t, *p.Services["postgres"].Environment["POSTGRES_DB"], strings.TrimPrefix(db.Path, "/"))
		require.Equal(t, *p.Services["postgres"].Environment["POSTGRES_USER"], db.User.Username())
		require.Equal(t, "0.0.0.0", bindHost(t, s), "%s listens beyond its container", name)
	}
	require.Equal(t, "ruby", *p.Services["worker-ruby"].Environment[envconfig.HandlerType])
	require.NotContains(t, p.Services["worker"].Environment, envconfig.HandlerType, "the rust worker takes the default")

	// The token reaches every process that needs it, and comes from .env only.
	for name := range taskerServices {
		require.Equal(t, "", *p.Services[name].Environment[envconfig.AuthToken], name)
	}
	withToken := loadCompose(t, map[string]string{"TASKER_AUTH_TOKEN": "s3cret"})
	for name := range taskerServices {
		require.Equal(t, "s3cret", *withToken.Services[name].Environment[envconfig.AuthToken], name)
	}
}

// The load service runs taskerctl load for ever against the orchestrator, at .env's rate
// and scenario, looping the scenario, with the workers' addresses for its fault phases.
func TestComposeLoadService(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env            map[string]string
		rate, scenario string
	}{
		{nil, "10", "chaos"},
		{envExample(t), "10", "chaos"},
		{map[string]string{"LOAD_RATE": "25", "LOAD_SCENARIO": "none"}, "25", "none"},
	} {
		p := loadCompose(t, tc.env)
		s := p.Services["load"]
		cmd := taskerctl(t, s.Command[1:])
		require.Equal(t, "load", cmd.Name())
		flag := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
		require.Equal(t, "http://orchestrator:8080", flag("url"))
		require.Equal(t, "0s", flag("duration"), "until stopped")
		require.Equal(t, tc.rate, flag("rate"))
		require.Equal(t, tc.scenario, flag("scenario"))
		require.Equal(t, "true", flag("scenario-loop"))
		require.Equal(t, "http://orchestrator:8080", "http://orchestrator:"+bindPort(t, p.Services["orchestrator"]))
		for k, svc := range map[string]string{cli.LoadWorkerURLsEnv: "worker", cli.LoadFFIWorkerURLsEnv: "worker-ruby"} {
			require.Equal(t, "http://"+svc+":"+bindPort(t, p.Services[svc]), *s.Environment[k], k)
		}
		require.NotNil(t, s.StopGracePeriod)
		grace, err := cmd.Flags().GetDuration("grace")
		require.NoError(t, err)
		require.Less(t, grace, time.Duration(*s.StopGracePeriod), "the summary is printed before docker kills it")
	}
}

// Bind mounts name files of this repository: the observability service's Prometheus
// config with the alert rules, and Grafana's provisioning and dashboards.
func TestComposeMounts(t *testing.T) {
	t.Parallel()
	p := loadCompose(t, nil)
	mounts := map[string]string{}
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeVolume:
				require.Contains(t, p.Volumes, v.Source, s.Name)
			case types.VolumeTypeBind:
				rel, err := filepath.Rel(root(t), v.Source)
				require.NoError(t, err)
				require.False(t, strings.HasPrefix(rel, ".."), "%s mounts %s from outside the repository", s.Name, v.Source)
				require.True(t, v.ReadOnly, "%s mounts %s writable", s.Name, rel)
				mounts[filepath.ToSlash(rel)] = v.Target
			default:
				t.Fatalf("%s: volume type %s", s.Name, v.Type)
			}
		}
	}
	require.Equal(t, map[string]string{
		"deploy/compose/prometheus.yaml": "/otel-lgtm/prometheus.yaml",
		"deploy/prometheus/alerts.yml":   "/otel-lgtm/rules/alerts.yml",
		"deploy/grafana/provisioning":    "/otel-lgtm/grafana/conf/provisioning",
		"deploy/grafana/dashboards":      "/var/lib/grafana/dashboards/tasker",
	}, mounts)
	// Our Prometheus configuration loads the rules from where they are mounted.
	require.Contains(t, read(t, "deploy/compose/prometheus.yaml"), "\n  - "+mounts["deploy/prometheus/alerts.yml"]+"\n")
	// A missing source would be created by docker as an empty directory: a file mount
	// (alerts.yml) would then break Prometheus. Each must exist, with the right kind.
	for rel := range mounts {
		t.Run(rel, func(t *testing.T) {
			requireOrPending(t, rel)
			info, err := os.Stat(filepath.Join(root(t), rel))
			require.NoError(t, err, "docker-compose.yml mounts %s", rel)
			require.Equal(t, !strings.Contains(filepath.Base(rel), "."), info.IsDir(), "%s: file or directory", rel)
		})
	}
}

// requireOrPending skips, saying so, when rel belongs to a part of deploy/ that is not in
// the tree at all yet (Grafana's dashboards and the alert rules come with their own
// change); once that part exists, everything the compose file needs from it must be there.
func requireOrPending(t *testing.T, rel string) {
	t.Helper()
	if strings.HasPrefix(rel, "deploy/compose/") {
		return
	}
	part := strings.Join(strings.Split(rel, "/")[:2], "/") // deploy/grafana, deploy/prometheus
	if _, err := os.Stat(filepath.Join(root(t), part)); errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s is not in the tree yet; docker compose up needs %s from it", part, rel)
	}
}

// Grafana's provisioning agrees with the mounts: a dashboard provider reads the directory
// deploy/grafana/dashboards is mounted at, and every datasource is an address inside the
// observability container (which runs Prometheus, Tempo, Loki and Pyroscope itself).
func TestGrafanaProvisioningMatchesTheMounts(t *testing.T) {
	t.Parallel()
	requireOrPending(t, "deploy/grafana/provisioning")
	var target string
	for _, v := range loadCompose(t, nil).Services["observability"].Volumes {
		if strings.HasSuffix(filepath.ToSlash(v.Source), "deploy/grafana/dashboards") {
			target = v.Target
		}
	}
	require.NotEmpty(t, target)
	files := func(kind string) []string {
		var out []string
		for _, ext := range []string{"*.yaml", "*.yml"} {
			m, err := filepath.Glob(filepath.Join(root(t), "deploy", "grafana", "provisioning", kind, ext))
			require.NoError(t, err)
			out = append(out, m...)
		}
		require.NotEmpty(t, out, "deploy/grafana/provisioning/%s has no provisioning file", kind)
		return out
	}
	var paths []string
	for _, f := range files("dashboards") {
		var doc struct {
			Providers []struct {
				Options struct {
					Path string `yaml:"path"`
				} `yaml:"options"`
			} `yaml:"providers"`
		}
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(raw, &doc), f)
		for _, p := range doc.Providers {
			paths = append(paths, p.Options.Path)
		}
	}
	require.Contains(t, paths, target, "a dashboard provider reads %s, where docker-compose.yml mounts the dashboards", target)
	home := *loadCompose(t, nil).Services["observability"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	rel, err := filepath.Rel(target, home)
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root(t), "deploy", "grafana", "dashboards", rel))
	require.NoError(t, err, "the home dashboard %s is one of deploy/grafana/dashboards", home)
	for _, f := range files("datasources") {
		var doc struct {
			Datasources []struct {
				Name string `yaml:"name"`
				URL  string `yaml:"url"`
			} `yaml:"datasources"`
		}
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(raw, &doc), f)
		for _, d := range doc.Datasources {
			u, err := url.Parse(d.URL)
			require.NoError(t, err, d.Name)
			require.Contains(t, []string{"observability", "127.0.0.1", "localhost"}, u.Hostname(),
				"datasource %s (%s) must be inside the observability container", d.Name, d.URL)
		}
	}
}

// .env.example documents exactly the variables docker-compose.yml interpolates.
func TestEnvExampleMatchesCompose(t *testing.T) {
	t.Parallel()
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)`).FindAllStringSubmatch(read(t, "docker-compose.yml"), -1) {
		used[m[1]] = true
	}
	documented := map[string]bool{}
	for k := range envExample(t) {
		documented[k] = true
	}
	require.Equal(t, used, documented)
	require.Contains(t, read(t, ".gitignore"), "/.env\n", "a .env with a token is never committed")
	require.Contains(t, read(t, ".dockerignore"), "\n.env\n", "nor sent into an image")
}

// taskerctl parses args (after the program name) with taskerctl's own flags.
func taskerctl(t *testing.T, args []string) *cobra.Command {
	t.Helper()
	cmd, rest, err := cli.Root().Find(args)
	require.NoError(t, err, "%v", args)
	require.NoError(t, cmd.ParseFlags(rest), "%v", args)
	require.Empty(t, cmd.Flags().Args(), "%v", args)
	return cmd
}

// bindHost and bindPort are where a tasker-sim process listens.
func bindHost(t *testing.T, s types.ServiceConfig) string {
	host, _ := bindAddress(t, s)
	return host
}

func bindPort(t *testing.T, s types.ServiceConfig) string {
	_, port := bindAddress(t, s)
	return port
}

func bindAddress(t *testing.T, s types.ServiceConfig) (string, string) {
	t.Helper()
	for _, k := range []string{envconfig.WebBindAddress, envconfig.WorkerBindAddress} {
		if v, ok := s.Environment[k]; ok {
			host, port, err := net.SplitHostPort(*v)
			require.NoError(t, err)
			return host, port
		}
	}
	t.Fatalf("%s sets no bind address", s.Name)
	return "", ""
}
