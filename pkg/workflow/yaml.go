package workflow

import (
	"fmt"

	"sigs.k8s.io/yaml"
)

// ParseYAML decodes and validates a YAML template in tasker-core's format. The YAML is
// turned into JSON first, so Parse's checks apply unchanged; a key given twice in one
// mapping is an error.
func ParseYAML(doc []byte) (*Template, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return Parse(js)
}
