package maps

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// XDP verdicts.
const (
	xdpAborted = 0
	xdpDrop    = 1
	xdpPass    = 2
	xdpTX      = 3
)

var (
	ifMAC     = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	routerMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0xfe}
	vip4      = netip.MustParseAddr("198.51.100.25")
	vip6      = netip.MustParseAddr("2001:db8:25::25")
	client4   = netip.MustParseAddr("10.1.2.3")
	client6   = netip.MustParseAddr("2001:db8:77::3")
)

const testRingSize = 65537

// testbed is a loaded data plane with one IPv4 and one IPv6 VIP, each with
// backends whose MACs are 02:bb:00:00:<vip>:<n>.
type testbed struct {
	t     testing.TB
	d     *Dataplane
	reals map[uint32]net.HardwareAddr // real id -> MAC
}

func newTestbed(t testing.TB) *testbed {
	t.Helper()
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	d, err := Load(Options{RingSize: testRingSize, FlowTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.SetSettings(Settings{HashSeed: 3735928559, RingSize: testRingSize, FloodLimit: 0, IfMAC: ifMAC}); err != nil {
		t.Fatal(err)
	}
	return &testbed{t: t, d: d, reals: map[uint32]net.HardwareAddr{}}
}

// addVIP installs a VIP with n up backends (real ids base+1..base+n) and
// returns those ids.
func (tb *testbed) addVIP(id uint32, addr netip.Addr, ports []uint16, flags uint32, n int) []uint32 {
	tb.t.Helper()
	if err := tb.d.SetVIP(addr, ports, id, flags); err != nil {
		tb.t.Fatal(err)
	}
	var ids []uint32
	for i := 1; i <= n; i++ {
		rid := id*100 + uint32(i)
		mac := net.HardwareAddr{0x02, 0xbb, 0, 0, byte(id), byte(i)}
		if err := tb.d.SetReal(rid, Real{MAC: mac, State: RealUp, VIPID: id}); err != nil {
			tb.t.Fatal(err)
		}
		tb.reals[rid] = mac
		ids = append(ids, rid)
	}
	tb.ring(id, ids...)
	return ids
}

// ring rebuilds VIP id's ring with the given real ids (equal weights).
func (tb *testbed) ring(vipID uint32, ids ...uint32) []uint32 {
	tb.t.Helper()
	var bs []MaglevBackend
	for _, rid := range ids {
		bs = append(bs, MaglevBackend{ID: rid, Address: netip.AddrFrom4([4]byte{10, 9, byte(rid >> 8), byte(rid)}), Weight: 100})
	}
	table, err := BuildMaglev(bs, testRingSize)
	if err != nil {
		tb.t.Fatal(err)
	}
	if table == nil {
		if err := tb.d.ClearRing(vipID); err != nil {
			tb.t.Fatal(err)
		}
		return nil
	}
	if err := tb.d.SwapRing(vipID, table); err != nil {
		tb.t.Fatal(err)
	}
	return table
}

func (tb *testbed) setState(rid uint32, s RealState) {
	tb.t.Helper()
	r, err := tb.d.Real(rid)
	if err != nil {
		tb.t.Fatal(err)
	}
	r.State = s
	if err := tb.d.SetReal(rid, r); err != nil {
		tb.t.Fatal(err)
	}
}

// run passes one frame through the program.
func (tb *testbed) run(frame []byte) (uint32, []byte) {
	tb.t.Helper()
	out := make([]byte, len(frame)+256)
	opts := ebpf.RunOptions{Data: frame, DataOut: out}
	ret, err := tb.d.Program().Run(&opts)
	if err != nil {
		tb.t.Fatalf("prog run: %v", err)
	}
	return ret, opts.DataOut
}

// expectPass asserts XDP_PASS with the frame byte-identical.
func (tb *testbed) expectPass(frame []byte) {
	tb.t.Helper()
	ret, out := tb.run(frame)
	if ret != xdpPass {
		tb.t.Fatalf("verdict %d, want XDP_PASS", ret)
	}
	if !bytes.Equal(out, frame) {
		tb.t.Fatalf("XDP_PASS changed the frame:\n in %x\nout %x", frame, out)
	}
}

// expectTX asserts XDP_TX where only the 12 MAC bytes changed, to
// ifMAC -> a known backend, and returns that backend's real id.
func (tb *testbed) expectTX(frame []byte) uint32 {
	tb.t.Helper()
	ret, out := tb.run(frame)
	if ret != xdpTX {
		tb.t.Fatalf("verdict %d, want XDP_TX", ret)
	}
	return tb.checkTX(frame, out)
}

func (tb *testbed) checkTX(frame, out []byte) uint32 {
	tb.t.Helper()
	if len(out) != len(frame) || !bytes.Equal(out[12:], frame[12:]) {
		tb.t.Fatalf("XDP_TX changed more than the MACs:\n in %x\nout %x", frame, out)
	}
	if !bytes.Equal(out[6:12], ifMAC) {
		tb.t.Fatalf("source MAC %x, want interface MAC %s", out[6:12], ifMAC)
	}
	for rid, mac := range tb.reals {
		if bytes.Equal(out[0:6], mac) {
			return rid
		}
	}
	tb.t.Fatalf("destination MAC %x is no known backend", out[0:6])
	return 0
}

// expectedReal is the backend the ring picks for a flow (the Go mirror).
func (tb *testbed) expectedReal(table []uint32, k FlowKey, sourceOnly bool) uint32 {
	return table[FlowHash(k, sourceOnly, 3735928559)%testRingSize]
}

func (tb *testbed) global() Global {
	tb.t.Helper()
	g, err := tb.d.GlobalCounters()
	if err != nil {
		tb.t.Fatal(err)
	}
	return g
}

// pkt describes a test frame.
type pkt struct {
	src, dst   netip.AddrPort
	flags      string // any of "SARF" (SYN, ACK, RST, FIN)
	vlans      []uint16
	qinq       bool // outer tag is 802.1ad
	ipOptions  bool
	fragOffset uint16 // non-zero: a non-first fragment (in 8-byte units)
	payload    []byte
}

func (p pkt) key() FlowKey { return NewFlowKey(p.src, p.dst) }

// frame serializes p.
func (p pkt) frame(t testing.TB) []byte {
	t.Helper()
	var ls []gopacket.SerializableLayer
	eth := &layers.Ethernet{SrcMAC: routerMAC, DstMAC: ifMAC}
	ls = append(ls, eth)
	nextType := layers.EthernetTypeIPv4
	if p.dst.Addr().Is6() {
		nextType = layers.EthernetTypeIPv6
	}
	if len(p.vlans) == 0 {
		eth.EthernetType = nextType
	}
	for i, v := range p.vlans {
		if i == 0 {
			eth.EthernetType = layers.EthernetTypeDot1Q
			if p.qinq {
				eth.EthernetType = layers.EthernetTypeQinQ
			}
		}
		tag := &layers.Dot1Q{VLANIdentifier: v, Type: nextType}
		if i+1 < len(p.vlans) {
			tag.Type = layers.EthernetTypeDot1Q
		}
		ls = append(ls, tag)
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(p.src.Port()), DstPort: layers.TCPPort(p.dst.Port()), Seq: 1, Window: 64240}
	for _, f := range p.flags {
		switch f {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		case 'R':
			tcp.RST = true
		case 'F':
			tcp.FIN = true
		}
	}
	if p.dst.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice(), FragOffset: p.fragOffset}
		if p.ipOptions {
			ip.Options = []layers.IPv4Option{{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}, {OptionType: 0, OptionLength: 1}}
		}
		tcp.SetNetworkLayerForChecksum(ip)
		ls = append(ls, ip)
		if p.fragOffset != 0 {
			ls = append(ls, gopacket.Payload(bytes.Repeat([]byte{0xab}, 24)))
			return serialize(t, ls...)
		}
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip)
		if p.fragOffset != 0 {
			ip.NextHeader = layers.IPProtocolIPv6Fragment
			// gopacket cannot serialize a fragment header: write it by hand.
			off := p.fragOffset << 3
			frag := []byte{byte(layers.IPProtocolTCP), 0, byte(off >> 8), byte(off), 0, 0, 0, 7}
			ls = append(ls, ip, gopacket.Payload(append(frag, bytes.Repeat([]byte{0xab}, 24)...)))
			return serialize(t, ls...)
		}
		ls = append(ls, ip)
	}
	ls = append(ls, tcp, gopacket.Payload(p.payload))
	return serialize(t, ls...)
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// icmpPTB builds the ICMP error a router sends to the VIP about a packet
// the backend sent (VIP -> client) that was too big.
func icmpPTB(t testing.TB, client, vip netip.AddrPort, router netip.Addr) []byte {
	return icmpPTBTo(t, client, vip, router, vip.Addr())
}

