package worker

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/tasker-sim/tasker-sim/pkg/api"
)

// workerCapabilities is the fixed worker_capabilities of GET /v1/templates.
var workerCapabilities = []string{"command_processing", "database_access", "message_queues"}

// templateRoutes registers the worker's template routes on mux, behind the bearer token.
func (w *Worker) templateRoutes(mux *http.ServeMux) {
	mux.Handle("GET /v1/templates", api.RequireBearer(w.cfg.AuthToken, http.HandlerFunc(w.handleTemplates)))
	mux.Handle("GET /v1/templates/{namespace}/{name}/{version}",
		api.RequireBearer(w.cfg.AuthToken, http.HandlerFunc(w.handleTemplate)))
}

// servesNamespace reports whether the worker serves the namespace's queue.
func (w *Worker) servesNamespace(ns string) bool { return slices.Contains(w.cfg.Namespaces, ns) }

// handleTemplates answers GET /v1/templates: the namespaces the worker serves and how many
// of its templates belong to them. As in tasker-core, ?namespace= and
// ?include_cache_stats= are accepted and ignored; cache_stats is always null.
func (w *Worker) handleTemplates(rw http.ResponseWriter, _ *http.Request) {
	namespaces := slices.Sorted(slices.Values(w.cfg.Namespaces))
	count := 0
	for _, t := range w.templates {
		if w.servesNamespace(t.NamespaceName) {
			count++
		}
	}
	api.WriteJSON(rw, http.StatusOK, api.WorkerTemplateList{SupportedNamespaces: namespaces, TemplateCount: count,
		CacheStats: json.RawMessage("null"), WorkerCapabilities: workerCapabilities})
}

// handleTemplate answers GET /v1/templates/{namespace}/{name}/{version} with a template of
// a namespace the worker serves.
func (w *Worker) handleTemplate(rw http.ResponseWriter, r *http.Request) {
	ns, name, version := r.PathValue("namespace"), r.PathValue("name"), r.PathValue("version")
	if msg := api.CheckTemplatePath(ns, name, version); msg != "" {
		api.WriteError(rw, http.StatusBadRequest, api.CodeBadRequest, msg)
		return
	}
	key := ns + "/" + name + "/" + version
	t := w.templates[key]
	if t == nil || !w.servesNamespace(ns) {
		api.WriteError(rw, http.StatusNotFound, api.CodeNotFound, "template "+key+" is not served by this worker")
		return
	}
	doc, err := json.Marshal(t)
	if err != nil {
		api.WriteError(rw, http.StatusInternalServerError, api.CodeInternal, "template "+key+": "+err.Error())
		return
	}
	meta := api.HandlerMetadata{Namespace: ns, Name: name, Version: version, RegisteredAt: w.started.UTC()}
	if len(t.Steps) > 0 {
		meta.HandlerClass = t.Steps[0].Handler.Callable
	}
	api.WriteJSON(rw, http.StatusOK, api.WorkerTemplate{Template: doc, HandlerMetadata: meta, Cached: true})
}
