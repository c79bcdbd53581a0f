package cli_test

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
)

func TestTemplatesCommands(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, harness.Options{})
	url := env.Orchestrators[0].URL()

	out, err := taskerctl(t, url, "templates", "list")
	require.NoError(t, err)
	require.Regexp(t, `NAMESPACE\s+TEMPLATES\s+DESCRIPTION`, out)
	require.Regexp(t, `rust_e2e_linear\s+mathematical_sequence\s+1\.0\.0\s+4\s+`, out)
	require.Regexp(t, `rust_e2e_retry\s+retry_exhaustion_test\s+1\.0\.0\s+1\s+`, out)
	require.Regexp(t, `\n\d+ templates\n$`, out)

	out, err = taskerctl(t, url, "templates", "list", "--namespace", "rust_e2e_retry")
	require.NoError(t, err)
	require.Contains(t, out, "retry_exhaustion_test")
	require.NotContains(t, out, "mathematical_sequence", "only the namespace's templates")
	require.Regexp(t, `\n2 templates in namespace rust_e2e_retry \(\d+ in all\)\n$`, out)
	out, err = taskerctl(t, url, "templates", "list", "-o", "json")
	require.NoError(t, err)
	var list api.TemplateList
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.NotEmpty(t, list.Namespaces)
	require.Len(t, list.Templates, list.TotalCount)

	out, err = taskerctl(t, url, "templates", "get", "rust_e2e_linear", "mathematical_sequence", "1.0.0")
	require.NoError(t, err)
	require.Regexp(t, `Template:\s+rust_e2e_linear/mathematical_sequence@1\.0\.0\n`, out)
	require.Regexp(t, `Steps:\s+4\n`, out)
	require.Regexp(t, `STEP\s+RETRYABLE\s+MAX ATTEMPTS`, out)
	require.Len(t, regexp.MustCompile(`(?m)^\w+\s+(true|false)\s+\d+\s+(yes|no)\s+`).FindAllString(out, -1), 4, out)
	out, err = taskerctl(t, url, "templates", "get", "rust_e2e_linear", "mathematical_sequence", "1.0.0", "-o", "json")
	require.NoError(t, err)
	var detail api.TemplateDetail
	require.NoError(t, json.Unmarshal([]byte(out), &detail))
	require.Equal(t, "mathematical_sequence", detail.Name)
	require.Len(t, detail.Steps, 4)

	code, _, errOut := execute("templates", "get", "--url", url, "rust_e2e_linear", "no_such_template", "1.0.0")
	require.Equal(t, 1, code)
	require.Regexp(t, `^taskerctl: orchestrator answered 404 \S+: .+\n$`, errOut)
}

func TestTemplatesCommandErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"templates", "get", "Bad", "b", "1.0.0"}, `NAMESPACE "Bad": must match`},
		{[]string{"templates", "get", "a", "b-c", "1.0.0"}, `NAME "b-c": must match`},
		{[]string{"templates", "get", "a", "b", "1.0"}, `VERSION "1.0": must be MAJOR.MINOR.PATCH`},
		{[]string{"templates", "get", "a", "b"}, "takes 3 arguments, NAMESPACE NAME VERSION; got 2"},
		{[]string{"templates", "list", "-o", "yaml"}, `--output "yaml"`},
	} {
		// Nothing listens at port 1: each error comes before any request.
		_, err := taskerctl(t, "http://127.0.0.1:1", tc.args...)
		require.ErrorContains(t, err, tc.want, tc.args)
	}
}
