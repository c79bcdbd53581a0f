package contract

import (
	_ "embed" // the pinned documents
	"fmt"
	"net/http"
	"sync"

	"github.com/tasker-sim/tasker-sim/pkg/api"
)

// The pinned copies of tasker-core's API documents, built into the binaries.
var (
	//go:embed testdata/tasker-core/orchestration-openapi.yaml
	coreOrchestration []byte
	//go:embed testdata/tasker-core/worker-openapi.yaml
	coreWorker []byte
)

// OrchestrationDocument is tasker-sim's orchestration API: tasker-core's document with
// CoreErrata, SimExtensions and SimRoutes applied. The orchestrator serves it at
// /api-docs/openapi.json, and the e2e suite checks every answer against it, so the served
// document and the checked behaviour are one.
func OrchestrationDocument() (*Document, error) { return orchestrationDocument() }

var orchestrationDocument = sync.OnceValues(func() (*Document, error) {
	errata := append(append(append([]Erratum{}, CoreErrata...), SimExtensions...), SimRoutes...)
	return parse("orchestration-openapi.yaml", coreOrchestration, errata...)
})

// WorkerDocument is tasker-sim's worker API: tasker-core's worker document with
// WorkerSimExtensions applied.
func WorkerDocument() (*Document, error) { return workerDocument() }

var workerDocument = sync.OnceValues(func() (*Document, error) {
	return parse("worker-openapi.yaml", coreWorker, WorkerSimExtensions...)
})

// Serve answers with the document load returns: the API's OpenAPI document, as JSON.
func Serve(load func() (*Document, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		doc, err := load()
		if err != nil {
			api.WriteError(w, http.StatusInternalServerError, api.CodeInternal, "the API document does not load: "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc.JSON())
	}
}

// SimRoutes document the routes only tasker-sim has.
var SimRoutes = []Erratum{
	{"tasker-sim's POST /v1/tasks/wait watches many tasks with one long poll", func(doc map[string]any) error {
		paths, _ := doc["paths"].(map[string]any)
		if paths == nil {
			return fmt.Errorf("no paths")
		}
		ids := map[string]any{"type": "array", "items": map[string]any{"type": "string"}}
		paths["/v1/tasks/wait"] = map[string]any{"post": map[string]any{
			"tags":    []any{"tasks"},
			"summary": "Wait for any of many tasks to settle (tasker-sim)",
			"requestBody": map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{
				"schema": map[string]any{"type": "object", "required": []any{"task_uuids"}, "properties": map[string]any{
					"task_uuids": ids, "timeout_ms": map[string]any{"type": "integer", "minimum": 0}}}}}},
			"responses": map[string]any{
				"200": map[string]any{"description": "The settled and unknown tasks among those asked for",
					"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{
						"type": "object", "required": []any{"finished", "not_found"}, "properties": map[string]any{
							"finished": map[string]any{"type": "array", "items": map[string]any{
								"type": "object", "required": []any{"task_uuid", "status"},
								"properties": map[string]any{"task_uuid": map[string]any{"type": "string"},
									"status": map[string]any{"type": "string"}}}},
							"not_found": ids}}}}},
				"400": errorResponse("Bad request"),
				"401": errorResponse("Authentication required"),
				"503": errorResponse("Service unavailable"),
			}}}
		return nil
	}},
}
