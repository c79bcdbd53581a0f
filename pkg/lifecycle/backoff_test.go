package lifecycle_test

import (
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
)

// backoffCase describes a config together with the effective values it must behave as,
// written out so expectations are computed with exact integer/rational math.
type backoffCase struct {
	name string
	cfg  lifecycle.BackoffConfig
	base time.Duration // effective base (after defaults)
	mult int64         // effective multiplier, an integer so Base×Multiplier^n is exact
	max  time.Duration // effective cap
	// jitter is the effective jitter as a decimal string, "" when jitter is off.
	jitter string
}

var backoffCases = []backoffCase{
	{
		name: "defaults",
		cfg:  lifecycle.BackoffConfig{},
		base: time.Second, mult: 2, max: time.Hour, jitter: "0.15",
	},
	{
		name: "base 100ms x3 max 2s jitter 0.5",
		cfg:  lifecycle.BackoffConfig{Base: 100 * time.Millisecond, Multiplier: 3, Max: 2 * time.Second, Jitter: 0.5},
		base: 100 * time.Millisecond, mult: 3, max: 2 * time.Second, jitter: "0.5",
	},
	{
		name: "base 100ms x3 max 2s no jitter",
		cfg:  lifecycle.BackoffConfig{Base: 100 * time.Millisecond, Multiplier: 3, Max: 2 * time.Second, Jitter: -1},
		base: 100 * time.Millisecond, mult: 3, max: 2 * time.Second,
	},
	{
		name: "defaults no jitter",
		cfg:  lifecycle.BackoffConfig{Jitter: -0.01},
		base: time.Second, mult: 2, max: time.Hour,
	},
	{
		name: "odd base x2 max 7s jitter 0.25",
		cfg:  lifecycle.BackoffConfig{Base: 123456789 * time.Nanosecond, Multiplier: 2, Max: 7 * time.Second, Jitter: 0.25},
		base: 123456789, mult: 2, max: 7 * time.Second, jitter: "0.25",
	},
	{
		name: "jitter above 1 is clamped to 1",
		cfg:  lifecycle.BackoffConfig{Base: 10 * time.Millisecond, Multiplier: 2, Max: time.Second, Jitter: 4},
		base: 10 * time.Millisecond, mult: 2, max: time.Second, jitter: "1",
	},
}

// exactCapped returns min(base × mult^attempts, max) computed with big integers.
func exactCapped(c backoffCase, attempts int) *big.Int {
	raw := new(big.Int).Exp(big.NewInt(c.mult), big.NewInt(int64(max(attempts, 0))), nil)
	raw.Mul(raw, big.NewInt(int64(c.base)))
	limit := big.NewInt(int64(c.max))
	if raw.Cmp(limit) > 0 {
		return limit
	}
	return raw
}

// exactBounds returns floor(capped × (1 ∓ jitter)) with rational arithmetic.
func exactBounds(t *testing.T, c backoffCase, attempts int) (lo, hi time.Duration) {
	t.Helper()
	capped := new(big.Rat).SetInt(exactCapped(c, attempts))
	if c.jitter == "" {
		d := time.Duration(capped.Num().Int64())
		return d, d
	}
	j, ok := new(big.Rat).SetString(c.jitter)
	require.True(t, ok, "jitter %q", c.jitter)
	one := big.NewRat(1, 1)
	loR := new(big.Rat).Mul(capped, new(big.Rat).Sub(one, j))
	hiR := new(big.Rat).Mul(capped, new(big.Rat).Add(one, j))
	floor := func(r *big.Rat) time.Duration {
		return time.Duration(new(big.Int).Quo(r.Num(), r.Denom()).Int64())
	}
	return floor(loR), floor(hiR)
}

// near asserts got is within 1 ns of want: the code computes in float64 and truncates,
// so a bound whose exact value is an integer may come out one nanosecond lower.
func near(t *testing.T, want, got time.Duration, msgAndArgs ...any) {
	t.Helper()
	require.InDelta(t, int64(want), int64(got), 1, msgAndArgs...)
}

