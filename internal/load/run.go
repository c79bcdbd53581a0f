package load

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tasker-sim/tasker-sim/pkg/client"
)

// Config describes one run. Build it from validated input: Run trusts it.
type Config struct {
	// Client creates and watches tasks.
	Client *client.Client
	// OrchestratorURL serves the /metrics the run is reconciled with.
	OrchestratorURL string
	// Token is the bearer token for /metrics and /admin/faults, when the API has one.
	Token string
	// Mix is what to create.
	Mix *Mix
	// Schedule is the open model's target rate; nil selects the closed model.
	Schedule *Schedule
	// Concurrency is the closed model's number of tasks in flight.
	Concurrency int
	// Duration ends arrivals; 0 runs until ctx ends or Tasks are created.
	Duration time.Duration
	// Tasks ends arrivals after this many; 0 means no limit.
	Tasks int64
	// Warmup is left out of the figures.
	Warmup time.Duration
	// PayloadBytes pads every task's context by this much.
	PayloadBytes int
	// MaxSenders bounds the open model's concurrent create requests; an arrival that
	// finds them all busy is missed.
	MaxSenders int
	// Grace is how long tasks in flight get to finish once arrivals stop.
	Grace time.Duration
	// Scenario, when set, is applied to Targets during the run.
	Scenario *Scenario
	Targets  Targets
	// Thresholds decide Passed besides losses.
	Thresholds []Threshold
	// Progress, when set, is called about once a second.
	Progress func(Progress)
	// Warn, when set, receives one-line warnings (falling behind, refused creations).
	Warn func(string)
}

// Progress is the live view of a run.
type Progress struct {
	Elapsed, Planned time.Duration
	InFlight         int
	TargetRate       float64
	live
}

// run is one Run's state.
type run struct {
	cfg     Config
	start   time.Time
	rec     *recorder
	watch   *watcher
	senders sync.WaitGroup
	count   atomic.Int64 // arrivals so far, for Tasks
	// spent is closed once Tasks arrivals have been made: closed-model loops stop waiting
	// then, and the tasks still in flight are left to the grace period.
	spent     chan struct{}
	spentOnce sync.Once
	seq       atomic.Uint64
	lostMu    sync.Mutex
	lost      []UnfinishedTask
}

// Run creates load until its duration, task count or ctx ends, then waits up to the grace
// period for the tasks in flight, clears any faults it set, reconciles its counts with the
// orchestrator's counters and returns the figures. ctx ending (Ctrl-C) only stops arrivals.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Client == nil || cfg.Mix == nil {
		return nil, errors.New("load: Config needs Client and Mix")
	}
	if cfg.Warn == nil {
		cfg.Warn = func(string) {}
	}
	r := &run{cfg: cfg, rec: newRecorder(len(cfg.Mix.Entries), cfg.Warmup), spent: make(chan struct{})}
	before, err := scrapeCounters(ctx, cfg.OrchestratorURL, cfg.Token)
	if err != nil {
		cfg.Warn("the orchestrator's counters cannot be read, so the run will not be reconciled with them: " + err.Error())
	}
	cpu0 := cpuTime()
	r.start = time.Now().Add(50 * time.Millisecond)
	res := &Result{Schema: SchemaVersion, StartedAt: r.start, Model: "open", WarmupSeconds: cfg.Warmup.Seconds()}

	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	var background sync.WaitGroup
	r.watch = newWatcher(cfg.Client, r.finished, r.watchError())
	background.Go(func() { r.watch.run(watchCtx) })

	arriveCtx, stopArrivals := r.arrivalContext(ctx)
	defer stopArrivals()
	ap := r.startScenario(arriveCtx, &background)
	progressDone := r.startProgress(arriveCtx, &background)

	if cfg.Schedule != nil {
		r.open(arriveCtx)
	} else {
		res.Model, res.Concurrency = "closed", cfg.Concurrency
		r.closed(arriveCtx)
	}
	stopArrivals()
	arrivalsEnded := time.Since(r.start)
	if cfg.Duration > 0 {
		arrivalsEnded = min(arrivalsEnded, cfg.Duration)
	}
	r.senders.Wait()
	r.drain()
	stopWatch()
	close(progressDone)
	background.Wait()

	res.Interrupted = ctx.Err() != nil
	res.MeasuredSeconds = max(arrivalsEnded-cfg.Warmup, 0).Seconds()
	r.rec.fill(res, cfg.Mix, max(arrivalsEnded-cfg.Warmup, 0))
	r.fillTarget(res, arrivalsEnded)
	if ap != nil {
		res.Phases = ap.results()
	} else {
		res.Phases = []PhaseResult{}
	}
	res.Unfinished = r.unfinished()
	r.finishResult(context.WithoutCancel(ctx), res, before, err == nil)
	res.GeneratorCPUPercent = 100 * (cpuTime() - cpu0).Seconds() / time.Since(r.start).Seconds() / float64(runtime.NumCPU())
	return res, nil
}

