package loopback

import (
	_ "embed" // the static parts of the scripts
	"fmt"
	"strings"

	"github.com/dsrlb/dsrlb/internal/config"
)

// The static parts of the shell scripts; linuxScript puts the validated
// values in front of them.
var (
	//go:embed scripts/common.sh
	shCommon string
	//go:embed scripts/setup.sh
	shSetup string
	//go:embed scripts/remove.sh
	shRemove string
)

// shQuote returns s as a POSIX shell single-quoted string. Validate already
// rules out quotes; escaping them here is a second line of defence.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// linuxScript returns the shell setup or rollback script for s.
func linuxScript(s Server, o Options) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	what, generatedBy := titleLines(s, config.OSLinux, o)
	b.WriteString("# " + what + "\n# " + generatedBy + "\n")
	b.WriteString("# Review it, then run it as root on this server: sh SCRIPT. It is safe to run\n")
	b.WriteString("# again, stops at the first error, and ends with a verification (PASS/FAIL).\n#\n")
	writeComment(&b, "# ", dsrWhy)
	fmt.Fprintf(&b, "#\n# VIPs served by %s:\n", s.Name)
	vipSummary(&b, s, "#")
	b.WriteString("#\n# Files: /var/lib/dsrlb-realserver/sysctl.saved (the sysctl values found before\n")
	b.WriteString("# the first run), /etc/sysctl.d/90-dsrlb-realserver.conf, and the VIPs for the\n")
	b.WriteString("# next boot in /etc/systemd/network (systemd-networkd) or\n")
	b.WriteString("# /etc/network/interfaces.d/dsrlb-realserver (ifupdown).\n")
	b.WriteString("set -eu\n\n")
	b.WriteString("# Values from lb.toml (validated by dsrlb: names ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$, addresses parsed).\n")
	fmt.Fprintf(&b, "SERVER_NAME=%s\n", shQuote(s.Name))
	fmt.Fprintf(&b, "SERVER_ADDRESS=%s\n", shQuote(s.Address.String()))
	fmt.Fprintf(&b, "VIPS=%s\n\n", shQuote(strings.Join(uniqueVIPAddrs(s), " ")))
	b.WriteString(shCommon)
	b.WriteString("\n")
	if o.Remove {
		b.WriteString(shRemove)
	} else {
		b.WriteString(shSetup)
	}
	return b.String()
}
