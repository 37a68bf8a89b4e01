package netif

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HasAddress reports whether a is configured on l, with any prefix length.
func HasAddress(l Link, a netip.Addr) (bool, error) {
	addrs, err := addrsOf(l, a)
	if err != nil {
		return false, err
	}
	return len(addrs) > 0, nil
}

// AddAddress puts a on l as a host address (/32, or /128 without duplicate
// address detection) unless a is already there, with any prefix length.
// added says whether it was added, so that the caller removes only what it
// added.
func AddAddress(l Link, a netip.Addr) (added bool, err error) {
	a, err = checkAddr(a)
	if err != nil {
		return false, err
	}
	present, err := HasAddress(l, a)
	if err != nil || present {
		return false, err
	}
	nlk, err := netlinkLink(l)
	if err != nil {
		return false, err
	}
	na := &netlink.Addr{IPNet: hostNet(a)}
	if a.Is6() {
		na.Flags = unix.IFA_F_NODAD
	}
	if err := netlink.AddrAdd(nlk, na); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return false, nil
		}
		return false, fmt.Errorf("add address %s to %s: %w", na.IPNet, l.Name, err)
	}
	return true, nil
}

// RemoveAddress removes the host address a (/32 or /128, as AddAddress adds
// it) from l. An absent address is not an error; a with another prefix
// length is the host's own configuration and stays.
func RemoveAddress(l Link, a netip.Addr) error {
	addrs, err := addrsOf(l, a)
	if err != nil {
		return err
	}
	for _, na := range addrs {
		if ones, bits := na.Mask.Size(); ones != bits {
			continue
		}
		nlk, err := netlinkLink(l)
		if err != nil {
			return err
		}
		if err := netlink.AddrDel(nlk, &na); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove address %s from %s: %w", na.IPNet, l.Name, err)
		}
	}
	return nil
}

// SourceAddress returns l's own address of vip's family to send from towards
// the segment: a global address that is not vip and not a host-length (/32,
// /128) address such as another VIP.
func SourceAddress(l Link, vip netip.Addr) (netip.Addr, error) {
	vip, err := checkAddr(vip)
	if err != nil {
		return netip.Addr{}, err
	}
	nlk, err := netlinkLink(l)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := netlink.AddrList(nlk, family(vip))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list addresses of %s: %w", l.Name, err)
	}
	for _, na := range addrs {
		a, ok := netip.AddrFromSlice(na.IP)
		if !ok || a.Unmap() == vip || na.Scope != unix.RT_SCOPE_UNIVERSE ||
			na.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED|unix.IFA_F_DEPRECATED) != 0 {
			continue
		}
		if ones, bits := na.Mask.Size(); ones == bits {
			continue
		}
		return a.Unmap(), nil
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no usable IPv%d address of its own to probe %s from", l.Name, ipVersion(vip), vip)
}

// addrsOf lists l's entries for address a.
func addrsOf(l Link, a netip.Addr) ([]netlink.Addr, error) {
	a, err := checkAddr(a)
	if err != nil {
		return nil, err
	}
	nlk, err := netlinkLink(l)
	if err != nil {
		return nil, err
	}
	all, err := netlink.AddrList(nlk, family(a))
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", l.Name, err)
	}
	var out []netlink.Addr
	for _, na := range all {
		if got, ok := netip.AddrFromSlice(na.IP); ok && got.Unmap() == a {
			out = append(out, na)
		}
	}
	return out, nil
}

// checkAddr rejects invalid and zoned addresses and unmaps IPv4-in-IPv6.
func checkAddr(a netip.Addr) (netip.Addr, error) {
	if !a.IsValid() || a.Zone() != "" {
		return a, fmt.Errorf("invalid address %q", a)
	}
	return a.Unmap(), nil
}

// hostNet returns a/32 or a/128.
func hostNet(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

// family returns netlink's address family of a.
func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// ipVersion returns 4 or 6.
func ipVersion(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}
