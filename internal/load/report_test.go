package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
)

// sampleResult is a realistic run: 3 shapes over 60 s at 30 tasks/s after a ramp, a
// worker kill at 20-30 s and a slow database at 40-50 s, with refusals, a missed arrival,
// unfinished tasks, a reconciliation problem and a failed threshold.
func sampleResult() *Result {
	const secs = 60
	names := []string{"mathematical_sequence", "diamond_pattern", "complex_dag"}
	weights := []int{4, 2, 1}
	target := make([]float64, secs)
	for s := range target {
		target[s] = math.Min(30, 10+2*float64(s))
	}
	r := &Result{
		Schema: SchemaVersion, StartedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Model: "open", WarmupSeconds: 10, MeasuredSeconds: 50, TargetRate: 30, AchievedRate: 29.4,
		Arrivals: 1500, Created: 1833, Missed: 3,
		HTTPErrors:  map[string]int64{"503": 7, "network": 2},
		FinalStates: map[string]int64{"complete": 1741, "error": 60},
		Unfinished: []UnfinishedTask{
			{TaskUUID: "0195a3e0-0000-7000-8000-000000000001", Shape: names[0], Status: "in_progress"},
			{TaskUUID: "0195a3e0-0000-7000-8000-000000000002", Shape: names[2], Status: "<b>pending</b>"},
		},
		Overall:        LatencySummary{Count: 1480, Mean: 210.5, P50: 150.2, P90: 420.7, P99: 812.5, P999: 1990.1, Max: 2450.9},
		TargetTimeline: target,
		Phases: []PhaseResult{
			{Name: "kill-worker", Target: "worker", StartSeconds: 20, EndSeconds: 30, Faults: map[string]any{"crash": true}},
			{Name: "db slow & flaky", Target: "orchestrator", StartSeconds: 40, EndSeconds: 50,
				Error: `<img src=x onerror=alert(1)> clearing failed`},
		},
		Reconciliation: Reconciliation{Checked: true, RequestsCounted: 1834, TerminalCounted: 1801, Created: 1833,
			Terminal: 1801, Problems: []string{"1 creation counted by the orchestrator was never seen by the generator"}},
		Thresholds: []ThresholdResult{{Expr: "p99<500ms", Actual: 812.5, Passed: false},
			{Expr: "errors<5%", Actual: 1.74, Passed: true}},
		GeneratorCPUPercent: 12.3,
	}
	for i, name := range names {
		r.Shapes = append(r.Shapes, sampleShape(name, weights[i], i))
		r.Timeline = append(r.Timeline, sampleTimeline(name, target, float64(weights[i])/7, i))
	}
	return r
}

// sampleShape is one shape's totals.
func sampleShape(name string, weight, i int) ShapeResult {
	f := float64(i + 1)
	return ShapeResult{
		Name: name, Namespace: "rust_e2e_" + strconv.Itoa(i), Weight: weight, Created: int64(1000 / (i + 1)),
		FinalStates:  map[string]int64{"complete": int64(950 / (i + 1)), "error": int64(10 * (i + 1))},
		AchievedRate: 16.8 / f,
		Latency:      LatencySummary{Count: int64(900 / (i + 1)), Mean: 100 * f, P50: 90 * f, P90: 300 * f, P99: 700 * f, P999: 1234.5 * f, Max: 2000 * f},
	}
}

// sampleTimeline is one shape's per-second series: a share of the target, nothing
// finishing while the worker is down and then a backlog draining, slow during the
// database phase, and some seconds with no finished task (P99 0).
func sampleTimeline(name string, target []float64, share float64, i int) ShapeTimeline {
	t := ShapeTimeline{Shape: name}
	for s, rate := range target {
		created := int64(rate*share) + int64((s*7+i*3)%3) - 1
		finished, p99 := created, 80+30*float64(i)+float64(s%5)*4
		switch {
		case s >= 20 && s < 30:
			finished, p99 = 0, 0
		case s >= 30 && s < 36:
			finished, p99 = created*3, 2500-300*float64(s-30)
		case s >= 40 && s < 50:
			p99 *= 4
		}
		if i == 2 && s%9 == 4 {
			finished, p99 = 0, 0
		}
		t.Created = append(t.Created, max(created, 0))
		t.Finished = append(t.Finished, max(finished, 0))
		t.P99MS = append(t.P99MS, p99)
	}
	return t
}

