package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Host is one network namespace of the lab joined to the switch.
type Host struct {
	// Name is the namespace name, for example "dl4242-0-b1".
	Name string
	// Role is the short name inside the lab: "lb", "c0", "b1", "sw".
	Role string
	// NetnsPath is /run/netns/Name.
	NetnsPath string
	// IfName is the host's interface on the segment ("eth0"); empty for the
	// switch.
	IfName string
	// IfIndex is IfName's index inside the namespace.
	IfIndex int
	// MAC is IfName's hardware address.
	MAC net.HardwareAddr
	// Addr4 and Addr6 are the host's own addresses on IfName.
	Addr4, Addr6 netip.Addr
	// PortName and PortIndex name the bridge port (the veth peer) in the
	// switch namespace.
	PortName  string
	PortIndex int

	internalDomain string

	mu      sync.Mutex
	servers []*SMTPServer
	vips    []netip.Addr
}

// LoopbackVIPs returns the VIPs the lab put on the host's lo.
func (h *Host) LoopbackVIPs() []netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.vips)
}

// Do runs fn on a locked OS thread switched into the host's namespace, and
// switches back afterwards. Sockets fn creates belong to the namespace and may
// be used from any goroutine afterwards; goroutines fn starts do not run in
// the namespace. If switching back fails, the thread stays locked so that it
// is destroyed rather than reused in the wrong namespace.
func (h *Host) Do(fn func() error) (err error) {
	target, err := netns.GetFromPath(h.NetnsPath)
	if err != nil {
		return fmt.Errorf("%s: open %s: %w", h.Name, h.NetnsPath, err)
	}
	defer target.Close()

	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("%s: get current namespace: %w", h.Name, err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("%s: enter namespace: %w", h.Name, err)
	}
	defer func() {
		if serr := netns.Set(orig); serr != nil {
			err = errors.Join(err, fmt.Errorf("%s: leave namespace: %w", h.Name, serr))
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// Command returns a command that runs name with args inside the host's
// namespace through `nsenter --net=PATH` (which, unlike `ip netns exec`,
// keeps /sys and the bpffs pins under it visible).
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + h.NetnsPath, "--", name}, args...)...)
}

// netlinkHandle opens a netlink handle bound to the host's namespace. The
// caller closes it.
func (h *Host) netlinkHandle() (*netlink.Handle, error) {
	ns, err := netns.GetFromPath(h.NetnsPath)
	if err != nil {
		return nil, fmt.Errorf("%s: open %s: %w", h.Name, h.NetnsPath, err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("%s: netlink handle: %w", h.Name, err)
	}
	return nh, nil
}

// AddLoopbackVIP puts addr on the host's lo as a /32 or /128 (no DAD), the
// way a DSR real server holds a VIP.
func (h *Host) AddLoopbackVIP(addr netip.Addr) error {
	return h.changeLoopbackVIP(addr, true)
}

// RemoveLoopbackVIP removes addr from the host's lo.
func (h *Host) RemoveLoopbackVIP(addr netip.Addr) error {
	return h.changeLoopbackVIP(addr, false)
}

func (h *Host) changeLoopbackVIP(addr netip.Addr, add bool) error {
	err := h.withLink("lo", func(nh *netlink.Handle, lo netlink.Link) error {
		a := hostAddr(netip.PrefixFrom(addr, addr.BitLen()))
		a.Scope = unix.RT_SCOPE_HOST
		if add {
			return nh.AddrAdd(lo, a)
		}
		return nh.AddrDel(lo, a)
	})
	if err != nil {
		verb := "remove"
		if add {
			verb = "add"
		}
		return fmt.Errorf("%s: %s VIP %s on lo: %w", h.Name, verb, addr, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.vips = slices.DeleteFunc(h.vips, func(v netip.Addr) bool { return v == addr })
	if add {
		h.vips = append(h.vips, addr)
	}
	return nil
}

// withLink runs fn with a netlink handle in the host's namespace and the
// link called name there.
func (h *Host) withLink(name string, fn func(*netlink.Handle, netlink.Link) error) error {
	nh, err := h.netlinkHandle()
	if err != nil {
		return err
	}
	defer nh.Close()
	link, err := nh.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: find %s: %w", h.Name, name, err)
	}
	return fn(nh, link)
}

// hostAddr turns a prefix into a netlink address that skips DAD.
func hostAddr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{
		IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Flags: unix.IFA_F_NODAD,
	}
}

// setSysctls writes sysctls ("net.ipv4.conf.all.arp_ignore" -> "1") inside
// the host's namespace.
func (h *Host) setSysctls(kv [][2]string) error {
	return h.Do(func() error {
		for _, e := range kv {
			p := filepath.Join("/proc/sys", strings.ReplaceAll(e[0], ".", "/"))
			if err := os.WriteFile(p, []byte(e[1]), 0o644); err != nil {
				return fmt.Errorf("%s: sysctl %s=%s: %w", h.Name, e[0], e[1], err)
			}
		}
		return nil
	})
}

// trackServer remembers a running SMTP server so that Close stops it.
func (h *Host) trackServer(s *SMTPServer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.servers = append(h.servers, s)
}

// closeServers stops every SMTP server started in the host.
func (h *Host) closeServers() error {
	h.mu.Lock()
	servers := h.servers
	h.servers = nil
	h.mu.Unlock()
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
