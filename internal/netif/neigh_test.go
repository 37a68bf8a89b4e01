package netif

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/dsrlb/dsrlb/internal/lab"
)

// fastNeighbors shortens the LB's neighbour timers on eth0 (both families)
// so that resolution failures and re-confirmation take a second or two.
func fastNeighbors(t *testing.T, h *lab.Host) {
	t.Helper()
	in(t, h, func() {
		for _, fam := range []string{"ipv4", "ipv6"} {
			for key, val := range map[string]string{
				"retrans_time_ms":        "100",
				"base_reachable_time_ms": "300",
				"delay_first_probe_time": "0",
			} {
				p := filepath.Join("/proc/sys/net", fam, "neigh/eth0", key)
				if err := os.WriteFile(p, []byte(val), 0o644); err != nil {
					t.Fatalf("sysctl %s: %v", p, err)
				}
			}
		}
	})
}

// rawNeigh returns the LB's table entry for a (ok false when none).
func rawNeigh(t *testing.T, n *Neighbors, a netip.Addr) (netlink.Neigh, bool) {
	t.Helper()
	h, err := n.handle()
	if err != nil {
		t.Fatal(err)
	}
	list, err := h.NeighList(n.link.Index, family(a))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		if got, ok := neighAddr(e); ok && got == a {
			return e, true
		}
	}
	return netlink.Neigh{}, false
}

// waitSignal waits up to timeout for a value on ch.
func waitSignal(t *testing.T, ch <-chan struct{}, timeout time.Duration, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: Watch channel closed", what)
		}
	case <-time.After(timeout):
		t.Fatalf("%s: no Watch signal within %v", what, timeout)
	}
}

// drain empties a coalesced signal channel.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// newNeighbors creates a Neighbors bound to h's namespace, closed after the test.
func newNeighbors(t *testing.T, h *lab.Host) (*Neighbors, Link) {
	t.Helper()
	var n *Neighbors
	var eth0 Link
	in(t, h, func() {
		var err error
		if eth0, err = LookupLink("eth0"); err != nil {
			t.Fatal(err)
		}
		n = NewNeighbors(eth0, nil)
	})
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Neighbors.Close: %v", err)
		}
	})
	return n, eth0
}

// TestResolve: every backend's MAC (v4 and v6) is learnt from the table
// without any prior traffic, addresses nobody answers end FAILED and stay
// unknown, and Watch signals the answers. Resolve and Watch run outside the
// namespace: the Neighbors remembers it.
func TestResolve(t *testing.T) {
	lb := newLab(t, lab.Options{Clients: 1, Backends: 2, GenericXDP: true})
	fastNeighbors(t, lb.LB)
	n, _ := newNeighbors(t, lb.LB)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	changes := n.Watch(ctx)

	want := map[netip.Addr]string{}
	for _, b := range lb.Backends {
		want[b.Addr4] = b.MAC.String()
		want[b.Addr6] = b.MAC.String()
	}
	silent := []netip.Addr{netip.MustParseAddr("10.77.0.250"), netip.MustParseAddr("2001:db8:77::250")}
	var addrs []netip.Addr
	for a := range want {
		addrs = append(addrs, a)
	}
	addrs = append(addrs, silent...)

	if got := n.Resolve(addrs); len(got) != 0 {
		t.Fatalf("first Resolve knows %v before any traffic", got)
	}
	waitSignal(t, changes, 3*time.Second, "first answer")
	var got map[netip.Addr]net.HardwareAddr
	eventually(t, 3*time.Second, "every backend resolved", func() bool {
		got = n.Resolve(addrs)
		return len(got) == len(want)
	})
	for a, mac := range want {
		if got[a].String() != mac {
			t.Errorf("%s: MAC %s, want %s", a, got[a], mac)
		}
		if r := Reason(got[a], true); r != "" {
			t.Errorf("%s: reason %q for a known MAC", a, r)
		}
	}
	for _, a := range silent {
		eventually(t, 3*time.Second, a.String()+" ends FAILED", func() bool {
			e, ok := rawNeigh(t, n, a)
			return ok && e.State == netlink.NUD_FAILED
		})
		got := n.Resolve([]netip.Addr{a})
		mac, ok := got[a]
		if ok {
			t.Errorf("%s: nobody answers but Resolve gives %s", a, mac)
		}
		if r := Reason(mac, ok); r != "no ARP/ND reply" {
			t.Errorf("%s: reason %q, want %q", a, r, "no ARP/ND reply")
		}
	}

	cancel()
	eventually(t, 2*time.Second, "Watch channel closed after cancel", func() bool {
		select {
		case _, ok := <-changes:
			return !ok
		default:
			return false
		}
	})
}