// arrivalContext ends arrivals at the duration, or with ctx.
func (r *run) arrivalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.cfg.Duration > 0 {
		return context.WithDeadline(ctx, r.start.Add(r.cfg.Duration))
	}
	return context.WithCancel(ctx)
}

func (r *run) startScenario(ctx context.Context, wg *sync.WaitGroup) *applier {
	if r.cfg.Scenario == nil {
		return nil
	}
	ap := newApplier(r.cfg.Scenario, r.cfg.Targets, r.cfg.Token)
	wg.Go(func() { ap.run(ctx, r.start) })
	return ap
}

// startProgress reports progress every second until the returned channel is closed, and
// warns when the generator falls behind.
func (r *run) startProgress(ctx context.Context, wg *sync.WaitGroup) chan struct{} {
	done := make(chan struct{})
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var missed int64
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			p := r.progress()
			if p.Missed > missed && ctx.Err() == nil {
				r.cfg.Warn(fmt.Sprintf("generator behind: %d arrivals missed so far, every one of %d senders busy; raise --max-senders or lower the rate",
					p.Missed, r.cfg.MaxSenders))
				missed = p.Missed
			}
			if r.cfg.Progress != nil {
				r.cfg.Progress(p)
			}
		}
	})
	return done
}

func (r *run) progress() Progress {
	el := time.Since(r.start)
	p := Progress{Elapsed: el, Planned: r.cfg.Duration, InFlight: r.watch.inFlight(), live: r.rec.live(el)}
	if r.cfg.Schedule != nil {
		p.TargetRate = r.cfg.Schedule.RateAt(el)
	}
	return p
}

// take counts one arrival against Tasks; false when the budget is spent.
func (r *run) take() bool {
	n := r.count.Add(1)
	if r.cfg.Tasks > 0 && n >= r.cfg.Tasks {
		r.spentOnce.Do(func() { close(r.spent) })
	}
	return r.cfg.Tasks <= 0 || n <= r.cfg.Tasks
}

// open runs the open model: arrivals at their intended times whatever the system does.
func (r *run) open(ctx context.Context) {
	sem := make(chan struct{}, max(r.cfg.MaxSenders, 1))
	arr := &arrivals{sched: *r.cfg.Schedule}
	timer := time.NewTimer(0)
	defer timer.Stop()
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for r.take() {
		off := arr.next()
		if r.cfg.Duration > 0 && off >= r.cfg.Duration {
			return
		}
		timer.Reset(time.Until(r.start.Add(off)))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		r.rec.arrival(off)
		shape := r.cfg.Mix.Pick(rnd)
		select {
		case sem <- struct{}{}:
			r.senders.Go(func() {
				defer func() { <-sem }()
				r.create(ctx, shape, off)
			})
		default:
			if off >= r.cfg.Warmup {
				r.rec.miss()
			}
		}
	}
}

// closed runs the closed model: Concurrency loops, each creating a task and waiting for it.
func (r *run) closed(ctx context.Context) {
	for i := range max(r.cfg.Concurrency, 1) {
		r.senders.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i)))
			for ctx.Err() == nil && r.take() {
				off := time.Since(r.start)
				r.rec.arrival(off)
				f := r.create(ctx, r.cfg.Mix.Pick(rnd), off)
				if f == nil {
					select { // refused: do not spin
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
					continue
				}
				select {
				case <-f.done:
				case <-ctx.Done():
				case <-r.spent:
					return
				}
			}
		})
	}
	r.senders.Wait()
}

