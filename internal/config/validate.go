package config

import (
	"fmt"
	"net/netip"
)

// validate checks what involves more than one key: unique names and
// addresses, references from VIPs to backends, address families. c holds
// one element per [[backend]] and [[vip]] in file order, invalid ones
// included with zero fields, so index i is the i-th table of the file.
func (d *decoder) validate(c *Config) {
	d.uniqueBackends(c)
	d.uniqueVIPs(c)
	for i, v := range c.VIPs {
		d.vipBackends(c, i, v)
	}
	d.validateBGP(c)
}

// first remembers where a name or address was first seen.
type first struct {
	index int
	line  int
}

// claim records the name of the i-th backend or VIP (kind), declared on
// line, and reports a name already taken.
func (d *decoder) claim(names map[string]first, kind, name string, i, line int) {
	if f, dup := names[name]; dup && name != "" {
		d.add(fmt.Sprintf("%s[%d].name", kind, i), fmt.Sprintf("%sname is already used by the %s on line %d", label(kind, name, i), kind, f.line))
		return
	}
	names[name] = first{i, line}
}

// uniqueBackends refuses repeated backend names and addresses, and a
// backend that owns a VIP's address.
func (d *decoder) uniqueBackends(c *Config) {
	names := map[string]first{}
	addrs := map[netip.Addr]first{}
	for i, b := range c.Backends {
		who := label("backend", b.Name, i)
		d.claim(names, "backend", b.Name, i, b.Line)
		if !b.Address.IsValid() {
			continue
		}
		path := fmt.Sprintf("backend[%d].address", i)
		if f, dup := addrs[b.Address]; dup {
			d.add(path, fmt.Sprintf("%saddress %s is already backend %q's (line %d)", who, b.Address, c.Backends[f.index].Name, f.line))
		} else {
			addrs[b.Address] = first{i, b.Line}
		}
		for _, v := range c.VIPs {
			if v.Address == b.Address {
				d.add(path, fmt.Sprintf("%saddress %s is also the address of vip %q (line %d): a VIP address lives on the balancer, not on a real server's own interface", who, b.Address, v.Name, v.Line))
			}
		}
	}
}

// uniqueVIPs refuses repeated VIP names and a VIP address and port served
// twice.
func (d *decoder) uniqueVIPs(c *Config) {
	names := map[string]first{}
	type service struct {
		addr netip.Addr
		port uint16
	}
	services := map[service]first{}
	for i, v := range c.VIPs {
		who := label("vip", v.Name, i)
		d.claim(names, "vip", v.Name, i, v.Line)
		if !v.Address.IsValid() {
			continue
		}
		for k, p := range v.Ports {
			s := service{v.Address, p}
			if f, dup := services[s]; dup {
				d.add(fmt.Sprintf("vip[%d].ports[%d]", i, k),
					fmt.Sprintf("%s%s port %d is already served by vip %q (line %d)", who, v.Address, p, c.VIPs[f.index].Name, f.line))
			} else {
				services[s] = first{i, v.Line}
			}
		}
	}
}

// vipBackends checks the backends list of the i-th VIP: every name
// defined, none twice, same address family as the VIP, room in the ring.
func (d *decoder) vipBackends(c *Config, i int, v VIP) {
	who := label("vip", v.Name, i)
	seen := map[string]bool{}
	for j, e := range v.Backends {
		if e.Name == "" {
			continue
		}
		path := fmt.Sprintf("vip[%d].backends[%d].name", i, j)
		b, ok := c.Backend(e.Name)
		switch {
		case !ok:
			d.add(path, fmt.Sprintf("%sbackend %q is not defined", who, e.Name))
		case seen[e.Name]:
			d.add(path, fmt.Sprintf("%sbackend %q is listed twice", who, e.Name))
		case v.Address.IsValid() && b.Address.IsValid() && v.Address.Is4() != b.Address.Is4():
			d.add(path, fmt.Sprintf("%sbackend %q has address %s (%s) but the VIP %s is %s: DSR keeps the VIP's family end to end",
				who, e.Name, b.Address, family(b.Address), v.Address, family(v.Address)))
		}
		seen[e.Name] = true
	}
	if n := uint32(len(v.Backends)); n > c.LB.RingSize {
		d.add(fmt.Sprintf("vip[%d].backends", i), fmt.Sprintf("%s%d backends do not fit a ring of ring_size %d", who, n, c.LB.RingSize))
	}
}

// label starts a message about the i-th backend or VIP: `vip "mx": `, or
// `vip #2: ` when its name is missing or invalid.
func label(kind, name string, i int) string {
	if name == "" {
		return fmt.Sprintf("%s #%d: ", kind, i+1)
	}
	return fmt.Sprintf("%s %q: ", kind, name)
}

// family names an address family.
func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}
