package maps

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// TestForwardMatrix: every shape of packet to a VIP:port is forwarded to the
// backend the Go mirror of the hash predicts, with only the MACs changed.
func TestForwardMatrix(t *testing.T) {
	tb := newTestbed(t)
	tb.addVIP(1, vip4, []uint16{25, 587}, 0, 3)
	tb.addVIP(2, vip6, []uint16{25}, 0, 3)
	t4, _ := tb.d.Ring(1)
	t6, _ := tb.d.Ring(2)
	cases := []struct {
		name  string
		p     pkt
		table []uint32
	}{
		{"ipv4 syn", pkt{src: ap(client4, 40000), dst: ap(vip4, 25), flags: "S"}, t4},
		{"ipv4 second port", pkt{src: ap(client4, 40001), dst: ap(vip4, 587), flags: "S"}, t4},
		{"ipv4 options", pkt{src: ap(client4, 40002), dst: ap(vip4, 25), flags: "S", ipOptions: true}, t4},
		{"vlan", pkt{src: ap(client4, 40003), dst: ap(vip4, 25), flags: "S", vlans: []uint16{100}}, t4},
		{"qinq", pkt{src: ap(client4, 40004), dst: ap(vip4, 25), flags: "S", vlans: []uint16{100, 200}, qinq: true}, t4},
		{"double 802.1q", pkt{src: ap(client4, 40005), dst: ap(vip4, 25), flags: "S", vlans: []uint16{100, 200}}, t4},
		{"ipv4 data", pkt{src: ap(client4, 40006), dst: ap(vip4, 25), flags: "A", payload: []byte("MAIL FROM:<a@b>\r\n")}, t4},
		{"ipv6 syn", pkt{src: ap(client6, 40000), dst: ap(vip6, 25), flags: "S"}, t6},
		{"ipv6 vlan", pkt{src: ap(client6, 40001), dst: ap(vip6, 25), flags: "S", vlans: []uint16{7}}, t6},
		{"ipv6 data", pkt{src: ap(client6, 40002), dst: ap(vip6, 25), flags: "A", payload: []byte("EHLO x\r\n")}, t6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb.t = t
			got := tb.expectTX(c.p.frame(t))
			if want := tb.expectedReal(c.table, c.p.key(), false); got != want {
				t.Fatalf("forwarded to real %d, hash predicts %d", got, want)
			}
		})
	}
}

// TestPassMatrix: anything that is not for a VIP:port leaves untouched.
func TestPassMatrix(t *testing.T) {
	tb := newTestbed(t)
	tb.addVIP(1, vip4, []uint16{25}, 0, 2)
	tb.addVIP(2, vip6, []uint16{25}, 0, 2)
	other4 := netip.MustParseAddr("198.51.100.26")
	cases := map[string][]byte{
		"non-VIP address":                       pkt{src: ap(client4, 1), dst: ap(other4, 25), flags: "S"}.frame(t),
		"VIP other port":                        pkt{src: ap(client4, 1), dst: ap(vip4, 80), flags: "S"}.frame(t),
		"VIP6 other port":                       pkt{src: ap(client6, 1), dst: ap(vip6, 443), flags: "S"}.frame(t),
		"source is VIP":                         pkt{src: ap(vip4, 25), dst: ap(client4, 1), flags: "SA"}.frame(t),
		"arp":                                   arpRequest(t, vip4),
		"vlan non-VIP":                          pkt{src: ap(client4, 1), dst: ap(other4, 25), flags: "S", vlans: []uint16{5}}.frame(t),
		"three vlan tags":                       pkt{src: ap(client4, 1), dst: ap(vip4, 25), flags: "S", vlans: []uint16{5, 6, 7}}.frame(t),
		"udp to VIP port":                       udpFrame(t, client4, vip4, 25),
		"icmp echo to VIP":                      icmpEcho(t, client4, vip4),
		"ptb quoting a VIP flow sent elsewhere": icmpPTBTo(t, ap(client4, 1), ap(vip4, 25), client4, other4),
		"tcp header length 4 words":             badDataOffset(t, pkt{src: ap(client4, 1), dst: ap(vip4, 25), flags: "S"}.frame(t)),
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			tb.t = t
			tb.expectPass(frame)
		})
	}
}

