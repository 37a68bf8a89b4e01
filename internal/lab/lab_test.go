package lab

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

var (
	testVIP4 = netip.MustParseAddr("198.51.100.25")
	testVIP6 = netip.MustParseAddr("2001:db8:7725::25")
)

// newTestLab builds a lab closed at the end of the test.
func newTestLab(t *testing.T, opts Options) *Lab {
	t.Helper()
	l, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// startSMTP starts a server on h's default addresses.
func startSMTP(t *testing.T, h *Host) *SMTPServer {
	t.Helper()
	s, err := h.StartSMTP(nil)
	if err != nil {
		t.Fatalf("StartSMTP on %s: %v", h.Name, err)
	}
	return s
}

// labNamespaces lists /run/netns entries starting with prefix.
func labNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestEveryHostReachesEveryOther(t *testing.T) {
	l := newTestLab(t, Options{VIPs: []netip.Addr{testVIP4, testVIP6}})
	if len(l.Clients) != DefaultClients || len(l.Backends) != DefaultBackends {
		t.Fatalf("got %d clients and %d backends, want %d and %d", len(l.Clients), len(l.Backends), DefaultClients, DefaultBackends)
	}
	servers := map[*Host]*SMTPServer{}
	for _, h := range l.Hosts() {
		servers[h] = startSMTP(t, h)
	}
	var wg sync.WaitGroup
	for _, src := range l.Hosts() {
		for _, dst := range l.Hosts() {
			if src == dst {
				continue
			}
			for _, a := range []netip.Addr{dst.Addr4, dst.Addr6} {
				wg.Go(func() {
					c, err := src.DialTCP(netip.AddrPortFrom(a, 25), 2*time.Second)
					if err != nil {
						t.Error(err)
						return
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(2 * time.Second))
					banner, err := bufio.NewReader(c).ReadString('\n')
					if err != nil || !strings.HasPrefix(banner, "220 "+dst.Name+" ") {
						t.Errorf("%s -> %s: banner %q, %v", src.Role, a, banner, err)
					}
					got := addrPortOf(c.LocalAddr()).Addr()
					if want := map[bool]netip.Addr{true: src.Addr4, false: src.Addr6}[a.Is4()]; got != want {
						t.Errorf("%s -> %s: source %s, want %s", src.Role, a, got, want)
					}
				})
			}
		}
	}
	wg.Wait()
	// Every server saw a session from each of the 5 other hosts, twice.
	for h, s := range servers {
		if n := len(s.Sessions()); n != 2*(len(l.Hosts())-1) {
			t.Errorf("%s recorded %d sessions, want %d", h.Role, n, 2*(len(l.Hosts())-1))
		}
	}
}

func TestBackendsDoNotAnswerARPOrNDForVIP(t *testing.T) {
	l := newTestLab(t, Options{VIPs: []netip.Addr{testVIP4, testVIP6}})
	for _, b := range l.Backends {
		startSMTP(t, b) // listens on the VIPs too: an answered ARP would connect
	}
	for _, vip := range []netip.Addr{testVIP4, testVIP6} {
		t.Run(vip.String(), func(t *testing.T) {
			t.Parallel()
			b0 := l.Backends[0]
			own := b0.Addr4
			if vip.Is6() {
				own = b0.Addr6
			}
			// Control: the backend's own address resolves to its MAC.
			c, err := l.LB.DialTCP(netip.AddrPortFrom(own, 25), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if mac := neighMAC(t, l.LB, own); mac.String() != b0.MAC.String() {
				t.Fatalf("neighbour %s on lb: %v, want %v", own, mac, b0.MAC)
			}
			// The VIP: nobody answers, so the connect times out unresolved.
			c, err = l.LB.DialTCP(netip.AddrPortFrom(vip, 25), time.Second)
			if err == nil {
				c.Close()
				t.Fatalf("connect from lb to %s:25 succeeded: a backend answered ARP/ND for the VIP", vip)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("connect to VIP: %v, want a timeout", err)
			}
			if mac := neighMAC(t, l.LB, vip); mac != nil {
				t.Fatalf("neighbour %s on lb resolved to %v: a backend answered for the VIP", vip, mac)
			}
		})
	}
}

// neighMAC returns the link-layer address h's neighbour table holds for
// addr on eth0 (nil when unresolved).
func neighMAC(t *testing.T, h *Host, addr netip.Addr) net.HardwareAddr {
	t.Helper()
	nh, err := h.netlinkHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := nh.NeighList(h.IfIndex, family)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == addr && len(n.HardwareAddr) > 0 {
			return n.HardwareAddr
		}
	}
	return nil
}

func TestMailToBackendKeepsClientAddress(t *testing.T) {
	l := newTestLab(t, Options{Clients: 2, Backends: 1})
	b := l.Backends[0]
	s := startSMTP(t, b)
	for i, c := range l.Clients {
		src, dst := c.Addr4, b.Addr4
		if i == 1 {
			src, dst = c.Addr6, b.Addr6
		}
		if err := SendMail(c, netip.AddrPortFrom(dst, 25), "alice@example.org", "bob@example.net"); err != nil {
			t.Fatal(err)
		}
		sessions := s.Sessions()
		last := sessions[len(sessions)-1]
		if last.Remote.Addr() != src || last.Local != netip.AddrPortFrom(dst, 25) {
			t.Errorf("session %d: remote %v local %v, want remote %v local %v:25", i, last.Remote, last.Local, src, dst)
		}
		if last.HELO != c.Name || last.Messages != 1 {
			t.Errorf("session %d: HELO %q messages %d, want %q and 1", i, last.HELO, last.Messages, c.Name)
		}
	}
	if n := s.Messages(); n != 2 {
		t.Errorf("Messages() = %d, want 2", n)
	}
}

func TestCloseRemovesEverythingAndLabsRunInParallel(t *testing.T) {
	const prefix = "dq"
	labs := make([]*Lab, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range labs {
		wg.Go(func() {
			labs[i], errs[i] = New(Options{Prefix: prefix, Clients: 1, Backends: 1, VIPs: []netip.Addr{testVIP4}})
		})
	}
	wg.Wait()
	for i, l := range labs {
		if l != nil {
			t.Cleanup(func() { l.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("lab %d: %v", i, errs[i])
		}
	}
	names := map[string]bool{}
	for _, l := range labs {
		names[l.Name] = true
		// Same addresses in every lab, no collision: mail flows in each.
		startSMTP(t, l.Backends[0])
		if err := SendMail(l.Clients[0], netip.AddrPortFrom(l.Backends[0].Addr4, 25), "a@example.org", "b@example.net"); err != nil {
			t.Errorf("lab %s: %v", l.Name, err)
		}
	}
	if len(names) != len(labs) {
		t.Fatalf("lab names collide: %v", names)
	}
	mine := fmt.Sprintf("%s%d-", prefix, os.Getpid())
	if got := labNamespaces(t, mine); len(got) != 3*4 {
		t.Fatalf("namespaces while running: %v, want 12", got)
	}
	for _, l := range labs {
		if err := l.Close(); err != nil {
			t.Errorf("Close %s: %v", l.Name, err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("second Close %s: %v", l.Name, err)
		}
	}
	if left := labNamespaces(t, mine); len(left) != 0 {
		t.Fatalf("namespaces left after Close: %v", left)
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	} else if strings.Contains(string(out), mine) {
		t.Fatalf("ip netns list still shows %s*:\n%s", mine, out)
	}
}

func TestFailedNewRemovesWhatItBuilt(t *testing.T) {
	const prefix = "dp"
	// ::1 is already on every namespace's lo: adding it as a VIP fails after
	// all namespaces and veths exist.
	_, err := New(Options{Prefix: prefix, VIPs: []netip.Addr{testVIP4, netip.MustParseAddr("::1")}})
	if err == nil {
		t.Fatal("New with VIP ::1 succeeded")
	}
	if !strings.Contains(err.Error(), "::1") {
		t.Errorf("error %q does not name the VIP", err)
	}
	if left := labNamespaces(t, fmt.Sprintf("%s%d-", prefix, os.Getpid())); len(left) != 0 {
		t.Fatalf("namespaces left after failed New: %v", left)
	}
	if _, err := New(Options{BackendsWithoutVIP: []int{7}}); err == nil {
		t.Fatal("New with BackendsWithoutVIP 7 of 3 succeeded")
	}
}

func TestCleanupStale(t *testing.T) {
	const prefix = "ds"
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("%s%d-0-sw", prefix, cmd.Process.Pid)
	live := fmt.Sprintf("%s%d-0-sw", prefix, os.Getpid())
	for _, n := range []string{dead, live} {
		if err := createNamedNetns(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteNamedNetns(n) })
	}
	deleted, err := CleanupStale(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(deleted, []string{dead}) {
		t.Errorf("CleanupStale deleted %v, want [%s]", deleted, dead)
	}
	if got := labNamespaces(t, prefix); !slices.Equal(got, []string{live}) {
		t.Errorf("left %v, want only the live process's %s", got, live)
	}
}

func TestNativeXDPPreparation(t *testing.T) {
	for _, generic := range []bool{false, true} {
		t.Run(fmt.Sprintf("generic=%v", generic), func(t *testing.T) {
			l := newTestLab(t, Options{Clients: 1, Backends: 1, GenericXDP: generic})
			nh, err := l.Switch.netlinkHandle()
			if err != nil {
				t.Fatal(err)
			}
			defer nh.Close()
			port, err := nh.LinkByName(l.LB.PortName)
			if err != nil {
				t.Fatal(err)
			}
			xdp := port.Attrs().Xdp
			attached := xdp != nil && xdp.Attached && xdp.AttachMode == nl.XDP_ATTACHED_DRV
			var tx bool
			if err := l.Switch.Do(func() (err error) { tx, err = txChecksum(l.LB.PortName); return err }); err != nil {
				t.Fatal(err)
			}
			if attached == generic || tx != generic {
				t.Errorf("port %s: native xdp_pass attached=%v tx-checksum=%v; want %v and %v", l.LB.PortName, attached, tx, !generic, generic)
			}
		})
	}
}

// TestARPControl shows the ARP assertion above can fail: with arp_ignore
// back at 0, a backend answers ARP for its loopback VIP and takes the
// connection.
func TestARPControl(t *testing.T) {
	l := newTestLab(t, Options{Clients: 1, Backends: 1, VIPs: []netip.Addr{testVIP4}})
	b := l.Backends[0]
	startSMTP(t, b)
	if err := b.setSysctls([][2]string{{"net.ipv4.conf.all.arp_ignore", "0"}}); err != nil {
		t.Fatal(err)
	}
	c, err := l.LB.DialTCP(netip.AddrPortFrom(testVIP4, 25), 2*time.Second)
	if err != nil {
		t.Fatalf("with arp_ignore=0 the backend should answer for the VIP: %v", err)
	}
	c.Close()
	if mac := neighMAC(t, l.LB, testVIP4); mac.String() != b.MAC.String() {
		t.Fatalf("VIP resolved to %v, want the backend's %v", mac, b.MAC)
	}
}

func TestCommandRunsInsideTheNamespace(t *testing.T) {
	l := newTestLab(t, Options{Clients: 1, Backends: 1})
	out, err := l.LB.Command("ip", "-o", "addr", "show", "dev", l.LB.IfName).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter ip addr: %v: %s", err, out)
	}
	for _, a := range []netip.Addr{l.LB.Addr4, l.LB.Addr6} {
		if !strings.Contains(string(out), a.String()+"/") {
			t.Errorf("ip addr in %s lacks %s:\n%s", l.LB.Name, a, out)
		}
	}
}
