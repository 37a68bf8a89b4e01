package health

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/dsrlb/dsrlb/internal/config"
)

// Scheduler defaults used when options or profiles leave them zero.
const (
	DefaultMaxInFlight = 16
	defaultInterval    = 5 * time.Second
)

// Target is one (VIP, backend) pair to probe.
type Target struct {
	VIP, Backend string
	// Addr is the backend's own address and the VIP's port.
	Addr netip.AddrPort
	// Profile is the VIP's effective probe profile.
	Profile config.Health
	// PathProbe, when non-nil and Profile.VIPPath is set, probes the VIP
	// path after an SMTP probe that was not Bad; an error makes the result
	// Bad with reason "VIP path: " + err. It gets a context bounded by
	// Profile.Timeout.
	PathProbe func(ctx context.Context) error
	// Initial is the state restored from state_dir ("" for none): it stands
	// until probes change it through rise/fall. Used only when the target
	// is new to the Checker.
	Initial State
}

// Key names a target.
type Key struct{ VIP, Backend string }

func (t Target) key() Key { return Key{t.VIP, t.Backend} }

// Event reports one probe result of a target, and with it whether the
// target's state changed.
type Event struct {
	VIP, Backend string
	// Old and New are the states before and after this result; they differ
	// exactly when Changed is set.
	Old, New State
	Changed  bool
	// Reason explains New in words (see Status.Reason).
	Reason string
	Result Result
}

// Status is a snapshot of one target for `dsrlb status`.
type Status struct {
	VIP, Backend string
	State        State
	// Reason is "" when up and the last probe was good; otherwise the last
	// probe's reason, "recovering: 1 of 2 good probes", or "not probed yet".
	Reason    string
	LastReply string
	Latency   time.Duration
	CheckedAt time.Time
	Warning   string
}

// CheckerOptions configures a Checker.
type CheckerOptions struct {
	// Prober runs the probes.
	Prober Prober
	// MaxInFlight bounds the probes running at once; 0 means
	// DefaultMaxInFlight.
	MaxInFlight int
	// Logger receives state transitions; nil means slog.Default().
	Logger *slog.Logger
	// OnEvent, when non-nil, receives every probe result. Calls are
	// serialised (never two at once) and in order for each target. It may
	// call Status and Replace, but not Stop, and should return quickly:
	// results of other targets wait for it.
	OnEvent func(Event)
}

// Checker probes a set of targets, each every Profile.Interval +-10%
// (counted from the end of its previous probe), with at most MaxInFlight
// probes at once. The first probe of a target starts at once.
type Checker struct {
	opts   CheckerOptions
	log    *slog.Logger
	sem    chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	evMu sync.Mutex // serialises OnEvent; taken before mu

	mu      sync.Mutex
	targets map[Key]*run
}

// run is the state of one scheduled target.
type run struct {
	target  Target // guarded by Checker.mu
	machine *Machine
	last    Result
	probed  bool
	cancel  context.CancelFunc
}

// NewChecker returns a Checker with no targets; give it some with Replace.
// Cancelling ctx stops it like Stop.
func NewChecker(ctx context.Context, opts CheckerOptions) *Checker {
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	return &Checker{
		opts:    opts,
		log:     log,
		sem:     make(chan struct{}, opts.MaxInFlight),
		ctx:     ctx,
		cancel:  cancel,
		targets: map[Key]*run{},
	}
}

// Replace makes targets the set probed (a config reload). A target whose
// VIP, Backend, Addr and Profile are unchanged keeps its state, counters and
// schedule (its PathProbe is updated). One whose Profile changed is probed
// again at once, its state kept as initial state; one whose Addr changed,
// or a new one, starts from its Initial state. Targets left out stop.
func (c *Checker) Replace(targets []Target) error {
	seen := map[Key]bool{}
	for _, t := range targets {
		if seen[t.key()] {
			return fmt.Errorf("health: target VIP %q backend %q listed twice", t.VIP, t.Backend)
		}
		seen[t.key()] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return fmt.Errorf("health: checker stopped")
	}
	next := make(map[Key]*run, len(targets))
	for _, t := range targets {
		old := c.targets[t.key()]
		switch {
		case old != nil && old.target.Addr == t.Addr && old.target.Profile == t.Profile:
			old.target.PathProbe = t.PathProbe
			next[t.key()] = old
			continue
		case old != nil && old.target.Addr == t.Addr:
			t.Initial = old.machine.State()
		}
		next[t.key()] = c.start(t)
	}
	for k, r := range c.targets {
		if next[k] != r {
			r.cancel()
		}
	}
	c.targets = next
	return nil
}