// render writes r's report to a string.
func render(t *testing.T, r *Result) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, WriteReport(&buf, r))
	return buf.String()
}

func TestReportContents(t *testing.T) {
	page := render(t, sampleResult())

	assert.Equal(t, 4, strings.Count(page, "<svg"), "created, P99, finished and final-states charts")
	assert.Zero(t, strings.Count(page, `class="nodata"`))
	for _, want := range []string{
		`<span class="verdict fail">FAILED</span>`,
		"<th>Model</th><td>open</td>",
		"<td>30.00 tasks/s</td>",           // target rate
		"29.40 tasks/s (98.0 % of target)", // achieved rate
		"<td>1833</td>",                    // created
		`<tr class="warn"><th>Missed (generator behind)</th><td>3</td>`,
		"<td>503: 7, network: 2</td>",           // HTTP errors
		"<td>complete: 1741, error: 60</td>",    // final states
		"<td>12.3 %</td>",                       // generator CPU
		"requests counted 1834 vs created 1833", // reconciliation
		"<li>1 creation counted by the orchestrator was never seen by the generator</li>",
		"<td>1 of 2 passed</td>", // thresholds
		"<td>p99&lt;500ms</td><td class=\"num\">812.50</td><td>FAILED</td>",
		"<td>all shapes</td>",
		"<td class=\"num\">1990.1</td>",           // overall P99.9
		"<td>complex_dag</td><td>rust_e2e_2</td>", // per-shape row
		"<td class=\"num\">3703.5</td>",           // complex_dag P99.9
		"<td>kill-worker</td><td>worker</td><td class=\"num\">20.0</td><td class=\"num\">30.0</td>",
		"0195a3e0-0000-7000-8000-000000000002",
	} {
		assert.Contains(t, page, want)
	}
	// Phase bands are labelled on every time chart; shapes and the target are in the legends.
	assert.Equal(t, 3, strings.Count(page, ">kill-worker</text>"))
	assert.Equal(t, 3, strings.Count(page, ">warm-up</text>"))
	assert.Equal(t, 3, strings.Count(page, ">db slow &amp; flaky</text>"))
	assert.Equal(t, 1, strings.Count(page, ">target</text>"))
	for _, name := range []string{"mathematical_sequence", "diamond_pattern", "complex_dag"} {
		assert.Equal(t, 4, strings.Count(page, ">"+name+"</text>"), "legend of every chart: %s", name)
	}
	assert.Contains(t, page, "stroke-dasharray:6,3", "the target is dashed")
	assertEscapedAndSelfContained(t, page)
}

// assertEscapedAndSelfContained checks hostile text came out escaped and the page
// references nothing outside itself.
func assertEscapedAndSelfContained(t *testing.T, page string) {
	t.Helper()
	assert.NotContains(t, page, "<img")
	assert.NotContains(t, page, "<b>pending")
	assert.Contains(t, page, "&lt;img src=x onerror=alert(1)&gt; clearing failed")
	assert.Contains(t, page, "&lt;b&gt;pending&lt;/b&gt;")
	for _, bad := range []string{"<script", "<link", "<iframe", "@import"} {
		assert.NotContains(t, page, bad)
	}
	assert.Contains(t, page, "default-src 'none'", "a CSP that forbids loading anything")
	urls := regexp.MustCompile(`url\(([^)]{0,30})`).FindAllStringSubmatch(page, -1)
	require.Len(t, urls, 1, "only the embedded font")
	assert.True(t, strings.HasPrefix(urls[0][1], "data:font/ttf;base64,"), urls[0][1])
	// The only absolute URLs are SVG's XML namespace names, which nothing fetches.
	rest := regexp.MustCompile(`xmlns(:xlink)?="http://www\.w3\.org/[0-9a-z/]+"`).ReplaceAllString(page, "")
	assert.NotRegexp(t, `(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`, rest)
}

