package contract

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"

	"github.com/tasker-sim/tasker-sim/pkg/api"
)

// Recorder is an http.RoundTripper that checks every answer passing through it against the
// Document of the service that answered (by api.ServiceHeader) and keeps what it found. An
// answer from a service without a document is not judged. It never changes an exchange.
type Recorder struct {
	Docs map[string]*Document
	Next http.RoundTripper

	mu         sync.Mutex
	checked    map[string]int // by "METHOD template status"
	violations []string
	skipped    map[string]int // undocumented routes, by "METHOD path"
}

// RoundTrip sends req through Next, then checks the answer.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.Next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, rerr := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if rerr != nil {
		return nil, fmt.Errorf("contract: read the answer to %s %s: %w", req.Method, req.URL.Path, rerr)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if doc := r.Docs[resp.Header.Get(api.ServiceHeader)]; doc != nil {
		r.record(doc, req.Method, req.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return resp, nil
}

func (r *Recorder) record(doc *Document, method, path string, status int, contentType string, body []byte) {
	err := doc.Check(method, path, status, contentType, body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checked == nil {
		r.checked, r.skipped = map[string]int{}, map[string]int{}
	}
	switch {
	case errors.Is(err, ErrUndocumented):
		r.skipped[method+" "+path]++
	case err != nil:
		r.violations = append(r.violations, err.Error())
	default:
		tmpl, _ := doc.Route(path)
		r.checked[fmt.Sprintf("%s %s %d", method, tmpl, status)]++
	}
}

// Violations returns what failed the contract, in the order it happened.
func (r *Recorder) Violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.violations...)
}

// Checked returns the "METHOD route status" exchanges that passed, sorted, with counts.
func (r *Recorder) Checked() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.checked))
	for k, n := range r.checked {
		out = append(out, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(out)
	return out
}
