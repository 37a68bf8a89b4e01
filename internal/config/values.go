package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Limits enforced on lb.toml values.
const (
	// MinRingSize and MaxRingSize bound ring_size, which must also be
	// prime (Maglev). 1048573 is the largest prime below 1<<20: a bigger
	// table costs memory and rebuild time per VIP for no better balance.
	MinRingSize = 3
	MaxRingSize = 1048573
	// MaxFlowTableSize bounds flow_table_size (entries of the LRU flow map).
	MaxFlowTableSize = 1 << 26
	// MaxWeight bounds a backend's weight. Weight 0 is refused: to take a
	// server out use `dsrlb drain`, or remove it from the VIP.
	MaxWeight = 65535
	// MaxPriority bounds a backend's priority (1 is the preferred group).
	MaxPriority = 255
	// maxSocketPath is the room in sockaddr_un.sun_path, minus the NUL.
	maxSocketPath = 107
)

// namePattern is what backend and VIP names may look like. Names end up in
// generated PowerShell and shell scripts (DESIGN section 10), so quotes,
// `;`, `$`, spaces and newlines are refused here, once, for every consumer.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// ValidName reports whether name may be a backend or VIP name: it is safe
// to place in a generated script.
func ValidName(name string) bool { return namePattern.MatchString(name) }

// checkName checks a backend or VIP name.
func checkName(name string) error {
	if name == "" {
		return errors.New("must not be empty")
	}
	if !namePattern.MatchString(name) {
		return errors.New("may hold only letters, digits, '_', '.' and '-', must start with a letter or digit and be at most 63 characters")
	}
	return nil
}

// parseAddr parses a VIP or backend address: a plain IPv4 or IPv6 address
// that a server can own.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Errorf("is not an IP address")
	case a.Zone() != "":
		return netip.Addr{}, errors.New("must not carry a zone (%...)")
	case a.Is4In6():
		return netip.Addr{}, fmt.Errorf("is an IPv4-mapped IPv6 address: write %s", a.Unmap())
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback(), a.IsLinkLocalUnicast():
		return netip.Addr{}, errors.New("must be a unicast address a server can own (not unspecified, multicast, loopback or link-local)")
	}
	return a, nil
}

// CheckHostname checks a DNS host name (the probe's HELO): the rule of the
// helo key, also applied to `dsrlb probe --helo`.
func CheckHostname(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	if len(s) > 253 {
		return errors.New("is longer than 253 characters")
	}
	for _, label := range strings.Split(s, ".") {
		if !validLabel(label) {
			return fmt.Errorf("is not a host name (bad label %q)", label)
		}
	}
	return nil
}

// validLabel reports whether label is a DNS label: 1-63 letters, digits or
// hyphens, not starting or ending with a hyphen.
func validLabel(label string) bool {
	if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for i := 0; i < len(label); i++ {
		if c := label[i]; !isAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// mailboxLocalBytes are the characters allowed in the local part of a probe
// address besides letters and digits: RFC 5321 atext without quotes.
const mailboxLocalBytes = ".!#$%&*+/=?^_{|}~-"

// CheckMailbox checks a plain address local@domain, as used in MAIL FROM
// and RCPT TO: no spaces, angle brackets, quotes or control characters (so
// no CR/LF can smuggle another SMTP command, such as DATA, into a probe).
// It is the rule of mail_from and rcpt_to, also applied to `dsrlb probe
// --from/--rcpt`.
func CheckMailbox(s string) error {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || len(s) > 254 {
		return errors.New("is not a plain address like user@example.org")
	}
	for i := 0; i < at; i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune(mailboxLocalBytes, rune(c)) {
			return fmt.Errorf("has %q in its local part (no spaces, <, >, quotes or control characters)", string(c))
		}
	}
	if err := CheckHostname(s[at+1:]); err != nil {
		return fmt.Errorf("has a bad domain: %v", err)
	}
	return nil
}

// mailDomain returns the lower-cased domain of a checked address.
func mailDomain(s string) string {
	return strings.ToLower(s[strings.LastIndexByte(s, '@')+1:])
}

// checkIfname checks a Linux interface name. The kernel accepts almost any
// bytes; dsrlb accepts the usual ones only, since the name is printed into
// commands and logs.
func checkIfname(s string) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > 15:
		return errors.New("is longer than the 15 characters of a Linux interface name")
	case s == "." || s == "..":
		return errors.New("is not a Linux interface name")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune("_.-", rune(c)) {
			return fmt.Errorf("has %q: an interface name holds letters, digits, '_', '.' and '-'", string(c))
		}
	}
	return nil
}

// checkListen checks a host:port listen address; "" means disabled.
func checkListen(s string) error {
	if s == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("is not host:port (%v)", err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("has port %q: want a number 1..65535", port)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if CheckHostname(host) != nil {
		return fmt.Errorf("has host %q: want an IP address or a host name", host)
	}
	return nil
}

// checkAbsPath checks a file system path: absolute, clean, printable.
func checkAbsPath(s string) error {
	if !path.IsAbs(s) {
		return errors.New("must be an absolute path")
	}
	if path.Clean(s) != s {
		return fmt.Errorf("is not clean: write %q", path.Clean(s))
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return errors.New("holds a control character")
		}
	}
	return nil
}

// IsPrime reports whether n is prime.
func IsPrime(n uint32) bool {
	if n < 2 {
		return false
	}
	for d := uint32(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// nearest returns the candidate closest to s when it is close enough to be
// a likely typo (at most 2 edits, ignoring case, and at most half its
// length), or "".
func nearest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if d < bestDist && d <= len(s)/2 {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