func TestReportEdgeCases(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	one := &Result{Model: "closed", Concurrency: 8, Passed: true,
		FinalStates: map[string]int64{"complete": 1},
		Shapes:      []ShapeResult{{Name: "mathematical_sequence", Weight: 1, FinalStates: map[string]int64{"complete": 1}}},
		Timeline:    []ShapeTimeline{{Shape: "mathematical_sequence", Created: []int64{1}, Finished: []int64{1}, P99MS: []float64{42}}}}
	zeros := &Result{Model: "open", FinalStates: map[string]int64{"complete": 0},
		Timeline: []ShapeTimeline{{Shape: "a", Created: make([]int64, 10), Finished: make([]int64, 10), P99MS: make([]float64, 10)}}}
	weird := &Result{Model: "open", TargetRate: nan, AchievedRate: inf, WarmupSeconds: 1e9,
		FinalStates:    map[string]int64{"complete": 3, "error": 0},
		TargetTimeline: []float64{nan, 5, inf, -1, 5},
		Timeline: []ShapeTimeline{
			{Shape: "", Created: []int64{1, 2}, Finished: nil, P99MS: []float64{nan, inf, 0, 7, 8, 9}},
			{Shape: "b", Created: []int64{3}, Finished: []int64{1, 1, 1}, P99MS: []float64{-5}}},
		Phases: []PhaseResult{{Name: "before", StartSeconds: -10, EndSeconds: 2}, {Name: "after", StartSeconds: 3, EndSeconds: 1e6},
			{Name: "backwards", StartSeconds: 4, EndSeconds: 2}, {Name: "", StartSeconds: nan, EndSeconds: nan},
			{Name: "outside", StartSeconds: 100, EndSeconds: 200}}}
	for _, tc := range []struct {
		name         string
		r            *Result
		svgs, noData int
	}{
		{"empty", &Result{}, 0, 4},
		{"one shape, one second, no phases", one, 4, 0},
		{"all zero", zeros, 2, 2}, // created and finished are real zeros; no P99, no final state
		{"NaN, infinities, phases out of range", weird, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := render(t, tc.r)
			assert.Equal(t, tc.svgs, strings.Count(page, "<svg"))
			assert.Equal(t, tc.noData, strings.Count(page, `class="nodata"`))
			assert.NotContains(t, page, "NaN")
		})
	}
	t.Run("single shape has no per-shape bars", func(t *testing.T) {
		assert.Equal(t, 1, strings.Count(render(t, one), ">all shapes</text>"))
	})
}

func TestReportErrors(t *testing.T) {
	require.ErrorContains(t, WriteReport(&bytes.Buffer{}, nil), "no result")
	err := WriteReport(failingWriter{}, sampleResult())
	require.ErrorContains(t, err, "load report: writing the HTML")
	require.ErrorIs(t, err, errDiskFull)
}

var errDiskFull = errors.New("disk full")

// failingWriter refuses every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func TestReportRunsOf(t *testing.T) {
	runs := runsOf([]float64{0, 1, 2, 0, 3, math.NaN(), 4}, isPositive)
	assert.Equal(t, []plotter.XYs{
		{{X: 1.5, Y: 1}, {X: 2.5, Y: 2}},
		{{X: 4.5, Y: 3}},
		{{X: 6.5, Y: 4}},
	}, runs)
	assert.Empty(t, runsOf(nil, isCount))
}

// TestReportInChromium opens the report in headless Chromium: the DOM must hold the four
// charts with drawn paths, Chromium must log no console message (the page has no script,
// so any message is the browser complaining: a blocked load, a bad font), and the
// screenshot must show the series colours, the phase shading and the bars.
func TestReportInChromium(t *testing.T) {
	bin := chromiumOrFail(t)
	dir := t.TempDir()

	// Control: a page that logs, to prove this Chromium's console capture works at all.
	control := filepath.Join(dir, "control.html")
	require.NoError(t, os.WriteFile(control, []byte(`<!DOCTYPE html><script>console.error("tasker-probe")</script>`), 0o600))
	run := runChromium(t, bin, control, "--dump-dom")
	require.Contains(t, strings.Join(consoleLines(run.stderr), "\n"), `"tasker-probe"`,
		"Chromium did not log the control page's console.error to stderr; the console check below would prove nothing")

	page := filepath.Join(dir, "report.html")
	require.NoError(t, os.WriteFile(page, []byte(render(t, sampleResult())), 0o600))
	shot := filepath.Join(dir, "report.png")
	run = runChromium(t, bin, page, "--dump-dom", "--screenshot="+shot, "--window-size=1280,3600", "--hide-scrollbars")
	assert.Empty(t, consoleLines(run.stderr), "console messages while loading the report")
	assertChartsInDOM(t, run.dom)
	assertScreenshot(t, shot)
	keepArtifacts(t, page, shot)
}

