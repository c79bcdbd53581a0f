package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 7)) }

// quantile returns the q-quantile of sorted ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	return ds[int(math.Ceil(q*float64(len(ds))))-1]
}

func TestLatencySampleMeetsPercentiles(t *testing.T) {
	t.Parallel()
	for _, l := range []Latency{{P50: 20, P99: 200}, {P50: 5, P99: 50}, {P50: 100, P99: 120}} {
		r := seeded(42)
		ds := make([]time.Duration, 20000)
		for i := range ds {
			ds[i] = l.Sample(r)
		}
		slices.Sort(ds)
		p50 := float64(quantile(ds, 0.50)) / float64(time.Millisecond)
		p99 := float64(quantile(ds, 0.99)) / float64(time.Millisecond)
		require.InEpsilon(t, l.P50, p50, 0.05, "p50 of %+v", l)
		require.InEpsilon(t, l.P99, p99, 0.10, "p99 of %+v", l)
	}
}

func TestLatencySampleOver2000Draws(t *testing.T) {
	t.Parallel()
	l := Latency{P50: 20, P99: 200}
	r := seeded(1)
	ds := make([]time.Duration, 2000)
	for i := range ds {
		ds[i] = l.Sample(r)
	}
	slices.Sort(ds)
	// With 2000 draws the empirical median and p99 stray by a few percent, the tail more.
	require.InEpsilon(t, 20.0, float64(quantile(ds, 0.50))/float64(time.Millisecond), 0.10)
	require.InEpsilon(t, 200.0, float64(quantile(ds, 0.99))/float64(time.Millisecond), 0.25)
}

func TestLatencyFixedAndCapped(t *testing.T) {
	t.Parallel()
	r := seeded(3)
	require.Equal(t, 7*time.Millisecond, Latency{P50: 7, P99: 7}.Sample(r))
	require.Equal(t, time.Duration(0), Latency{}.Sample(r))
	wide := Latency{P50: 1, P99: maxLatencyMS}
	for range 10000 {
		require.LessOrEqual(t, wide.Sample(r), MaxSimulatedLatency)
	}
}

func TestLatencyJSONForms(t *testing.T) {
	t.Parallel()
	for doc, want := range map[string]Latency{
		`12`: {12, 12}, `{"fixed": 3}`: {3, 3}, `{"p50": 20, "p99": 200}`: {20, 200},
	} {
		var l Latency
		require.NoError(t, json.Unmarshal([]byte(doc), &l), doc)
		require.Equal(t, want, l, doc)
	}
	for _, doc := range []string{`{"p50": 20}`, `{"fixed": 1, "p50": 2, "p99": 3}`, `{"median": 3}`, `"fast"`} {
		var l Latency
		require.ErrorContains(t, json.Unmarshal([]byte(doc), &l), "latency_ms: must", doc)
	}
}

// binomialBound is a 5-sigma half-width for the count of successes of n trials of p.
func binomialBound(n int, p float64) float64 { return 5 * math.Sqrt(float64(n)*p*(1-p)) }

func TestErrorRateAndRetryableShare(t *testing.T) {
	t.Parallel()
	seed := uint64(99)
	p := SimulationProfile{Latency: Latency{P50: 1, P99: 1}, ErrorRate: 0.2, RetryableShare: 0.7, Seed: &seed}
	h := newSimulated("x.y", "ns/t/1.0.0/s", p)
	const n = 20000
	var fails, retryable int
	for range n {
		d := h.next()
		if d.fail {
			fails++
			if d.retryable {
				retryable++
			}
		}
	}
	require.InDelta(t, n*p.ErrorRate, float64(fails), binomialBound(n, p.ErrorRate))
	require.InDelta(t, float64(fails)*p.RetryableShare, float64(retryable), binomialBound(fails, p.RetryableShare))

	// A fixed seed gives the same draws again.
	again := newSimulated("x.y", "ns/t/1.0.0/s", p)
	h2 := newSimulated("x.y", "ns/t/1.0.0/s", p)
	for range 100 {
		require.Equal(t, again.next(), h2.next())
	}
}

