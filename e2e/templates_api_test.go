package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/api"
	"github.com/tasker-sim/tasker-sim/pkg/client"
	"github.com/tasker-sim/tasker-sim/pkg/harness"
	"github.com/tasker-sim/tasker-sim/pkg/worker"
)

// requireAPIError checks that err is an API error with the given status and code, and
// returns its message.
func requireAPIError(t *testing.T, err error, status int, code string) string {
	t.Helper()
	var ae *client.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, status, ae.Status, ae.Message)
	require.Equal(t, code, ae.Code)
	return ae.Message
}

// rawJSON fetches url with the bearer token and decodes the body as a JSON object.
func rawJSON(t *testing.T, url, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxFor(t, 10*time.Second), http.MethodGet, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

func TestOrchestratorTemplates(t *testing.T) {
	t.Parallel()
	env := harness.New(t, cluster, fastOptions())
	ctx := ctxFor(t, 30*time.Second)

	all, err := env.Client.Templates(ctx, "")
	require.NoError(t, err)
	require.Len(t, all.Templates, all.TotalCount)
	sum := 0
	for _, ns := range all.Namespaces {
		sum += ns.TemplateCount
		require.Nil(t, ns.Description, "the sim registers namespaces without a description")
	}
	require.Equal(t, all.TotalCount, sum)
	var linear *api.TemplateSummary
	for i, tmpl := range all.Templates {
		if tmpl.Name == "mathematical_sequence" {
			linear = &all.Templates[i]
		}
	}
	require.NotNil(t, linear)
	require.Equal(t, "rust_e2e_linear", linear.Namespace)
	require.Equal(t, "1.0.0", linear.Version)
	require.Equal(t, 4, linear.StepCount)
	require.NotNil(t, linear.Description)

	one, err := env.Client.Templates(ctx, "rust_e2e_linear")
	require.NoError(t, err)
	require.NotEmpty(t, one.Templates)
	for _, tmpl := range one.Templates {
		require.Equal(t, "rust_e2e_linear", tmpl.Namespace)
	}
	require.Equal(t, all.TotalCount, one.TotalCount, "total_count counts every namespace, as core")
	require.Equal(t, all.Namespaces, one.Namespaces)

	none, err := env.Client.Templates(ctx, "no_such_namespace")
	require.NoError(t, err)
	require.Empty(t, none.Templates)
	require.Equal(t, all.TotalCount, none.TotalCount)

	detail, err := env.Client.Template(ctx, "rust_e2e_linear", "mathematical_sequence", "1.0.0")
	require.NoError(t, err)
	require.Equal(t, "mathematical_sequence", detail.Name)
	require.Len(t, detail.Steps, 4)
	require.Equal(t, api.StepDefinition{Name: "linear_step_1", DefaultRetryable: true, DefaultMaxAttempts: 3,
		ResultSchema: json.RawMessage("null")}, detail.Steps[0])
	var cfg struct {
		NamespaceName string            `json:"namespace_name"`
		Steps         []json.RawMessage `json:"steps"`
	}
	require.NoError(t, json.Unmarshal(detail.Configuration, &cfg), "configuration is the stored template")
	require.Equal(t, "rust_e2e_linear", cfg.NamespaceName)
	require.Len(t, cfg.Steps, 4)

	_, err = env.Client.Template(ctx, "rust_e2e_linear", "no_such_task", "1.0.0")
	require.Equal(t, "template rust_e2e_linear/no_such_task/1.0.0 is not registered",
		requireAPIError(t, err, http.StatusNotFound, api.CodeNotFound))
	requireTemplatePathErrors(t, env.Client.Template)
}

// requireTemplatePathErrors checks that path values breaking the naming rules get 400
// naming the field, and nothing else.
func requireTemplatePathErrors[R any](t *testing.T, get func(ctx context.Context, ns, name, version string) (R, error)) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	for _, tc := range []struct{ ns, name, version, field string }{
		{"Bad-NS", "mathematical_sequence", "1.0.0", "namespace"},
		{"rust_e2e_linear", "9lives", "1.0.0", "name"},
		{"rust_e2e_linear", "mathematical_sequence", "1.0", "version"},
		{"rust_e2e_linear", "mathematical_sequence", "v1.0.0", "version"},
	} {
		_, err := get(ctx, tc.ns, tc.name, tc.version)
		msg := requireAPIError(t, err, http.StatusBadRequest, api.CodeBadRequest)
		require.True(t, strings.HasPrefix(msg, tc.field+": "), "%s/%s/%s: %s", tc.ns, tc.name, tc.version, msg)
	}
}

