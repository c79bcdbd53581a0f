package load

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Old seconds are folded into their P99, which the timeline still reports, so a long run
// does not keep every latency.
func TestRecorderFoldsOldSeconds(t *testing.T) {
	t.Parallel()
	r := newRecorder(1, 0)
	for sec := range 100 {
		for i := range 100 {
			at := time.Duration(sec)*time.Second + 100*time.Millisecond + time.Duration(i)*time.Millisecond/2
			r.finish(0, at-time.Duration(i+1)*time.Millisecond, at, "complete")
		}
	}
	s := r.shapes[0]
	require.Len(t, s.p99At, 100-1-keepSeconds, "all but the recent seconds are folded")
	for i := range len(s.p99At) {
		require.Nil(t, s.latencyAt[i], "second %d keeps no raw latencies", i)
	}
	p99 := s.p99s()
	require.Len(t, p99, 100)
	for i, v := range p99 {
		require.InDelta(t, 99, v, 0.001, "second %d", i)
	}
	m, _ := ParseMix("mathematical_sequence=1")
	res := &Result{}
	r.fill(res, m, 100*time.Second)
	require.Len(t, res.Timeline[0].P99MS, 100)
	require.EqualValues(t, 10000, res.Overall.Count)
}
