package faults

import (
	"encoding/json"
	"io"
	"net/http"
)

// Handler serves GET (the current faults) and POST (replace them; an empty object clears
// them) for a process's /admin/faults.
func Handler(s *Switch) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
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
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "bad_request", "message": err.Error()})
				return
			}
		default:
			w.Header().Set("Allow", "GET, POST")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		_ = json.NewEncoder(w).Encode(s.Get())
	})
}
