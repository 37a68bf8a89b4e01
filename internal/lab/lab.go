package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Defaults of Options.
const (
	DefaultPrefix         = "dl"
	DefaultClients        = 2
	DefaultBackends       = 3
	DefaultInternalDomain = "example.net"
	maxClients            = 80
	maxBackends           = 150
)

// Subnet4 returns the segment's IPv4 prefix, 10.77.0.0/24.
func Subnet4() netip.Prefix { return netip.MustParsePrefix("10.77.0.0/24") }

// Subnet6 returns the segment's IPv6 prefix, 2001:db8:77::/64.
func Subnet6() netip.Prefix { return netip.MustParsePrefix("2001:db8:77::/64") }

// Options describes a lab.
type Options struct {
	// Prefix starts every namespace name (default "dl"); the PID and a
	// counter follow it. Keep it short.
	Prefix string
	// Clients and Backends count the hosts of each kind (defaults 2 and 3).
	Clients, Backends int
	// VIPs are put on every backend's lo (IPv4 and IPv6 may be mixed).
	VIPs []netip.Addr
	// BackendsWithoutVIP lists backend indexes that do NOT get the VIPs on
	// lo (they answer on their own address but black-hole balanced flows).
	BackendsWithoutVIP []int
	// GenericXDP says the balancer's XDP program will run in generic (skb)
	// mode. Otherwise the lab prepares the balancer's bridge port for native
	// XDP: an xdp_pass sink and TX checksum offload off.
	GenericXDP bool
	// InternalDomain is the domain the simulated Exchange still accepts
	// under ModeBackPressure (default "example.net").
	InternalDomain string
}

// Lab is a running namespace topology. Close it.
type Lab struct {
	// Name is the lab's unique name, the prefix of all its namespaces.
	Name string
	// Switch is the namespace holding the bridge ("br0"); it has no IfName
	// or addresses.
	Switch *Host
	// LB is the balancer's namespace.
	LB *Host
	// Clients and Backends are the other hosts, in index order.
	Clients, Backends []*Host
	// VIPs are Options.VIPs.
	VIPs []netip.Addr

	mu       sync.Mutex
	cleanups []func() error
	closed   bool
}

// BridgeName is the bridge's name in the switch namespace.
const BridgeName = "br0"

// hostIfName is each host's interface on the segment.
const hostIfName = "eth0"

