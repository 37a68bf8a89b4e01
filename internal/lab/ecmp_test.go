package lab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestECMP: two balancers announcing the same /32 over BGP become one
// two-path kernel route in the router; a client reaches a backend through
// the router and back; cutting a balancer's link removes its path after the
// hold time.
func TestECMP(t *testing.T) {
	vip := netip.MustParseAddr("198.51.100.25")
	e, err := NewECMP(ECMPOptions{Clients: 1, Backends: 1, VIPs: []netip.Addr{vip}, Password: "lab s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	for i, h := range e.LBs {
		conf := fmt.Sprintf(`router id %s;
protocol device {}
protocol static { ipv4; route %s/32 blackhole; }
protocol bgp {
	local as %d; neighbor %s as %d; hold time 3; password "lab s3cret";
	connect delay time 1; connect retry time 1;
	ipv4 { import none; export all; next hop self; };
}
`, LBAddr(i), vip, e.Opts.NodeAS, RouterAddr, e.Opts.RouterAS)
		b, err := h.StartBIRD(t.TempDir(), conf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Stop() })
	}
	want := []netip.Addr{LBAddr(0), LBAddr(1)}
	waitNextHops(t, e, vip, want, 20*time.Second)
	if out, err := e.RouterBIRD.Birdc("show", "route", "for", vip.String()); err != nil || strings.Count(out, "via 10.77.0.") != 2 {
		t.Fatalf("router's BIRD routes to %s: %v\n%s", vip, err, out)
	}

	// A client on the other subnet reaches a backend through the router,
	// and the backend's replies go back through it.
	srv, err := e.Backends[0].StartSMTP([]netip.AddrPort{netip.AddrPortFrom(e.Backends[0].Addr4, 25)})
	if err != nil {
		t.Fatal(err)
	}
	if err := SendMail(e.Clients[0], netip.AddrPortFrom(e.Backends[0].Addr4, 25), "a@outside.example", "b@example.net"); err != nil {
		t.Fatal(err)
	}
	if s := srv.Sessions(); len(s) != 1 || s[0].Remote.Addr() != e.Clients[0].Addr4 {
		t.Fatalf("sessions = %+v", s)
	}

	start := time.Now()
	if err := e.LBs[1].SetLinkUp(false); err != nil {
		t.Fatal(err)
	}
	waitNextHops(t, e, vip, want[:1], 10*time.Second)
	t.Logf("path of the cut balancer gone after %s", time.Since(start).Round(100*time.Millisecond))
}

func waitNextHops(t *testing.T, e *ECMP, vip netip.Addr, want []netip.Addr, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := e.NextHops(vip)
		if err == nil && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			out, _ := e.RouterBIRD.Birdc("show", "protocols", "all")
			t.Fatalf("router's next hops to %s = %v (%v), want %v\n%s\n%s", vip, got, err, want, out, e.RouterBIRD.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
