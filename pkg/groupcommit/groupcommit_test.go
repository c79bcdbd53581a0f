package groupcommit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Run that doubles each item and records the batches it saw. While hold is
// set, each batch waits for a release first.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	hold    chan struct{}
	fail    func(batch []int) error
}

func (r *recorder) run(_ context.Context, batch []int) ([]int, error) {
	r.mu.Lock()
	r.batches = append(r.batches, append([]int(nil), batch...))
	hold := r.hold
	r.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if r.fail != nil {
		if err := r.fail(batch); err != nil {
			return nil, err
		}
	}
	out := make([]int, len(batch))
	for i, v := range batch {
		out[i] = v * 2
	}
	return out, nil
}

func (r *recorder) seen() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]int(nil), r.batches...)
}

func (g *Group[T, R]) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.pending)
}

func TestLoneCallRunsAtOnceAlone(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	// A linger far longer than the test's deadline: a lone call must not wait for it.
	g := New(rec.run, 8, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := g.Do(ctx, 21)
	require.NoError(t, err)
	require.Equal(t, 42, got)
	require.Equal(t, [][]int{{21}}, rec.seen())
}

func TestCallsArrivingDuringABatchShareTheNext(t *testing.T) {
	t.Parallel()
	rec := &recorder{hold: make(chan struct{})}
	g := New(rec.run, 8, 0)
	ctx := context.Background()
	results := make([]int, 6)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); results[0], _ = g.Do(ctx, 0) }()
	require.Eventually(t, func() bool { return len(rec.seen()) == 1 }, 5*time.Second, time.Millisecond,
		"the first call runs its batch")
	for i := 1; i < 6; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); results[i], _ = g.Do(ctx, i) }()
	}
	require.Eventually(t, func() bool { return g.waiting() == 5 }, 5*time.Second, time.Millisecond,
		"five calls queue behind the batch in flight")
	close(rec.hold)
	wg.Wait()
	batches := rec.seen()
	require.Len(t, batches, 2, "the five waiting calls went in one batch")
	require.Equal(t, []int{0}, batches[0])
	require.ElementsMatch(t, []int{1, 2, 3, 4, 5}, batches[1])
	require.Equal(t, []int{0, 2, 4, 6, 8, 10}, results)
}

func TestBatchesAreBoundedByMax(t *testing.T) {
	t.Parallel()
	rec := &recorder{hold: make(chan struct{})}
	g := New(rec.run, 2, 0)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = g.Do(ctx, i) }()
	}
	require.Eventually(t, func() bool { return len(rec.seen()) == 1 && g.waiting() == 4 }, 5*time.Second,
		time.Millisecond)
	close(rec.hold)
	wg.Wait()
	for _, b := range rec.seen() {
		require.LessOrEqual(t, len(b), 2)
	}
}

func TestAFailedBatchIsRetriedItemByItem(t *testing.T) {
	t.Parallel()
	bad := errors.New("item 3 is bad")
	rec := &recorder{hold: make(chan struct{}), fail: func(batch []int) error {
		for _, v := range batch {
			if v == 3 {
				return bad
			}
		}
		return nil
	}}
	g := New(rec.run, 8, 0)
	ctx := context.Background()
	type outcome struct {
		v   int
		err error
	}
	outcomes := make([]outcome, 5)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); v, err := g.Do(ctx, 0); outcomes[0] = outcome{v, err} }()
	require.Eventually(t, func() bool { return len(rec.seen()) == 1 }, 5*time.Second, time.Millisecond)
	for i := 1; i < 5; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); v, err := g.Do(ctx, i); outcomes[i] = outcome{v, err} }()
	}
	require.Eventually(t, func() bool { return g.waiting() == 4 }, 5*time.Second, time.Millisecond)
	close(rec.hold)
	wg.Wait()
	for i, o := range outcomes {
		if i == 3 {
			require.ErrorIs(t, o.err, bad)
			continue
		}
		require.NoError(t, o.err, "item %d", i)
		require.Equal(t, i*2, o.v)
	}
	// The first batch alone, the failed batch of four, then each of the four alone.
	require.Len(t, rec.seen(), 6)
}

func TestARunThatMiscountsFailsItsCallersWithoutRunningAgain(t *testing.T) {
	t.Parallel()
	calls := 0
	g := New(func(context.Context, []int) ([]int, error) { calls++; return nil, nil }, 4, 0)
	_, err := g.Do(context.Background(), 1)
	require.ErrorContains(t, err, "a batch of 1 items returned 0 results")
	require.Equal(t, 1, calls)
}

func TestACancelledCallerStillGetsItsBatchOutcome(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	g := New(rec.run, 4, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := g.Do(ctx, 4)
	require.NoError(t, err, "the batch runs without the caller's cancellation")
	require.Equal(t, 8, got)
}
