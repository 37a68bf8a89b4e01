package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The ECMP topology (NewECMP): several balancers behind a router.
//
//	clients c0..  10.88.0.(11+k)/24 ── br0 in NAME-swc ── eth1 10.88.0.1  router "rt"
//	                                                      eth0 10.77.0.1  (BIRD, ECMP)
//	                                                           │
//	segment 10.77.0.0/24 ── br0 in NAME-sw ── lb 10.77.0.2, lb1 10.77.0.3, backends 10.77.0.(101+k)
//
// The router runs BIRD with one eBGP session per balancer and merges their
// routes to a VIP into one multipath kernel route (`merge paths on`), hashed
// on layer 4 (net.ipv4.fib_multipath_hash_policy=1). Clients reach the VIPs
// only through the router; backends hold the VIPs on lo and reply through
// the router (their default route), as DSR real servers do. The balancers
// get a default route through the router too (the sorry server's replies).
// Each balancer runs a BIRD of its own, started by the caller with
// Host.StartBIRD, peering with the router at RouterAddr.
// The router peers with every balancer from the start: one whose BIRD is not
// running yet leaves its session in Active, so a test can bring a node in
// later (a node joining). Host.SetUnreachable cuts one balancer off from
// some hosts (its backends, say) while the others still reach them.
//
// Native XDP needs a sink on each balancer's bridge port: the ECMP lab does
// not prepare it, so run dsrlb with xdp_mode = "generic" there.

// ECMP addresses and AS numbers.
var (
	// RouterAddr is the router's address on the segment (the balancers' BGP peer).
	RouterAddr = netip.MustParseAddr("10.77.0.1")
	// RouterClientAddr is the router's address on the client subnet.
	RouterClientAddr = netip.MustParseAddr("10.88.0.1")
)

// ClientSubnet4 returns the ECMP lab's client subnet, 10.88.0.0/24.
func ClientSubnet4() netip.Prefix { return netip.MustParsePrefix("10.88.0.0/24") }

// Defaults of ECMPOptions.
const (
	DefaultRouterAS = 65000
	DefaultNodeAS   = 65001
	DefaultLBs      = 2
	maxLBs          = 8
)

// ECMPOptions describes an ECMP lab.
type ECMPOptions struct {
	// Prefix, Clients, Backends, VIPs and InternalDomain are as in Options.
	Prefix           string
	Clients          int
	Backends         int
	VIPs             []netip.Addr
	InternalDomain   string
	LBs              int    // balancers (default 2)
	RouterAS, NodeAS uint32 // default 65000 and 65001 (every balancer in NodeAS)
	// HoldTime is the router's BGP hold time (default 3s, BGP's minimum).
	HoldTime time.Duration
	// Password is the TCP MD5 password of the sessions ("" for none).
	Password string
	// Dir holds the router's BIRD files (default: a temporary directory
	// removed by Close).
	Dir string
}

// ECMP is a running ECMP lab. Its Lab holds the balancers' segment: Lab.LB
// is LBs[0], Lab.Clients are on the client subnet. Close it.
type ECMP struct {
	*Lab
	// LBs are the balancers "lb", "lb1", ... (10.77.0.2, .3, ...).
	LBs []*Host
	// Router is the router's namespace; its eth0 is on the segment, eth1 on
	// the client subnet.
	Router *Host
	// RouterBIRD is the router's BIRD.
	RouterBIRD *BIRD
	// Opts are the options with defaults filled in.
	Opts ECMPOptions
}

// LBAddr returns the segment address of balancer i (10.77.0.(2+i)).
func LBAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 77, 0, byte(2 + i)}) }

