// Package bgp announces a dsrlb node's VIPs to its routers over BGP through
// BIRD (bird2), which runs beside the daemon (DESIGN section 11).
//
// dsrlb owns one file of BIRD's configuration, [config.BGP].BirdConfig,
// which BIRD's own bird.conf includes (NodeConfig renders a minimal
// bird.conf that does). The file holds:
//
//   - two routing tables of dsrlb's own (dsrlb4, dsrlb6), so the VIP
//     routes never reach the node's kernel or any other protocol;
//   - a static protocol per family with one blackhole route per announced
//     VIP address (/32 or /128): what the node announces;
//   - an export filter per family adding each VIP's communities and MED;
//   - one BGP protocol per peer (IPv4 peers carry the IPv4 VIPs, IPv6 peers
//     the IPv6 ones): import none, next hop self, the hold time, the TCP MD5
//     password.
//
// The Announcer rewrites the file atomically and runs `birdc configure`
// only when it changes; BIRD reconfigures softly, so a changed route list
// leaves the sessions up. Every value written into the file is a number, a
// parsed address, or a string checked here again (passwords, paths), so a
// config cannot inject BIRD statements.
package bgp

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dsrlb/dsrlb/internal/config"
)

// Names dsrlb gives to what it defines in BIRD.
const (
	table4     = "dsrlb4"
	table6     = "dsrlb6"
	protoPeer  = "dsrlb_peer_"
	protoVIPs4 = "dsrlb_vips4"
	protoVIPs6 = "dsrlb_vips6"
	// announcedTag starts the comment line that lists the announced VIPs, so
	// a restarted daemon knows what BIRD was left announcing.
	announcedTag = "# announced vips:"
)

// Timers of the BGP sessions dsrlb defines (seconds). BIRD's defaults (an
// error wait of 60 to 300 s) would keep a node that lost its link for a
// moment out of the ECMP group for minutes.
const (
	connectRetry = 5
	errorWaitMin = 5
	errorWaitMax = 60
)

// Route is one VIP address to announce, with its attributes.
type Route struct {
	Prefix      netip.Prefix
	Communities []config.BGPCommunity
	MED         *uint32
	// VIPs are the names of the VIPs on the address.
	VIPs []string
}