func TestSimulatedHandlerErrors(t *testing.T) {
	t.Parallel()
	for _, share := range []float64{0, 1} {
		h := NewSimulatedHandler("pay.charge", "k", SimulationProfile{ErrorRate: 1, RetryableShare: share})
		_, err := h(context.Background(), StepInput{StepName: "charge", Attempt: 1})
		var se *StepError
		require.ErrorAs(t, err, &se)
		require.Equal(t, SimulatedErrorType, se.ErrorType)
		require.Equal(t, share == 1, se.Retryable)
		require.Equal(t, map[bool]string{true: SimulatedRetryableCode, false: SimulatedNonRetryableCode}[share == 1], se.ErrorCode)
		require.Contains(t, se.Message, "pay.charge")
	}
}

func TestSimulatedResultShapeAndSize(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 64, 256, 4096, 100000} {
		h := NewSimulatedHandler("pay.charge", "k", SimulationProfile{ResultBytes: size})
		v, err := h(context.Background(), StepInput{StepName: "charge", Attempt: 2})
		require.NoError(t, err)
		body, err := json.Marshal(v)
		require.NoError(t, err)
		var r simulatedResult
		require.NoError(t, json.Unmarshal(body, &r))
		require.True(t, r.Simulated)
		require.Equal(t, "pay.charge", r.Callable)
		require.Equal(t, "charge", r.Step)
		require.Equal(t, 2, r.Attempt)
		if size >= 128 {
			require.InDelta(t, size, len(body), 0.02*float64(size), "size %d", size)
		} else {
			require.Less(t, len(body), 128, "size %d", size)
		}
	}
}

