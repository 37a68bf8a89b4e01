// Package daemon is dsrlb's control plane: one reconcile loop turning the
// config, health verdicts and admin state into the data plane's backend
// table and Maglev rings; the status API; metrics; the sorry server.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/dsrlb/dsrlb/internal/config"
	"github.com/dsrlb/dsrlb/internal/health"
	"github.com/dsrlb/dsrlb/internal/maps"
	"github.com/dsrlb/dsrlb/internal/netif"
	"github.com/dsrlb/dsrlb/internal/vippath"
)

// linkPinName is the pinned bpf_link under pin_path.
const linkPinName = "xdp_link"

// Daemon runs one load balancer node.
type Daemon struct {
	cfgPath string
	log     *slog.Logger

	mu        sync.Mutex
	cfg       *config.Config
	cfgStamp  fileStamp
	reloadErr error
	reloads   map[string]uint64 // "success" / "failure" -> count
	started   time.Time

	dp      *maps.Dataplane
	link    netif.Link
	xdpMode string
	neigh   *netif.Neighbors
	checker *health.Checker

	state  persisted
	admin  adminState
	vipIDs *maps.IDAllocator
	realID *maps.IDAllocator
	vips   map[string]*vipState // by VIP name
	macs   map[netip.Addr]net.HardwareAddr
	rates  rateTracker
	sorry  *sorryServer // nil without sorry_server
	lock   *os.File

	kick chan struct{}
	bgp  bgpNode // BGP announcements through BIRD (bgp.go)

	// adminMu serialises SetDrain: the file write, then d.admin.
	adminMu sync.Mutex
	// retired are ids of pairs removed by apply, marked unused and freed
	// by reconcile once the rings no longer point at them.
	retired []uint32
}

// vipState is the applied state of one VIP.
type vipState struct {
	cfg   config.VIP
	id    uint32
	reals map[string]*realState // by backend name
	// ringApplied: a ring (possibly empty) has been applied, i.e. the
	// VIP's first probe round is over; ringKey is that ring's active set
	// ("" for an empty ring).
	ringApplied bool
	ringKey     string
	// shares is the fraction of ring slots per real id; nil: empty ring.
	// (The table itself lives only in the kernel: 256 KiB per VIP.)
	shares map[uint32]float64
	born   time.Time // when the daemon took the VIP on
}

// realState is the applied state of one (VIP, backend) pair.
type realState struct {
	id       uint32
	backend  config.Backend
	weight   uint32
	priority uint32
	state    maps.RealState
	reason   string
	mac      net.HardwareAddr
	written  bool // the reals map entry matches state and mac
}

// New checks the config and prepares a daemon; Run starts it.
func New(cfgPath string, log *slog.Logger) (*Daemon, error) {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	return &Daemon{cfgPath: cfgPath, cfg: cfg, cfgStamp: stampOf(cfgPath), log: log,
		reloads: map[string]uint64{}, vips: map[string]*vipState{}, macs: map[netip.Addr]net.HardwareAddr{},
		kick: make(chan struct{}, 1)}, nil
}

// Run runs the daemon until ctx is cancelled or SIGINT/SIGTERM arrives,
// reloading on SIGHUP or when the file changes. On exit the data plane stays
// in place (pinned) so a restart or upgrade drops no flow.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := d.start(ctx); err != nil {
		d.shutdown()
		return err
	}
	defer d.shutdown()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var wg sync.WaitGroup
	defer wg.Wait()
	srvCtx, cancelSrv := context.WithCancel(ctx)
	defer cancelSrv()
	if err := d.startServers(srvCtx, &wg); err != nil {
		return err
	}
	neighChanges := d.neigh.Watch(srvCtx)

	d.sampleRates() // the baseline of the per-second rates
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	fileCheck := time.NewTicker(2 * time.Second)
	defer fileCheck.Stop()
	d.log.Info("dsrlb running", "interface", d.link.Name, "xdp_mode", d.xdpMode, "vips", len(d.cfg.VIPs), "config", d.cfgPath)
	for {
		select {
		case <-ctx.Done():
			d.log.Info("stopping; the data plane stays in place (dsrlb detach removes it)")
			return nil
		case <-hup:
			d.reload("SIGHUP")
		case <-fileCheck.C:
			if s := stampOf(d.cfgPath); s != d.currentStamp() {
				d.reload("file changed")
			}
		case <-neighChanges:
		case <-d.kick:
		case <-tick.C:
			d.sampleRates()
		}
		if err := d.reconcile(); err != nil {
			d.log.Error("reconcile", "err", err)
		}
	}
}

func (d *Daemon) currentStamp() fileStamp {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfgStamp
}

