package contract

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// CoreDocument is the path of the pinned copy of tasker-core's orchestration API document.
func CoreDocument() string { return pinned("orchestration-openapi.yaml") }

// CoreWorkerDocument is the path of the pinned copy of tasker-core's worker API document.
func CoreWorkerDocument() string { return pinned("worker-openapi.yaml") }

func pinned(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "tasker-core", name)
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

// addToAll documents status with the error body on every operation whose path starts
// with prefix.
func addToAll(doc map[string]any, prefix, status, what string) error {
	paths, _ := doc["paths"].(map[string]any)
	n := 0
	for p, item := range paths {
		ops, _ := item.(map[string]any)
		if !strings.HasPrefix(p, prefix) || ops == nil {
			continue
		}
		for method := range ops {
			if err := addResponse(doc, p, method, status, what); err == nil {
				n++
			}
		}
	}
	if n == 0 {
		return fmt.Errorf("no operation under %s", prefix)
	}
	return nil
}

// addProperty documents an extra property of a component schema.
func addProperty(doc map[string]any, schema, name string, prop map[string]any) error {
	props := lookup(doc, "components", "schemas", schema, "properties")
	if props == nil {
		return fmt.Errorf("no %s properties", schema)
	}
	props[name] = prop
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
	{"tasker-core answers 500 DATABASE_ERROR from every task and step route when the database fails",
		func(doc map[string]any) error { return addToAll(doc, "/v1/tasks", "500", "Database error") }},
	{"tasker-core answers 400 to a malformed path or query parameter on every /v1 route (its extractors)",
		func(doc map[string]any) error { return addToAll(doc, "/v1/", "400", "Bad request") }},
	{"tasker-core sends each template step's result_schema (added after the document was generated)",
		func(doc map[string]any) error {
			return addProperty(doc, "StepDefinition", "result_schema", map[string]any{})
		}},
	{"tasker-core serves GET /v1/tasks/{uuid}/summary (added after the document was generated)",
		addTaskSummary},
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
	{"tasker-sim answers 409 when a DLQ update would give a task a second pending entry (tasker-core: 500)",
		func(doc map[string]any) error {
			return addResponse(doc, "/v1/dlq/entry/{dlq_entry_uuid}", "patch", "409", "Conflict")
		}},
	{"tasker-sim's staleness rows also give exact seconds, since its thresholds can be under a minute",
		func(doc map[string]any) error {
			if err := addProperty(doc, "StalenessMonitoring", "time_in_state_seconds", map[string]any{"type": "number"}); err != nil {
				return err
			}
			return addProperty(doc, "StalenessMonitoring", "staleness_threshold_seconds", map[string]any{"type": "number"})
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

// WorkerSimExtensions document where tasker-sim's worker answers otherwise than
// tasker-core's worker document says.
var WorkerSimExtensions = []Erratum{
	{"tasker-sim's worker answers a not-ready probe with the same error body as its orchestrator " +
		"({\"error\": {\"code\", \"message\"}}); tasker-core's worker sends a flat one",
		func(doc map[string]any) error {
			op := lookup(doc, "paths", "/health/ready", "get")
			if op == nil {
				return fmt.Errorf("no GET /health/ready")
			}
			responses, _ := op["responses"].(map[string]any)
			if responses == nil {
				return fmt.Errorf("GET /health/ready has no responses")
			}
			responses["503"] = map[string]any{"description": "Not ready", "content": map[string]any{
				"application/json": map[string]any{"schema": apiErrorWire}}}
			return nil
		}},
}

// addTaskSummary documents GET /v1/tasks/{uuid}/summary (TAS-317) as tasker-core's
// handler answers it (crates/tasker-orchestration/src/web/handlers/tasks.rs, the types in
// crates/tasker-shared/src/types/api/orchestration.rs): 200 TaskSummaryResponse, 400
// INVALID_UUID, 404, and the errors every task route can answer.
func addTaskSummary(doc map[string]any) error {
	paths, _ := doc["paths"].(map[string]any)
	schemas := lookup(doc, "components", "schemas")
	if paths == nil || schemas == nil {
		return fmt.Errorf("no paths or components.schemas")
	}
	if _, has := paths["/v1/tasks/{uuid}/summary"]; has {
		return fmt.Errorf("the document already has /v1/tasks/{uuid}/summary; drop this erratum")
	}
	for name, schema := range taskSummarySchemas() {
		if _, taken := schemas[name]; taken {
			return fmt.Errorf("the document already has a schema %s", name)
		}
		schemas[name] = schema
	}
	responses := map[string]any{"200": map[string]any{"description": "Task summary", "content": map[string]any{
		"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/TaskSummaryResponse"}}}}}
	for status, what := range map[string]string{"400": "Invalid UUID", "401": "Authentication required",
		"403": "Insufficient permissions", "404": "Task not found", "500": "Database error", "503": "Service unavailable"} {
		responses[status] = errorResponse(what)
	}
	paths["/v1/tasks/{uuid}/summary"] = map[string]any{"get": map[string]any{"operationId": "get_task_summary",
		"responses": responses, "x-required-permission": "tasks:read"}}
	return nil
}

// taskSummarySchemas are the component schemas of TaskSummaryResponse, named TaskSummary*
// so as not to take the names of the document's own schemas (core's TemplateSummary is
// another type). Every field is required (none is skipped when empty); Option<T> fields
// are nullable.
func taskSummarySchemas() map[string]any {
	str, integer, boolean := schemaOf("string"), schemaOf("integer"), schemaOf("boolean")
	nullStr, nullInt := schemaOf("string", "null"), schemaOf("integer", "null")
	dateTime := map[string]any{"type": "string", "format": "date-time"}
	nullDateTime := map[string]any{"type": []any{"string", "null"}, "format": "date-time"}
	strList := map[string]any{"type": "array", "items": str}
	ref := func(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }
	return map[string]any{
		"TaskSummaryResponse": objectOf(map[string]any{"task": ref("TaskSummaryMetadata"),
			"template": ref("TaskSummaryTemplate"), "dlq": ref("TaskSummaryDlq"), "links": ref("TaskSummaryLinks"),
			"steps": map[string]any{"type": "array", "items": ref("TaskSummaryStep")}}),
		"TaskSummaryMetadata": objectOf(map[string]any{"task_uuid": str, "name": str, "namespace": str,
			"version": str, "status": str, "created_at": dateTime, "updated_at": dateTime, "completed_at": nullDateTime,
			"initiator": str, "source_system": str, "reason": str,
			"correlation_id": map[string]any{"type": "string", "format": "uuid"},
			"total_steps":    integer, "pending_steps": integer, "in_progress_steps": integer, "completed_steps": integer,
			"failed_steps": integer, "completion_percentage": schemaOf("number"), "health_status": str,
			"execution_status": str, "recommended_action": nullStr}),
		"TaskSummaryTemplate": objectOf(map[string]any{"steps": map[string]any{"type": "array", "items": ref("TaskSummaryTemplateStep")}}),
		"TaskSummaryTemplateStep": objectOf(map[string]any{"name": str, "step_type": str, "handler": str,
			"dependencies": strList, "retryable": boolean, "max_attempts": integer}),
		"TaskSummaryStep": objectOf(map[string]any{"step_uuid": str, "name": str, "current_state": str,
			"created_at": nullStr, "completed_at": nullStr, "last_attempted_at": nullStr, "attempts": integer,
			"max_attempts": integer, "dependencies_satisfied": boolean, "retry_eligible": boolean,
			"error": map[string]any{"oneOf": []any{schemaOf("null"), ref("TaskSummaryStepError")}}}),
		"TaskSummaryStepError": objectOf(map[string]any{"error_type": nullStr, "retryable": boolean, "status_code": nullInt}),
		"TaskSummaryDlq":       objectOf(map[string]any{"in_dlq": boolean, "dlq_reason": nullStr, "resolution_status": nullStr}),
		"TaskSummaryLinks":     objectOf(map[string]any{"task": str, "steps": str, "dlq": str}),
	}
}

// schemaOf is a schema of the given JSON types.
func schemaOf(types ...string) map[string]any {
	if len(types) == 1 {
		return map[string]any{"type": types[0]}
	}
	list := make([]any, len(types))
	for i, t := range types {
		list[i] = t
	}
	return map[string]any{"type": list}
}

// objectOf is an object schema that requires every one of its properties.
func objectOf(props map[string]any) map[string]any {
	required := make([]any, 0, len(props))
	for name := range props {
		required = append(required, name)
	}
	sort.Slice(required, func(i, j int) bool { return required[i].(string) < required[j].(string) })
	return map[string]any{"type": "object", "required": required, "properties": props}
}
