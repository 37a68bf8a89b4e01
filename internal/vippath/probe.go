package vippath

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultTimeout is the wait for the SYN-ACK when Params.Timeout is zero.
const DefaultTimeout = time.Second

// Ephemeral source ports (Linux's default ip_local_port_range).
const (
	ephemeralFirst = 32768
	ephemeralLast  = 60999
)

// Params says where and how to probe.
type Params struct {
	// IfIndex is the balancer's interface towards the backends.
	IfIndex int
	// SrcMAC is that interface's address; DstMAC the backend's.
	SrcMAC, DstMAC net.HardwareAddr
	// Src is the balancer's own address on the interface (same family as
	// the VIP); the backend answers it directly.
	Src netip.Addr
	// VIP is the VIP and port the backend must answer on.
	VIP netip.AddrPort
	// Timeout bounds the wait for the answer (DefaultTimeout when zero).
	Timeout time.Duration
}

// Probe sends a TCP SYN from p.Src to p.VIP in a frame addressed to
// p.DstMAC, and waits for the backend's SYN-ACK from the VIP. It returns nil
// on a SYN-ACK (and resets the half-open connection), an error saying "RST
// from VIP:port" when the backend holds the VIP but nothing listens, and an
// error saying "no SYN-ACK" when nothing comes back in time (the VIP is not
// on the backend's loopback, or weak host send/receive is off). The socket
// belongs to the network namespace of the calling thread.
func Probe(ctx context.Context, p Params) error {
	if err := p.check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("VIP-path probe of %s via %s: %w", p.VIP, p.DstMAC, err)
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}

	etherType := uint16(etherTypeIPv6)
	if p.VIP.Addr().Is4() {
		etherType = etherTypeIPv4
	}
	fd, err := openPacketSocket(p.IfIndex, etherType)
	if err != nil {
		return fmt.Errorf("VIP-path probe of %s via %s: %w", p.VIP, p.DstMAC, err)
	}
	defer unix.Close(fd)

	local := netip.AddrPortFrom(p.Src, uint16(ephemeralFirst+rand.IntN(ephemeralLast-ephemeralFirst+1)))
	isn := rand.Uint32()
	to := &unix.SockaddrLinklayer{Ifindex: p.IfIndex, Protocol: htons(etherType), Halen: 6}
	copy(to.Addr[:], p.DstMAC)
	syn := frame(p.DstMAC, p.SrcMAC, segment{src: local, dst: p.VIP, seq: isn, flags: tcpSYN, mss: true})
	if err := unix.Sendto(fd, syn, 0, to); err != nil {
		return fmt.Errorf("VIP-path probe of %s via %s: send SYN on ifindex %d: %w", p.VIP, p.DstMAC, p.IfIndex, err)
	}

	reply, ok, err := awaitReply(ctx, fd, deadline, p.VIP, local, isn+1)
	switch {
	case err != nil:
		return fmt.Errorf("VIP-path probe of %s via %s: %w", p.VIP, p.DstMAC, err)
	case !ok:
		return fmt.Errorf("no SYN-ACK from %s via %s within %v", p.VIP, p.DstMAC, timeout)
	}
	switch {
	case reply.flags&tcpRST != 0:
		return fmt.Errorf("RST from %s via %s (nothing listening on the VIP)", p.VIP, p.DstMAC)
	case reply.flags&(tcpSYN|tcpACK) == tcpSYN|tcpACK:
		rst := frame(p.DstMAC, p.SrcMAC, segment{src: local, dst: p.VIP, seq: isn + 1, flags: tcpRST})
		if err := unix.Sendto(fd, rst, 0, to); err != nil {
			return fmt.Errorf("VIP-path probe of %s via %s: SYN-ACK received, but sending the RST failed: %w", p.VIP, p.DstMAC, err)
		}
		return nil
	}
	return fmt.Errorf("unexpected TCP flags %#x from %s via %s", reply.flags, p.VIP, p.DstMAC)
}

// check validates the parameters.
func (p Params) check() error {
	switch {
	case p.IfIndex <= 0:
		return fmt.Errorf("VIP-path probe of %s: bad interface index %d", p.VIP, p.IfIndex)
	case len(p.SrcMAC) != 6 || len(p.DstMAC) != 6:
		return fmt.Errorf("VIP-path probe of %s: source MAC %q and backend MAC %q must be 6-byte Ethernet addresses", p.VIP, p.SrcMAC, p.DstMAC)
	case !p.VIP.IsValid() || p.VIP.Port() == 0:
		return fmt.Errorf("VIP-path probe: bad VIP %q", p.VIP)
	case !p.Src.IsValid() || p.Src.Is4() != p.VIP.Addr().Is4() || p.Src.Is4In6() || p.VIP.Addr().Is4In6():
		return fmt.Errorf("VIP-path probe of %s: source %q must be an address of the same family", p.VIP, p.Src)
	}
	return nil
}

// openPacketSocket opens an AF_PACKET socket bound to ifindex for etherType.
func openPacketSocket(ifindex int, etherType uint16) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(etherType)))
	if err != nil {
		return -1, fmt.Errorf("open packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex, Protocol: htons(etherType)}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind packet socket to ifindex %d: %w", ifindex, err)
	}
	return fd, nil
}

// awaitReply reads frames until a segment from vip to local acknowledging
// ack arrives (a SYN-ACK or a RST: ok), the deadline passes (not ok) or ctx
// ends (its error).
func awaitReply(ctx context.Context, fd int, deadline time.Time, vip, local netip.AddrPort, ack uint32) (segment, bool, error) {
	buf := make([]byte, 2048)
	for {
		if err := ctx.Err(); err != nil {
			return segment{}, false, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return segment{}, false, nil
		}
		wait := min(left, 50*time.Millisecond)
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, int(wait.Milliseconds())+1); err != nil && !errors.Is(err, unix.EINTR) {
			return segment{}, false, fmt.Errorf("poll packet socket: %w", err)
		}
		for {
			n, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				break
			}
			if err != nil {
				return segment{}, false, fmt.Errorf("read packet socket: %w", err)
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			seg, ok := parseFrame(buf[:n])
			if !ok || seg.src != vip || seg.dst != local || seg.flags&tcpACK == 0 || seg.ack != ack {
				continue
			}
			if seg.flags&tcpRST != 0 || seg.flags&(tcpSYN|tcpACK) == tcpSYN|tcpACK {
				return seg, true, nil
			}
		}
	}
}

// htons converts a 16-bit value to network byte order.
func htons(v uint16) uint16 { return v<<8 | v>>8 }