// keepArtifacts copies the report and its screenshot to $TASKER_TEST_REPORT_DIR, when
// set, for a person to look at.
func keepArtifacts(t *testing.T, paths ...string) {
	t.Helper()
	dir := os.Getenv("TASKER_TEST_REPORT_DIR")
	if dir == "" {
		return
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(p)), data, 0o600))
	}
}

// chromiumOrFail finds Chromium. Missing, the test fails: a skipped browser check is
// too easy to miss. TASKER_TEST_NO_BROWSER=1 skips it on purpose.
func chromiumOrFail(t *testing.T) string {
	t.Helper()
	if os.Getenv("TASKER_TEST_NO_BROWSER") == "1" {
		t.Skip("TASKER_TEST_NO_BROWSER=1: not opening the report in a browser")
	}
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not on PATH (%v): install Debian's chromium package "+
			"(apt-get install -y chromium), or set TASKER_TEST_NO_BROWSER=1 to skip this test", err)
	}
	return bin
}

// chromiumTimeout bounds one Chromium run; on a loaded 2-core machine a run takes ~10 s.
const chromiumTimeout = 90 * time.Second

// chromiumRun is what one headless Chromium run printed.
type chromiumRun struct {
	dom, stderr string
}

// runChromium opens the file at path in a fresh headless Chromium with its own profile
// and config directories, in its own process group, and makes sure that none of its
// processes outlives the call.
func runChromium(t *testing.T, bin, path string, extra ...string) chromiumRun {
	t.Helper()
	home := t.TempDir()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		// Chromium still tries Google's update, time and account services at start-up:
		// resolve no name at all, so not even a DNS query leaves the machine.
		"--host-resolver-rules=MAP * ~NOTFOUND",
		"--disable-dev-shm-usage", "--user-data-dir=" + filepath.Join(home, "profile"),
		"--enable-logging=stderr", "--v=1"}, extra...)
	ctx, cancel := context.WithTimeout(t.Context(), chromiumTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "file://"+path)...)
	// Crashpad's handler detaches into its own session; with XDG dirs under home its
	// command line names home, which is how killChromium finds it.
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_CACHE_HOME="+filepath.Join(home, "cache"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stdout, stderr := createFile(t, home, "stdout"), createFile(t, home, "stderr")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	start := time.Now()
	err := cmd.Start()
	require.NoError(t, err, "starting chromium")
	err = cmd.Wait()
	killChromium(t, cmd.Process.Pid, home)
	out := chromiumRun{dom: readFile(t, stdout.Name()), stderr: readFile(t, stderr.Name())}
	if ctx.Err() != nil {
		t.Fatalf("chromium did not finish within %s; stderr ends:\n%s", chromiumTimeout, tail(out.stderr, 3000))
	}
	require.NoError(t, err, "chromium failed; stderr ends:\n%s", tail(out.stderr, 3000))
	t.Logf("chromium %s: %s", strings.Join(extra, " "), time.Since(start).Round(time.Millisecond))
	return out
}

