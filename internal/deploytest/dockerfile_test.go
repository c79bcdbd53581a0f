package deploytest_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/stretchr/testify/require"
)

// dockerfile parses the Dockerfile with BuildKit's parser, failing on any of BuildKit's
// parse or lint warnings.
func dockerfile(t *testing.T) []instructions.Stage {
	t.Helper()
	res, err := parser.Parse(strings.NewReader(read(t, "Dockerfile")))
	require.NoError(t, err)
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: %s", w.Short)
	}
	var lints []string
	stages, _, err := instructions.Parse(res.AST, linter.New(&linter.Config{
		Warn: func(rule, desc, _, msg string, _ []parser.Range) { lints = append(lints, rule+": "+msg+" ("+desc+")") },
	}))
	require.NoError(t, err)
	require.Empty(t, lints, "BuildKit's lint rules")
	return stages
}

// makeBuild is `make build`'s command line: go build's arguments.
func makeBuild(t *testing.T) []string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^build:.*\n\t\$\(GO\) build (.*)$`).FindStringSubmatch(read(t, "Makefile"))
	require.NotNil(t, m, "the Makefile's build target runs $(GO) build")
	return strings.Fields(m[1])
}

// split separates go build's flags (with their values, which for -o differ) from its packages.
func split(args []string) (flags, packages []string) {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o":
			flags = append(flags, a)
			i++ // the output directory
		case strings.HasPrefix(a, "-"):
			flags = append(flags, a)
		default:
			packages = append(packages, a)
		}
	}
	return flags, packages
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	stages := dockerfile(t)
	require.Len(t, stages, 2, "a builder and the final image")
	build, final := stages[0], stages[1]

	// Pinned bases: an exact Go release no older than go.mod asks for, and the static
	// distroless image by digest.
	goDirective := regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)$`).FindStringSubmatch(read(t, "go.mod"))
	require.NotNil(t, goDirective, "go.mod's go directive")
	ref, err := reference.ParseNormalizedNamed(build.BaseName)
	require.NoError(t, err)
	require.Equal(t, "docker.io/library/golang", ref.Name())
	tag := ref.(reference.Tagged).Tag()
	m := regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)-[a-z]+$`).FindStringSubmatch(tag)
	require.NotNil(t, m, "golang:%s is not an exact release", tag)
	goVersion := strings.Split(goDirective[1], ".")
	require.Equal(t, goVersion[:2], m[1:3], "the builder's Go is go.mod's (%s)", goDirective[1])
	if len(goVersion) == 3 {
		require.GreaterOrEqual(t, atoi(t, m[3]), atoi(t, goVersion[2]), "golang:%s is older than go.mod's %s", tag, goDirective[1])
	}
	ref, err = reference.ParseNormalizedNamed(final.BaseName)
	require.NoError(t, err)
	require.Equal(t, "gcr.io/distroless/static-debian12", ref.Name())
	_, digested := ref.(reference.Digested)
	require.True(t, digested, "the final base is pinned by digest: %s", final.BaseName)
	require.Equal(t, "nonroot", ref.(reference.Tagged).Tag())

	// The build line is make build's, static.
	var run *instructions.RunCommand
	cgoOff := false
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.RunCommand:
			if strings.Contains(strings.Join(c.CmdLine, " "), "go build") {
				require.Nil(t, run, "one go build")
				run = c
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				cgoOff = cgoOff || (kv.Key == "CGO_ENABLED" && kv.Value == "0")
			}
		}
	}
	require.NotNil(t, run, "the builder runs go build")
	words := strings.Fields(strings.Join(run.CmdLine, " "))
	i := slices.Index(words, "build")
	require.Positive(t, i)
	require.Equal(t, "go", words[i-1])
	cgoOff = cgoOff || slices.Contains(words[:i-1], "CGO_ENABLED=0")
	require.True(t, cgoOff, "CGO_ENABLED=0, so the binaries run on distroless/static")
	dockerFlags, dockerPkgs := split(words[i+1:])
	makeFlags, makePkgs := split(makeBuild(t))
	require.Equal(t, makeFlags, dockerFlags, "the Dockerfile builds with make build's flags")
	require.Equal(t, makePkgs, dockerPkgs, "and the same packages")
	out := words[slices.Index(words, "-o")+1]

	// The final image holds the three binaries, runs as nonroot, and starts the orchestrator.
	var copied []string
	user := ""
	var cmd []string
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			require.Equal(t, build.Name, c.From)
			require.Equal(t, "/usr/local/bin/", c.DestPath)
			for _, src := range c.SourcePaths {
				require.Equal(t, out, filepath.Dir(src)+"/", "copied from go build's output")
				copied = append(copied, filepath.Base(src))
			}
		case *instructions.UserCommand:
			user = c.User
		case *instructions.CmdCommand:
			require.False(t, c.PrependShell, "exec form: there is no shell")
			cmd = c.CmdLine
		}
	}
	var binaries []string
	for _, p := range makePkgs {
		binaries = append(binaries, filepath.Base(p))
	}
	require.Equal(t, binaries, copied)
	require.Equal(t, "nonroot:nonroot", user)
	require.Equal(t, []string{"/usr/local/bin/orchestrator"}, cmd)

	// The compose file runs these binaries.
	p := loadCompose(t, nil)
	for name := range taskerServices {
		require.Contains(t, binaries, strings.TrimPrefix(p.Services[name].Command[0], "/usr/local/bin/"), name)
	}
}

// .dockerignore keeps .git, bin, .env and the like out of the build context, but none of
// the files the build needs: go.mod, go.sum, and every Go file and embedded file of the
// packages the three binaries are built from (go list says which).
func TestDockerignore(t *testing.T) {
	t.Parallel()
	patterns, err := ignorefile.ReadAll(strings.NewReader(read(t, ".dockerignore")))
	require.NoError(t, err)
	pm, err := patternmatcher.New(patterns)
	require.NoError(t, err)
	ignored := func(rel string) bool {
		ok, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		require.NoError(t, err)
		return ok
	}
	for _, rel := range []string{".git/config", "bin/taskerctl", ".env", "chaos.html", "docs/metrics.md"} {
		require.True(t, ignored(rel), "%s belongs in no image", rel)
	}

	_, pkgs := split(makeBuild(t))
	cmd := exec.Command("go", append([]string{"list", "-deps", "-json=Dir,Module,GoFiles,EmbedFiles"}, pkgs...)...)
	cmd.Dir = root(t)
	raw, err := cmd.Output()
	require.NoError(t, err)
	needed := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for dec.More() {
		var pkg struct {
			Dir        string
			Module     *struct{ Main bool }
			GoFiles    []string
			EmbedFiles []string
		}
		require.NoError(t, dec.Decode(&pkg))
		if pkg.Module == nil || !pkg.Module.Main {
			continue // the standard library and modules come from the module cache
		}
		rel, err := filepath.Rel(root(t), pkg.Dir)
		require.NoError(t, err)
		for _, f := range slices.Concat(pkg.GoFiles, pkg.EmbedFiles) {
			needed = append(needed, filepath.Join(rel, f))
		}
	}
	require.Greater(t, len(needed), 20)
	embedded := func(dir string) bool {
		return slices.ContainsFunc(needed, func(f string) bool { return strings.HasPrefix(filepath.ToSlash(f), dir) })
	}
	require.True(t, embedded("migrations/sql/"), "go list reports the embedded migrations")
	require.True(t, embedded("pkg/workflow/templates/"), "and the embedded templates")
	for _, rel := range needed {
		require.False(t, ignored(rel), ".dockerignore leaves out %s, which the build needs", rel)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}
