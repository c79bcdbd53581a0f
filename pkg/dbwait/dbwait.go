// Package dbwait lets a process that starts before its PostgreSQL (docker compose, a
// restarting host) wait for the database with bounded retries and backoff, instead of
// exiting at the first refused connection.
//
// The orchestrator and the worker open their pool with Connect, which calls Wait between
// creating the pool (which connects lazily) and the first statement (the migrations). Every failed try is logged; when the
// limit runs out the error names the database with its password redacted.
package dbwait

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults for Options.
const (
	// LimitDefault is how long a process waits for its database when nothing says
	// otherwise (TASKER_DATABASE_WAIT).
	LimitDefault = 60 * time.Second
	// FirstDelayDefault is the pause after the first failed try; each later pause doubles,
	// up to MaxDelayDefault.
	FirstDelayDefault = 250 * time.Millisecond
	// MaxDelayDefault caps the pause between tries.
	MaxDelayDefault = 5 * time.Second
	// TryTimeoutDefault bounds one try, so an address that swallows packets cannot
	// use up the whole limit in one attempt.
	TryTimeoutDefault = 5 * time.Second
)

// WaitHint is the services' Hint: the variable that sets how long they wait.
const WaitHint = "TASKER_DATABASE_WAIT sets how long to wait"

// Options configures Wait. Zero fields take the defaults above.
type Options struct {
	// URL is the database's URL, shown redacted in logs and in the final error.
	URL string
	// Limit is how long to keep trying, from the first try. Zero means LimitDefault; a
	// negative limit tries once.
	Limit time.Duration
	// FirstDelay and MaxDelay shape the exponential backoff between tries.
	FirstDelay time.Duration
	MaxDelay   time.Duration
	// TryTimeout bounds each try (and never runs past the limit).
	TryTimeout time.Duration
	// Logger receives one warning per failed try and a line when the database answers
	// after some; default slog.Default().
	Logger *slog.Logger
	// Hint is added to the final error, e.g. which variable raises the limit (the
	// services' is WaitHint).
	Hint string
}

// ErrUnreachable is returned (wrapped, with the last connection error) when the limit
// runs out.
var ErrUnreachable = errors.New("database not reachable")

// Wait calls ping until it succeeds, the limit runs out or ctx ends. It returns nil as
// soon as a ping succeeds; ctx's error when ctx ends; otherwise an error wrapping
// ErrUnreachable and the last ping error that names the redacted URL, the number of
// tries and the time spent.
func Wait(ctx context.Context, ping func(context.Context) error, opts Options) error {
	limit := opts.Limit
	if limit == 0 {
		limit = LimitDefault
	}
	first := orDefault(opts.FirstDelay, FirstDelayDefault)
	maxDelay := orDefault(opts.MaxDelay, MaxDelayDefault)
	tryTimeout := orDefault(opts.TryTimeout, TryTimeoutDefault)
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	where := Redact(opts.URL)
	start := time.Now()
	deadline := start.Add(limit)
	delay := first
	for attempt := 1; ; attempt++ {
		// Each try ends by the limit, but the last one still gets a fair second.
		now := time.Now()
		tryEnd := now.Add(tryTimeout)
		if limit > 0 {
			tryEnd = latest(earliest(tryEnd, deadline), now.Add(min(time.Second, tryTimeout)))
		}
		tryCtx, cancel := context.WithDeadline(ctx, tryEnd)
		err := ping(tryCtx)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info("database reachable", "database", where, "attempts", attempt,
					"waited", time.Since(start).Round(time.Millisecond).String())
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for the database %s: %w", where, context.Cause(ctx))
		}
		left := time.Until(deadline)
		if limit < 0 || left <= 0 {
			msg := fmt.Sprintf("%s after %d %s in %s", where, attempt, plural(attempt, "try", "tries"),
				time.Since(start).Round(time.Millisecond))
			if opts.Hint != "" {
				msg += " (" + opts.Hint + ")"
			}
			return fmt.Errorf("%w: %s: %w", ErrUnreachable, msg, err)
		}
		pause := min(delay, left)
		log.Warn("database not reachable yet; retrying", "database", where, "attempt", attempt,
			"error", err.Error(), "retry_in", pause.Round(time.Millisecond).String(),
			"gives_up_in", left.Round(time.Second).String())
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for the database %s: %w", where, context.Cause(ctx))
		case <-t.C:
		}
		delay = min(2*delay, maxDelay)
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// passwordKV matches password=... in a keyword/value connection string, quoted or not.
var passwordKV = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// Redact hides the password of a PostgreSQL URL or keyword/value connection string,
// so logs and errors can show the rest: postgres://user:xxxxx@host:5432/db.
func Redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" && u.Host != "" {
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	if strings.Contains(raw, "://") {
		// A URL that does not parse: show no part of it that might hold the password.
		return "(an unparsable database URL, not shown)"
	}
	return passwordKV.ReplaceAllString(raw, "${1}xxxxx")
}