// create makes one task due at intended and starts watching it; nil when it was refused.
func (r *run) create(ctx context.Context, shape int, intended time.Duration) *flight {
	e := &r.cfg.Mix.Entries[shape]
	rnd := rand.New(rand.NewPCG(r.seq.Add(1), uint64(intended)))
	// A create under way finishes even when arrivals stop, so nothing is left unknown.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	t, err := r.cfg.Client.CreateTask(cctx, e.request(rnd, r.cfg.PayloadBytes))
	if err != nil {
		status := "network"
		var ae *client.APIError
		if errors.As(err, &ae) {
			status = strconv.Itoa(ae.Status)
		}
		r.rec.refuse(status)
		return nil
	}
	r.rec.create(shape, intended, time.Since(r.start))
	f := &flight{shape: shape, intended: intended, done: make(chan struct{})}
	r.watch.add(t.TaskUUID, f)
	return f
}

// finished records a task seen terminal (or gone).
func (r *run) finished(id string, f *flight, status string) {
	if status == StatusMissing {
		r.lostMu.Lock()
		r.lost = append(r.lost, UnfinishedTask{TaskUUID: id, Shape: r.cfg.Mix.Entries[f.shape].Name, Status: StatusMissing})
		r.lostMu.Unlock()
		return
	}
	r.rec.finish(f.shape, f.intended, time.Since(r.start), status)
}

// watchError warns about failed watch requests, at most every five seconds.
func (r *run) watchError() func(error) {
	var mu sync.Mutex
	var last time.Time
	return func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			r.cfg.Warn("watching tasks failed (retrying): " + err.Error())
		}
	}
}

// drain waits up to the grace period for the tasks in flight.
func (r *run) drain() {
	deadline := time.Now().Add(r.cfg.Grace)
	for r.watch.inFlight() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
}

// unfinishedLookups bounds how many unfinished tasks get their state looked up, one request
// each, so that a run that lost thousands still ends promptly; the rest say "not looked up".
const unfinishedLookups = 100

// unfinished lists the tasks that never finished, with their last known state.
func (r *run) unfinished() []UnfinishedTask {
	r.lostMu.Lock()
	out := append([]UnfinishedTask{}, r.lost...)
	r.lostMu.Unlock()
	looked := 0
	for id, f := range r.watch.remaining() {
		status := "not looked up"
		if looked < unfinishedLookups {
			looked++
			status = r.lastState(id)
		}
		out = append(out, UnfinishedTask{TaskUUID: id, Shape: r.cfg.Mix.Entries[f.shape].Name, Status: status})
	}
	return out
}

// lastState asks the API for a task's current state; "unknown" when it cannot say.
func (r *run) lastState(id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if t, err := r.cfg.Client.GetTask(ctx, id); err == nil {
		return t.Status
	}
	return "unknown"
}

func (r *run) fillTarget(res *Result, arrivalsEnded time.Duration) {
	if r.cfg.Schedule == nil {
		return
	}
	var sum float64
	n := 0
	for t := r.cfg.Warmup; t < arrivalsEnded; t += 100 * time.Millisecond {
		sum += r.cfg.Schedule.RateAt(t)
		n++
	}
	if n > 0 {
		res.TargetRate = sum / float64(n)
	}
	for s := 0; s <= int(arrivalsEnded/time.Second); s++ {
		res.TargetTimeline = append(res.TargetTimeline, r.cfg.Schedule.RateAt(time.Duration(s)*time.Second))
	}
}

// finishResult reconciles and judges the run.
func (r *run) finishResult(ctx context.Context, res *Result, before counters, haveBefore bool) {
	var terminal int64
	for _, n := range res.FinalStates {
		terminal += n
	}
	if haveBefore {
		res.Reconciliation = reconcile(ctx, r.cfg.OrchestratorURL, r.cfg.Token, before, res.Created, terminal)
	} else {
		res.Reconciliation = Reconciliation{Created: res.Created, Terminal: terminal,
			Problems: []string{"not checked: the orchestrator's /metrics could not be read at the start"}}
	}
	res.Passed = len(res.Unfinished) == 0 && len(res.Reconciliation.Problems) == 0
	res.Thresholds = []ThresholdResult{}
	for _, t := range r.cfg.Thresholds {
		tr := t.evaluate(res)
		res.Thresholds = append(res.Thresholds, tr)
		res.Passed = res.Passed && tr.Passed
	}
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