// TestTruncated: a VIP SYN cut at every byte before its TCP header ends
// passes untouched.
func TestTruncated(t *testing.T) {
	tb := newTestbed(t)
	tb.addVIP(1, vip4, []uint16{25}, 0, 2)
	tb.addVIP(2, vip6, []uint16{25}, 0, 2)
	for _, p := range []pkt{
		{src: ap(client4, 1), dst: ap(vip4, 25), flags: "S", vlans: []uint16{9, 10}, ipOptions: true},
		{src: ap(client6, 1), dst: ap(vip6, 25), flags: "S", vlans: []uint16{9}},
	} {
		full := p.frame(t)
		tb.expectTX(full)
		// BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header
		// (EINVAL), so cuts start there.
		for n := 14; n < len(full); n++ {
			tb.expectPass(full[:n])
		}
	}
}

// TestFragments: non-first fragments to a VIP pass and are counted; to
// another address they pass uncounted.
func TestFragments(t *testing.T) {
	tb := newTestbed(t)
	tb.addVIP(1, vip4, []uint16{25}, 0, 2)
	tb.addVIP(2, vip6, []uint16{25}, 0, 2)
	tb.expectPass(pkt{src: ap(client4, 1), dst: ap(vip4, 25), fragOffset: 185}.frame(t))
	tb.expectPass(pkt{src: ap(client6, 1), dst: ap(vip6, 25), fragOffset: 185}.frame(t))
	tb.expectPass(pkt{src: ap(client4, 1), dst: ap(netip.MustParseAddr("10.9.9.9"), 25), fragOffset: 185}.frame(t))
	if g := tb.global(); g.Fragments != 2 {
		t.Fatalf("fragments counter %d, want 2", g.Fragments)
	}
}

// TestICMPPacketTooBig: a PTB about a backend's reply reaches the backend
// that owns the flow, even when the ring would pick another one.
func TestICMPPacketTooBig(t *testing.T) {
	tb := newTestbed(t)
	ids4 := tb.addVIP(1, vip4, []uint16{25}, 0, 3)
	ids6 := tb.addVIP(2, vip6, []uint16{25}, 0, 3)
	for _, c := range []struct {
		client, vip netip.AddrPort
		router      netip.Addr
		ids         []uint32
		vipID       uint32
	}{
		{ap(client4, 41000), ap(vip4, 25), netip.MustParseAddr("10.0.0.254"), ids4, 1},
		{ap(client6, 41000), ap(vip6, 25), netip.MustParseAddr("2001:db8::fe"), ids6, 2},
	} {
		table, _ := tb.d.Ring(c.vipID)
		k := NewFlowKey(c.client, c.vip)
		pick := tb.expectedReal(table, k, false)
		owner := c.ids[0]
		if owner == pick {
			owner = c.ids[1]
		}
		if err := tb.d.PutFlow(k, owner); err != nil {
			t.Fatal(err)
		}
		before := tb.global().ICMPForwarded
		if got := tb.expectTX(icmpPTB(t, c.client, c.vip, c.router)); got != owner {
			t.Fatalf("%s: PTB went to real %d, flow owner is %d", c.vip, got, owner)
		}
		if tb.global().ICMPForwarded != before+1 {
			t.Fatal("ICMP forwarded counter not incremented")
		}
		// Without a flow entry the ring decides, and nothing is recorded.
		other := ap(c.client.Addr(), 41001)
		if got, want := tb.expectTX(icmpPTB(t, other, c.vip, c.router)), tb.expectedReal(table, NewFlowKey(other, c.vip), false); got != want {
			t.Fatalf("PTB without flow went to %d, ring says %d", got, want)
		}
		if _, ok, _ := tb.d.LookupFlow(NewFlowKey(other, c.vip)); ok {
			t.Fatal("an ICMP error recorded a flow")
		}
	}
}

