package dashboards

import (
	"bytes"

	"go.yaml.in/yaml/v3"
)

// Where things are in the compose stack. Grafana reaches Prometheus inside the
// observability container (grafana/otel-lgtm, whose Prometheus listens on 9090), and
// reads the dashboard files from the directory deploy/grafana/dashboards is mounted at.
const (
	// PrometheusURL is the Prometheus datasource's address as Grafana sees it.
	PrometheusURL = "http://observability:9090"
	// DatasourceUID is the Prometheus datasource's fixed uid; every panel queries it.
	DatasourceUID = "prometheus"
	// TempoURL and LokiURL are the traces and logs of the same container: the compose
	// stack replaces the image's provisioning, so these datasources are ours to declare.
	TempoURL = "http://observability:3200"
	LokiURL  = "http://observability:3100"
	// DashboardsPath is where Grafana finds the dashboard JSON files.
	DashboardsPath = "/var/lib/grafana/dashboards/tasker"
	// DashboardsFolder is the Grafana folder the dashboards are filed in.
	DashboardsFolder = "Tasker"
)

// generatedHeader starts every generated YAML file.
const generatedHeader = "# Generated from pkg/telemetry/catalog.go by `make docs` (internal/dashboards); do not edit by hand.\n"

type datasourceFile struct {
	APIVersion  int               `yaml:"apiVersion"`
	Datasources []datasourceEntry `yaml:"datasources"`
}

type datasourceEntry struct {
	Name      string         `yaml:"name"`
	Type      string         `yaml:"type"`
	UID       string         `yaml:"uid"`
	Access    string         `yaml:"access"`
	URL       string         `yaml:"url"`
	IsDefault bool           `yaml:"isDefault"`
	Editable  bool           `yaml:"editable"`
	JSONData  map[string]any `yaml:"jsonData"`
}

type providerFile struct {
	APIVersion int        `yaml:"apiVersion"`
	Providers  []provider `yaml:"providers"`
}

type provider struct {
	Name                  string         `yaml:"name"`
	OrgID                 int            `yaml:"orgId"`
	Folder                string         `yaml:"folder"`
	Type                  string         `yaml:"type"`
	DisableDeletion       bool           `yaml:"disableDeletion"`
	AllowUIUpdates        bool           `yaml:"allowUiUpdates"`
	UpdateIntervalSeconds int            `yaml:"updateIntervalSeconds"`
	Options               map[string]any `yaml:"options"`
}

// DatasourceYAML is Grafana's datasource provisioning file: Prometheus (the default,
// which every panel names by its uid), Tempo and Loki.
func DatasourceYAML() ([]byte, error) {
	return marshalYAML(datasourceFile{APIVersion: 1, Datasources: []datasourceEntry{
		{Name: "Prometheus", Type: "prometheus", UID: DatasourceUID, Access: "proxy", URL: PrometheusURL,
			IsDefault: true, JSONData: map[string]any{"httpMethod": "POST", "timeInterval": "15s"}},
		{Name: "Tempo", Type: "tempo", UID: "tempo", Access: "proxy", URL: TempoURL,
			JSONData: map[string]any{"serviceMap": map[string]any{"datasourceUid": DatasourceUID}}},
		{Name: "Loki", Type: "loki", UID: "loki", Access: "proxy", URL: LokiURL, JSONData: map[string]any{}},
	}})
}

// DashboardProviderYAML is Grafana's dashboard provisioning file: the dashboards are
// read from DashboardsPath into the Tasker folder, and cannot be changed from the UI.
func DashboardProviderYAML() ([]byte, error) {
	return marshalYAML(providerFile{APIVersion: 1, Providers: []provider{{
		Name: "tasker", OrgID: 1, Folder: DashboardsFolder, Type: "file", DisableDeletion: true,
		UpdateIntervalSeconds: 30, Options: map[string]any{"path": DashboardsPath},
	}}})
}

func marshalYAML(v any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(generatedHeader)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
