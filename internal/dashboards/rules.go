package dashboards

import (
	"fmt"
	"regexp"
	"slices"
)

// RuleGroup is the name of the alert rules' group.
const RuleGroup = "tasker"

type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name  string `yaml:"name"`
	Rules []rule `yaml:"rules"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// Annotations returns the alert's annotations: a summary that names the dashboard panel
// it relates to, the description, and the dashboard's path.
func (a Alert) Annotations() (map[string]string, error) {
	d, ok := findDashboard(a.Dashboard)
	if !ok {
		return nil, fmt.Errorf("alert %s: dashboard %q: no dashboard has that uid", a.Name, a.Dashboard)
	}
	if _, ok := d.Panel(a.Panel); !ok {
		return nil, fmt.Errorf("alert %s: panel %q: dashboard %s has no panel with that title", a.Name, a.Panel, a.Dashboard)
	}
	return map[string]string{
		"summary":     fmt.Sprintf("%s (panel %q on dashboard %q)", a.Summary, a.Panel, d.Title),
		"description": a.Description,
		"dashboard":   "/d/" + d.UID,
	}, nil
}

func findDashboard(uid string) (Dashboard, bool) {
	ds := Dashboards()
	i := slices.IndexFunc(ds, func(d Dashboard) bool { return d.UID == uid })
	if i < 0 {
		return Dashboard{}, false
	}
	return ds[i], true
}

// AlertsYAML renders the Prometheus rule file.
func AlertsYAML() ([]byte, error) {
	group := ruleGroup{Name: RuleGroup}
	for _, a := range Alerts() {
		annotations, err := a.Annotations()
		if err != nil {
			return nil, err
		}
		r := rule{Alert: a.Name, Expr: a.Expr, Labels: map[string]string{"severity": a.Severity}, Annotations: annotations}
		if a.For > 0 {
			r.For = duration(a.For)
		}
		group.Rules = append(group.Rules, r)
	}
	return marshalYAML(ruleFile{Groups: []ruleGroup{group}})
}

type unitTestFile struct {
	RuleFiles          []string    `yaml:"rule_files"`
	EvaluationInterval string      `yaml:"evaluation_interval"`
	Tests              []testGroup `yaml:"tests"`
}

type testGroup struct {
	Name          string          `yaml:"name"`
	Interval      string          `yaml:"interval"`
	InputSeries   []InputSeries   `yaml:"input_series"`
	AlertRuleTest []alertRuleTest `yaml:"alert_rule_test"`
}

type alertRuleTest struct {
	EvalTime  string     `yaml:"eval_time"`
	Alertname string     `yaml:"alertname"`
	ExpAlerts []expAlert `yaml:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

// AlertsTestYAML renders the promtool unit tests of the rule file (promtool test rules):
// each alert fires, with its labels and expanded annotations, on each firing case, and
// stays silent on the healthy series.
func AlertsTestYAML() ([]byte, error) {
	file := unitTestFile{RuleFiles: []string{"alerts.yml"}, EvaluationInterval: "1m"}
	for _, a := range Alerts() {
		groups, err := unitTests(a)
		if err != nil {
			return nil, err
		}
		file.Tests = append(file.Tests, groups...)
	}
	return marshalYAML(file)
}

func unitTests(a Alert) ([]testGroup, error) {
	annotations, err := a.Annotations()
	if err != nil {
		return nil, err
	}
	at := duration(a.EvalAt())
	var out []testGroup
	for i, c := range a.Test.Firing {
		labels := map[string]string{"severity": a.Severity}
		for k, v := range c.Labels {
			labels[k] = v
		}
		expanded := map[string]string{}
		for k, v := range annotations {
			if expanded[k], err = expand(v, labels); err != nil {
				return nil, fmt.Errorf("alert %s annotation %s: %w", a.Name, k, err)
			}
		}
		out = append(out, testGroup{Name: fmt.Sprintf("%s fires (case %d)", a.Name, i+1), Interval: "1m",
			InputSeries: c.Series, AlertRuleTest: []alertRuleTest{{EvalTime: at, Alertname: a.Name,
				ExpAlerts: []expAlert{{ExpLabels: labels, ExpAnnotations: expanded}}}}})
	}
	if len(out) == 0 || len(a.Test.Healthy) == 0 {
		return nil, fmt.Errorf("alert %s test: needs at least one firing case and healthy series", a.Name)
	}
	return append(out, testGroup{Name: a.Name + " stays silent when healthy", Interval: "1m",
		InputSeries:   a.Test.Healthy,
		AlertRuleTest: []alertRuleTest{{EvalTime: at, Alertname: a.Name, ExpAlerts: []expAlert{}}}}), nil
}

var labelRef = regexp.MustCompile(`\{\{ \$labels\.([a-zA-Z_][a-zA-Z0-9_]*) \}\}`)

// expand fills {{ $labels.NAME }} as Prometheus would for an alert with these labels;
// it is the only template the annotations use.
func expand(text string, labels map[string]string) (string, error) {
	var missing []string
	out := labelRef.ReplaceAllStringFunc(text, func(ref string) string {
		name := labelRef.FindStringSubmatch(ref)[1]
		v, ok := labels[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("uses $labels.%s, which the firing alert does not have", missing[0])
	}
	return out, nil
}
