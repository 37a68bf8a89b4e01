package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/dsrlb/dsrlb/internal/config"
	"github.com/dsrlb/dsrlb/internal/health"
)

// builtinHealth is the probe profile used when no config file is found:
// the [health] defaults of the config package.
func builtinHealth() config.Health { return config.DefaultHealth() }

// cmdProbe runs one deep SMTP probe and prints its transcript and verdict.
// Exit 0 good (up), 1 back pressure (draining), 2 bad (down) or usage error.
func cmdProbe(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("probe", stderr)
	cfgPath := configFlag(fs)
	from := fs.String("from", "", "MAIL FROM address (default: the config's mail_from)")
	helo := fs.String("helo", "", "EHLO/HELO name (default: the config's helo)")
	rcpt := fs.String("rcpt", "", "RCPT TO address (default: the config's rcpt_to; none when empty)")
	starttls := fs.String("starttls", "", "off | try | require (default: the config's starttls)")
	timeout := fs.Duration("timeout", 0, "timeout of every step but MAIL FROM (default: the config's timeout)")
	tarpit := fs.Duration("tarpit", 0, "how long to wait for the MAIL FROM reply (default: the config's tarpit_threshold)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dsrlb probe HOST[:PORT] [--from A] [--helo H] [--rcpt R] [--starttls off|try|require] [--timeout D] [--tarpit D] [-c FILE]")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError(stderr, fs, err)
	}
	if len(pos) != 1 {
		return usageError(stderr, fs, errors.New("want exactly one HOST[:PORT]"))
	}
	p, err := probeProfile(*cfgPath, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "dsrlb probe: %v\n", err)
		return exitError
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// The values go into SMTP command lines: check them with the rules of
	// mail_from, helo and rcpt_to, so that a CR/LF cannot smuggle another
	// command (DATA) into the probe.
	if set["from"] {
		if err := config.CheckMailbox(*from); err != nil {
			return usageError(stderr, fs, fmt.Errorf("--from %q %v", *from, err))
		}
		p.MailFrom = *from
	}
	if set["helo"] {
		if err := config.CheckHostname(*helo); err != nil {
			return usageError(stderr, fs, fmt.Errorf("--helo %q %v", *helo, err))
		}
		p.HELO = *helo
	}
	if set["rcpt"] {
		if *rcpt != "" {
			if err := config.CheckMailbox(*rcpt); err != nil {
				return usageError(stderr, fs, fmt.Errorf("--rcpt %q %v", *rcpt, err))
			}
		}
		p.RcptTo = *rcpt
	}
	if set["starttls"] {
		switch m := config.StartTLS(*starttls); m {
		case config.StartTLSOff, config.StartTLSTry, config.StartTLSRequire:
			p.StartTLS = m
		default:
			return usageError(stderr, fs, fmt.Errorf("--starttls %q: want off, try or require", *starttls))
		}
	}
	for name, d := range map[string]*time.Duration{"timeout": timeout, "tarpit": tarpit} {
		if set[name] && *d <= 0 {
			return usageError(stderr, fs, fmt.Errorf("--%s %s: want a positive duration", name, *d))
		}
	}
	if set["timeout"] {
		p.Timeout = *timeout
	}
	if set["tarpit"] {
		p.TarpitThreshold = *tarpit
	}
	addr, err := resolveProbeTarget(pos[0], p.Timeout)
	if err != nil {
		return usageError(stderr, fs, err)
	}

	res := health.Probe(context.Background(), addr, p)
	for _, l := range res.Transcript {
		fmt.Fprintln(stdout, l)
	}
	if len(res.Transcript) > 0 {
		fmt.Fprintln(stdout)
	}
	printProbeResult(stdout, addr, p, res)
	switch res.Verdict {
	case health.Good:
		return exitOK
	case health.BackPressure:
		return exitBad
	}
	return exitError
}

// probeProfile returns the [health] of the config named by -c, or of the
// first default config found, else the built-in defaults. An explicit -c
// that does not load is an error; a default file that does not load is
// reported and skipped.
func probeProfile(path string, stderr io.Writer) (config.Health, error) {
	resolved, err := resolveConfigPath(path)
	if err != nil {
		return builtinHealth(), nil
	}
	cfg, err := config.Load(resolved)
	switch {
	case err != nil && path != "":
		return config.Health{}, err
	case err != nil:
		fmt.Fprintf(stderr, "dsrlb probe: ignoring %s (%v); using built-in defaults\n", resolved, err)
		return builtinHealth(), nil
	}
	return cfg.Health, nil
}

// resolveProbeTarget parses HOST[:PORT] (port 25 by default; IPv6 in
// brackets when a port is given) and resolves a host name.
func resolveProbeTarget(s string, timeout time.Duration) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return netip.AddrPort{}, fmt.Errorf("%q: port 0", s)
		}
		return ap, nil
	}
	host, port := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), uint16(25)
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a, port), nil
	}
	if h, ps, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || n == 0 {
			return netip.AddrPort{}, fmt.Errorf("%q: bad port %q", s, ps)
		}
		host, port = h, uint16(n)
	}
	if host == "" {
		return netip.AddrPort{}, fmt.Errorf("%q: no host", s)
	}
	if timeout <= 0 {
		timeout = builtinHealth().Timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve %q: %v", host, err)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), port), nil
}

// printProbeResult prints the verdict block after the transcript.
func printProbeResult(w io.Writer, addr netip.AddrPort, p config.Health, res health.Result) {
	state := map[health.Verdict]string{health.Good: "up", health.BackPressure: "draining", health.Bad: "down"}[res.Verdict]
	fmt.Fprintf(w, "probe:   %s (helo %s, mail from <%s>", addr, p.HELO, p.MailFrom)
	if p.RcptTo != "" {
		fmt.Fprintf(w, ", rcpt to <%s>", p.RcptTo)
	}
	fmt.Fprintf(w, ", starttls %s)\n", p.StartTLS)
	fmt.Fprintf(w, "verdict: %s (%s)\n", res.Verdict, state)
	if res.Reply != "" {
		fmt.Fprintf(w, "reply:   %s\n", res.Reply)
	}
	if res.Reason != "" {
		fmt.Fprintf(w, "reason:  %s\n", res.Reason)
	}
	if res.Latency > 0 {
		fmt.Fprintf(w, "latency: %s (MAIL FROM)\n", res.Latency.Round(100*time.Microsecond))
	}
	if !res.CertNotAfter.IsZero() {
		fmt.Fprintf(w, "cert:    expires %s\n", res.CertNotAfter.UTC().Format(time.RFC3339))
	}
	if res.Warning != "" {
		fmt.Fprintf(w, "warning: %s\n", res.Warning)
	}
}