func TestWorkerTemplates(t *testing.T) {
	t.Parallel()
	const token = "templ4tes"
	opts := fastOptions()
	opts.Worker = func(_ int, c *worker.Config) {
		c.AuthToken = token
		c.Namespaces = []string{"rust_e2e_linear", "rust_e2e_diamond"}
	}
	env := harness.New(t, cluster, opts)
	ctx := ctxFor(t, 30*time.Second)
	base := "http://" + env.Workers[0].Addr()
	anon, err := client.New(base, nil)
	require.NoError(t, err)
	wc := anon.WithToken(token)

	_, err = anon.WorkerTemplates(ctx)
	requireAPIError(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
	_, err = anon.WorkerTemplate(ctx, "rust_e2e_linear", "mathematical_sequence", "1.0.0")
	requireAPIError(t, err, http.StatusUnauthorized, api.CodeUnauthorized)

	list, err := wc.WorkerTemplates(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"rust_e2e_diamond", "rust_e2e_linear"}, list.SupportedNamespaces)
	require.Equal(t, 2, list.TemplateCount, "one template in each served namespace")
	require.Equal(t, []string{"command_processing", "database_access", "message_queues"}, list.WorkerCapabilities)
	status, raw := rawJSON(t, base+"/v1/templates?namespace=ignored&include_cache_stats=true", token)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, raw, "cache_stats")
	require.Nil(t, raw["cache_stats"])

	got, err := wc.WorkerTemplate(ctx, "rust_e2e_linear", "mathematical_sequence", "1.0.0")
	require.NoError(t, err)
	require.True(t, got.Cached)
	require.Equal(t, "math.square_even_number", got.HandlerMetadata.HandlerClass)
	require.Equal(t, "mathematical_sequence", got.HandlerMetadata.Name)
	require.False(t, got.HandlerMetadata.RegisteredAt.IsZero())
	var tmpl struct {
		Name  string            `json:"name"`
		Steps []json.RawMessage `json:"steps"`
	}
	require.NoError(t, json.Unmarshal(got.Template, &tmpl))
	require.Equal(t, "mathematical_sequence", tmpl.Name)
	require.Len(t, tmpl.Steps, 4)
	status, raw = rawJSON(t, base+"/v1/templates/rust_e2e_linear/mathematical_sequence/1.0.0", token)
	require.Equal(t, http.StatusOK, status)
	for _, k := range []string{"cache_age_seconds", "access_count"} {
		require.Contains(t, raw, k)
		require.Nil(t, raw[k])
	}
	meta, _ := raw["handler_metadata"].(map[string]any)
	require.Contains(t, meta, "default_dependent_system")
	require.Nil(t, meta["default_dependent_system"])

	_, err = wc.WorkerTemplate(ctx, "rust_e2e_linear", "no_such_task", "1.0.0")
	requireAPIError(t, err, http.StatusNotFound, api.CodeNotFound)
	_, err = wc.WorkerTemplate(ctx, "rust_e2e_retry", "retry_exhaustion_test", "1.0.0")
	requireAPIError(t, err, http.StatusNotFound, api.CodeNotFound)
	requireTemplatePathErrors(t, wc.WorkerTemplate)
}
