package config

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// maxDetection is the longest a dead backend may keep getting new sessions
// (interval × fall) before Lint warns.
const maxDetection = 30 * time.Second

// exchangeShortestTarpit is the shortest delay Exchange puts on its MAIL
// FROM reply under submission-queue pressure (it tarpits 10 to 55 s): a
// tarpit_threshold at or above it lets a tarpitted server pass as good.
const exchangeShortestTarpit = 10 * time.Second

// Lint returns the warnings for a valid config: settings that work but are
// probably not what the operator wants (DESIGN section 8), in line order.
//
//   - persistence = "source-ip": every session from one address hashes to
//     one backend, so all mail relayed by one gateway lands on one server
//     (the field report's imbalance).
//   - unequal weights inside one priority group of a VIP.
//   - a VIP with a single backend (no failover).
//   - exposure, defined by the probe sender: the organisation's sender
//     domain is the domain of the [health] mail_from. A VIP whose effective
//     mail_from is different and in another domain is internet-facing (it
//     probes as an external sender); every other VIP is internal, a relay
//     VIP. An internet-facing VIP and a relay VIP that share a backend and
//     the same address (they cannot share address and port: that is an
//     error) are warned about: the relay's ports are then reachable on the
//     internet-facing address, and the servers see one destination for both,
//     so no receive connector bound per VIP address can keep internet mail
//     off the relay connector (the field report's open relay). VIPs with
//     separate addresses may share ports and backends: DSR keeps the
//     destination address, so one connector per VIP address tells them
//     apart (backend-script --exchange).
//   - a VIP that sets its own mail_from in the organisation's domain: if it
//     faces the internet its probe never sees Exchange medium back pressure,
//     which refuses only external senders.
//   - interval × fall longer than 30s for a VIP's probe profile.
//   - tarpit_threshold of 10s or more for a VIP's probe profile: Exchange
//     tarpits MAIL FROM for 10 to 55 s, so a server answering after 10 s
//     would be judged good.
//   - the [bgp] warnings of lintBGP (hash_seed left at its default on a
//     node with BGP peers, ...).
func Lint(c *Config) []Warning {
	var ws []Warning
	warn := func(line int, format string, args ...any) {
		ws = append(ws, Warning{File: c.Path, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	orgDomain := mailDomain(c.Health.MailFrom)
	for i, v := range c.VIPs {
		if v.Persistence == PersistSourceIP {
			warn(v.Line, "vip %q: persistence = \"source-ip\" sends every session from one address to one backend: "+
				"all mail relayed by one gateway (a mail security appliance, a smart host) lands on one server; "+
				"use \"none\" to spread sessions", v.Name)
		}
		lintWeights(v, warn)
		if len(v.Backends) == 1 {
			warn(v.Line, "vip %q: a single backend (%s): no failover, while it is down or draining the VIP takes no mail",
				v.Name, v.Backends[0].Name)
		}
		own := v.Health.MailFrom != c.Health.MailFrom
		internet := own && mailDomain(v.Health.MailFrom) != orgDomain
		if own && !internet {
			warn(v.Line, "vip %q: health.mail_from %q is in %s, the sender domain of [health]: "+
				"if this VIP faces the internet, probe with an outside address, since Exchange medium back pressure "+
				"refuses only external senders and an internal probe never sees it", v.Name, v.Health.MailFrom, orgDomain)
		}
		for j, r := range c.VIPs {
			if internet && j != i {
				lintSharedAddress(c, v, r, warn)
			}
		}
		if d := v.Health.Interval * time.Duration(v.Health.Fall); d > maxDetection {
			warn(v.Line, "vip %q: a dead backend keeps getting new sessions for up to interval %s × fall %d = %s "+
				"(keep it within %s)", v.Name, v.Health.Interval, v.Health.Fall, d, maxDetection)
		}
		if v.Health.TarpitThreshold >= exchangeShortestTarpit {
			warn(v.Line, "vip %q: tarpit_threshold %s is not below %s, the shortest delay Exchange puts on a MAIL FROM "+
				"reply under back pressure (10-55s): a tarpitting server that answers within %s counts as good "+
				"and keeps getting new sessions", v.Name, v.Health.TarpitThreshold, exchangeShortestTarpit, v.Health.TarpitThreshold)
		}
	}
	lintBGP(c, warn)
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].Line < ws[j].Line })
	return ws
}

// lintWeights warns when the backends of one priority group of v have
// different weights.
func lintWeights(v VIP, warn func(int, string, ...any)) {
	groups := map[uint32][]VIPBackend{}
	var order []uint32
	for _, b := range v.Backends {
		if groups[b.Priority] == nil {
			order = append(order, b.Priority)
		}
		groups[b.Priority] = append(groups[b.Priority], b)
	}
	for _, p := range order {
		g := groups[p]
		var total uint32
		unequal := false
		for _, b := range g {
			total += b.Weight
			unequal = unequal || b.Weight != g[0].Weight
		}
		if !unequal {
			continue
		}
		parts := make([]string, len(g))
		for i, b := range g {
			parts[i] = fmt.Sprintf("%s %d (%.0f%%)", b.Name, b.Weight, 100*float64(b.Weight)/float64(total))
		}
		warn(v.Line, "vip %q: priority %d backends have unequal weights: %s of new sessions; "+
			"uneven weights nobody meant are a classic cause of one server taking most of the mail",
			v.Name, p, strings.Join(parts, ", "))
	}
}

// lintSharedAddress warns when internet-facing VIP v and relay VIP r
// (r is not internet-facing) share an address and a backend.
func lintSharedAddress(c *Config, v, r VIP, warn func(int, string, ...any)) {
	if r.Address != v.Address || mailDomain(r.Health.MailFrom) != mailDomain(c.Health.MailFrom) {
		return
	}
	var shared []string
	for _, a := range v.Backends {
		for _, b := range r.Backends {
			if a.Name == b.Name {
				shared = append(shared, a.Name)
			}
		}
	}
	if len(shared) == 0 {
		return
	}
	warn(v.Line, "vip %q faces the internet (probe sender %s) and shares address %s and backends %s with relay vip %q (line %d): "+
		"the relay's ports are reachable on the internet address and the servers cannot tell the two apart, "+
		"so internet mail can reach the relay connector (an open relay); give the relay VIP an address of its own",
		v.Name, v.Health.MailFrom, v.Address, strings.Join(shared, ", "), r.Name, r.Line)
}
