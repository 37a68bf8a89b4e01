package vippath

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestFrameChecksumsMatchGopacket(t *testing.T) {
	srcMAC := net.HardwareAddr{0x02, 0x77, 0, 0, 0, 2}
	dstMAC := net.HardwareAddr{0x02, 0x77, 0, 0, 0, 101}
	for _, tc := range []struct{ src, dst string }{
		{"10.77.0.2:40001", "198.51.100.25:25"},
		{"[2001:db8:77::2]:40001", "[2001:db8:7725::25]:25"},
	} {
		for _, seg := range []segment{
			{src: netip.MustParseAddrPort(tc.src), dst: netip.MustParseAddrPort(tc.dst), seq: 0xdeadbeef, flags: tcpSYN, mss: true},
			{src: netip.MustParseAddrPort(tc.src), dst: netip.MustParseAddrPort(tc.dst), seq: 0xdeadbef0, flags: tcpRST},
		} {
			b := frame(dstMAC, srcMAC, seg)
			// Decode with gopacket and serialize again with its own checksums.
			pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
			if el := pkt.ErrorLayer(); el != nil {
				t.Fatalf("%v: gopacket cannot decode: %v", seg, el.Error())
			}
			tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
			var netLayer gopacket.SerializableLayer
			if ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
				if err := tcp.SetNetworkLayerForChecksum(ip4); err != nil {
					t.Fatal(err)
				}
				netLayer = ip4
			} else {
				ip6 := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
				if err := tcp.SetNetworkLayerForChecksum(ip6); err != nil {
					t.Fatal(err)
				}
				netLayer = ip6
			}
			if tcp.SYN != (seg.flags&tcpSYN != 0) || tcp.RST != (seg.flags&tcpRST != 0) || tcp.Seq != seg.seq {
				t.Errorf("%v: gopacket reads SYN=%v RST=%v seq=%#x", seg, tcp.SYN, tcp.RST, tcp.Seq)
			}
			if seg.mss && (len(tcp.Options) != 1 || tcp.Options[0].OptionType != layers.TCPOptionKindMSS || !bytes.Equal(tcp.Options[0].OptionData, []byte{0x05, 0xb4})) {
				t.Errorf("%v: options %v, want MSS 1460", seg, tcp.Options)
			}
			buf := gopacket.NewSerializeBuffer()
			eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			opts := gopacket.SerializeOptions{ComputeChecksums: true}
			if err := gopacket.SerializeLayers(buf, opts, eth, netLayer, tcp); err != nil {
				t.Fatal(err)
			}
			// gopacket pads Ethernet frames to 60 bytes; compare the rest.
			if !bytes.Equal(buf.Bytes()[:len(b)], b) {
				t.Errorf("%v: frame differs from gopacket's re-serialization with computed checksums:\n ours %x\n gopk %x", seg, b, buf.Bytes())
			}
			got, ok := parseFrame(b)
			if !ok || got.src != seg.src || got.dst != seg.dst || got.seq != seg.seq || got.flags != seg.flags {
				t.Errorf("parseFrame(frame(%v)) = %v, %v", seg, got, ok)
			}
		}
	}
}

func TestParseFrameRejectsOtherTraffic(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	good := frame(mac, mac, segment{src: netip.MustParseAddrPort("10.0.0.1:1"), dst: netip.MustParseAddrPort("10.0.0.2:2"), flags: tcpSYN})
	udp := bytes.Clone(good)
	udp[14+9] = 17
	frag := bytes.Clone(good)
	frag[14+7] = 8 // fragment offset 64
	for name, b := range map[string][]byte{"short": good[:30], "udp": udp, "fragment": frag, "arp": append(bytes.Clone(good[:12]), 0x08, 0x06)} {
		if _, ok := parseFrame(b); ok {
			t.Errorf("%s frame parsed as TCP", name)
		}
	}
	if _, ok := parseFrame(good); !ok {
		t.Error("good frame not parsed")
	}
}
