package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dsrlb/dsrlb/internal/daemon"
	"github.com/dsrlb/dsrlb/internal/lab"
	"github.com/dsrlb/dsrlb/internal/labnode"
)

// ipv6Extra adds IPv6 backends (the lab servers' own IPv6 addresses) and an
// IPv6 internet VIP, plus a backend nobody answers ARP for.
func ipv6Extra(l *lab.Lab) string {
	var b strings.Builder
	var names []string
	for i, h := range l.Backends {
		name := fmt.Sprintf("EX%d-6", i+1)
		fmt.Fprintf(&b, "\n[[backend]]\nname = %q\naddress = %q\n", name, h.Addr6)
		names = append(names, fmt.Sprintf("{ name = %q }", name))
	}
	fmt.Fprintf(&b, "\n[[backend]]\nname = \"GHOST\"\naddress = \"10.77.0.250\"\n")
	fmt.Fprintf(&b, "\n[[vip]]\nname = \"internet6\"\naddress = %q\nports = [25]\nbackends = [%s]\n[vip.health]\nmail_from = \"probe@outside.example\"\n",
		labnode.InternetAddr6, strings.Join(names, ", "))
	fmt.Fprintf(&b, "\n[[vip]]\nname = \"ghosted\"\naddress = %q\nports = [25]\nbackends = [{ name = \"EX1\" }, { name = \"GHOST\" }]\n", labnode.SpareAddr)
	return b.String()
}

// TestIPv6AndMissingNeighbour: mail through an IPv6 VIP reaches IPv6
// backends with the client's IPv6 address intact; a backend that answers
// no ARP is down with the reason "no ARP/ND reply" and takes no traffic.
func TestIPv6AndMissingNeighbour(t *testing.T) {
	e := newEnv(t, envOptions{})
	if err := e.node.WriteConfig(ipv6Extra(e.lab)); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.waitFor("IPv6 backends up, GHOST down for lack of ARP", 15*time.Second, func(st daemon.Status) bool {
		for i := range e.lab.Backends {
			if b, _ := labnode.Backend(st, "internet6", fmt.Sprintf("EX%d-6", i+1)); b.State != "up" {
				return false
			}
		}
		g, _ := labnode.Backend(st, "ghosted", "GHOST")
		ex1, _ := labnode.Backend(st, "ghosted", "EX1")
		return g.State == "down" && g.Reason == "no ARP/ND reply" && g.CheckedAt != nil && ex1.RingShare == 1
	})
	c := e.lab.Clients[0]
	const n = 20
	for i := range n {
		if err := lab.SendMail(c, netip.AddrPortFrom(labnode.InternetAddr6, 25), "sender@outside.example", "postmaster@example.net"); err != nil {
			t.Fatalf("IPv6 message %d: %v", i, err)
		}
	}
	total, used := 0, 0
	for _, s := range e.smtp {
		k := 0
		for _, sess := range s.Sessions() {
			if sess.Local.Addr() == labnode.InternetAddr6 && sess.Remote.Addr() == c.Addr6 {
				k++
			}
		}
		total += k
		if k > 0 {
			used++
		}
	}
	if total != n || used < 2 {
		t.Fatalf("IPv6: %d sessions from the client's own address over %d backends, want %d over >= 2", total, used, n)
	}
	// Every message to the ghosted VIP lands on EX1.
	for i := range 5 {
		if err := lab.SendMail(c, netip.AddrPortFrom(labnode.SpareAddr, 25), "a@outside.example", "postmaster@example.net"); err != nil {
			t.Fatalf("ghosted VIP message %d: %v", i, err)
		}
	}
}

// TestIncompatiblePins: a restart with another ring_size refuses to use the
// pinned maps, says why and what to do, and leaves the running data plane alone.
func TestIncompatiblePins(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	e.waitAllUp()
	e.node.Stop()
	cfg := strings.Replace(e.node.ConfigText(""), "[lb]\n", "[lb]\nring_size = 251\n", 1)
	if err := writeFile(e.node.Config, cfg); err != nil {
		t.Fatal(err)
	}
	err := e.node.Start(e.ctx)
	if err == nil || !strings.Contains(err.Error(), "incompatible") || !strings.Contains(err.Error(), "dsrlb detach") {
		t.Fatalf("start with another ring_size: %v", err)
	}
	// The old data plane still forwards.
	e.send(e.lab.Clients[0], labnode.InternetAddr, "sender@outside.example", 3)
	if err := e.node.WriteConfig(""); err != nil {
		t.Fatal(err)
	}
}