// NewECMP builds an ECMP lab and starts the router's BIRD. On any failure
// it removes what it had built.
func NewECMP(o ECMPOptions) (_ *ECMP, err error) {
	o, err = o.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Lab{VIPs: slices.Clone(o.VIPs)}
	e := &ECMP{Lab: l, Opts: o}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	if err := l.claimName(o.Prefix); err != nil {
		return nil, err
	}
	if err := l.buildSwitch(); err != nil {
		return nil, err
	}
	if e.Router, err = l.addHost("rt", 1, o.InternalDomain); err != nil {
		return nil, err
	}
	for i := range o.LBs {
		role := "lb"
		if i > 0 {
			role = fmt.Sprintf("lb%d", i)
		}
		h, err := l.addHost(role, 2+i, o.InternalDomain)
		if err != nil {
			return nil, err
		}
		e.LBs = append(e.LBs, h)
	}
	l.LB = e.LBs[0]
	for i := range o.Backends {
		h, err := l.addHost(fmt.Sprintf("b%d", i), 101+i, o.InternalDomain)
		if err != nil {
			return nil, err
		}
		l.Backends = append(l.Backends, h)
	}
	if err := e.buildClientSide(o); err != nil {
		return nil, err
	}
	if err := e.route(o); err != nil {
		return nil, err
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "dsrlb-ecmp-"); err != nil {
			return nil, err
		}
		dir := o.Dir
		l.pushCleanup(func() error { return os.RemoveAll(dir) })
		e.Opts.Dir = dir
	}
	e.RouterBIRD, err = e.Router.StartBIRD(o.Dir, e.routerConfig())
	if err != nil {
		return nil, err
	}
	l.pushCleanup(e.RouterBIRD.Stop)
	return e, nil
}

func (o ECMPOptions) withDefaults() (ECMPOptions, error) {
	base, err := Options{Prefix: o.Prefix, Clients: o.Clients, Backends: o.Backends, VIPs: o.VIPs, InternalDomain: o.InternalDomain}.withDefaults()
	if err != nil {
		return o, err
	}
	o.Prefix, o.Clients, o.Backends, o.InternalDomain = base.Prefix, base.Clients, base.Backends, base.InternalDomain
	if o.LBs == 0 {
		o.LBs = DefaultLBs
	}
	if o.RouterAS == 0 {
		o.RouterAS = DefaultRouterAS
	}
	if o.NodeAS == 0 {
		o.NodeAS = DefaultNodeAS
	}
	if o.HoldTime == 0 {
		o.HoldTime = 3 * time.Second
	}
	switch {
	case o.LBs < 1 || o.LBs > maxLBs:
		return o, fmt.Errorf("lab: %d balancers: want 1..%d", o.LBs, maxLBs)
	case o.HoldTime < 3*time.Second || o.HoldTime%time.Second != 0:
		return o, fmt.Errorf("lab: hold time %s: want whole seconds, at least 3s", o.HoldTime)
	case strings.ContainsAny(o.Password, "\"\\\n"):
		return o, errors.New("lab: the BGP password may not hold quotes, backslashes or newlines")
	}
	for _, v := range o.VIPs {
		if Subnet4().Contains(v) || ClientSubnet4().Contains(v) {
			return o, fmt.Errorf("lab: VIP %s is inside a lab subnet: ECMP VIPs are reached by route", v)
		}
	}
	return o, nil
}

// buildClientSide makes the client subnet: a second switch namespace with
// its own bridge, the router's eth1 and the clients on it.
func (e *ECMP) buildClientSide(o ECMPOptions) error {
	l := e.Lab
	name := l.Name + "-swc"
	if err := createNamedNetns(name); err != nil {
		return fmt.Errorf("lab: create namespace %s: %w", name, err)
	}
	l.pushCleanup(func() error { return deleteNamedNetns(name) })
	side := &Lab{Name: l.Name, Switch: &Host{Name: name, Role: "swc", NetnsPath: filepath.Join(netnsDir, name)}}
	if err := side.buildSwitch(); err != nil {
		return err
	}
	rt := &Host{Name: e.Router.Name, Role: "rt", NetnsPath: e.Router.NetnsPath, IfName: "eth1", PortName: "rt"}
	setClientSideAddrs(rt, 1)
	if err := side.plug(rt); err != nil {
		return err
	}
	if err := rt.configureInterface(); err != nil {
		return err
	}
	for i := range o.Clients {
		role := fmt.Sprintf("c%d", i)
		h := &Host{Name: l.Name + "-" + role, Role: role, IfName: hostIfName, PortName: role, internalDomain: o.InternalDomain}
		h.NetnsPath = filepath.Join(netnsDir, h.Name)
		setClientSideAddrs(h, 11+i)
		if err := createNamedNetns(h.Name); err != nil {
			return fmt.Errorf("lab: create namespace %s: %w", h.Name, err)
		}
		l.pushCleanup(func() error { return deleteNamedNetns(h.Name) })
		if err := h.setSysctls([][2]string{{"net.ipv6.conf.all.accept_dad", "0"}, {"net.ipv6.conf.default.accept_dad", "0"}}); err != nil {
			return err
		}
		if err := side.plug(h); err != nil {
			return err
		}
		if err := h.configureInterface(); err != nil {
			return err
		}
		l.Clients = append(l.Clients, h)
	}
	return nil
}

