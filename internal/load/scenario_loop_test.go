package load

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// post is one POST /admin/faults a fake process received: its body and when.
type post struct {
	doc string
	at  time.Duration
}

// faultsRecorder is a process that only records the fault documents it is sent.
func faultsRecorder(t *testing.T, start *time.Time) (string, func() []post) {
	t.Helper()
	var (
		mu    sync.Mutex
		posts []post
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts = append(posts, post{string(body), time.Since(*start)})
		mu.Unlock()
		_, _ = w.Write([]byte("{}"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []post {
		mu.Lock()
		defer mu.Unlock()
		return append([]post(nil), posts...)
	}
}

// A looping scenario runs its phases again every Period while the run lasts, with the
// faults cleared between rounds, and clears them at the end; without Loop it runs once.
func TestScenarioLoopRepeatsThePhases(t *testing.T) {
	t.Parallel()
	sc := &Scenario{Name: "loop", Loop: true, Phases: []Phase{
		{Name: "flaky", At: 0, For: 40 * time.Second, Target: TargetWorker, Faults: map[string]any{"error_rate": 0.5}},
		{Name: "slow", At: 20 * time.Second, For: 20 * time.Second, Target: TargetWorker, Faults: map[string]any{"latency_ms": map[string]any{"min": 1, "max": 2}}},
	}}
	require.Equal(t, 40*time.Second+LoopGap, sc.Period())
	half := sc.Speed(2)
	require.True(t, half.Loop, "Speed keeps Loop")
	require.Equal(t, 20*time.Second+LoopGap/2, half.Period(), "and shortens the gap too")
	// Phases of 400 ms and 200 ms and a 600 ms gap: a round every second.
	fast := &Scenario{Name: "fast", Loop: true, gap: 600 * time.Millisecond, Phases: []Phase{
		{Name: "flaky", At: 0, For: 400 * time.Millisecond, Target: TargetWorker, Faults: sc.Phases[0].Faults},
		{Name: "slow", At: 200 * time.Millisecond, For: 200 * time.Millisecond, Target: TargetWorker, Faults: sc.Phases[1].Faults},
	}}
	require.Equal(t, time.Second, fast.Period())

	start := time.Now()
	url, posts := faultsRecorder(t, &start)
	ctx, cancel := context.WithTimeout(context.Background(), 2700*time.Millisecond) // rounds at 0, 1 and 2 s
	defer cancel()
	newApplier(fast, Targets{TargetWorker: {url}}, "").run(ctx, start)

	const (
		flaky = `{"error_rate":0.5}`
		both  = `{"error_rate":0.5,"latency_ms":{"max":2,"min":1}}`
		none  = `{}`
	)
	var docs []string
	for _, p := range posts() {
		docs = append(docs, p.doc)
	}
	require.Equal(t, []string{flaky, both, none, flaky, both, none, flaky, both, none}, docs,
		"three rounds; the run ended in a gap, when nothing was set, so there was nothing more to clear")
	ps := posts()
	for i, want := range []time.Duration{0, 200, 400, 1000, 1200, 1400, 2000, 2200, 2400} {
		want *= time.Millisecond // never early, and late only by scheduling
		require.True(t, ps[i].at > want-10*time.Millisecond && ps[i].at < want+150*time.Millisecond,
			"post %d (%s) at %s, not %s", i, ps[i].doc, ps[i].at, want)
	}

	// Without Loop: once.
	once := *fast
	once.Loop = false
	start = time.Now()
	url, posts = faultsRecorder(t, &start)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel2()
	newApplier(&once, Targets{TargetWorker: {url}}, "").run(ctx2, start)
	docs = nil
	for _, p := range posts() {
		docs = append(docs, p.doc)
	}
	require.Equal(t, []string{flaky, both, none}, docs)

	start = time.Now()
	url, posts = faultsRecorder(t, &start)
	ctx3, cancel3 := context.WithTimeout(context.Background(), 1100*time.Millisecond) // stops inside round two
	defer cancel3()
	newApplier(fast, Targets{TargetWorker: {url}}, "").run(ctx3, start)
	docs = nil
	for _, p := range posts() {
		docs = append(docs, p.doc)
	}
	require.Equal(t, []string{flaky, both, none, flaky, none}, docs, "stopped mid-round: the faults are cleared")
}