// TestWatchAndRefresh: Watch signals entries that appear, change MAC or go
// away on the interface (not on others); a backend that stops answering ends
// without a MAC after a Resolve, while one that answers is re-confirmed from
// STALE with no data sent to it.
func TestWatchAndRefresh(t *testing.T) {
	lb := newLab(t, lab.Options{Clients: 1, Backends: 2, GenericXDP: true})
	fastNeighbors(t, lb.LB)
	n, eth0 := newNeighbors(t, lb.LB)
	changes := n.Watch(t.Context())

	var other Link
	in(t, lb.LB, func() { other = addBridge(t, "br-other") })
	ns, err := netns.GetFromPath(lb.LB.NetnsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	manual := netip.MustParseAddr("10.77.0.240")
	set := func(l Link, mac string) {
		t.Helper()
		hw, _ := net.ParseMAC(mac)
		if err := h.NeighSet(&netlink.Neigh{LinkIndex: l.Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
			IP: manual.AsSlice(), HardwareAddr: hw}); err != nil {
			t.Fatal(err)
		}
	}
	// Let the subscription start (it lists the table first).
	time.Sleep(200 * time.Millisecond)
	drain(changes)

	set(other, "02:99:00:00:00:01")
	select {
	case <-changes:
		t.Fatal("signal for an entry on another interface")
	case <-time.After(300 * time.Millisecond):
	}
	set(eth0, "02:99:00:00:00:02")
	waitSignal(t, changes, 2*time.Second, "new permanent entry")
	if got := n.Resolve([]netip.Addr{manual}); got[manual].String() != "02:99:00:00:00:02" {
		t.Fatalf("Resolve after set: %v", got)
	}
	set(eth0, "02:99:00:00:00:03")
	waitSignal(t, changes, 2*time.Second, "MAC change")
	if got := n.Resolve([]netip.Addr{manual}); got[manual].String() != "02:99:00:00:00:03" {
		t.Fatalf("Resolve after MAC change: %v", got)
	}
	if err := h.NeighDel(&netlink.Neigh{LinkIndex: eth0.Index, Family: netlink.FAMILY_V4, IP: manual.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, changes, 2*time.Second, "deleted entry")
	drain(changes)

	gone, alive := lb.Backends[0], lb.Backends[1]
	addrs := []netip.Addr{gone.Addr4, alive.Addr4}
	eventually(t, 3*time.Second, "both backends resolved", func() bool { return len(n.Resolve(addrs)) == 2 })

	// The live backend's entry ages to STALE (nothing confirms it), then a
	// Resolve has the kernel re-confirm it with ARP alone.
	eventually(t, 5*time.Second, alive.Addr4.String()+" goes STALE", func() bool {
		e, ok := rawNeigh(t, n, alive.Addr4)
		return ok && e.State == netlink.NUD_STALE
	})
	in(t, gone, func() {
		eth, err := netlink.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetDown(eth); err != nil {
			t.Fatal(err)
		}
	})
	drain(changes)
	var got map[netip.Addr]net.HardwareAddr
	eventually(t, 8*time.Second, "the silent backend loses its MAC", func() bool {
		got = n.Resolve(addrs)
		_, ok := got[gone.Addr4]
		return !ok
	})
	if got[alive.Addr4].String() != alive.MAC.String() {
		t.Fatalf("live backend: MAC %v, want %s", got[alive.Addr4], alive.MAC)
	}
	waitSignal(t, changes, time.Second, "backend stopped answering")
	e, _ := rawNeigh(t, n, gone.Addr4)
	if e.State != netlink.NUD_FAILED && e.State != netlink.NUD_INCOMPLETE {
		t.Fatalf("silent backend's entry in state %s, want FAILED or INCOMPLETE", neighStateName(e.State))
	}
	eventually(t, 5*time.Second, alive.Addr4.String()+" re-confirmed REACHABLE", func() bool {
		n.Resolve(addrs)
		e, ok := rawNeigh(t, n, alive.Addr4)
		return ok && e.State == netlink.NUD_REACHABLE
	})
}

// neighStateName names a NUD state for messages.
func neighStateName(s int) string {
	names := []struct {
		bit  int
		name string
	}{
		{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"}, {netlink.NUD_STALE, "STALE"},
		{netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"}, {netlink.NUD_FAILED, "FAILED"},
		{netlink.NUD_NOARP, "NOARP"}, {netlink.NUD_PERMANENT, "PERMANENT"},
	}
	var out []string
	for _, n := range names {
		if s&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	if len(out) == 0 {
		return "NONE"
	}
	return strings.Join(out, "|")
}

// TestNeighViewApply: only changes of known-ness or MAC count.
func TestNeighViewApply(t *testing.T) {
	a := netip.MustParseAddr("10.77.0.101")
	mac1, _ := net.ParseMAC("02:77:00:00:00:65")
	mac2, _ := net.ParseMAC("02:77:00:00:00:66")
	up := func(typ uint16, index, family, state int, mac net.HardwareAddr) netlink.NeighUpdate {
		return netlink.NeighUpdate{Type: typ, Neigh: netlink.Neigh{LinkIndex: index, Family: family, State: state, IP: a.AsSlice(), HardwareAddr: mac}}
	}
	const idx = 2
	v := neighView{}
	steps := []struct {
		name string
		u    netlink.NeighUpdate
		want bool
	}{
		{"incomplete", up(unix.RTM_NEWNEIGH, idx, netlink.FAMILY_V4, netlink.NUD_INCOMPLETE, nil), false},
		{"reachable", up(unix.RTM_NEWNEIGH, idx, netlink.FAMILY_V4, netlink.NUD_REACHABLE, mac1), true},
		{"stale, same MAC", up(unix.RTM_NEWNEIGH, idx, netlink.FAMILY_V4, netlink.NUD_STALE, mac1), false},
		{"probe, same MAC", up(unix.RTM_NEWNEIGH, idx, netlink.FAMILY_V4, netlink.NUD_PROBE, mac1), false},
		{"other interface", up(unix.RTM_NEWNEIGH, idx+1, netlink.FAMILY_V4, netlink.NUD_REACHABLE, mac2), false},
		{"bridge fdb", up(unix.RTM_NEWNEIGH, idx, unix.AF_BRIDGE, netlink.NUD_REACHABLE, mac2), false},
		{"new MAC", up(unix.RTM_NEWNEIGH, idx, netlink.FAMILY_V4, netlink.NUD_REACHABLE, mac2), true},
		{"failed", up(unix.RTM_NEWNEIGH, idx, netlink.FAMILY_V4, netlink.NUD_FAILED, mac2), true},
		{"failed again", up(unix.RTM_NEWNEIGH, idx, netlink.FAMILY_V4, netlink.NUD_FAILED, nil), false},
		{"permanent", up(unix.RTM_NEWNEIGH, idx, netlink.FAMILY_V4, netlink.NUD_PERMANENT, mac1), true},
		{"deleted", up(unix.RTM_DELNEIGH, idx, netlink.FAMILY_V4, netlink.NUD_PERMANENT, mac1), true},
	}
	for _, s := range steps {
		if got := v.apply(idx, s.u); got != s.want {
			t.Errorf("%s: changed %v, want %v (view %v)", s.name, got, s.want, v)
		}
	}
	if len(v) != 0 {
		t.Fatalf("view after delete: %v", v)
	}
}
