package netif

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// Link is the balancer's network interface.
type Link struct {
	// Name is the interface name, for example "eth0".
	Name string
	// Index is its interface index in the namespace it was looked up in.
	Index int
	// MAC is its hardware address, the source MAC of forwarded frames.
	MAC net.HardwareAddr
}

// LookupLink finds the interface called name.
func LookupLink(name string) (Link, error) {
	nlk, err := netlink.LinkByName(name)
	if err != nil {
		return Link{}, fmt.Errorf("interface %s: %w", name, err)
	}
	a := nlk.Attrs()
	if len(a.HardwareAddr) != 6 {
		return Link{}, fmt.Errorf("interface %s: no Ethernet address (type %s), XDP forwarding needs one", name, nlk.Type())
	}
	return Link{Name: a.Name, Index: a.Index, MAC: a.HardwareAddr}, nil
}

// netlinkLink returns l's current netlink view (by index).
func netlinkLink(l Link) (netlink.Link, error) {
	nlk, err := netlink.LinkByIndex(l.Index)
	if err != nil {
		return nil, fmt.Errorf("interface %s (index %d): %w", l.Name, l.Index, err)
	}
	return nlk, nil
}