// icmpPTBTo is icmpPTB with the error addressed to dst (a VIP, normally).
func icmpPTBTo(t testing.TB, client, vip netip.AddrPort, router, dst netip.Addr) []byte {
	t.Helper()
	quoted := pkt{src: vip, dst: client, flags: "A", payload: bytes.Repeat([]byte{1}, 16)}.frame(t)[14:]
	eth := &layers.Ethernet{SrcMAC: routerMAC, DstMAC: ifMAC}
	if vip.Addr().Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: router.AsSlice(), DstIP: dst.AsSlice()}
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 4), Seq: 1400}
		return serialize(t, eth, ip, icmp, gopacket.Payload(quoted))
	}
	eth.EthernetType = layers.EthernetTypeIPv6
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: router.AsSlice(), DstIP: dst.AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(2, 0)}
	icmp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, icmp, gopacket.Payload(append([]byte{0, 0, 5, 0x78}, quoted...)))
}

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

func clientPort(i int) uint16 { return uint16(20000 + i) }

func (p pkt) String() string { return fmt.Sprintf("%s->%s %s", p.src, p.dst, p.flags) }

// badDataOffset sets the TCP header length of an untagged IPv4 frame
// without options to 4 words (less than a TCP header).
func badDataOffset(t testing.TB, frame []byte) []byte {
	out := bytes.Clone(frame)
	out[14+20+12] = 4 << 4
	return out
}