// start launches the probe loop of t. Called with mu held.
func (c *Checker) start(t Target) *run {
	ctx, cancel := context.WithCancel(c.ctx)
	r := &run{target: t, machine: NewMachine(t.Profile.Rise, t.Profile.Fall, t.Initial), cancel: cancel}
	c.wg.Add(1)
	go c.loop(ctx, r)
	return r
}

// Stop stops every probe and returns once no probe goroutine or SMTP
// session is left.
func (c *Checker) Stop() {
	c.cancel()
	c.wg.Wait()
}

// Status returns a snapshot of every target, sorted by VIP then backend.
func (c *Checker) Status() []Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Status, 0, len(c.targets))
	for _, r := range c.targets {
		out = append(out, r.status())
	}
	slices.SortFunc(out, func(a, b Status) int {
		return cmp.Or(cmp.Compare(a.VIP, b.VIP), cmp.Compare(a.Backend, b.Backend))
	})
	return out
}

// StatusOf returns the snapshot of one target.
func (c *Checker) StatusOf(vip, backend string) (Status, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.targets[Key{vip, backend}]
	if !ok {
		return Status{}, false
	}
	return r.status(), true
}

// status builds r's snapshot. Called with Checker.mu held.
func (r *run) status() Status {
	return Status{
		VIP:       r.target.VIP,
		Backend:   r.target.Backend,
		State:     r.machine.State(),
		Reason:    r.reason(),
		LastReply: r.last.Reply,
		Latency:   r.last.Latency,
		CheckedAt: r.last.CheckedAt,
		Warning:   r.last.Warning,
	}
}

// reason explains r's state in words.
func (r *run) reason() string {
	switch {
	case !r.probed:
		return "not probed yet"
	case r.last.Verdict != Good:
		return r.last.Reason
	case r.machine.State() != StateUp:
		good, _ := r.machine.Runs()
		return fmt.Sprintf("recovering: %d of %d good probes", good, r.machine.Rise())
	}
	return ""
}

// loop probes r until ctx ends.
func (c *Checker) loop(ctx context.Context, r *run) {
	defer c.wg.Done()
	var delay time.Duration
	for {
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		select {
		case <-ctx.Done():
			return
		case c.sem <- struct{}{}:
		}
		c.mu.Lock()
		t := r.target
		c.mu.Unlock()
		res := c.probe(ctx, t)
		<-c.sem
		if ctx.Err() != nil {
			return
		}
		c.apply(r, res)
		interval := t.Profile.Interval
		if interval <= 0 {
			interval = defaultInterval
		}
		delay = jitter(interval)
	}
}

// probe runs the SMTP probe of t, then its VIP path probe.
func (c *Checker) probe(ctx context.Context, t Target) Result {
	res := c.opts.Prober.Probe(ctx, t.Addr, t.Profile)
	if res.Verdict == Bad || t.PathProbe == nil || !t.Profile.VIPPath {
		return res
	}
	timeout := t.Profile.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := t.PathProbe(pctx); err != nil {
		res.Verdict, res.Reason = Bad, "VIP path: "+err.Error()
	}
	return res
}

// apply feeds res to r's state machine, logs a transition and reports the
// event. Results of a target replaced meanwhile are dropped.
func (c *Checker) apply(r *run, res Result) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.mu.Lock()
	if c.targets[r.target.key()] != r {
		c.mu.Unlock()
		return
	}
	old, cur := r.machine.Observe(res.Verdict)
	r.last, r.probed = res, true
	ev := Event{VIP: r.target.VIP, Backend: r.target.Backend, Old: old, New: cur,
		Changed: old != cur, Reason: r.reason(), Result: res}
	c.mu.Unlock()
	if ev.Changed {
		level := slog.LevelWarn
		if cur == StateUp {
			level = slog.LevelInfo
		}
		c.log.Log(c.ctx, level, "backend state changed", "vip", ev.VIP, "backend", ev.Backend,
			"from", string(old), "to", string(cur), "reason", ev.Reason, "reply", res.Reply,
			"latency", res.Latency)
	}
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(ev)
	}
}

// jitter returns d spread uniformly over [0.9d, 1.1d].
func jitter(d time.Duration) time.Duration {
	spread := int64(d / 10)
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread) + time.Duration(rand.Int64N(2*spread+1))
}