// poke asks the loop to reconcile soon.
func (d *Daemon) poke() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// start brings up the data plane: lock, bpffs, maps (reusing pins), XDP,
// state, neighbours, health checks, then a first reconcile.
func (d *Daemon) start(ctx context.Context) error {
	lb := d.cfg.LB
	if err := os.MkdirAll(lb.StateDir, 0o700); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	lock, err := lockStateDir(lb.StateDir)
	if err != nil {
		return err
	}
	d.lock = lock
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("remove memlock limit: %w", err)
	}
	if err := maps.EnsureBPFFS(filepath.Dir(lb.PinPath)); err != nil {
		return err
	}
	d.link, err = netif.LookupLink(lb.Interface)
	if err != nil {
		return err
	}
	d.state, d.admin, err = loadState(lb.StateDir)
	if err != nil {
		return err
	}
	if d.state.Interface != "" && d.state.Interface != lb.Interface {
		return fmt.Errorf("state_dir %s belongs to interface %s, config says %s: run `dsrlb detach` with the old config first", lb.StateDir, d.state.Interface, lb.Interface)
	}
	d.state.Interface = lb.Interface
	d.dp, err = maps.Load(maps.Options{PinPath: lb.PinPath, RingSize: lb.RingSize, FlowTableSize: lb.FlowTableSize})
	if err != nil {
		if errors.Is(err, maps.ErrIncompatiblePins) {
			return fmt.Errorf("%w\n(the pinned data plane was made by another dsrlb version or with other ring_size/flow_table_size; `dsrlb detach` removes it, dropping open flows)", err)
		}
		return err
	}
	if err := d.dp.SetSettings(maps.Settings{HashSeed: lb.HashSeed, RingSize: lb.RingSize, FloodLimit: maps.DefaultFloodLimit, IfMAC: d.link.MAC}); err != nil {
		return err
	}
	d.vipIDs = maps.NewIDAllocator(0, maps.MaxVIPs)
	d.realID = maps.NewIDAllocator(1, maps.MaxReals)
	if d.dp.Reused {
		d.adoptPins()
	} else {
		// Fresh maps: ids from an earlier life mean nothing now.
		d.state.VIPIDs, d.state.RealIDs = map[string]uint32{}, map[string]uint32{}
	}
	d.neigh = netif.NewNeighbors(d.link, d.log)
	d.checker = health.NewChecker(ctx, health.CheckerOptions{Logger: d.log, OnEvent: d.onHealthEvent})

	if err := d.apply(d.cfg); err != nil {
		return err
	}
	if err := d.reconcile(); err != nil {
		return err
	}
	att, err := netif.AttachXDP(d.link, d.dp.Program(), lb.XDPMode, filepath.Join(lb.PinPath, linkPinName), d.log)
	if err != nil {
		return err
	}
	d.xdpMode = att.Mode
	d.started = time.Now()
	d.log.Info("XDP attached", "interface", d.link.Name, "mode", att.Mode, "reused_pins", d.dp.Reused, "replaced_program", att.Reused)
	d.startBGP()
	return d.saveState()
}

// adoptPins reserves the ids recorded in state.json so the pinned flows,
// rings and counters keep meaning the same pairs.
func (d *Daemon) adoptPins() {
	for name, id := range d.state.VIPIDs {
		if err := d.vipIDs.Reserve(id); err != nil {
			d.log.Warn("dropping VIP id from state", "vip", name, "id", id, "err", err)
			delete(d.state.VIPIDs, name)
		}
	}
	for k, id := range d.state.RealIDs {
		if err := d.realID.Reserve(id); err != nil {
			d.log.Warn("dropping real id from state", "pair", k, "id", id, "err", err)
			delete(d.state.RealIDs, k)
			continue
		}
		// The last MAC the pinned table used stands until the neighbour
		// table says otherwise, so a restart never empties a ring.
		if r, err := d.dp.Real(id); err == nil && r.State != maps.RealUnused {
			d.seedMAC(k, r.MAC)
		}
	}
}

// seedMAC remembers a pinned pair's MAC under its backend's address.
func (d *Daemon) seedMAC(pair string, mac net.HardwareAddr) {
	backend := filepath.Base(pair)
	if b, ok := d.cfg.Backend(backend); ok {
		d.macs[b.Address] = mac
	}
}

func (d *Daemon) shutdown() {
	d.stopBGP()
	if d.checker != nil {
		d.checker.Stop()
	}
	d.mu.Lock()
	if d.dp != nil {
		if err := d.saveStateLocked(); err != nil {
			d.log.Error("save state", "err", err)
		}
		d.dp.Close()
		d.dp = nil
	}
	d.mu.Unlock()
	if d.lock != nil {
		d.lock.Close()
	}
}

func (d *Daemon) saveState() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.saveStateLocked()
}

func (d *Daemon) saveStateLocked() error {
	if d.checker != nil {
		for _, s := range d.checker.Status() {
			if s.State != health.StateUnknown {
				d.state.Health[pairKey(s.VIP, s.Backend)] = s.State
			}
		}
	}
	return writeJSON(filepath.Join(d.cfg.LB.StateDir, stateFile), d.state)
}

// onHealthEvent feeds a probe result into the loop.
func (d *Daemon) onHealthEvent(ev health.Event) {
	if ev.Changed {
		d.poke()
	}
}

// lockStateDir takes an exclusive lock so a second daemon on the same
// state and pins refuses to start.
func lockStateDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state_dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another dsrlb is running with state_dir %s (lock %s held): stop it first", dir, f.Name())
	}
	return f, nil
}

// fileStamp identifies a version of the config file.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi.ModTime(), fi.Size()}
}

// pathProbe returns the VIP-path probe of (vip, backend): a SYN to VIP:port
// written to the backend's MAC from the LB's own address (DESIGN 5 (a)).
func (d *Daemon) pathProbe(vip config.VIP, b config.Backend) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		// The SMTP probe that ran just before talked to the backend's own
		// address, so the kernel's neighbour table knows its MAC.
		mac, ok := d.neigh.Resolve([]netip.Addr{b.Address})[b.Address]
		if !ok {
			return errors.New("no ARP/ND reply from " + b.Address.String())
		}
		src, err := netif.SourceAddress(d.link, vip.Address)
		if err != nil {
			return err
		}
		return vippath.Probe(ctx, vippath.Params{IfIndex: d.link.Index, SrcMAC: d.link.MAC, DstMAC: mac, Src: src,
			VIP: netip.AddrPortFrom(vip.Address, vip.Ports[0]), Timeout: vip.Health.Timeout})
	}
}

// currentConfig returns the running config.
func (d *Daemon) currentConfig() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}
