package lifecycle

import (
	"cmp"
	"math"
	"math/rand/v2"
	"time"
)

// Backoff defaults, from tasker-core's base configuration (test overlays shrink them).
const (
	BackoffBaseDefault       = time.Second
	BackoffMultiplierDefault = 2.0
	BackoffMaxDefault        = 60 * time.Second
	BackoffJitterDefault     = 0.15
)

// BackoffConfig shapes the delay before a failed, retryable step runs again:
// Base × Multiplier^attempts, capped at Max, then moved by up to ±Jitter of itself.
type BackoffConfig struct {
	// Base is the delay for attempts = 0. Default 1 s. A negative value means zero.
	Base time.Duration
	// Multiplier grows the delay per attempt. Default 2; values below 1 count as 1.
	Multiplier float64
	// Max caps the delay before jitter. Default 60 s.
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
