package faults

import (
	"io"
	"net/http"

	"github.com/tasker-sim/tasker-sim/pkg/api"
)

// Handler serves GET (the current faults) and POST (replace them; an empty object clears
// them) for a process's /admin/faults.
func Handler(s *Switch) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
		case http.MethodPost, http.MethodPut:
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<16))
			if err == nil {
				var f Faults
				if f, err = Parse(body); err == nil {
					err = s.Set(f)
				}
			}
			if err != nil {
				api.WriteError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
				return
			}
		default:
			w.Header().Set("Allow", "GET, POST")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		api.WriteJSON(w, http.StatusOK, s.Get())
	})
}
