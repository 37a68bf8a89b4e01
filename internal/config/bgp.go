package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults and limits of the [bgp] table.
const (
	// DefaultHoldTime is short, so that a router stops sending to a dead
	// node within seconds (keepalives go every third of it).
	DefaultHoldTime   = 9 * time.Second
	DefaultBirdSocket = "/run/bird/bird.ctl"
	DefaultBirdConfig = "/etc/bird/dsrlb.conf"
	// MinHoldTime and MaxHoldTime are BGP's bounds (RFC 4271 4.2; 0, which
	// turns keepalives off, is refused: failover relies on them).
	MinHoldTime = 3 * time.Second
	MaxHoldTime = 65535 * time.Second
	// maxPasswordLen is the longest TCP MD5 key the kernel takes.
	maxPasswordLen = 80
)

// bgp decodes the [bgp] table and its [[bgp.peer]] tables.
func (d *decoder) bgp(t *table) *BGP {
	t.known("local_as", "router_id", "hold_time", "peer", "bird_socket", "bird_config")
	b := &BGP{HoldTime: DefaultHoldTime, BirdSocket: DefaultBirdSocket, BirdConfig: DefaultBirdConfig, Line: d.line(t.path)}
	if !t.has("local_as") {
		t.errorf("", "local_as is required: the node's AS number, for example 65001")
	}
	t.uint32Key("local_as", &b.LocalAS, 1, math.MaxUint32)
	if !t.has("router_id") {
		t.errorf("", "router_id is required: an IPv4 address unique to this node, usually its own, for example \"10.77.0.2\"")
	}
	t.checked("router_id", new(string), func(s string) error {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() || a.IsUnspecified() {
			return errors.New("is not an IPv4 address (a BGP router id is written as one, also on IPv6-only nodes)")
		}
		b.RouterID = a
		return nil
	})
	t.duration("hold_time", &b.HoldTime)
	if t.has("hold_time") && (b.HoldTime < MinHoldTime || b.HoldTime > MaxHoldTime || b.HoldTime%time.Second != 0) {
		t.bad("hold_time", "%s must be whole seconds within %d..%d", b.HoldTime, MinHoldTime/time.Second, MaxHoldTime/time.Second)
	}
	if t.checked("bird_socket", &b.BirdSocket, checkAbsPath) && len(b.BirdSocket) > maxSocketPath {
		t.bad("bird_socket", "is longer than the %d bytes a unix socket path may have", maxSocketPath)
	}
	t.checked("bird_config", &b.BirdConfig, checkBirdPath)
	peers := t.list("peer", "an array of tables: write [[bgp.peer]]")
	if raw, isArr := t.m["peer"].([]any); !t.has("peer") || isArr && len(raw) == 0 {
		t.errorf(only(t.has("peer"), "peer"), "has no peers: add the routers, for example [[bgp.peer]] address = \"10.77.0.1\" as = 65000")
	}
	for i, p := range peers {
		b.Peers = append(b.Peers, d.bgpPeer(p, i))
	}
	return b
}

// bgpPeer decodes the i-th [[bgp.peer]]; t is nil when it was not a table.
func (d *decoder) bgpPeer(t *table, i int) BGPPeer {
	var p BGPPeer
	if t == nil {
		return p
	}
	p.Line = d.line(t.path)
	t.prefix = fmt.Sprintf("bgp peer #%d: ", i+1)
	p.Address = t.addr()
	if p.Address.IsValid() {
		t.prefix = fmt.Sprintf("bgp peer %s: ", p.Address)
	}
	t.known("address", "as", "password")
	if !t.has("as") {
		t.errorf("", "as is required: the router's AS number")
	}
	t.uint32Key("as", &p.AS, 1, math.MaxUint32)
	t.checked("password", &p.Password, checkBGPPassword)
	return p
}

// only returns s when cond holds, else "".
func only(cond bool, s string) string {
	if cond {
		return s
	}
	return ""
}

// checkBGPPassword checks a TCP MD5 password: printable ASCII, no quote or
// backslash (it is written into BIRD's config between quotes).
func checkBGPPassword(s string) error {
	if s == "" || len(s) > maxPasswordLen {
		return fmt.Errorf("must be 1..%d characters", maxPasswordLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return errors.New("may hold only printable ASCII characters other than '\"' and '\\'")
		}
	}
	return nil
}

// checkBirdPath checks a path that is written into BIRD's config between
// quotes: absolute, clean, and without quotes or backslashes.
func checkBirdPath(s string) error {
	if strings.ContainsAny(s, "\"\\") {
		return errors.New("must not hold '\"' or '\\'")
	}
	return checkAbsPath(s)
}

// vipBGP decodes a VIP's bgp_communities and bgp_med.
func (d *decoder) vipBGP(t *table, v *VIP) {
	if raw, ok := get[[]any](t, "bgp_communities", `an array like ["65000:100"]`); ok {
		for i, e := range raw {
			path := fmt.Sprintf("%s[%d]", t.keyPath("bgp_communities"), i)
			s, isStr := e.(string)
			c, err := parseCommunity(s)
			switch {
			case !isStr:
				d.add(path, fmt.Sprintf("%sbgp_communities: %v is not a string like \"65000:100\"", t.prefix, e))
			case err != nil:
				d.add(path, fmt.Sprintf("%sbgp_communities: %q %v", t.prefix, s, err))
			case slices.Contains(v.BGPCommunities, c):
				d.add(path, fmt.Sprintf("%sbgp_communities: %q is listed twice", t.prefix, s))
			default:
				v.BGPCommunities = append(v.BGPCommunities, c)
			}
		}
	}
	var med uint32
	if t.uint32Key("bgp_med", &med, 0, math.MaxUint32) {
		v.BGPMED = &med
	}
}