// killChromium ends what is left of one run: its process group, and any process whose
// command line names the run's private home (Crashpad's handler, which leaves the
// group). It fails the test if one is still alive after 5 s.
func killChromium(t *testing.T, pgid int, home string) {
	t.Helper()
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Errorf("killing chromium's process group %d: %v", pgid, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := runProcesses(pgid, home)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("chromium processes still running after the run: %v", left)
			return
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL) // already gone is fine
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runProcesses lists the live (not zombie) processes in group pgid or whose command line
// contains home, from /proc.
func runProcesses(pgid int, home string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // exited meanwhile
		}
		// Fields after "(comm)": state ppid pgrp ...
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 3 || fields[0] == "Z" {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if fields[2] == strconv.Itoa(pgid) || bytes.Contains(cmdline, []byte(home)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// consoleRE matches Chromium's log line for a console message, e.g.
// [..:INFO:CONSOLE:3] "text", source: file:///... (3); older builds wrote CONSOLE(3).
var consoleRE = regexp.MustCompile(`(?m)^.*:CONSOLE[:(].*$`)

// consoleLines returns the console messages in Chromium's stderr.
func consoleLines(stderr string) []string {
	return consoleRE.FindAllString(stderr, -1)
}

// assertChartsInDOM checks the parsed page holds the four charts, each with drawn paths
// and its legend text.
func assertChartsInDOM(t *testing.T, dom string) {
	t.Helper()
	require.Contains(t, dom, "</html>", "Chromium printed the DOM")
	charts := strings.Split(dom, "<svg")[1:]
	require.Len(t, charts, 4)
	drawn := regexp.MustCompile(`<path d="M[^"]+"`)
	for i, c := range charts {
		end := strings.Index(c, "</svg>")
		require.Positive(t, end, "chart %d is closed", i+1)
		c = c[:end]
		assert.Greater(t, len(drawn.FindAllString(c, -1)), 10, "chart %d has drawn paths", i+1)
		assert.Contains(t, c, ">mathematical_sequence</text>", "chart %d legend", i+1)
	}
	assert.Contains(t, charts[0], ">target</text>")
	assert.Contains(t, charts[2], ">kill-worker</text>")
}

// assertScreenshot checks the screenshot is a real picture with the charts on it: many
// colours, and the colours of the lines, the phase shading and the all-shapes bars.
func assertScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err, "Chromium wrote no screenshot")
	defer func() { _ = f.Close() }()
	img, err := png.Decode(f)
	require.NoError(t, err)
	b := img.Bounds()
	require.Equal(t, image.Rect(0, 0, 1280, 3600), b)
	colours, found := map[color.RGBA]int{}, make([]int, 5)
	want := []color.RGBA{toRGBA(plotutil.DarkColors[0]), toRGBA(plotutil.DarkColors[1]), toRGBA(plotutil.DarkColors[2]),
		blend(phaseFill), {R: 90, G: 90, B: 90, A: 255}}
	nonWhite := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := toRGBA(img.At(x, y))
			colours[c]++
			if c != (color.RGBA{R: 255, G: 255, B: 255, A: 255}) {
				nonWhite++
			}
			for i, w := range want {
				if near(c, w, 6) {
					found[i]++
				}
			}
		}
	}
	assert.Greater(t, len(colours), 50, "distinct colours")
	assert.Greater(t, float64(nonWhite)/float64(b.Dx()*b.Dy()), 0.03, "share of non-white pixels")
	for i, n := range found {
		assert.Greater(t, n, 200, "pixels of colour %v (shape lines, phase band, bars)", want[i])
	}
}

// toRGBA converts to 8-bit RGBA.
func toRGBA(c color.Color) color.RGBA {
	r, g, b, a := c.RGBA()
	return color.RGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: uint8(a >> 8)}
}

// blend is c drawn over white.
func blend(c color.NRGBA) color.RGBA {
	a := float64(c.A) / 255
	mix := func(v uint8) uint8 { return uint8(math.Round(float64(v)*a + 255*(1-a))) }
	return color.RGBA{R: mix(c.R), G: mix(c.G), B: mix(c.B), A: 255}
}

// near says whether a and b differ by at most tol in each channel.
func near(a, b color.RGBA, tol int) bool {
	d := func(x, y uint8) bool { return int(x)-int(y) <= tol && int(y)-int(x) <= tol }
	return d(a.R, b.R) && d(a.G, b.G) && d(a.B, b.B)
}

// createFile creates dir/name for a child's output.
func createFile(t *testing.T, dir, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// readFile reads a whole file.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