// TestFlowTable: SYN records, ACK follows the record, RST never records,
// a non-SYN miss records (mid-flow takeover) and is counted.
func TestFlowTable(t *testing.T) {
	tb := newTestbed(t)
	ids := tb.addVIP(1, vip4, []uint16{25}, 0, 3)
	table, _ := tb.d.Ring(1)
	syn := pkt{src: ap(client4, 42000), dst: ap(vip4, 25), flags: "S"}
	got := tb.expectTX(syn.frame(t))
	rec, ok, err := tb.d.LookupFlow(syn.key())
	if err != nil || !ok || rec != got {
		t.Fatalf("SYN recorded %d %v %v, want %d", rec, ok, err, got)
	}

	// The record wins over the ring for non-SYN packets.
	other := ids[0]
	if other == got {
		other = ids[1]
	}
	tb.d.PutFlow(syn.key(), other)
	ack := pkt{src: syn.src, dst: syn.dst, flags: "A"}
	if g := tb.expectTX(ack.frame(t)); g != other {
		t.Fatalf("ACK went to %d, flow says %d", g, other)
	}
	// A SYN skips the lookup: a new connection on a reused tuple follows the ring.
	if g := tb.expectTX(syn.frame(t)); g != tb.expectedReal(table, syn.key(), false) {
		t.Fatalf("SYN went to %d, not the ring's pick", g)
	}

	rst := pkt{src: ap(client4, 42001), dst: ap(vip4, 25), flags: "R"}
	tb.expectTX(rst.frame(t))
	if _, ok, _ := tb.d.LookupFlow(rst.key()); ok {
		t.Fatal("RST recorded a flow")
	}

	missBefore := tb.global().NonSYNMiss
	mid := pkt{src: ap(client4, 42002), dst: ap(vip4, 25), flags: "A"}
	g := tb.expectTX(mid.frame(t))
	if rec, ok, _ := tb.d.LookupFlow(mid.key()); !ok || rec != g {
		t.Fatal("mid-flow packet not recorded")
	}
	if tb.global().NonSYNMiss != missBefore+1 {
		t.Fatal("non-SYN miss not counted")
	}
}

// TestDrainingAndDown: a draining backend keeps its flows but gets no SYN;
// a down backend's flows are re-picked.
func TestDrainingAndDown(t *testing.T) {
	tb := newTestbed(t)
	ids := tb.addVIP(1, vip4, []uint16{25}, 0, 3)
	a := ids[0]
	// Ring without a (as the control plane does before marking it draining).
	table := tb.ring(1, ids[1:]...)
	tb.setState(a, RealDraining)
	var flows []pkt
	for i := range 20 {
		p := pkt{src: ap(client4, clientPort(i)), dst: ap(vip4, 25), flags: "A"}
		tb.d.PutFlow(p.key(), a)
		flows = append(flows, p)
	}
	for _, p := range flows {
		if g := tb.expectTX(p.frame(t)); g != a {
			t.Fatalf("established flow on draining backend went to %d", g)
		}
	}
	for i := range 200 {
		syn := pkt{src: ap(client4, clientPort(1000+i)), dst: ap(vip4, 25), flags: "S"}
		if g := tb.expectTX(syn.frame(t)); g == a {
			t.Fatal("a SYN reached a draining backend")
		}
	}
	// Down: existing flows re-picked through the ring and re-recorded.
	tb.setState(a, RealDown)
	before := tb.global().Repick
	for _, p := range flows {
		g := tb.expectTX(p.frame(t))
		if want := tb.expectedReal(table, p.key(), false); g != want {
			t.Fatalf("flow of down backend went to %d, ring says %d", g, want)
		}
		if rec, _, _ := tb.d.LookupFlow(p.key()); rec != g {
			t.Fatalf("re-picked flow recorded to %d, went to %d", rec, g)
		}
	}
	if tb.global().Repick != before+uint64(len(flows)) {
		t.Fatal("re-picks not counted")
	}
}

// TestFlowOfOtherVIP: a flow entry pointing at another VIP's backend (a
// stale id) is not trusted.
func TestFlowOfOtherVIP(t *testing.T) {
	tb := newTestbed(t)
	tb.addVIP(1, vip4, []uint16{25}, 0, 2)
	other := tb.addVIP(2, vip6, []uint16{25}, 0, 2)
	p := pkt{src: ap(client4, 43000), dst: ap(vip4, 25), flags: "A"}
	tb.d.PutFlow(p.key(), other[0])
	table, _ := tb.d.Ring(1)
	if g := tb.expectTX(p.frame(t)); g != tb.expectedReal(table, p.key(), false) {
		t.Fatalf("went to %d", g)
	}
}

// TestSourceIPPersistence: with persistence = "source-ip" every connection
// of one client lands on one backend, the one the Go mirror predicts.
func TestSourceIPPersistence(t *testing.T) {
	tb := newTestbed(t)
	tb.addVIP(1, vip4, []uint16{25}, VIPSourceIP, 4)
	table, _ := tb.d.Ring(1)
	seen := map[uint32]bool{}
	for i := range 50 {
		p := pkt{src: ap(client4, clientPort(i)), dst: ap(vip4, 25), flags: "S"}
		seen[tb.expectTX(p.frame(t))] = true
	}
	if len(seen) != 1 {
		t.Fatalf("one client spread over %d backends under source-ip persistence", len(seen))
	}
	p := pkt{src: ap(client4, 1), dst: ap(vip4, 25)}
	for id := range seen {
		if want := tb.expectedReal(table, p.key(), true); id != want {
			t.Fatalf("went to %d, source hash predicts %d", id, want)
		}
	}
}