func TestSimulatedHandlerHonoursCancellation(t *testing.T) {
	t.Parallel()
	h := NewSimulatedHandler("slow.op", "k", SimulationProfile{Latency: Latency{P50: 60000, P99: 60000}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h(ctx, StepInput{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second)

	cctx, stop := context.WithCancelCause(context.Background())
	cause := errors.New("worker stopping")
	stop(cause)
	_, err = NewSimulatedHandler("fast.op", "k", SimulationProfile{})(cctx, StepInput{})
	require.ErrorIs(t, err, cause)
}

func simTemplate(t *testing.T, simulate any) *Template {
	t.Helper()
	init := map[string]any{}
	if simulate != nil {
		init[SimulateKey] = simulate
	}
	doc, err := json.Marshal(map[string]any{"name": "sim", "namespace_name": "simns", "version": "1.0.0",
		"steps": []any{
			map[string]any{"name": "real", "handler": map[string]any{"callable": "math.square_even_number"}},
			map[string]any{"name": "fake", "dependencies": []string{"real"},
				"handler": map[string]any{"callable": "ext.no_such_handler", "initialization": init}},
		}})
	require.NoError(t, err)
	tmpl, err := Parse(doc)
	require.NoError(t, err)
	return tmpl
}

func TestResolveFallsBackToSimulated(t *testing.T) {
	t.Parallel()
	tmpl := simTemplate(t, map[string]any{"latency_ms": 0, "result_bytes": 300})
	base := DefaultRegistry()
	before := len(base)
	reg, simulated, err := base.Resolve([]*Template{tmpl}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"ext.no_such_handler"}, simulated)
	require.Len(t, base, before, "Resolve leaves its receiver alone")
	require.NotNil(t, reg.Lookup(tmpl, tmpl.Step("real")))
	h := reg.Lookup(tmpl, tmpl.Step("fake"))
	require.NotNil(t, h)
	v, err := h(context.Background(), StepInput{StepName: "fake", Attempt: 1})
	require.NoError(t, err)
	require.Len(t, v, 300)
	require.Nil(t, base.Lookup(tmpl, tmpl.Step("fake")), "an unresolved registry has no simulated handlers")
	require.NoError(t, base.Check([]*Template{tmpl}))
}

func TestResolveRefusesBadProfiles(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		simulate any
		want     string
	}{
		"error rate":      {map[string]any{"error_rate": 1.5}, "handler.initialization.simulate.error_rate: must be between 0 and 1"},
		"retryable share": {map[string]any{"retryable_share": -0.1}, "handler.initialization.simulate.retryable_share: must be between 0 and 1"},
		"result bytes":    {map[string]any{"result_bytes": MaxResultBytes + 1}, "handler.initialization.simulate.result_bytes: must be between 0 and"},
		"p99 below p50":   {map[string]any{"latency_ms": map[string]any{"p50": 50, "p99": 10}}, "handler.initialization.simulate.latency_ms.p99: must be at least p50"},
		"latency too big": {map[string]any{"latency_ms": 1e9}, "handler.initialization.simulate.latency_ms: must be at most"},
		"wrong type":      {map[string]any{"error_rate": "high"}, "handler.initialization.simulate.error_rate: must be a number"},
		"unknown field":   {map[string]any{"eror_rate": 0.1}, `handler.initialization.simulate: unknown field "eror_rate"`},
		"not an object":   {"fast", "handler.initialization.simulate.profile: must be an object"},
	}
	for name, tc := range cases {
		tmpl := simTemplate(t, tc.simulate)
		_, _, err := DefaultRegistry().Resolve([]*Template{tmpl}, nil)
		require.ErrorContains(t, err, "template simns/sim/1.0.0 step fake: "+tc.want, name)
		require.ErrorContains(t, DefaultRegistry().Check([]*Template{tmpl}), tc.want, name)
	}
}

func TestProfilesFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	yamlPath := filepath.Join(dir, "profiles.yaml")
	require.NoError(t, os.WriteFile(yamlPath, []byte(`
default:
  latency_ms: {p50: 10, p99: 100}
  result_bytes: 128
simns:
  error_rate: 0.25
`), 0o600))
	ps, err := LoadSimulationProfiles(yamlPath)
	require.NoError(t, err)
	require.Equal(t, SimulationProfile{Latency: Latency{10, 100}, ErrorRate: 0.25, RetryableShare: 1, ResultBytes: 128}, ps.For("simns"))
	require.Equal(t, SimulationProfile{Latency: Latency{10, 100}, RetryableShare: 1, ResultBytes: 128}, ps.For("other"))

	// A step's own profile overrides the fields it sets, over its namespace's.
	tmpl := simTemplate(t, map[string]any{"latency_ms": 3})
	p, err := StepProfile(tmpl, tmpl.Step("fake"), ps)
	require.NoError(t, err)
	require.Equal(t, SimulationProfile{Latency: Latency{3, 3}, ErrorRate: 0.25, RetryableShare: 1, ResultBytes: 128}, p)

	var none *SimulationProfiles
	require.Equal(t, DefaultSimulationProfile(), none.For("simns"))
	ps, err = LoadSimulationProfiles("")
	require.NoError(t, err)
	require.Nil(t, ps)
}

func TestProfilesFileRefusesBadProfiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, tc := range map[string]struct{ doc, want string }{
		"bad.json":  {`{"payments": {"error_rate": 2}}`, "bad.json: profile payments: error_rate: must be between 0 and 1"},
		"def.json":  {`{"default": {"retryable_share": 3}}`, "def.json: profile default: retryable_share: must be between 0 and 1"},
		"list.json": {`[1, 2]`, "list.json: must be an object mapping namespaces"},
		"bad.yml":   {"ns:\n  latency_ms: {p50: 5}\n", "bad.yml: profile ns: latency_ms: must give either fixed, or both p50 and p99"},
	} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(tc.doc), 0o600))
		_, err := LoadSimulationProfiles(path)
		require.ErrorContains(t, err, SimulationProfilesEnv+" "+path, name)
		require.ErrorContains(t, err, tc.want, name)
	}
	_, err := LoadSimulationProfiles(filepath.Join(dir, "missing.json"))
	require.ErrorContains(t, err, SimulationProfilesEnv)
}
