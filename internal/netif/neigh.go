package netif

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NoNeighborReason is the reason given for a backend without a MAC.
const NoNeighborReason = "no ARP/ND reply"

// Reason returns why a backend has no usable MAC: "" when mac is known (ok,
// as from Resolve's map), else NoNeighborReason.
func Reason(mac net.HardwareAddr, ok bool) string {
	if ok && len(mac) > 0 {
		return ""
	}
	return NoNeighborReason
}

// knownStates are the neighbour states whose MAC counts as known.
const knownStates = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE |
	netlink.NUD_PERMANENT | netlink.NUD_NOARP

// resubscribeDelay is how long Watch waits before subscribing again after
// its netlink subscription failed.
const resubscribeDelay = time.Second

// Neighbors reads and drives the kernel's neighbour table on one interface
// to learn the backends' MAC addresses. Create it with NewNeighbors; its
// methods may be called from any goroutine.
type Neighbors struct {
	link Link
	log  *slog.Logger
	// ns is the namespace NewNeighbors was called in (netns.None() if it
	// could not be opened: then the calling thread's namespace is used).
	ns netns.NsHandle

	mu sync.Mutex
	h  *netlink.Handle // opened on first use, in ns
}

// NewNeighbors returns a Neighbors for l, bound to the calling thread's
// network namespace. Close releases it.
func NewNeighbors(l Link, log *slog.Logger) *Neighbors {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ns, err := netns.Get()
	if err != nil {
		log.Warn("cannot open the current network namespace, using each caller's", "error", err)
		ns = netns.None()
	}
	return &Neighbors{link: l, log: log, ns: ns}
}

// Close releases the namespace and netlink handles. Watch channels end with
// their contexts, not with Close.
func (n *Neighbors) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.h != nil {
		n.h.Close()
		n.h = nil
	}
	if n.ns.IsOpen() {
		err := n.ns.Close()
		n.ns = netns.None()
		return err
	}
	return nil
}

// handle returns the netlink handle in n's namespace.
func (n *Neighbors) handle() (*netlink.Handle, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.h == nil {
		h, err := netlink.NewHandleAt(n.ns)
		if err != nil {
			return nil, err
		}
		n.h = h
	}
	return n.h, nil
}

// Resolve returns the MACs the neighbour table knows now for addrs (entries
// REACHABLE, STALE, DELAY, PROBE, PERMANENT or NOARP). For every other
// address it asks the kernel to resolve it (ARP or neighbour solicitation,
// no data to the backend); Watch signals when an answer arrives. STALE
// entries are marked used so that the kernel re-confirms them (see the
// package documentation). Errors are logged: an address it could not read
// is simply absent from the map.
func (n *Neighbors) Resolve(addrs []netip.Addr) map[netip.Addr]net.HardwareAddr {
	out := make(map[netip.Addr]net.HardwareAddr, len(addrs))
	h, err := n.handle()
	if err != nil {
		n.log.Warn("neighbour table: netlink handle", "interface", n.link.Name, "error", err)
		return out
	}
	table := map[netip.Addr]netlink.Neigh{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		list, err := h.NeighList(n.link.Index, fam)
		if err != nil {
			n.log.Warn("neighbour table: list", "interface", n.link.Name, "family", fam, "error", err)
			continue
		}
		for _, e := range list {
			if a, ok := neighAddr(e); ok {
				table[a] = e
			}
		}
	}
	for _, a := range addrs {
		a = a.Unmap()
		if !a.IsValid() || a.Zone() != "" {
			continue
		}
		e, found := table[a]
		if mac, ok := knownMAC(e); found && ok {
			out[a] = mac
			if e.State&netlink.NUD_STALE == 0 {
				continue
			}
		}
		if err := n.use(h, a); err != nil {
			n.log.Warn("neighbour table: cannot trigger resolution", "interface", n.link.Name, "address", a, "error", err)
		}
	}
	return out
}

// use creates or touches a's entry with NTF_USE, as `ip neigh replace A dev
// IF use` does: the kernel then resolves (or re-confirms) it with ARP/ND.
func (n *Neighbors) use(h *netlink.Handle, a netip.Addr) error {
	return h.NeighSet(&netlink.Neigh{
		LinkIndex: n.link.Index,
		Family:    family(a),
		State:     netlink.NUD_NONE,
		Flags:     netlink.NTF_USE,
		IP:        a.AsSlice(),
	})
}

