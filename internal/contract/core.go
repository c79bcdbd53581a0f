package contract

import (
	"fmt"
	"path/filepath"
	"runtime"
)

// CoreDocument is the path of the pinned copy of tasker-core's orchestration API document.
func CoreDocument() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "tasker-core", "orchestration-openapi.yaml")
}

// apiErrorWire is the error body tasker-core sends (and tasker-sim too).
var apiErrorWire = map[string]any{
	"type": "object", "required": []any{"error"},
	"properties": map[string]any{"error": map[string]any{
		"type": "object", "required": []any{"code", "message"},
		"properties": map[string]any{
			"code":                map[string]any{"type": "string"},
			"message":             map[string]any{"type": "string"},
			"retry_after_seconds": map[string]any{"type": "integer"},
		},
	}},
}

// errorResponse documents a status whose body is the error body.
func errorResponse(what string) map[string]any {
	return map[string]any{"description": what, "content": map[string]any{"application/json": map[string]any{
		"schema": map[string]any{"$ref": "#/components/schemas/ApiError"}}}}
}

// addResponse documents status on method path with the error body.
func addResponse(doc map[string]any, path, method, status, what string) error {
	op := lookup(doc, "paths", path, method)
	if op == nil {
		return fmt.Errorf("no operation %s %s", method, path)
	}
	responses, ok := op["responses"].(map[string]any)
	if !ok {
		return fmt.Errorf("%s %s has no responses", method, path)
	}
	if _, set := responses[status]; !set {
		responses[status] = errorResponse(what)
	}
	return nil
}

// movePath renames a path of the document.
func movePath(doc map[string]any, from, to string) error {
	paths, _ := doc["paths"].(map[string]any)
	item, ok := paths[from]
	if !ok {
		return fmt.Errorf("no path %s", from)
	}
	delete(paths, from)
	paths[to] = item
	return nil
}

// CoreErrata correct tasker-core's document (commit c8733f95) where tasker-core itself
// answers otherwise, as read in its handlers.
var CoreErrata = []Erratum{
	{"tasker-core sends errors as {\"error\": {\"code\", \"message\"}}; the document shows the Rust enum's rendering",
		func(doc map[string]any) error {
			schemas := lookup(doc, "components", "schemas")
			if schemas == nil {
				return fmt.Errorf("no components.schemas")
			}
			schemas["ApiError"] = apiErrorWire
			return nil
		}},
	{"tasker-core serves /health/ready and /health/live; the document says /ready and /live",
		func(doc map[string]any) error {
			if err := movePath(doc, "/ready", "/health/ready"); err != nil {
				return err
			}
			return movePath(doc, "/live", "/health/live")
		}},
	{"tasker-core answers POST /v1/tasks with 404 for an unknown template and 409 for a duplicate identity",
		func(doc map[string]any) error {
			if err := addResponse(doc, "/v1/tasks", "post", "404", "Template not found"); err != nil {
				return err
			}
			return addResponse(doc, "/v1/tasks", "post", "409", "A task with this identity exists")
		}},
	{"tasker-core answers GET /v1/tasks/{uuid} with 400 INVALID_UUID for a malformed uuid",
		func(doc map[string]any) error {
			return addResponse(doc, "/v1/tasks/{uuid}", "get", "400", "Invalid UUID")
		}},
}

// SimExtensions document where tasker-sim deliberately answers more than tasker-core: each
// is a choice the README's compatibility table explains.
var SimExtensions = []Erratum{
	{"tasker-sim refuses request bodies over its limit with 413", func(doc map[string]any) error {
		return addResponse(doc, "/v1/tasks", "post", "413", "Request body too large")
	}},
	{"tasker-sim answers 404 for the steps of a task that does not exist (tasker-core: 200 [])",
		func(doc map[string]any) error {
			return addResponse(doc, "/v1/tasks/{uuid}/workflow_steps", "get", "404", "Task not found")
		}},
	{"tasker-sim's steps also name their dependencies and say whether they are retryable",
		func(doc map[string]any) error {
			props := lookup(doc, "components", "schemas", "StepResponse", "properties")
			if props == nil {
				return fmt.Errorf("no StepResponse properties")
			}
			props["dependencies"] = map[string]any{"type": "array", "items": map[string]any{"type": "string"}}
			props["retryable"] = map[string]any{"type": "boolean"}
			return nil
		}},
}
