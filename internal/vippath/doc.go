// Package vippath probes the VIP path of a DSR backend: VIP:port delivered
// to the backend's MAC address, exactly as balanced packets travel.
//
// A backend whose loopback lacks the VIP (or, on Windows, weak host
// receive/send) still answers SMTP on its own address, so the deep SMTP probe
// passes while every balanced flow is black-holed. Only a probe over the VIP
// path catches it.
//
// # Design: a SYN probe over AF_PACKET (DESIGN section 5, design (a))
//
// The balancer owns the VIP itself, so its kernel would deliver a connect to
// VIP:port locally, and would drop the backend's reply (source VIP, a local
// address) as a martian. Probe therefore bypasses the IP stack: it opens an
// AF_PACKET socket on the interface, writes an Ethernet frame carrying a TCP
// SYN (MSS option, random ISN, random ephemeral source port) from the
// balancer's own address to VIP:port with the backend's MAC as destination,
// and reads the answer off the same packet socket, which sees frames before
// the IP layer drops them. A SYN-ACK from VIP:port means success; Probe then
// sends a RST so the backend keeps no half-open connection. A RST from
// VIP:port means the backend took the packet for a local address but nothing
// listens on VIP:port. Silence means the backend dropped or ignored it: the
// VIP is not on its loopback, or weak host send/receive is off.
//
// The balancer's own kernel also sees the SYN-ACK. When it owns the VIP, it
// drops the frame as a martian; when it does not, it answers the unknown
// connection with a RST to the VIP. Both are harmless: the backend's reply
// has been read already, and Probe sends its own RST anyway.
//
// Why (a) rather than (b) SO_MARK plus a tc egress program, or (c) a probe
// namespace translated by the XDP program: (a) needs no extra BPF program,
// routing rule or namespace, works whether or not the balancer owns the VIP,
// and touches nothing on the data path. Its limit: it proves the TCP layer of
// the VIP path (VIP on the loopback, weak host receive and send, a listener
// on VIP:port), not the SMTP service over it: no banner is read over the VIP
// path. The SMTP service itself is proven by the deep probe to the backend's
// own address; the two together cover what a balanced flow needs.
//
// Probe needs CAP_NET_RAW. Frames are matched in Go (no socket filter), and
// VLAN-tagged interfaces are not supported: the frame is untagged, as on the
// interface the XDP program is attached to.
package vippath
