package deploytest_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/internal/envconfig"
)

// envName is what an environment variable of ours looks like in the code.
var envName = regexp.MustCompile(`^((TASKER|TELEMETRY|OTEL)_[A-Z0-9_]+|LOG_LEVEL|DEPLOYMENT_ENVIRONMENT)$`)

// Every variable name in the programs' code (a string literal or constant on its own) is in
// envconfig.Variables, so the list that the compose test and the README check against
// is the whole list.
func TestEveryVariableInTheCodeIsListed(t *testing.T) {
	t.Parallel()
	found := map[string]string{}
	for _, dir := range []string{"cmd", "internal", "pkg", "migrations"} {
		err := filepath.WalkDir(filepath.Join(root(t), dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil && envName.MatchString(s) {
						found[s] = path
					}
				}
				return true
			})
			return nil
		})
		require.NoError(t, err)
	}
	require.Greater(t, len(found), 30)
	for name, path := range found {
		_, ok := envconfig.Lookup(name)
		require.True(t, ok, "%s (in %s) is missing from envconfig.Variables", name, path)
	}
}

// The README's configuration table has a row for every variable the programs read, and
// names no other.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	readme := read(t, "README.md")
	start := strings.Index(readme, "\n## Configuration\n")
	require.Positive(t, start)
	section := readme[start+1:]
	section = section[:strings.Index(section[1:], "\n## ")+1]
	documented := map[string]bool{}
	cell := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line, "|", 3)[1]
		for _, m := range cell.FindAllStringSubmatch(first, -1) {
			documented[m[1]] = true
		}
	}
	var listed []string
	for _, v := range envconfig.Variables {
		listed = append(listed, v.Name)
		require.True(t, documented[v.Name], "the README's configuration table has no row for %s", v.Name)
	}
	for name := range documented {
		require.True(t, slices.Contains(listed, name), "the README documents %s, which nothing reads", name)
	}
}