// setClientSideAddrs gives h its addresses on the client subnet:
// 10.88.0.octet, 2001:db8:88::octet, MAC 02:88:00:00:00:octet.
func setClientSideAddrs(h *Host, octet int) {
	h.MAC = net.HardwareAddr{0x02, 0x88, 0, 0, 0, byte(octet)}
	h.Addr4 = netip.AddrFrom4([4]byte{10, 88, 0, byte(octet)})
	h.Addr6 = netip.MustParseAddr(fmt.Sprintf("2001:db8:88::%d", octet))
}

// route sets up forwarding on the router, default routes on the other
// hosts, and the VIPs on the backends' lo.
func (e *ECMP) route(o ECMPOptions) error {
	if err := e.Router.setSysctls([][2]string{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv6.conf.all.forwarding", "1"},
		{"net.ipv4.fib_multipath_hash_policy", "1"},
		{"net.ipv6.fib_multipath_hash_policy", "1"},
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf.default.rp_filter", "0"},
	}); err != nil {
		return err
	}
	for _, c := range e.Clients {
		if err := c.addDefaultRoute(RouterClientAddr); err != nil {
			return err
		}
	}
	for _, h := range append(slices.Clone(e.LBs), e.Backends...) {
		if err := h.addDefaultRoute(RouterAddr); err != nil {
			return err
		}
	}
	for _, b := range e.Backends {
		if err := b.setSysctls([][2]string{
			{"net.ipv4.conf.all.arp_ignore", "1"},
			{"net.ipv4.conf.all.arp_announce", "2"},
		}); err != nil {
			return err
		}
		for _, v := range o.VIPs {
			if err := b.AddLoopbackVIP(v); err != nil {
				return err
			}
		}
	}
	return nil
}

// addDefaultRoute adds "default via gw dev IfName".
func (h *Host) addDefaultRoute(gw netip.Addr) error {
	return h.withLink(h.IfName, func(nh *netlink.Handle, eth netlink.Link) error {
		r := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw.AsSlice()}
		if err := nh.RouteAdd(r); err != nil {
			return fmt.Errorf("%s: default via %s: %w", h.Name, gw, err)
		}
		return nil
	})
}

// routerConfig is the router's bird.conf: one eBGP session per balancer,
// everything learned exported to the kernel, equal routes merged into one
// multipath route.
func (e *ECMP) routerConfig() string {
	o := e.Opts
	var b strings.Builder
	fmt.Fprintf(&b, "# router of lab %s\nrouter id %s;\nlog stderr all;\nprotocol device { scan time 1; }\n", e.Name, RouterAddr)
	b.WriteString("protocol kernel {\n\tipv4 { import none; export all; };\n\tmerge paths on;\n}\n")
	for i := range e.LBs {
		fmt.Fprintf(&b, "protocol bgp lb%d {\n\tlocal %s as %d;\n\tneighbor %s as %d;\n\thold time %d;\n",
			i, RouterAddr, o.RouterAS, LBAddr(i), o.NodeAS, int(o.HoldTime/time.Second))
		b.WriteString("\tconnect retry time 1;\n\terror wait time 1, 5;\n")
		if o.Password != "" {
			fmt.Fprintf(&b, "\tpassword \"%s\";\n", o.Password)
		}
		b.WriteString("\tipv4 { import all; export none; };\n}\n")
	}
	return b.String()
}

