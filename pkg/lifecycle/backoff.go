package lifecycle

import (
	"cmp"
	"math"
	"math/rand/v2"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// Backoff defaults, from tasker-core's base configuration (test overlays shrink them).
const (
	BackoffBaseDefault       = time.Second
	BackoffMultiplierDefault = 2.0
	BackoffMaxDefault        = time.Hour // max_backoff_seconds = 3600
	BackoffJitterDefault     = 0.15
)

// BackoffConfig shapes the delay before a failed, retryable step runs again:
// Base × Multiplier^attempts, capped at Max, then moved by up to ±Jitter of itself.
type BackoffConfig struct {
	// Base is the delay for attempts = 0. Default 1 s. A negative value means zero.
	Base time.Duration
	// Multiplier grows the delay per attempt. Default 2; values below 1 count as 1.
	Multiplier float64
	// Max caps the delay before jitter. Default 1 h.
	Max time.Duration
	// Jitter is the largest relative change jitter may make, in [0, 1]. Default 0.15;
	// a negative value disables jitter.
	Jitter float64
}

func (c BackoffConfig) withDefaults() BackoffConfig {
	c.Base = cmp.Or(c.Base, BackoffBaseDefault)
	c.Base = max(c.Base, 0)
	c.Multiplier = max(cmp.Or(c.Multiplier, BackoffMultiplierDefault), 1)
	c.Max = max(cmp.Or(c.Max, BackoffMaxDefault), 0)
	c.Jitter = cmp.Or(c.Jitter, BackoffJitterDefault)
	c.Jitter = min(max(c.Jitter, 0), 1)
	return c
}

// Delay returns the backoff before the next try of a step that has made attempts
// attempts. rnd supplies jitter; nil uses the global source.
func (c BackoffConfig) Delay(attempts int, rnd *rand.Rand) time.Duration {
	c = c.withDefaults()
	raw := float64(c.Base) * math.Pow(c.Multiplier, float64(max(attempts, 0)))
	capped := min(raw, float64(c.Max))
	if c.Jitter > 0 {
		f := rand.Float64
		if rnd != nil {
			f = rnd.Float64
		}
		capped *= 1 + c.Jitter*(2*f()-1)
	}
	return time.Duration(max(capped, 0))
}

// Bounds returns the smallest and largest delay Delay can return for attempts.
func (c BackoffConfig) Bounds(attempts int) (lo, hi time.Duration) {
	c = c.withDefaults()
	raw := float64(c.Base) * math.Pow(c.Multiplier, float64(max(attempts, 0)))
	capped := min(raw, float64(c.Max))
	return time.Duration(capped * (1 - c.Jitter)), time.Duration(capped * (1 + c.Jitter))
}

// RetryAfter reads a handler's Retry-After from the headers object of its result's
// orchestration_metadata: the key matched without regard to case, the value either
// whole seconds (a JSON number or string) or an HTTP/RFC 2822 date, taken relative to
// now. ok is false when there is no usable value.
func RetryAfter(headers map[string]any, now time.Time) (d time.Duration, ok bool) {
	for k, v := range headers {
		if !strings.EqualFold(k, "retry-after") {
			continue
		}
		switch x := v.(type) {
		case float64:
			return time.Duration(max(x, 0) * float64(time.Second)), !math.IsNaN(x)
		case string:
			s := strings.TrimSpace(x)
			if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
				return time.Duration(max(min(secs, math.MaxInt64/int64(time.Second)), 0)) * time.Second, true
			}
			if at, err := mail.ParseDate(s); err == nil {
				return max(at.Sub(now), 0), true
			}
			if at, err := http.ParseTime(s); err == nil {
				return max(at.Sub(now), 0), true
			}
		}
	}
	return 0, false
}

// Requested is the delay for a retry the handler asked for (Retry-After): the request,
// capped at Max, with no jitter.
func (c BackoffConfig) Requested(d time.Duration) time.Duration {
	return min(max(d, 0), c.withDefaults().Max)
}
