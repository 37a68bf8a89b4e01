// Package loopback generates the scripts that prepare a real server for
// Direct Server Return: a PowerShell script for Windows (and Exchange) and a
// POSIX shell script for Linux.
//
// In DSR the balancer only rewrites the destination MAC address, so a real
// server receives packets addressed to the VIP with the client's own source
// address. Every real server must therefore own each of its VIPs on a loopback
// interface, without ever answering ARP (or neighbour discovery) for it; on
// Windows that also needs weak host receive and send. The scripts do that,
// verify it, and undo it (Options.Remove). See docs/real-servers.md.
//
// Every value placed in a script is validated here again (names restricted to
// [A-Za-z0-9_.-], addresses parsed and without zones), so a script cannot carry
// injected commands even when its input did not come through config validation.
package loopback

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/dsrlb/dsrlb/internal/config"
)

// AdapterName is the name the Windows script gives the loopback adapter; it is
// how the script and its rollback find the adapter again.
const AdapterName = "dsrlb-loopback"

// ServedVIP is one VIP that a real server takes traffic for.
type ServedVIP struct {
	Name    string
	Address netip.Addr
	Ports   []uint16
}

// Server is one real server and every VIP it serves: the input of Generate.
type Server struct {
	Name    string
	Address netip.Addr
	VIPs    []ServedVIP
}

// Options selects the script variant.
type Options struct {
	// Remove asks for the rollback script instead of the setup script.
	Remove bool
	// Exchange adds, commented out for review, the Exchange receive-connector
	// commands that bind one connector per VIP (Windows only).
	Exchange bool
}

// UnknownBackendError is returned by FromConfig for a backend name that the
// config does not define.
type UnknownBackendError struct {
	Name  string
	Known []string
}

func (e *UnknownBackendError) Error() string {
	known := "none"
	if len(e.Known) > 0 {
		known = strings.Join(e.Known, ", ")
	}
	return fmt.Sprintf("backend %q is not defined in the config (known backends: %s)", e.Name, known)
}

// FromConfig returns the real server named backend with every VIP of c that
// lists it, in config order, validated as Validate does.
func FromConfig(c *config.Config, backend string) (Server, error) {
	if c == nil {
		return Server{}, errors.New("loopback: no config")
	}
	b, ok := c.Backend(backend)
	if !ok {
		known := make([]string, 0, len(c.Backends))
		for _, kb := range c.Backends {
			known = append(known, kb.Name)
		}
		return Server{}, &UnknownBackendError{Name: backend, Known: known}
	}
	s := Server{Name: b.Name, Address: b.Address}
	for _, v := range c.VIPs {
		if slices.ContainsFunc(v.Backends, func(vb config.VIPBackend) bool { return vb.Name == backend }) {
			s.VIPs = append(s.VIPs, ServedVIP{Name: v.Name, Address: v.Address, Ports: slices.Clone(v.Ports)})
		}
	}
	if len(s.VIPs) == 0 {
		return Server{}, fmt.Errorf("backend %q is not listed by any VIP: there is nothing to set up", backend)
	}
	if err := s.Validate(); err != nil {
		return Server{}, err
	}
	return s, nil
}

// Validate checks every value Generate places in a script: names match
// ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$, addresses are valid unicast addresses
// without a zone, every VIP has ports, and VIP names are unique.
func (s Server) Validate() error {
	if err := checkName(s.Name); err != nil {
		return fmt.Errorf("backend name: %w", err)
	}
	if err := checkAddr(s.Address); err != nil {
		return fmt.Errorf("backend %q address: %w", s.Name, err)
	}
	if len(s.VIPs) == 0 {
		return fmt.Errorf("backend %q: no VIPs to set up", s.Name)
	}
	seen := map[string]bool{}
	for _, v := range s.VIPs {
		if err := checkName(v.Name); err != nil {
			return fmt.Errorf("backend %q: VIP name: %w", s.Name, err)
		}
		if seen[v.Name] {
			return fmt.Errorf("backend %q: VIP %q is listed twice", s.Name, v.Name)
		}
		seen[v.Name] = true
		if err := checkAddr(v.Address); err != nil {
			return fmt.Errorf("backend %q: VIP %q address: %w", s.Name, v.Name, err)
		}
		if v.Address == s.Address {
			return fmt.Errorf("backend %q: VIP %q has the backend's own address %s", s.Name, v.Name, v.Address)
		}
		if len(v.Ports) == 0 {
			return fmt.Errorf("backend %q: VIP %q has no ports", s.Name, v.Name)
		}
		if slices.Contains(v.Ports, 0) {
			return fmt.Errorf("backend %q: VIP %q: port 0 is not a port", s.Name, v.Name)
		}
	}
	return nil
}