// TestEmptyRing: a VIP without a usable backend goes to the kernel untouched.
func TestEmptyRing(t *testing.T) {
	tb := newTestbed(t)
	tb.addVIP(1, vip4, []uint16{25}, 0, 2)
	tb.ring(1)
	tb.expectPass(pkt{src: ap(client4, 1), dst: ap(vip4, 25), flags: "S"}.frame(t))
	tb.expectPass(pkt{src: ap(client4, 2), dst: ap(vip4, 25), flags: "A"}.frame(t))
	if g := tb.global(); g.NoBackend != 2 {
		t.Fatalf("no-backend counter %d, want 2", g.NoBackend)
	}
}

// TestFloodGuard: past the per-CPU insert limit flows are forwarded by the
// hash alone and not recorded, so established flows are not evicted.
func TestFloodGuard(t *testing.T) {
	tb := newTestbed(t)
	tb.addVIP(1, vip4, []uint16{25}, 0, 3)
	table, _ := tb.d.Ring(1)
	s, _ := tb.d.Settings()
	s.FloodLimit = 5
	tb.d.SetSettings(s)
	tb.d.ResetFloodWindow()
	var recorded, guarded int
	for i := range 8 {
		p := pkt{src: ap(client4, clientPort(i)), dst: ap(vip4, 25), flags: "S"}
		if g := tb.expectTX(p.frame(t)); g != tb.expectedReal(table, p.key(), false) {
			t.Fatal("guarded SYN not forwarded by the ring")
		}
		if _, ok, _ := tb.d.LookupFlow(p.key()); ok {
			recorded++
		} else {
			guarded++
		}
	}
	// BPF_PROG_TEST_RUN may run on either CPU; each has its own window.
	if recorded < 5 || recorded > 5*2 || guarded == 0 && recorded != 8 {
		t.Fatalf("recorded %d, guarded %d with limit 5", recorded, guarded)
	}
	if g := tb.global(); g.FloodGuard != uint64(guarded) {
		t.Fatalf("flood-guard counter %d, want %d", g.FloodGuard, guarded)
	}
}

// TestFlowHashMirror: the Go FlowHash equals the kernel's for random tuples
// (the kernel's pick over 16 backends equals the Go prediction every time).
func TestFlowHashMirror(t *testing.T) {
	tb := newTestbed(t)
	tb.addVIP(1, vip4, []uint16{25}, 0, 16)
	tb.addVIP(2, vip6, []uint16{25}, 0, 16)
	t4, _ := tb.d.Ring(1)
	t6, _ := tb.d.Ring(2)
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		var p pkt
		var table []uint32
		if r.IntN(2) == 0 {
			src := netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
			p, table = pkt{src: ap(src, uint16(r.IntN(65535)+1)), dst: ap(vip4, 25), flags: "S"}, t4
		} else {
			var b [16]byte
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
			p, table = pkt{src: ap(netip.AddrFrom16(b), uint16(r.IntN(65535)+1)), dst: ap(vip6, 25), flags: "S"}, t6
		}
		if g, want := tb.expectTX(p.frame(t)), tb.expectedReal(table, p.key(), false); g != want {
			t.Fatalf("%s: kernel picked %d, Go mirror %d", p, g, want)
		}
	}
}

// TestCounters: per VIP and per backend packets, bytes, new flows, last seen.
func TestCounters(t *testing.T) {
	tb := newTestbed(t)
	tb.addVIP(1, vip4, []uint16{25}, 0, 1)
	syn := pkt{src: ap(client4, 44000), dst: ap(vip4, 25), flags: "S"}.frame(t)
	ack := pkt{src: ap(client4, 44000), dst: ap(vip4, 25), flags: "A", payload: []byte("QUIT\r\n")}.frame(t)
	rid := tb.expectTX(syn)
	tb.expectTX(ack)
	for _, c := range []func() (Counters, error){func() (Counters, error) { return tb.d.VIPCounters(1) }, func() (Counters, error) { return tb.d.RealCounters(rid) }} {
		got, err := c()
		if err != nil {
			t.Fatal(err)
		}
		if got.Packets != 2 || got.Bytes != uint64(len(syn)+len(ack)) || got.NewFlows != 1 {
			t.Fatalf("counters %+v", got)
		}
		// last_seen is kept in jiffies and converted: it must be now, to
		// within a few ticks.
		if d := time.Since(got.LastSeen); d < -time.Second || d > time.Second {
			t.Fatalf("last seen %s is %s from now", got.LastSeen, d)
		}
	}
}
