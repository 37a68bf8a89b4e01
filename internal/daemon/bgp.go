package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dsrlb/dsrlb/internal/bgp"
	"github.com/dsrlb/dsrlb/internal/config"
)

// BGP timing: how often peer states are read from BIRD, and how soon a
// failed reconfiguration is tried again.
const (
	bgpPeersEvery = 3 * time.Second
	bgpRetryAfter = 5 * time.Second
)

// BGPStatus is the node's BGP side in the status (present with [bgp]).
type BGPStatus struct {
	Peers []BGPPeerStatus `json:"peers"`
	// Announced are the prefixes BIRD is told to announce; AnnouncedVIPs
	// the VIPs on them.
	Announced     []string `json:"announced"`
	AnnouncedVIPs []string `json:"announced_vips"`
	// Error is the last failure talking to BIRD ("" when none).
	Error string `json:"error"`
}

// BGPPeerStatus is the session with one router.
type BGPPeerStatus struct {
	Address string `json:"address"`
	AS      uint32 `json:"as"`
	// State is BIRD's BGP state: Established, Idle, Connect, Active, ...;
	// "unknown" when BIRD does not answer or lacks the session.
	State string `json:"state"`
	Info  string `json:"info"`
}

// bgpNode announces the VIPs that have a usable backend through BIRD. The
// reconcile loop says what it wants (want, under the daemon's lock); a
// goroutine of its own talks to BIRD, so a slow or absent BIRD never holds
// the loop or the status API.
type bgpNode struct {
	withdrawOnExit bool
	opts           bgp.Options // how BIRD is reached (tests set birdc)

	mu sync.Mutex
	// cfg, on and undecided are the wish of the last reconcile: announce
	// the VIPs in on; leave those in undecided (first probe round not done
	// yet) as BIRD has them, so a restart does not flap the routes.
	cfg       *config.Config
	on        []string
	undecided []string
	ann       *bgp.Announcer
	peers     []bgp.PeerStatus
	announced []string
	err       string // the last Set's error
	peersErr  string // the last Peers' error
	kick      chan struct{}
	stop      context.CancelFunc
	done      chan struct{}
}

// WithdrawOnExit makes the daemon withdraw every VIP from BGP when it stops
// (dsrlb run --withdraw-on-exit). Without it the routes stay announced,
// like the data plane stays attached, so a restart moves no flow.
func (d *Daemon) WithdrawOnExit(on bool) { d.bgp.withdrawOnExit = on }

// announceVIPs hands the VIPs with a non-empty ring to the BGP side; called
// by reconcile, with d.mu held, after the rings are updated.
func (d *Daemon) announceVIPs() {
	var on, undecided []string
	for name, vs := range d.vips {
		switch {
		case vs.shares != nil:
			on = append(on, name)
		case !vs.ringApplied:
			undecided = append(undecided, name)
		}
	}
	slices.Sort(on)
	slices.Sort(undecided)
	b := &d.bgp
	b.mu.Lock()
	changed := b.cfg != d.cfg || !slices.Equal(b.on, on) || !slices.Equal(b.undecided, undecided)
	b.cfg, b.on, b.undecided = d.cfg, on, undecided
	kick := b.kick
	b.mu.Unlock()
	if changed && kick != nil {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
}

// startBGP starts the goroutine that keeps BIRD in line with announceVIPs.
func (d *Daemon) startBGP() {
	b := &d.bgp
	ctx, cancel := context.WithCancel(context.Background())
	b.mu.Lock()
	b.kick, b.stop, b.done = make(chan struct{}, 1), cancel, make(chan struct{})
	b.mu.Unlock()
	go b.run(ctx, d.log)
	b.kick <- struct{}{}
}

// stopBGP stops the goroutine and, with WithdrawOnExit, withdraws every VIP.
func (d *Daemon) stopBGP() {
	b := &d.bgp
	b.mu.Lock()
	stop, done := b.stop, b.done
	b.stop = nil
	b.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	if !b.withdrawOnExit || d.cfg == nil || d.cfg.BGP == nil {
		return
	}
	ann := b.ann
	if ann == nil {
		ann = bgp.New(*d.cfg.BGP, d.cfg.VIPs, b.opts)
	}
	if err := ann.WithdrawAll(); err != nil {
		d.log.Error("BGP: withdraw on exit", "err", err)
		return
	}
	d.log.Info("BGP: every VIP withdrawn (--withdraw-on-exit)")
}

// run applies the wish whenever it changes, retries failures, and reads
// the peers' states every few seconds.
func (b *bgpNode) run(ctx context.Context, log *slog.Logger) {
	defer close(b.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastTry, lastPeers time.Time
	var lastWish string
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		case <-tick.C:
		}
		ann, names, wish := b.prepare(log)
		if ann == nil {
			continue
		}
		b.mu.Lock()
		failing := b.err != ""
		b.mu.Unlock()
		if wish != lastWish || failing && time.Since(lastTry) >= bgpRetryAfter {
			lastWish, lastTry = wish, time.Now()
			b.apply(ann, names, log)
		}
		if time.Since(lastPeers) >= bgpPeersEvery {
			lastPeers = time.Now()
			peers, err := ann.Peers(ctx)
			b.mu.Lock()
			b.peers, b.peersErr = peers, ""
			if err != nil {
				b.peersErr = err.Error()
			}
			b.mu.Unlock()
		}
	}
}