// New builds a lab. On any failure it removes what it had built.
func New(opts Options) (_ *Lab, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Lab{VIPs: slices.Clone(opts.VIPs)}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	if err := l.claimName(opts.Prefix); err != nil {
		return nil, err
	}
	if err := l.buildSwitch(); err != nil {
		return nil, err
	}
	l.LB, err = l.addHost("lb", 2, opts.InternalDomain)
	if err != nil {
		return nil, err
	}
	for i := range opts.Clients {
		h, err := l.addHost(fmt.Sprintf("c%d", i), 11+i, opts.InternalDomain)
		if err != nil {
			return nil, err
		}
		l.Clients = append(l.Clients, h)
	}
	for i := range opts.Backends {
		h, err := l.addHost(fmt.Sprintf("b%d", i), 101+i, opts.InternalDomain)
		if err != nil {
			return nil, err
		}
		l.Backends = append(l.Backends, h)
	}
	if err := l.setupVIPs(opts); err != nil {
		return nil, err
	}
	if !opts.GenericXDP {
		if err := l.prepareNativeXDP(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Clients == 0 {
		o.Clients = DefaultClients
	}
	if o.Backends == 0 {
		o.Backends = DefaultBackends
	}
	if o.InternalDomain == "" {
		o.InternalDomain = DefaultInternalDomain
	}
	switch {
	case len(o.Prefix) > 8:
		return o, fmt.Errorf("lab: prefix %q is longer than 8 characters", o.Prefix)
	case o.Clients < 0 || o.Clients > maxClients:
		return o, fmt.Errorf("lab: %d clients: want 1..%d", o.Clients, maxClients)
	case o.Backends < 0 || o.Backends > maxBackends:
		return o, fmt.Errorf("lab: %d backends: want 1..%d", o.Backends, maxBackends)
	}
	for _, i := range o.BackendsWithoutVIP {
		if i < 0 || i >= o.Backends {
			return o, fmt.Errorf("lab: BackendsWithoutVIP: no backend %d (have %d)", i, o.Backends)
		}
	}
	for _, v := range o.VIPs {
		if !v.IsValid() || v.Zone() != "" {
			return o, fmt.Errorf("lab: invalid VIP %q", v)
		}
	}
	return o, nil
}

// pushCleanup adds an undo step, run in reverse order by Close.
func (l *Lab) pushCleanup(fn func() error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cleanups = append(l.cleanups, fn)
}

// Close stops the SMTP servers and removes every namespace (and so every
// interface) of the lab. It is safe to call more than once and after a
// partial setup.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	cleanups := l.cleanups
	l.cleanups = nil
	l.mu.Unlock()

	var errs []error
	for _, h := range l.Hosts() {
		errs = append(errs, h.closeServers())
	}
	for _, fn := range slices.Backward(cleanups) {
		errs = append(errs, fn())
	}
	return errors.Join(errs...)
}

// Hosts returns the LB, the clients and the backends (the hosts built so far).
func (l *Lab) Hosts() []*Host {
	var hs []*Host
	if l.LB != nil {
		hs = append(hs, l.LB)
	}
	hs = append(hs, l.Clients...)
	return append(hs, l.Backends...)
}

// claimName picks <prefix><pid>-<n> with the lowest free n by creating its
// switch namespace (an atomic claim).
func (l *Lab) claimName(prefix string) error {
	for n := 0; n < 1000; n++ {
		name := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), n)
		err := createNamedNetns(name + "-sw")
		if errors.Is(err, errNameTaken) {
			continue
		}
		if err != nil {
			return err
		}
		l.Name = name
		l.Switch = &Host{Name: name + "-sw", Role: "sw", NetnsPath: filepath.Join(netnsDir, name+"-sw")}
		l.pushCleanup(func() error { return deleteNamedNetns(name + "-sw") })
		return nil
	}
	return fmt.Errorf("lab: no free name for prefix %q", prefix)
}

// buildSwitch creates the bridge in the switch namespace.
func (l *Lab) buildSwitch() error {
	if err := l.Switch.setSysctls([][2]string{
		{"net.ipv6.conf.all.disable_ipv6", "1"},
		{"net.ipv6.conf.default.disable_ipv6", "1"},
	}); err != nil {
		return err
	}
	nh, err := l.Switch.netlinkHandle()
	if err != nil {
		return err
	}
	defer nh.Close()
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName}, MulticastSnooping: &off}
	if err := nh.LinkAdd(br); err != nil {
		return fmt.Errorf("%s: add bridge %s: %w", l.Switch.Name, BridgeName, err)
	}
	if err := nh.LinkSetUp(br); err != nil {
		return fmt.Errorf("%s: set %s up: %w", l.Switch.Name, BridgeName, err)
	}
	return nil
}