func TestBackoffBoundsExact(t *testing.T) {
	t.Parallel()
	for _, c := range backoffCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var prevLo, prevHi time.Duration
			for n := 0; n <= 12; n++ {
				lo, hi := c.cfg.Bounds(n)
				wantLo, wantHi := exactBounds(t, c, n)
				near(t, wantLo, lo, "lo attempts=%d", n)
				near(t, wantHi, hi, "hi attempts=%d", n)
				require.LessOrEqual(t, lo, hi, "attempts=%d", n)
				require.GreaterOrEqual(t, lo, time.Duration(0), "attempts=%d", n)
				if c.jitter == "" {
					require.Equal(t, lo, hi, "no jitter: attempts=%d", n)
					require.Equal(t, exactCapped(c, n).Int64(), int64(lo), "no jitter: attempts=%d", n)
				}
				// Bounds never shrink as attempts grow.
				if n > 0 {
					require.GreaterOrEqual(t, lo, prevLo, "attempts=%d", n)
					require.GreaterOrEqual(t, hi, prevHi, "attempts=%d", n)
				}
				prevLo, prevHi = lo, hi
			}
		})
	}
}

func TestBackoffDelayWithinBounds(t *testing.T) {
	t.Parallel()
	for _, c := range backoffCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rnd := rand.New(rand.NewPCG(1, 2))
			for n := 0; n <= 12; n++ {
				lo, hi := c.cfg.Bounds(n)
				minSeen, maxSeen := time.Duration(1<<63-1), time.Duration(-1)
				for range 1000 {
					d := c.cfg.Delay(n, rnd)
					require.GreaterOrEqual(t, d, lo, "attempts=%d", n)
					require.LessOrEqual(t, d, hi, "attempts=%d", n)
					minSeen, maxSeen = min(minSeen, d), max(maxSeen, d)
				}
				if c.jitter == "" {
					// Without jitter the delay is exactly Base × Multiplier^n, capped.
					want := time.Duration(exactCapped(c, n).Int64())
					require.Equal(t, want, minSeen, "attempts=%d", n)
					require.Equal(t, want, maxSeen, "attempts=%d", n)
					continue
				}
				// With jitter, 1000 samples should cover most of the range on both sides.
				spread := hi - lo
				require.Less(t, minSeen, lo+spread/20, "attempts=%d: smallest sample %v", n, minSeen)
				require.Greater(t, maxSeen, hi-spread/20, "attempts=%d: largest sample %v", n, maxSeen)
			}
		})
	}
}

func TestBackoffDefaults(t *testing.T) {
	t.Parallel()

	t.Run("constants", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, time.Second, lifecycle.BackoffBaseDefault)
		require.Equal(t, 2.0, lifecycle.BackoffMultiplierDefault)
		require.Equal(t, time.Hour, lifecycle.BackoffMaxDefault, "tasker-core's max_backoff_seconds = 3600")
		require.Equal(t, 0.15, lifecycle.BackoffJitterDefault)
	})

	t.Run("1s times 2^n capped at 3600s", func(t *testing.T) {
		t.Parallel()
		cfg := lifecycle.BackoffConfig{Jitter: -1}
		want := []time.Duration{
			1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
			16 * time.Second, 32 * time.Second, 64 * time.Second, 128 * time.Second,
			256 * time.Second, 512 * time.Second, 1024 * time.Second, 2048 * time.Second, time.Hour, time.Hour,
		}
		for n, w := range want {
			require.Equal(t, w, cfg.Delay(n, nil), "attempts=%d", n)
			lo, hi := cfg.Bounds(n)
			require.Equal(t, w, lo, "attempts=%d", n)
			require.Equal(t, w, hi, "attempts=%d", n)
		}
		// Far beyond the cap, the delay stays at Max even when the float overflows.
		require.Equal(t, time.Hour, cfg.Delay(5000, nil))
	})

	t.Run("default jitter is 15 percent", func(t *testing.T) {
		t.Parallel()
		lo, hi := lifecycle.BackoffConfig{}.Bounds(0)
		near(t, 850*time.Millisecond, lo)
		near(t, 1150*time.Millisecond, hi)
		lo, hi = lifecycle.BackoffConfig{}.Bounds(12)
		near(t, 3060*time.Second, lo)
		near(t, 4140*time.Second, hi)
	})

	t.Run("zero values take defaults field by field", func(t *testing.T) {
		t.Parallel()
		// Only Base set: multiplier 2, cap 1 h.
		cfg := lifecycle.BackoffConfig{Base: 3 * time.Second, Jitter: -1}
		require.Equal(t, 3*time.Second, cfg.Delay(0, nil))
		require.Equal(t, 12*time.Second, cfg.Delay(2, nil))
		require.Equal(t, 48*time.Second, cfg.Delay(4, nil))
		require.Equal(t, 3072*time.Second, cfg.Delay(10, nil))
		require.Equal(t, time.Hour, cfg.Delay(11, nil))
		// Only Max set: base 1 s, multiplier 2.
		cfg = lifecycle.BackoffConfig{Max: 5 * time.Second, Jitter: -1}
		require.Equal(t, 4*time.Second, cfg.Delay(2, nil))
		require.Equal(t, 5*time.Second, cfg.Delay(3, nil))
	})
}

