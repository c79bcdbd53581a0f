package deploytest_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/config"
	"github.com/stretchr/testify/require"
)

// The observability service's Prometheus configuration (mounted over otel-lgtm's) loads
// with Prometheus's own loader, takes metrics over OTLP with the names /metrics uses,
// keeps replicas apart, and loads the alert rules from where the compose file mounts them
// (TestComposeMounts).
func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(read(t, "deploy/compose/prometheus.yaml"), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.Equal(t, []string{"/otel-lgtm/rules/alerts.yml"}, cfg.RuleFiles)
	require.Equal(t, model.Duration(15*time.Second), cfg.GlobalConfig.EvaluationInterval)
	require.Empty(t, cfg.ScrapeConfigs, "metrics are pushed, not scraped")
	require.Equal(t, otlptranslator.UnderscoreEscapingWithSuffixes, cfg.OTLPConfig.TranslationStrategy,
		"the names the processes' /metrics serve, which the dashboards and alerts query")
	require.Subset(t, cfg.OTLPConfig.PromoteResourceAttributes, []string{"service.name", "service.instance.id"})
	require.Positive(t, cfg.StorageConfig.TSDBConfig.OutOfOrderTimeWindow)
	// (internal/dashboards checks that the rules themselves parse, with promtool too.)
}