// parseCommunity parses "a:b" (16-bit parts) or "a:b:c" (32-bit parts).
func parseCommunity(s string) (BGPCommunity, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 2 && len(parts) != 3 {
		return BGPCommunity{}, errors.New(`is not a community like "65000:100" or a large community like "65000:1:2"`)
	}
	bits := 16
	if len(parts) == 3 {
		bits = 32
	}
	var n [3]uint32
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, bits)
		if err != nil || p == "" || p[0] == '+' {
			return BGPCommunity{}, fmt.Errorf("has part %q: want a number 0..%d", p, uint64(1)<<bits-1)
		}
		n[i] = uint32(v)
	}
	return BGPCommunity{Large: len(parts) == 3, Global: n[0], Local1: n[1], Local2: n[2]}, nil
}

// validateBGP checks what involves [bgp] and the VIPs: peers listed once,
// no peer on a VIP's address, and VIPs that share an address (one route)
// asking for the same communities and MED.
func (d *decoder) validateBGP(c *Config) {
	if b := c.BGP; b != nil {
		seen := map[netip.Addr]int{}
		for i, p := range b.Peers {
			if !p.Address.IsValid() {
				continue
			}
			path := fmt.Sprintf("bgp.peer[%d].address", i)
			if line, dup := seen[p.Address]; dup {
				d.add(path, fmt.Sprintf("bgp peer %s: is already listed on line %d", p.Address, line))
			}
			seen[p.Address] = p.Line
			for _, v := range c.VIPs {
				if v.Address == p.Address {
					d.add(path, fmt.Sprintf("bgp peer %s: is the address of vip %q (line %d): a peer is a router", p.Address, v.Name, v.Line))
				}
			}
		}
	}
	for i, v := range c.VIPs {
		for _, o := range c.VIPs[:i] {
			if !v.Address.IsValid() || o.Address != v.Address || sameBGPAttributes(o, v) {
				continue
			}
			key := "bgp_communities"
			if slices.Equal(o.BGPCommunities, v.BGPCommunities) {
				key = "bgp_med"
			}
			d.add(fmt.Sprintf("vip[%d].%s", i, key), fmt.Sprintf("%sshares address %s with vip %q (line %d) but not its bgp_communities and bgp_med: "+
				"the address is announced as one route, give both the same", label("vip", v.Name, i), v.Address, o.Name, o.Line))
			break
		}
	}
}

// sameBGPAttributes reports whether two VIPs ask for the same route attributes.
func sameBGPAttributes(a, b VIP) bool {
	medEqual := a.BGPMED == nil && b.BGPMED == nil || a.BGPMED != nil && b.BGPMED != nil && *a.BGPMED == *b.BGPMED
	return medEqual && slices.Equal(a.BGPCommunities, b.BGPCommunities)
}

// lintBGP warns about a [bgp] set-up that works but is probably not what
// the operator wants:
//
//   - hash_seed at its default: every node behind the router must hash
//     with the same seed, so set one explicitly in every node's lb.toml
//     rather than rely on each node's default;
//   - a hold time longer than 30s: a dead node keeps its share of the
//     traffic until the router's hold timer expires;
//   - a VIP of a family no peer carries (IPv4 VIPs go to IPv4 peers, IPv6
//     VIPs to IPv6 peers): it is never announced;
//   - bgp_communities or bgp_med on a VIP without a [bgp] table.
func lintBGP(c *Config, warn func(int, string, ...any)) {
	b := c.BGP
	if b == nil {
		for _, v := range c.VIPs {
			if len(v.BGPCommunities) > 0 || v.BGPMED != nil {
				warn(v.Line, "vip %q: bgp_communities/bgp_med are set but there is no [bgp] table: nothing is announced", v.Name)
			}
		}
		return
	}
	if c.LB.HashSeed == DefaultHashSeed {
		warn(b.Line, "[bgp]: [lb] hash_seed is the default %d: every node sharing the VIPs must use one hash_seed "+
			"(so a flow that moves to another node reaches the same backend); set it explicitly, to the same value, on every node",
			uint32(DefaultHashSeed))
	}
	if b.HoldTime > maxDetection {
		warn(b.Line, "[bgp]: hold_time %s: when a node dies the router keeps sending it its share of the sessions that long "+
			"(keep it within %s)", b.HoldTime, maxDetection)
	}
	for _, v := range c.VIPs {
		carried := slices.ContainsFunc(b.Peers, func(p BGPPeer) bool { return p.Address.Is4() == v.Address.Is4() })
		if !carried {
			warn(v.Line, "vip %q: no %s BGP peer: an %s VIP is announced to %s peers only, so it is never announced",
				v.Name, family(v.Address), family(v.Address), family(v.Address))
		}
	}
}