// addHost creates a host namespace and plugs it into the bridge. octet is
// the last byte of its IPv4 address (and the decimal host part of IPv6).
func (l *Lab) addHost(role string, octet int, internalDomain string) (*Host, error) {
	name := l.Name + "-" + role
	if err := createNamedNetns(name); err != nil {
		return nil, fmt.Errorf("lab: create namespace %s: %w", name, err)
	}
	l.pushCleanup(func() error { return deleteNamedNetns(name) })
	h := &Host{
		Name:           name,
		Role:           role,
		NetnsPath:      filepath.Join(netnsDir, name),
		IfName:         hostIfName,
		MAC:            net.HardwareAddr{0x02, 0x77, 0, 0, 0, byte(octet)},
		Addr4:          netip.AddrFrom4([4]byte{10, 77, 0, byte(octet)}),
		Addr6:          netip.MustParseAddr(fmt.Sprintf("2001:db8:77::%d", octet)),
		PortName:       role,
		internalDomain: internalDomain,
	}
	if err := h.setSysctls([][2]string{
		{"net.ipv6.conf.all.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
	}); err != nil {
		return nil, err
	}
	if err := l.plug(h); err != nil {
		return nil, err
	}
	if err := h.configureInterface(); err != nil {
		return nil, err
	}
	return h, nil
}

// plug creates the veth pair from the bridge to the host.
func (l *Lab) plug(h *Host) error {
	swh, err := l.Switch.netlinkHandle()
	if err != nil {
		return err
	}
	defer swh.Close()
	br, err := swh.LinkByName(BridgeName)
	if err != nil {
		return fmt.Errorf("%s: find %s: %w", l.Switch.Name, BridgeName, err)
	}
	hostNs, err := netns.GetFromPath(h.NetnsPath)
	if err != nil {
		return fmt.Errorf("%s: open %s: %w", h.Name, h.NetnsPath, err)
	}
	defer hostNs.Close()
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: h.PortName, MasterIndex: br.Attrs().Index},
		PeerName:         h.IfName,
		PeerHardwareAddr: h.MAC,
		PeerNamespace:    netlink.NsFd(hostNs),
	}
	if err := swh.LinkAdd(veth); err != nil {
		return fmt.Errorf("%s: add veth %s <-> %s:%s: %w", l.Switch.Name, h.PortName, h.Name, h.IfName, err)
	}
	port, err := swh.LinkByName(h.PortName)
	if err != nil {
		return fmt.Errorf("%s: find port %s: %w", l.Switch.Name, h.PortName, err)
	}
	h.PortIndex = port.Attrs().Index
	if err := swh.LinkSetUp(port); err != nil {
		return fmt.Errorf("%s: set port %s up: %w", l.Switch.Name, h.PortName, err)
	}
	return nil
}

// configureInterface brings lo and eth0 up and adds the host's addresses.
func (h *Host) configureInterface() error {
	err := h.withLink("lo", func(nh *netlink.Handle, lo netlink.Link) error {
		return nh.LinkSetUp(lo)
	})
	if err != nil {
		return fmt.Errorf("%s: set lo up: %w", h.Name, err)
	}
	return h.withLink(h.IfName, func(nh *netlink.Handle, eth netlink.Link) error {
		h.IfIndex = eth.Attrs().Index
		for _, p := range []netip.Prefix{
			netip.PrefixFrom(h.Addr4, Subnet4().Bits()),
			netip.PrefixFrom(h.Addr6, Subnet6().Bits()),
		} {
			if err := nh.AddrAdd(eth, hostAddr(p)); err != nil {
				return fmt.Errorf("%s: add %s to %s: %w", h.Name, p, h.IfName, err)
			}
		}
		if err := nh.LinkSetUp(eth); err != nil {
			return fmt.Errorf("%s: set %s up: %w", h.Name, h.IfName, err)
		}
		return nil
	})
}

// setupVIPs puts the VIPs on the backends' lo (with the ARP sysctls) and
// adds on-link routes to them on the balancer and the clients.
func (l *Lab) setupVIPs(opts Options) error {
	for i, b := range l.Backends {
		if err := b.setSysctls([][2]string{
			{"net.ipv4.conf.all.arp_ignore", "1"},
			{"net.ipv4.conf.all.arp_announce", "2"},
		}); err != nil {
			return err
		}
		if slices.Contains(opts.BackendsWithoutVIP, i) {
			continue
		}
		for _, v := range opts.VIPs {
			if err := b.AddLoopbackVIP(v); err != nil {
				return err
			}
		}
	}
	for _, h := range append([]*Host{l.LB}, l.Clients...) {
		for _, v := range opts.VIPs {
			if Subnet4().Contains(v) || Subnet6().Contains(v) {
				continue
			}
			if err := h.addOnLinkRoute(v); err != nil {
				return err
			}
		}
	}
	return nil
}

// addOnLinkRoute adds "addr/32 dev eth0 scope link" (or /128).
func (h *Host) addOnLinkRoute(addr netip.Addr) error {
	dst := hostAddr(netip.PrefixFrom(addr, addr.BitLen())).IPNet
	return h.withLink(h.IfName, func(nh *netlink.Handle, eth netlink.Link) error {
		r := &netlink.Route{LinkIndex: eth.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}
		if err := nh.RouteAdd(r); err != nil {
			return fmt.Errorf("%s: route %s dev %s: %w", h.Name, dst, h.IfName, err)
		}
		return nil
	})
}
