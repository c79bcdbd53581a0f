package messaging

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// gatherWithin runs Gather on its own goroutine and fails the test if it has not
// returned by the deadline.
func gatherWithin(t *testing.T, d time.Duration, ch <-chan int, first, max int, linger time.Duration) []int {
	t.Helper()
	done := make(chan []int, 1)
	go func() { done <- Gather(ch, first, max, linger) }()
	select {
	case got := <-done:
		return got
	case <-time.After(d):
		t.Fatalf("Gather did not return within %v", d)
		return nil
	}
}

func TestGatherReturnsALoneDeliveryAtOnce(t *testing.T) {
	t.Parallel()
	ch := make(chan int, 10)
	// An hour's linger: only returning without lingering passes.
	require.Equal(t, []int{1}, gatherWithin(t, 10*time.Second, ch, 1, 10, time.Hour))
}

func TestGatherTakesWhatWaitsAndLingersForMoreUpToMax(t *testing.T) {
	t.Parallel()
	ch := make(chan int, 20)
	ch <- 2
	go func() {
		for i := 3; i <= 12; i++ {
			ch <- i
		}
	}()
	// Something was waiting, so it lingers (for an hour at most) until max is reached.
	got := gatherWithin(t, 10*time.Second, ch, 1, 5, time.Hour)
	require.Equal(t, []int{1, 2, 3, 4, 5}, got)
}

func TestGatherStopsLingeringWhenTheLingerEnds(t *testing.T) {
	t.Parallel()
	ch := make(chan int, 20)
	ch <- 2
	got := gatherWithin(t, 10*time.Second, ch, 1, 5, time.Millisecond)
	require.Equal(t, []int{1, 2}, got)
}
