package vippath

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dsrlb/dsrlb/internal/lab"
)

var (
	vip4 = netip.MustParseAddr("198.51.100.25")
	vip6 = netip.MustParseAddr("2001:db8:7725::25")
)

// probeFromLB probes backend b's VIP path from the lab's balancer.
func probeFromLB(l *lab.Lab, b *lab.Host, vip netip.Addr, timeout time.Duration) error {
	src := l.LB.Addr4
	if vip.Is6() {
		src = l.LB.Addr6
	}
	return l.LB.Do(func() error {
		return Probe(context.Background(), Params{
			IfIndex: l.LB.IfIndex,
			SrcMAC:  l.LB.MAC,
			DstMAC:  b.MAC,
			Src:     src,
			VIP:     netip.AddrPortFrom(vip, 25),
			Timeout: timeout,
		})
	})
}

// synRecv counts half-open (SYN_RECV) TCP entries in h's namespace.
func synRecv(t *testing.T, h *lab.Host) int {
	t.Helper()
	n := 0
	err := h.Do(func() error {
		for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			for _, line := range strings.Split(string(b), "\n")[1:] {
				if fields := strings.Fields(line); len(fields) > 3 && fields[3] == "03" {
					n++
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestProbe(t *testing.T) {
	// b0: VIPs on lo and SMTP on VIP:25; b1: no VIP on lo; b2: VIPs on lo,
	// SMTP on its own address only.
	l, err := lab.New(lab.Options{Clients: 1, Backends: 3, VIPs: []netip.Addr{vip4, vip6}, BackendsWithoutVIP: []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	b0, b1, b2 := l.Backends[0], l.Backends[1], l.Backends[2]
	for _, b := range []*lab.Host{b0, b1} {
		if _, err := b.StartSMTP(nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b2.StartSMTP([]netip.AddrPort{netip.AddrPortFrom(b2.Addr4, 25), netip.AddrPortFrom(b2.Addr6, 25)}); err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T) {
		for _, vip := range []netip.Addr{vip4, vip6} {
			t.Run(vip.String(), func(t *testing.T) {
				if err := probeFromLB(l, b0, vip, time.Second); err != nil {
					t.Errorf("b0 (VIP on lo, listener): %v", err)
				}
				deadline := time.Now().Add(time.Second)
				for synRecv(t, b0) != 0 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if n := synRecv(t, b0); n != 0 {
					t.Errorf("b0 keeps %d half-open connections after the probe's RST", n)
				}
				err := probeFromLB(l, b1, vip, 300*time.Millisecond)
				want := fmt.Sprintf("no SYN-ACK from %s via %s within 300ms", netip.AddrPortFrom(vip, 25), b1.MAC)
				if err == nil || err.Error() != want {
					t.Errorf("b1 (no VIP on lo): %v, want %q", err, want)
				}
				err = probeFromLB(l, b2, vip, time.Second)
				if err == nil || !strings.Contains(err.Error(), "RST from "+netip.AddrPortFrom(vip, 25).String()) || !strings.Contains(err.Error(), "nothing listening") {
					t.Errorf("b2 (VIP on lo, no listener): %v, want a RST error", err)
				}
			})
		}
	}
	t.Run("lb-without-vip", func(t *testing.T) { check(t) })
	// As in production: the balancer owns the VIPs itself.
	for _, vip := range []netip.Addr{vip4, vip6} {
		if err := l.LB.AddLoopbackVIP(vip); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("lb-owns-vip", func(t *testing.T) { check(t) })

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = l.LB.Do(func() error {
		return Probe(ctx, Params{IfIndex: l.LB.IfIndex, SrcMAC: l.LB.MAC, DstMAC: b0.MAC, Src: l.LB.Addr4, VIP: netip.AddrPortFrom(vip4, 25)})
	})
	if err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("canceled context: %v, want a cancellation error", err)
	}
}

func TestProbeChecksParams(t *testing.T) {
	good := Params{IfIndex: 1, SrcMAC: make([]byte, 6), DstMAC: make([]byte, 6), Src: netip.MustParseAddr("10.77.0.2"), VIP: netip.AddrPortFrom(vip4, 25)}
	for name, mod := range map[string]func(*Params){
		"ifindex": func(p *Params) { p.IfIndex = 0 },
		"mac":     func(p *Params) { p.DstMAC = nil },
		"port":    func(p *Params) { p.VIP = netip.AddrPortFrom(vip4, 0) },
		"family":  func(p *Params) { p.Src = netip.MustParseAddr("2001:db8:77::2") },
	} {
		p := good
		mod(&p)
		if err := Probe(context.Background(), p); err == nil {
			t.Errorf("%s: bad params accepted", name)
		}
	}
}
