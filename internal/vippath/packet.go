package vippath

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// EtherTypes.
const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
)

// TCP flags.
const (
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

const (
	ethHeaderLen  = 14
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	tcpHeaderLen  = 20
	protoTCP      = 6
	probeMSS      = 1460
	probeWindow   = 64240
)

// segment is the part of a TCP segment the probe writes or reads.
type segment struct {
	src, dst netip.AddrPort
	seq, ack uint32
	flags    uint8
	mss      bool // add an MSS option (SYN)
}

// frame builds an Ethernet frame carrying seg with no VLAN tag.
func frame(dstMAC, srcMAC net.HardwareAddr, seg segment) []byte {
	tcpLen := tcpHeaderLen
	if seg.mss {
		tcpLen += 4
	}
	is4 := seg.src.Addr().Is4()
	ipLen := ipv6HeaderLen
	etherType := uint16(etherTypeIPv6)
	if is4 {
		ipLen, etherType = ipv4HeaderLen, etherTypeIPv4
	}
	b := make([]byte, ethHeaderLen+ipLen+tcpLen)
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], etherType)

	ip := b[ethHeaderLen : ethHeaderLen+ipLen]
	src, dst := seg.src.Addr().AsSlice(), seg.dst.Addr().AsSlice()
	if is4 {
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:4], uint16(ipLen+tcpLen))
		binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
		ip[8] = 64                                  // TTL
		ip[9] = protoTCP
		copy(ip[12:16], src)
		copy(ip[16:20], dst)
		binary.BigEndian.PutUint16(ip[10:12], ^fold(sum(0, ip)))
	} else {
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:6], uint16(tcpLen))
		ip[6] = protoTCP
		ip[7] = 64 // hop limit
		copy(ip[8:24], src)
		copy(ip[24:40], dst)
	}

	tcp := b[ethHeaderLen+ipLen:]
	binary.BigEndian.PutUint16(tcp[0:2], seg.src.Port())
	binary.BigEndian.PutUint16(tcp[2:4], seg.dst.Port())
	binary.BigEndian.PutUint32(tcp[4:8], seg.seq)
	binary.BigEndian.PutUint32(tcp[8:12], seg.ack)
	tcp[12] = byte(tcpLen/4) << 4
	tcp[13] = seg.flags
	if seg.flags&tcpRST == 0 {
		binary.BigEndian.PutUint16(tcp[14:16], probeWindow)
	}
	if seg.mss {
		tcp[20], tcp[21] = 2, 4 // kind MSS, length 4
		binary.BigEndian.PutUint16(tcp[22:24], probeMSS)
	}
	binary.BigEndian.PutUint16(tcp[16:18], ^fold(pseudoSum(src, dst, len(tcp))+sum(0, tcp)))
	return b
}

// parseFrame extracts the TCP segment of an untagged Ethernet frame. ok is
// false for anything else (other protocols, IPv6 extension headers, IPv4
// fragments, truncated frames).
func parseFrame(b []byte) (seg segment, ok bool) {
	if len(b) < ethHeaderLen {
		return seg, false
	}
	var src, dst netip.Addr
	var tcp []byte
	switch binary.BigEndian.Uint16(b[12:14]) {
	case etherTypeIPv4:
		ip := b[ethHeaderLen:]
		if len(ip) < ipv4HeaderLen || ip[0]>>4 != 4 || ip[9] != protoTCP {
			return seg, false
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if ihl < ipv4HeaderLen || total < ihl || total > len(ip) || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
			return seg, false
		}
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		tcp = ip[ihl:total]
	case etherTypeIPv6:
		ip := b[ethHeaderLen:]
		if len(ip) < ipv6HeaderLen || ip[0]>>4 != 6 || ip[6] != protoTCP {
			return seg, false
		}
		end := ipv6HeaderLen + int(binary.BigEndian.Uint16(ip[4:6]))
		if end > len(ip) {
			return seg, false
		}
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		tcp = ip[ipv6HeaderLen:end]
	default:
		return seg, false
	}
	if len(tcp) < tcpHeaderLen {
		return seg, false
	}
	seg.src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(tcp[0:2]))
	seg.dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(tcp[2:4]))
	seg.seq = binary.BigEndian.Uint32(tcp[4:8])
	seg.ack = binary.BigEndian.Uint32(tcp[8:12])
	seg.flags = tcp[13]
	return seg, true
}

// sum adds b as big-endian 16-bit words to s (the Internet checksum's
// running sum, not yet folded).
func sum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

// pseudoSum is the sum of the TCP pseudo-header (IPv4 or IPv6).
func pseudoSum(src, dst []byte, tcpLen int) uint32 {
	s := sum(sum(0, src), dst)
	return s + protoTCP + uint32(tcpLen)
}

// fold folds a running sum into 16 bits.
func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