// Routes groups VIPs by address, in address order: one route per address
// (VIPs sharing an address share its route; config validation makes them
// ask for the same attributes).
func Routes(vips []config.VIP) []Route {
	var rs []Route
	for _, v := range vips {
		p := netip.PrefixFrom(v.Address, v.Address.BitLen())
		i := slices.IndexFunc(rs, func(r Route) bool { return r.Prefix == p })
		if i < 0 {
			rs = append(rs, Route{Prefix: p, Communities: v.BGPCommunities, MED: v.BGPMED})
			i = len(rs) - 1
		}
		rs[i].VIPs = append(rs[i].VIPs, v.Name)
	}
	slices.SortFunc(rs, func(a, b Route) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return rs
}

// Render returns the file dsrlb owns in BIRD's config for the node's [bgp]
// table b, the configured VIPs (their attributes go into the export
// filters) and the names of the VIPs to announce now.
func Render(b config.BGP, vips []config.VIP, announce []string) (string, error) {
	if err := check(b); err != nil {
		return "", err
	}
	all := Routes(vips)
	on := map[string]bool{}
	for _, name := range announce {
		if !slices.ContainsFunc(vips, func(v config.VIP) bool { return v.Name == name }) {
			return "", fmt.Errorf("bgp: announce: no vip %q in the config", name)
		}
		on[name] = true
	}
	for _, r := range all {
		if err := checkRoute(r); err != nil {
			return "", err
		}
	}
	var w strings.Builder
	names := slices.Sorted(maps.Keys(on))
	fmt.Fprintf(&w, "# Written by dsrlb (internal/bgp): do not edit, it is rewritten whenever the announced VIPs change.\n")
	fmt.Fprintf(&w, "%s %s\n\n", announcedTag, strings.Join(names, " "))
	fmt.Fprintf(&w, "ipv4 table %s;\nipv6 table %s;\n", table4, table6)
	for _, fam := range []struct {
		v4           bool
		proto, table string
	}{{true, protoVIPs4, table4}, {false, protoVIPs6, table6}} {
		var routes []Route
		for _, r := range all {
			if r.Prefix.Addr().Is4() == fam.v4 {
				routes = append(routes, r)
			}
		}
		renderFilter(&w, fam.v4, routes)
		fmt.Fprintf(&w, "\nprotocol static %s {\n\t%s { table %s; };\n", fam.proto, channel(fam.v4), fam.table)
		for _, r := range routes {
			if slices.ContainsFunc(r.VIPs, func(n string) bool { return on[n] }) {
				fmt.Fprintf(&w, "\troute %s blackhole;\t# %s\n", r.Prefix, strings.Join(r.VIPs, " "))
			}
		}
		w.WriteString("}\n")
	}
	for _, p := range b.Peers {
		renderPeer(&w, b, p)
	}
	return w.String(), nil
}

// renderFilter writes the export filter of one family.
func renderFilter(w *strings.Builder, v4 bool, routes []Route) {
	fmt.Fprintf(w, "\nfilter %s {\n\tif source != RTS_STATIC then reject;\n", filterName(v4))
	for _, r := range routes {
		if len(r.Communities) == 0 && r.MED == nil {
			continue
		}
		fmt.Fprintf(w, "\tif net = %s then {\n", r.Prefix)
		for _, c := range r.Communities {
			if c.Large {
				fmt.Fprintf(w, "\t\tbgp_large_community.add((%d, %d, %d));\n", c.Global, c.Local1, c.Local2)
			} else {
				fmt.Fprintf(w, "\t\tbgp_community.add((%d, %d));\n", c.Global, c.Local1)
			}
		}
		if r.MED != nil {
			fmt.Fprintf(w, "\t\tbgp_med = %d;\n", *r.MED)
		}
		w.WriteString("\t}\n")
	}
	w.WriteString("\taccept;\n}\n")
}

// renderPeer writes the BGP protocol of one peer.
func renderPeer(w *strings.Builder, b config.BGP, p config.BGPPeer) {
	v4 := p.Address.Is4()
	fmt.Fprintf(w, "\nprotocol bgp %s {\n", ProtocolName(p.Address))
	fmt.Fprintf(w, "\trouter id %s;\n\tlocal as %d;\n\tneighbor %s as %d;\n", b.RouterID, b.LocalAS, p.Address, p.AS)
	hold := int(b.HoldTime / time.Second)
	fmt.Fprintf(w, "\thold time %d;\n\tkeepalive time %d;\n", hold, max(1, hold/3))
	fmt.Fprintf(w, "\tconnect retry time %d;\n\terror wait time %d, %d;\n", connectRetry, errorWaitMin, errorWaitMax)
	if p.Password != "" {
		fmt.Fprintf(w, "\tpassword \"%s\";\n", p.Password)
	}
	table := table6
	if v4 {
		table = table4
	}
	fmt.Fprintf(w, "\t%s {\n\t\ttable %s;\n\t\timport none;\n\t\texport filter %s;\n\t\tnext hop self;\n\t};\n}\n",
		channel(v4), table, filterName(v4))
}

func channel(v4 bool) string {
	if v4 {
		return "ipv4"
	}
	return "ipv6"
}

func filterName(v4 bool) string {
	if v4 {
		return "dsrlb_export4"
	}
	return "dsrlb_export6"
}

// ProtocolName is the name of the BIRD protocol for the peer at addr:
// derived from the address alone, so it stays the same across reloads and
// BIRD keeps the session up while other peers come and go.
func ProtocolName(addr netip.Addr) string {
	return protoPeer + strings.NewReplacer(".", "_", ":", "_").Replace(addr.WithZone("").String())
}

// check re-checks the [bgp] values that go into BIRD's config.
func check(b config.BGP) error {
	var errs []error
	if b.LocalAS == 0 {
		errs = append(errs, errors.New("local_as is 0"))
	}
	if !b.RouterID.Is4() || b.RouterID.IsUnspecified() {
		errs = append(errs, fmt.Errorf("router_id %v is not an IPv4 address", b.RouterID))
	}
	if b.HoldTime < config.MinHoldTime || b.HoldTime > config.MaxHoldTime || b.HoldTime%time.Second != 0 {
		errs = append(errs, fmt.Errorf("hold_time %s is not whole seconds within %s..%s", b.HoldTime, config.MinHoldTime, config.MaxHoldTime))
	}
	seen := map[netip.Addr]bool{}
	for _, p := range b.Peers {
		switch {
		case !p.Address.IsValid() || p.Address.Zone() != "" || p.Address.Is4In6():
			errs = append(errs, fmt.Errorf("peer address %v is not a plain IP address", p.Address))
		case seen[p.Address]:
			errs = append(errs, fmt.Errorf("peer %s is listed twice", p.Address))
		case p.AS == 0:
			errs = append(errs, fmt.Errorf("peer %s: as is 0", p.Address))
		}
		seen[p.Address] = true
		if !safeString(p.Password) {
			errs = append(errs, fmt.Errorf("peer %s: the password holds a character that cannot go into BIRD's config", p.Address))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bgp: %w", err)
	}
	return nil
}

// checkRoute re-checks a route: a host prefix of a plain address, VIP
// names that config accepts (they go into comments and the announced-VIPs
// line, so a newline or a space would change the file), standard
// communities within 16 bits.
func checkRoute(r Route) error {
	for _, n := range r.VIPs {
		if !config.ValidName(n) {
			return fmt.Errorf("bgp: vip name %q is not a valid name", n)
		}
	}
	a := r.Prefix.Addr()
	if !a.IsValid() || a.Zone() != "" || a.Is4In6() || r.Prefix.Bits() != a.BitLen() {
		return fmt.Errorf("bgp: vip %v: %v is not a host prefix of a plain address", r.VIPs, r.Prefix)
	}
	for _, c := range r.Communities {
		if !c.Large && (c.Global > 0xffff || c.Local1 > 0xffff || c.Local2 != 0) {
			return fmt.Errorf("bgp: vip %v: community %s does not fit 16:16 bits", r.VIPs, c)
		}
	}
	return nil
}

// safeString reports whether s can stand between double quotes in BIRD's
// config: printable ASCII without '"' or '\'.
func safeString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// NodeConfig returns a minimal bird.conf for a dsrlb node: its router id,
// the device protocol BGP needs, logging to stderr, and the include of the
// file dsrlb writes (include, the bird_config of [bgp]). An operator with a
// bird.conf of their own adds the `include` line to it instead.
func NodeConfig(routerID netip.Addr, include string) (string, error) {
	if !routerID.Is4() || routerID.IsUnspecified() {
		return "", fmt.Errorf("bgp: router id %v is not an IPv4 address", routerID)
	}
	if !strings.HasPrefix(include, "/") || !safeString(include) {
		return "", fmt.Errorf("bgp: include path %q must be absolute, printable ASCII, without '\"' or '\\'", include)
	}
	return fmt.Sprintf("# bird.conf of a dsrlb node\nrouter id %s;\nlog stderr all;\nprotocol device {\n\tscan time 10;\n}\ninclude \"%s\";\n",
		routerID, include), nil
}

// announcedIn returns the VIP names listed in a file Render wrote, and
// whether the file was one.
func announcedIn(text string) ([]string, bool) {
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, announcedTag); ok {
			return strings.Fields(rest), true
		}
	}
	return nil, false
}
