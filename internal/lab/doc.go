// Package lab builds a one-arm L2 Direct Server Return topology out of
// network namespaces, for dsrlb's end-to-end tests and `make demo`.
//
// # Topology
//
// A "switch" namespace holds a Linux bridge (br0). Every host namespace (the
// balancer "lb", clients "c0".."cN-1", backends "b0".."bM-1") joins it with a
// veth pair: the host side is eth0 inside the host namespace, the bridge port
// in the switch namespace carries the host's short role name ("lb", "c0",
// "b0", ...). Nothing is created in the caller's namespace, so labs running
// in parallel (even in different processes) cannot collide on interface
// names; namespace names carry a prefix, the PID and a counter
// ("dl4242-0-lb"), and [CleanupStale] removes those of dead PIDs.
//
// # Address plan (fixed, the same in every lab)
//
//	segment       10.77.0.0/24            2001:db8:77::/64
//	lb            10.77.0.2               2001:db8:77::2
//	client k      10.77.0.(11+k)          2001:db8:77::(11+k)   k < 80
//	backend k     10.77.0.(101+k)         2001:db8:77::(101+k)  k < 150
//
// The IPv6 host part uses the same decimal digits as the IPv4 one
// (2001:db8:77::101 for 10.77.0.101). Addresses are added with IFA_F_NODAD
// and accept_dad=0, so they are usable at once. MAC addresses are fixed too:
// 02:77:00:00:00:<last IPv4 byte>.
//
// # VIPs
//
// Every VIP in [Options.VIPs] is put on each backend's lo as a /32 (/128),
// with net.ipv4.conf.all.arp_ignore=1 and arp_announce=2, except on the
// backends listed in [Options.BackendsWithoutVIP] (to test the VIP-path
// probe). The balancer does not get the VIP: the daemon adds it
// (manage_vip_addresses). Clients and the balancer get an on-link route
// "VIP/32 dev eth0" (or /128) for VIPs outside the segment, so VIP traffic is
// resolved with ARP/ND on the segment, where only the balancer may answer.
// VIPs inside 10.77.0.0/24 are on-link anyway.
//
// # XDP on veth
//
// Native XDP with XDP_TX on a veth needs an XDP program on the veth's peer,
// and loses checksum offload state. Unless [Options.GenericXDP] is set, the lab attaches a two-instruction xdp_pass program (built
// with cilium/ebpf's asm package, no clang) in driver mode on the balancer's
// bridge port and turns its TX checksum offload off (the ioctl behind
// `ethtool -K <port> tx off`). Generic XDP needs neither.
//
// # Entering namespaces
//
// [Host.Do] runs a function on a locked OS thread switched into the host's
// namespace. Sockets created there (listeners, dialed connections, packet
// sockets) stay in that namespace and can then be used from any goroutine.
// [Host.Command] runs a program with `nsenter --net=/run/netns/NAME`, not
// `ip netns exec`, which remounts /sys and hides pins under /sys/fs/bpf.
//
// # SMTP backends
//
// [Host.StartSMTP] runs an emersion/go-smtp server that behaves like
// Exchange: a Microsoft banner, and MAIL FROM answered per [Mode] (healthy,
// back pressure for external senders or for all, maintenance 421, a tarpit,
// or down). It records every session's addresses, HELO and commands.
package lab
