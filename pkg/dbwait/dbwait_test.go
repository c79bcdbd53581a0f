package dbwait_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/dbwait"
)

var errRefused = errors.New("dial tcp 127.0.0.1:1: connect: connection refused")

// syncBuffer collects log lines written from the goroutine under test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func logger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestWaitSucceedsOnceTheDatabaseAnswers(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	tries := 0
	err := dbwait.Wait(context.Background(), func(context.Context) error {
		tries++
		if tries < 4 {
			return errRefused
		}
		return nil
	}, dbwait.Options{URL: "postgres://tasker:s3cret@db:5432/tasker", Limit: 10 * time.Second,
		FirstDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond, Logger: logger(&buf)})
	require.NoError(t, err)
	require.Equal(t, 4, tries)
	logs := buf.String()
	require.Equal(t, 3, strings.Count(logs, "database not reachable yet; retrying"), logs)
	require.Contains(t, logs, "attempt=3")
	require.Contains(t, logs, "connection refused")
	require.Contains(t, logs, "database reachable")
	require.Contains(t, logs, "postgres://tasker:xxxxx@db:5432/tasker")
	require.NotContains(t, logs, "s3cret")
}

func TestWaitGivesUpAndNamesTheRedactedURL(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	var gaps []time.Duration
	last := time.Now()
	start := last
	err := dbwait.Wait(context.Background(), func(context.Context) error {
		gaps = append(gaps, time.Since(last))
		last = time.Now()
		return errRefused
	}, dbwait.Options{URL: "postgres://tasker:s3cret@db:5432/tasker?sslmode=disable", Limit: 300 * time.Millisecond,
		FirstDelay: 20 * time.Millisecond, MaxDelay: 80 * time.Millisecond, Logger: logger(&buf),
		Hint: "TASKER_DATABASE_WAIT raises the limit"})
	elapsed := time.Since(start)
	require.ErrorIs(t, err, dbwait.ErrUnreachable)
	require.ErrorIs(t, err, errRefused, "the last connection error is kept")
	msg := err.Error()
	require.Contains(t, msg, "postgres://tasker:xxxxx@db:5432/tasker?sslmode=disable")
	require.NotContains(t, msg, "s3cret")
	require.Contains(t, msg, "TASKER_DATABASE_WAIT raises the limit")
	require.Regexp(t, `after \d+ tries in `, msg)
	require.GreaterOrEqual(t, elapsed, 300*time.Millisecond)
	require.Less(t, elapsed, 2*time.Second, "the limit bounds the wait")
	// Backoff: the pauses grow (20, 40, 80, 80 ms ...) rather than hammering the server.
	require.GreaterOrEqual(t, len(gaps), 4)
	require.GreaterOrEqual(t, gaps[2], 35*time.Millisecond)
	require.GreaterOrEqual(t, gaps[3], 70*time.Millisecond)
	require.NotContains(t, buf.String(), "s3cret")
}

func TestWaitWithANegativeLimitTriesOnce(t *testing.T) {
	t.Parallel()
	tries := 0
	err := dbwait.Wait(context.Background(), func(context.Context) error {
		tries++
		return errRefused
	}, dbwait.Options{URL: "postgres://u@h/db", Limit: -1})
	require.ErrorIs(t, err, dbwait.ErrUnreachable)
	require.Equal(t, 1, tries)
	require.Contains(t, err.Error(), "after 1 try in")
}

func TestWaitStopsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	tries := 0
	done := make(chan error, 1)
	go func() {
		done <- dbwait.Wait(ctx, func(context.Context) error {
			tries++
			if tries == 2 {
				cancel()
			}
			return errRefused
		}, dbwait.Options{URL: "postgres://u@h/db", Limit: time.Hour, FirstDelay: time.Millisecond})
	}()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, dbwait.ErrUnreachable)
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not stop when its context ended")
	}
}

func TestEachTryIsBounded(t *testing.T) {
	t.Parallel()
	start := time.Now()
	err := dbwait.Wait(context.Background(), func(ctx context.Context) error {
		<-ctx.Done() // an address that never answers
		return ctx.Err()
	}, dbwait.Options{URL: "postgres://u@h/db", Limit: 1500 * time.Millisecond, TryTimeout: 200 * time.Millisecond,
		FirstDelay: 10 * time.Millisecond})
	require.ErrorIs(t, err, dbwait.ErrUnreachable)
	require.Less(t, time.Since(start), 4*time.Second)
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://tasker:s3cret@postgres:5432/tasker?sslmode=disable": "postgres://tasker:xxxxx@postgres:5432/tasker?sslmode=disable",
		"postgres://tasker@postgres:5432/tasker":                        "postgres://tasker@postgres:5432/tasker",
		"postgres://u@h/db?password=s3cret&sslmode=disable":             "postgres://u@h/db?password=xxxxx&sslmode=disable",
		"host=db user=tasker password=s3cret dbname=tasker":             "host=db user=tasker password=xxxxx dbname=tasker",
		"host=db password='s3 cret' dbname=tasker":                      "host=db password=xxxxx dbname=tasker",
		"postgres://u:s3cret@[::1:bad/db":                               "(an unparsable database URL, not shown)",
	} {
		require.Equal(t, want, dbwait.Redact(in), in)
	}
}