// checkName re-checks a name placed in a script with the config's rule, so
// nothing can be injected even when a Server is built without the config.
func checkName(n string) error {
	if !config.ValidName(n) {
		return fmt.Errorf("%q is not a valid name (letters, digits, '_', '.', '-'; at most 63; starting with a letter or digit)", n)
	}
	return nil
}

func checkAddr(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("no address")
	case a.Zone() != "":
		return fmt.Errorf("%s: an address with a zone is not allowed", a)
	case a.Is4In6():
		return fmt.Errorf("%s: write the IPv4 address without ::ffff:", a)
	case a.IsUnspecified(), a.IsLoopback(), a.IsMulticast(), a.IsLinkLocalUnicast():
		return fmt.Errorf("%s: not a usable unicast address", a)
	}
	return nil
}

// Generate returns the setup script (or, with o.Remove, the rollback script)
// for s on target (config.OSWindows or config.OSLinux). s is validated first.
//
// With o.Exchange (Windows only) the script also carries commented-out
// receive-connector commands. A VIP whose name contains "relay" or "internal"
// (in any case) is treated as a relay VIP (connector scoped by RemoteIPRanges,
// with relay rights); every other VIP is an internet VIP (anonymous, no relay).
// The script states that rule so that the admin reviews it.
func Generate(s Server, target config.OS, o Options) (string, error) {
	if err := s.Validate(); err != nil {
		return "", fmt.Errorf("loopback: %w", err)
	}
	switch target {
	case config.OSWindows:
		return windowsScript(s, o), nil
	case config.OSLinux:
		if o.Exchange {
			return "", errors.New("loopback: --exchange is for Windows (Exchange) servers only")
		}
		return linuxScript(s, o), nil
	default:
		return "", fmt.Errorf("loopback: unknown OS %q (want %q or %q)", target, config.OSWindows, config.OSLinux)
	}
}

// IsRelayVIP reports whether the Exchange commands treat the VIP named name as
// a relay VIP: its name contains "relay" or "internal", in any case.
func IsRelayVIP(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "relay") || strings.Contains(n, "internal")
}

// prefixLen is the VIP's host prefix: 32 for IPv4, 128 for IPv6.
func prefixLen(a netip.Addr) int { return a.BitLen() }

// uniqueVIPAddrs returns the VIPs' addresses as ADDR/LEN, each once, in order.
func uniqueVIPAddrs(s Server) []string {
	var out []string
	for _, v := range s.VIPs {
		p := netip.PrefixFrom(v.Address, prefixLen(v.Address)).String()
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// portList returns ports as "25, 587".
func portList(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ", ")
}

// vipSummary writes one comment line per VIP, prefixed by prefix.
func vipSummary(b *strings.Builder, s Server, prefix string) {
	for _, v := range s.VIPs {
		fmt.Fprintf(b, "%s  %-20s %-40s TCP %s\n", prefix, v.Name,
			netip.PrefixFrom(v.Address, prefixLen(v.Address)), portList(v.Ports))
	}
}

// titleLines returns the script's first two lines of description (without
// comment prefix): what it does, and the command that generated it.
func titleLines(s Server, target config.OS, o Options) (what, generatedBy string) {
	action, flags := "Make", ""
	if o.Remove {
		action, flags = "Undo what the setup script did to make", " --remove"
	}
	if o.Exchange {
		flags += " --exchange"
	}
	what = fmt.Sprintf("%s this server (%s, %s) a Direct Server Return real server for dsrlb.", action, s.Name, s.Address)
	generatedBy = fmt.Sprintf("Generated by: dsrlb backend-script %s --os %s%s", s.Name, target, flags)
	return what, generatedBy
}

// dsrWhy is the reason for the whole script, as comment text without prefix.
const dsrWhy = `With DSR the load balancer only rewrites the destination MAC address: the
packet still carries the client's own IP address (so connectors, relay rules
and logs see the real sender) and the VIP as its destination, and the reply
goes from this server straight to the client. So this server must accept
packets addressed to the VIP, and must never answer ARP (or IPv6 neighbour
discovery) for it: if it did, the router would send the VIP's traffic here
directly, past the balancer. Hence the VIPs live on a loopback interface.`

// writeComment writes text, one comment line per line, each starting with prefix.
func writeComment(b *strings.Builder, prefix, text string) {
	for line := range strings.SplitSeq(text, "\n") {
		b.WriteString(strings.TrimRight(prefix+line, " ") + "\n")
	}
}