func TestBackoffEdgeCases(t *testing.T) {
	t.Parallel()

	t.Run("negative base gives zero", func(t *testing.T) {
		t.Parallel()
		rnd := rand.New(rand.NewPCG(1, 2))
		for _, cfg := range []lifecycle.BackoffConfig{
			{Base: -time.Second},
			{Base: -1, Multiplier: 3, Max: 2 * time.Second, Jitter: 0.5},
			{Base: -time.Hour, Jitter: -1},
		} {
			for n := 0; n <= 12; n++ {
				require.Equal(t, time.Duration(0), cfg.Delay(n, rnd), "%+v attempts=%d", cfg, n)
				require.Equal(t, time.Duration(0), cfg.Delay(n, nil), "%+v attempts=%d", cfg, n)
				lo, hi := cfg.Bounds(n)
				require.Equal(t, time.Duration(0), lo, "%+v attempts=%d", cfg, n)
				require.Equal(t, time.Duration(0), hi, "%+v attempts=%d", cfg, n)
			}
		}
	})

	t.Run("negative attempts count as zero", func(t *testing.T) {
		t.Parallel()
		for _, c := range backoffCases {
			lo0, hi0 := c.cfg.Bounds(0)
			for _, n := range []int{-1, -7, -1 << 30} {
				lo, hi := c.cfg.Bounds(n)
				require.Equal(t, lo0, lo, "%s attempts=%d", c.name, n)
				require.Equal(t, hi0, hi, "%s attempts=%d", c.name, n)
			}
		}
		cfg := lifecycle.BackoffConfig{Base: 250 * time.Millisecond, Jitter: -1}
		require.Equal(t, 250*time.Millisecond, cfg.Delay(-3, nil))
	})

	t.Run("nil source stays within bounds", func(t *testing.T) {
		t.Parallel()
		for _, c := range backoffCases {
			for n := 0; n <= 12; n++ {
				lo, hi := c.cfg.Bounds(n)
				for range 50 {
					d := c.cfg.Delay(n, nil)
					require.GreaterOrEqual(t, d, lo, "%s attempts=%d", c.name, n)
					require.LessOrEqual(t, d, hi, "%s attempts=%d", c.name, n)
				}
			}
		}
	})

	t.Run("same seed same delays", func(t *testing.T) {
		t.Parallel()
		cfg := lifecycle.BackoffConfig{}
		a := rand.New(rand.NewPCG(1, 2))
		b := rand.New(rand.NewPCG(1, 2))
		for n := range 100 {
			require.Equal(t, cfg.Delay(n%13, a), cfg.Delay(n%13, b))
		}
	})
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		headers map[string]any
		want    time.Duration
		ok      bool
	}{
		{"seconds as a string", map[string]any{"retry-after": "5"}, 5 * time.Second, true},
		{"any case", map[string]any{"Retry-After": " 7 "}, 7 * time.Second, true},
		{"seconds as a number", map[string]any{"retry-after": 2.5}, 2500 * time.Millisecond, true},
		{"RFC 2822 date", map[string]any{"retry-after": "Tue, 01 Dec 2026 10:00:30 +0000"}, 30 * time.Second, true},
		{"HTTP date", map[string]any{"retry-after": "Tue, 01 Dec 2026 10:01:00 GMT"}, time.Minute, true},
		{"date in the past", map[string]any{"retry-after": "Tue, 01 Dec 2026 09:00:00 GMT"}, 0, true},
		{"negative seconds", map[string]any{"retry-after": "-3"}, 0, true},
		{"garbage", map[string]any{"retry-after": "soon"}, 0, false},
		{"absent", map[string]any{"x-other": "1"}, 0, false},
		{"nil", nil, 0, false},
	}
	for _, tc := range cases {
		got, ok := lifecycle.RetryAfter(tc.headers, now)
		require.Equal(t, tc.ok, ok, tc.name)
		require.Equal(t, tc.want, got, tc.name)
	}
	cfg := lifecycle.BackoffConfig{}
	require.Equal(t, 5*time.Second, cfg.Requested(5*time.Second), "no jitter")
	require.Equal(t, time.Hour, cfg.Requested(48*time.Hour), "capped at Max")
}
