package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/dsrlb/dsrlb/internal/config"
)

// Options tune an Announcer.
type Options struct {
	// Birdc is the birdc executable (default "birdc", found in PATH).
	Birdc string
	// Timeout bounds every birdc call (default 5s).
	Timeout time.Duration
}

// Announcer keeps BIRD announcing exactly the VIPs it is told to. It is
// safe for concurrent use.
type Announcer struct {
	opts Options

	mu   sync.Mutex
	bgp  config.BGP
	vips []config.VIP
	// applied is the text BIRD last accepted from this Announcer ("" before
	// the first success).
	applied string
	// current are the VIPs the file on disk announces.
	current []string
}

// New returns an Announcer for the [bgp] table b and the configured VIPs.
// It reads the file a previous daemon left (b.BirdConfig) to learn what
// BIRD announces now (Current), and changes nothing until Set.
func New(b config.BGP, vips []config.VIP, o Options) *Announcer {
	if o.Birdc == "" {
		o.Birdc = "birdc"
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	a := &Announcer{opts: o, bgp: b, vips: vips}
	if text, err := os.ReadFile(b.BirdConfig); err == nil {
		a.current, _ = announcedIn(string(text))
	}
	return a
}

// Configure replaces the [bgp] table and the VIPs (after a reload). BIRD is
// reconfigured by the next Set, if the file changes.
func (a *Announcer) Configure(b config.BGP, vips []config.VIP) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if b.BirdConfig != a.bgp.BirdConfig || b.BirdSocket != a.bgp.BirdSocket {
		a.applied = ""
	}
	a.bgp, a.vips = b, vips
}

// Current returns the names of the VIPs the file announces now, sorted.
func (a *Announcer) Current() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.current)
}

// Announced returns the prefixes the file announces now, in address order.
func (a *Announcer) Announced() []netip.Prefix {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ps []netip.Prefix
	for _, r := range Routes(a.vips) {
		if slices.ContainsFunc(r.VIPs, func(n string) bool { return slices.Contains(a.current, n) }) {
			ps = append(ps, r.Prefix)
		}
	}
	return ps
}

// Set makes BIRD announce exactly the named VIPs (every name must be a
// configured VIP) and withdraw the others. It is idempotent: BIRD is
// reconfigured only when the file's text changes (or the last attempt
// failed). When BIRD refuses the file, the previous one is put back.
func (a *Announcer) Set(names []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	text, err := Render(a.bgp, a.vips, names)
	if err != nil {
		return err
	}
	if text == a.applied {
		return nil
	}
	path := a.bgp.BirdConfig
	old, readErr := os.ReadFile(path)
	if err := writeAtomic(path, []byte(text)); err != nil {
		return err
	}
	a.current, _ = announcedIn(text)
	lines, err := a.birdc(context.Background(), a.bgp.BirdSocket, "configure")
	if err == nil && !configured(lines) {
		err = fmt.Errorf("birdc configure: unexpected reply %v", lines)
	}
	if errors.Is(err, ErrBirdConfig) {
		switch {
		case readErr == nil && string(old) != text:
			if rerr := writeAtomic(path, old); rerr != nil {
				return errors.Join(err, fmt.Errorf("put back the previous %s: %w", path, rerr))
			}
			a.current, _ = announcedIn(string(old))
		case readErr != nil:
			// No previous file to put back: BIRD runs without ours, so
			// nothing of ours is announced.
			a.current = nil
		}
	}
	if err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	a.applied = text
	return nil
}

// WithdrawAll withdraws every VIP; the BGP sessions stay up.
func (a *Announcer) WithdrawAll() error { return a.Set(nil) }

// Peers asks BIRD for the state of the session with each configured peer.
func (a *Announcer) Peers(ctx context.Context) ([]PeerStatus, error) {
	a.mu.Lock()
	b := a.bgp
	a.mu.Unlock()
	lines, err := a.birdc(ctx, b.BirdSocket, "show", "protocols", "all")
	if err != nil {
		return nil, fmt.Errorf("bgp: %w", err)
	}
	protos := parseProtocols(lines)
	out := make([]PeerStatus, len(b.Peers))
	for i, p := range b.Peers {
		name := ProtocolName(p.Address)
		ps := PeerStatus{Address: p.Address, AS: p.AS, Protocol: name, State: "unknown"}
		if bp, ok := protos[name]; ok {
			ps.State, ps.Info = bp.bgpState, bp.lastError
			if ps.State == "" {
				ps.State = "Down"
			}
			if ps.Info == "" && ps.State != "Established" {
				ps.Info = bp.info
			}
		}
		out[i] = ps
	}
	return out, nil
}

// writeAtomic replaces path with data: a temporary file in the same
// directory, mode 0640 and the directory's owner and group (BIRD reads it
// as its own user), synced, then renamed over path.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("bgp: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("bgp: write %s: %w", path, err)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(0o640); err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
			if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