// NextHops returns the gateways of the router's kernel route to addr (one
// per ECMP path), none when it has no such route.
func (e *ECMP) NextHops(addr netip.Addr) ([]netip.Addr, error) {
	nh, err := e.Router.netlinkHandle()
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	dst := hostAddr(netip.PrefixFrom(addr, addr.BitLen())).IPNet
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	routes, err := nh.RouteListFiltered(family, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
	if err != nil {
		return nil, fmt.Errorf("%s: routes to %s: %w", e.Router.Name, addr, err)
	}
	var gws []netip.Addr
	for _, r := range routes {
		if a, ok := netip.AddrFromSlice(r.Gw); ok {
			gws = append(gws, a.Unmap())
		}
		for _, p := range r.MultiPath {
			if a, ok := netip.AddrFromSlice(p.Gw); ok {
				gws = append(gws, a.Unmap())
			}
		}
	}
	slices.SortFunc(gws, netip.Addr.Compare)
	return gws, nil
}

// SetLinkUp brings the host's segment interface (eth0) up or down, as
// pulling its cable would.
func (h *Host) SetLinkUp(up bool) error {
	return h.withLink(h.IfName, func(nh *netlink.Handle, eth netlink.Link) error {
		if up {
			return nh.LinkSetUp(eth)
		}
		return nh.LinkSetDown(eth)
	})
}

// SetUnreachable adds (on) or removes (off) an "unreachable" route to each
// of addrs in the host's namespace, as a filter or a broken path between the
// host and them would: the host's own connections to them fail at once,
// while every other host still reaches them.
func (h *Host) SetUnreachable(on bool, addrs ...netip.Addr) error {
	nh, err := h.netlinkHandle()
	if err != nil {
		return err
	}
	defer nh.Close()
	for _, a := range addrs {
		r := &netlink.Route{Dst: hostAddr(netip.PrefixFrom(a, a.BitLen())).IPNet, Type: unix.RTN_UNREACHABLE}
		op, do := "add", nh.RouteAdd
		if !on {
			op, do = "delete", nh.RouteDel
		}
		if err := do(r); err != nil {
			return fmt.Errorf("%s: %s route unreachable %s: %w", h.Name, op, a, err)
		}
	}
	return nil
}

// BIRD is a BIRD daemon running in a host's namespace.
type BIRD struct {
	Host *Host
	// Config, Socket, PIDFile and LogFile are its files (in the dir given
	// to StartBIRD).
	Config, Socket, PIDFile, LogFile string

	cmd    *exec.Cmd
	exited chan struct{}
}

// StartBIRD writes conf to dir/bird-ROLE.conf and runs `bird -f -c CONF -s
// SOCK -P PIDFILE` in the host's namespace (through nsenter), logging to
// dir/bird-ROLE.log, and waits until its control socket answers. Stop
// kills it by its PID.
func (h *Host) StartBIRD(dir, conf string) (*BIRD, error) {
	base := filepath.Join(dir, "bird-"+h.Role)
	b := &BIRD{Host: h, Config: base + ".conf", Socket: base + ".ctl", PIDFile: base + ".pid", LogFile: base + ".log",
		exited: make(chan struct{})}
	if err := os.WriteFile(b.Config, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("%s: BIRD config: %w", h.Name, err)
	}
	log, err := os.Create(b.LogFile)
	if err != nil {
		return nil, fmt.Errorf("%s: BIRD log: %w", h.Name, err)
	}
	// nsenter execs bird in place: the PID is bird's.
	b.cmd = h.Command("bird", "-f", "-c", b.Config, "-s", b.Socket, "-P", b.PIDFile)
	b.cmd.Stdout, b.cmd.Stderr = log, log
	if err := b.cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("%s: start bird: %w", h.Name, err)
	}
	go func() {
		b.cmd.Wait()
		log.Close()
		close(b.exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.Birdc("show", "status"); err == nil {
			return b, nil
		}
		select {
		case <-b.exited:
			return nil, fmt.Errorf("%s: bird exited at start:\n%s", h.Name, b.Log())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Stop()
			return nil, fmt.Errorf("%s: bird did not answer on %s within 10s:\n%s", h.Name, b.Socket, b.Log())
		}
	}
}

// Birdc runs `birdc -s SOCKET args...` and returns its output.
func (b *BIRD) Birdc(args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", b.Socket}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: birdc %s: %w: %s", b.Host.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Log returns what BIRD logged so far.
func (b *BIRD) Log() string {
	out, _ := os.ReadFile(b.LogFile)
	return string(out)
}

// Stop ends BIRD by its PID (SIGTERM, then SIGKILL after 5s). It is
// idempotent.
func (b *BIRD) Stop() error {
	select {
	case <-b.exited:
		return nil
	default:
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		b.cmd.Process.Kill()
		<-b.exited
	}
	return nil
}