// Watch returns a channel that receives a value (coalesced: at most one
// waits) when an entry of the interface changes in a way that matters after
// Watch returns: it becomes known or unknown, or its MAC changes. A failed
// subscription is retried; changes missed meanwhile are signalled. The
// channel is closed when ctx ends.
func (n *Neighbors) Watch(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	sub, view, err := n.subscribe()
	go n.watch(ctx, out, sub, view, err)
	return out
}

// neighView is what Watch compares: address -> MAC, for known entries only.
type neighView map[netip.Addr]string

// subscription is one netlink subscription to neighbour updates.
type subscription struct {
	updates chan netlink.NeighUpdate
	done    chan struct{}
	errc    chan error
}

// subscribe subscribes to neighbour updates, then lists the table, so that
// no change after the listing is missed.
func (n *Neighbors) subscribe() (*subscription, neighView, error) {
	s := &subscription{
		updates: make(chan netlink.NeighUpdate, 64),
		done:    make(chan struct{}),
		errc:    make(chan error, 1),
	}
	err := netlink.NeighSubscribeWithOptions(s.updates, s.done, netlink.NeighSubscribeOptions{
		Namespace: &n.ns,
		ErrorCallback: func(err error) {
			select {
			case s.errc <- err:
			default:
			}
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("subscribe to neighbour updates: %w", err)
	}
	view, err := n.snapshot()
	if err != nil {
		s.close()
		return nil, nil, fmt.Errorf("list neighbours of %s: %w", n.link.Name, err)
	}
	return s, view, nil
}

// close ends the subscription and waits for its reader to finish.
func (s *subscription) close() {
	close(s.done)
	for range s.updates { // the subscriber closes updates once unblocked
	}
}

// watch follows the table until ctx ends, subscribing again after failures.
func (n *Neighbors) watch(ctx context.Context, out chan struct{}, sub *subscription, view neighView, err error) {
	defer close(out)
	signal := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	for {
		if err == nil {
			err = n.follow(ctx, sub, view, signal)
			sub.close()
		}
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("neighbour table: watching failed, trying again", "interface", n.link.Name, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(resubscribeDelay):
		}
		var listed neighView
		sub, listed, err = n.subscribe()
		if err == nil {
			if view == nil || !view.equal(listed) {
				signal() // changed while not subscribed
			}
			view = listed
		}
	}
}

// follow signals every change that matters until ctx ends (nil) or the
// subscription fails (the error).
func (n *Neighbors) follow(ctx context.Context, sub *subscription, view neighView, signal func()) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-sub.updates:
			if !ok {
				select {
				case err := <-sub.errc:
					return err
				default:
					return errors.New("subscription closed")
				}
			}
			if view.apply(n.link.Index, u) {
				signal()
			}
		}
	}
}

// snapshot lists the interface's entries as a view.
func (n *Neighbors) snapshot() (neighView, error) {
	h, err := n.handle()
	if err != nil {
		return nil, err
	}
	list, err := h.NeighList(n.link.Index, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	v := neighView{}
	for _, e := range list {
		if a, ok := neighAddr(e); ok {
			if mac, ok := knownMAC(e); ok {
				v[a] = mac.String()
			}
		}
	}
	return v, nil
}

// apply records one update of interface index; it reports a change that
// matters.
func (v neighView) apply(index int, u netlink.NeighUpdate) bool {
	if u.LinkIndex != index {
		return false
	}
	a, ok := neighAddr(u.Neigh)
	if !ok {
		return false
	}
	mac := ""
	if m, ok := knownMAC(u.Neigh); ok && u.Type != unix.RTM_DELNEIGH {
		mac = m.String()
	}
	if v[a] == mac {
		return false
	}
	if mac == "" {
		delete(v, a)
	} else {
		v[a] = mac
	}
	return true
}

// equal compares two views.
func (v neighView) equal(w neighView) bool {
	if len(v) != len(w) {
		return false
	}
	for a, mac := range v {
		if w[a] != mac {
			return false
		}
	}
	return true
}

// neighAddr returns an entry's IP address (false for bridge FDB entries).
func neighAddr(e netlink.Neigh) (netip.Addr, bool) {
	if e.Family != netlink.FAMILY_V4 && e.Family != netlink.FAMILY_V6 {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(e.IP)
	return a.Unmap(), ok
}

// knownMAC returns the entry's MAC when its state counts as known.
func knownMAC(e netlink.Neigh) (net.HardwareAddr, bool) {
	if e.State&knownStates == 0 || len(e.HardwareAddr) == 0 {
		return nil, false
	}
	return e.HardwareAddr, true
}