// prepare brings the Announcer in line with the config and returns it with
// the VIP names to announce (nil Announcer: no [bgp]), and a key of the wish.
func (b *bgpNode) prepare(log *slog.Logger) (*bgp.Announcer, []string, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg == nil {
		return nil, nil, ""
	}
	if b.cfg.BGP == nil {
		if b.ann != nil {
			// [bgp] was removed by a reload: stop announcing.
			if err := b.ann.WithdrawAll(); err != nil {
				log.Error("BGP: [bgp] removed, withdraw", "err", err)
			}
			b.ann, b.peers, b.announced, b.err, b.peersErr = nil, nil, nil, "", ""
		}
		return nil, nil, ""
	}
	if b.ann == nil {
		b.ann = bgp.New(*b.cfg.BGP, b.cfg.VIPs, b.opts)
	} else {
		b.ann.Configure(*b.cfg.BGP, b.cfg.VIPs)
	}
	names := slices.Clone(b.on)
	for _, n := range b.ann.Current() {
		if slices.Contains(b.undecided, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return b.ann, names, fmt.Sprintf("%p %v", b.cfg, names)
}

// apply tells BIRD to announce names, logging what changes.
func (b *bgpNode) apply(ann *bgp.Announcer, names []string, log *slog.Logger) {
	err := ann.Set(names)
	var prefixes []string
	for _, p := range ann.Announced() {
		prefixes = append(prefixes, p.String())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err != nil && err.Error() != b.err:
		log.Error("BGP: reconfigure BIRD", "err", err, "unreachable", errors.Is(err, bgp.ErrBirdUnreachable))
	case err == nil && b.err != "":
		log.Info("BGP: BIRD reconfigured again")
	}
	b.err = ""
	if err != nil {
		b.err = err.Error()
	}
	if !slices.Equal(prefixes, b.announced) {
		log.Info("BGP: announced routes", "prefixes", strings.Join(prefixes, ","), "vips", strings.Join(ann.Current(), ","))
	}
	b.announced = prefixes
}

// bgpStatus is the BGP part of the status; nil without [bgp].
func (d *Daemon) bgpStatus() *BGPStatus {
	b := &d.bgp
	b.mu.Lock()
	defer b.mu.Unlock()
	if d.cfg.BGP == nil {
		return nil
	}
	st := &BGPStatus{Peers: []BGPPeerStatus{}, Announced: slices.Clone(b.announced), AnnouncedVIPs: []string{}, Error: b.err}
	if st.Error == "" {
		st.Error = b.peersErr
	}
	if st.Announced == nil {
		st.Announced = []string{}
	}
	if b.ann != nil {
		st.AnnouncedVIPs = append(st.AnnouncedVIPs, b.ann.Current()...)
	}
	for _, p := range d.cfg.BGP.Peers {
		ps := BGPPeerStatus{Address: p.Address.String(), AS: p.AS, State: "unknown"}
		for _, s := range b.peers {
			if s.Address == p.Address {
				ps.State, ps.Info = s.State, s.Info
			}
		}
		st.Peers = append(st.Peers, ps)
	}
	return st
}

// withdrawOnDetach withdraws every VIP from BGP (dsrlb detach): the node is
// about to stop forwarding. A BIRD that is not running is not an error: the
// file it will read says to announce nothing.
func withdrawOnDetach(cfg *config.Config, done []string, errs []error) ([]string, []error) {
	if cfg.BGP == nil {
		return done, errs
	}
	err := bgp.New(*cfg.BGP, cfg.VIPs, bgp.Options{}).WithdrawAll()
	switch {
	case errors.Is(err, bgp.ErrBirdUnreachable):
		done = append(done, "wrote "+cfg.BGP.BirdConfig+" announcing no VIP (BIRD is not running: it reads it when it starts)")
	case err != nil:
		errs = append(errs, err)
	default:
		done = append(done, "withdrew every VIP from BGP (BIRD reconfigured with "+cfg.BGP.BirdConfig+")")
	}
	return done, errs
}
