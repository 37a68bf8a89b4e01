package maps

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"
)

func arpRequest(t testing.TB, target netip.Addr) []byte {
	eth := &layers.Ethernet{SrcMAC: routerMAC, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: routerMAC, SourceProtAddress: []byte{10, 0, 0, 254},
		DstHwAddress: make([]byte, 6), DstProtAddress: target.AsSlice()}
	return serialize(t, eth, arp)
}

func udpFrame(t testing.TB, src, dst netip.Addr, port uint16) []byte {
	eth := &layers.Ethernet{SrcMAC: routerMAC, DstMAC: ifMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	udp := &layers.UDP{SrcPort: 5353, DstPort: layers.UDPPort(port)}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, udp)
}

func icmpEcho(t testing.TB, src, dst netip.Addr) []byte {
	eth := &layers.Ethernet{SrcMAC: routerMAC, DstMAC: ifMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1}
	return serialize(t, eth, ip, icmp)
}
