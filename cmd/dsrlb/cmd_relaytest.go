package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"

	"github.com/dsrlb/dsrlb/internal/config"
	"github.com/dsrlb/dsrlb/internal/relaytest"
)

// cmdRelayTest runs `dsrlb relay-test HOST[:PORT] --from A --to B` or, with
// --all, the same test against every VIP and backend of lb.toml.
// Exit codes: 0 closed, 1 open relay, 2 inconclusive or usage error.
func cmdRelayTest(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("relay-test", stderr)
	cfgPath := configFlag(fs)
	var opts relaytest.Options
	fs.StringVar(&opts.From, "from", "", "envelope sender (MAIL FROM), an outside address; <> for the null sender")
	fs.StringVar(&opts.To, "to", "", "recipient (RCPT TO) in a domain the server must NOT accept mail for")
	fs.StringVar(&opts.HELO, "helo", relaytest.DefaultHELO, "name sent in EHLO/HELO")
	fs.DurationVar(&opts.Timeout, "timeout", relaytest.DefaultTimeout, "connect and per-command timeout")
	all := fs.Bool("all", false, "test every VIP (each port) and every backend's own address from lb.toml")
	smtpPort := fs.Uint("smtp-port", 25, "with --all: the port tested on each backend besides its VIP ports")
	verbose := fs.Bool("v", false, "with --all: print each session's transcript")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dsrlb relay-test HOST[:PORT] --from A --to B [--helo H] [--timeout D]")
		fmt.Fprintln(stderr, "       dsrlb relay-test --all [-c lb.toml] --from A --to B [--smtp-port 25] [-v]")
		fmt.Fprintln(stderr, "Stops after RCPT TO and never sends DATA. Exit: 0 closed, 1 OPEN RELAY, 2 inconclusive or error.")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError(stderr, fs, err)
	}
	switch {
	case opts.From == "" || opts.To == "":
		return usageError(stderr, fs, errors.New("--from and --to are required"))
	case !strings.Contains(opts.To, "@"):
		return usageError(stderr, fs, fmt.Errorf("--to %q: want an address in an outside domain, like user@example.org", opts.To))
	case *all && len(pos) != 0:
		return usageError(stderr, fs, errors.New("--all takes no HOST"))
	case !*all && len(pos) != 1:
		return usageError(stderr, fs, errors.New("want exactly one HOST[:PORT], or --all"))
	case *smtpPort == 0 || *smtpPort > 65535:
		return usageError(stderr, fs, fmt.Errorf("--smtp-port %d: want 1-65535", *smtpPort))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *all {
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			fmt.Fprintf(stderr, "dsrlb relay-test: %v\n", err)
			return exitError
		}
		return relayTestAll(ctx, cfg, uint16(*smtpPort), opts, *verbose, stdout, stderr)
	}
	target, err := relaytest.ParseTarget(pos[0])
	if err != nil {
		return usageError(stderr, fs, err)
	}
	r := relaytest.Test(ctx, target, opts)
	for _, l := range r.Transcript {
		fmt.Fprintln(stdout, "  "+l.String())
	}
	fmt.Fprintln(stdout, r.Summary(opts.From, opts.To))
	if r.Outcome == relaytest.Open {
		fmt.Fprintln(stdout, "!!! Anyone can send mail to any domain through this server. Find the Receive connector that")
		fmt.Fprintln(stdout, "!!! grants relay to this client (e.g. a load balancer's SNAT address in an internal relay")
		fmt.Fprintln(stdout, "!!! connector's RemoteIPRanges) and take the address out of it.")
	}
	if r.Err != nil && r.Reply != "" {
		fmt.Fprintf(stdout, "error: %v\n", r.Err)
	}
	return outcomeExit(r.Outcome)
}

// outcomeExit maps a verdict to the exit code of DESIGN section 8.
func outcomeExit(o relaytest.Outcome) int {
	switch o {
	case relaytest.Closed:
		return exitOK
	case relaytest.Open:
		return exitBad
	default:
		return exitError
	}
}

// relayTestAll tests every target of cfg and prints one line per target;
// the exit code is that of the worst outcome.
func relayTestAll(ctx context.Context, cfg *config.Config, smtpPort uint16, opts relaytest.Options, verbose bool, stdout, stderr io.Writer) int {
	targets, results, worst := relaytest.All(ctx, cfg, smtpPort, opts)
	if len(targets) == 0 {
		fmt.Fprintln(stderr, "dsrlb relay-test --all: the config has no VIPs and no backends")
		return exitError
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERDICT\tTARGET\tADDRESS\tAT\tREPLY")
	for i, r := range results {
		reply := strings.ReplaceAll(r.Reply, "\n", " | ")
		if r.Err != nil && reply == "" {
			reply = r.Err.Error()
		}
		verdict := string(r.Outcome)
		if r.Outcome == relaytest.Open {
			verdict = "OPEN RELAY"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", verdict, targets[i].Name, targets[i].Addr, r.Stage, reply)
	}
	tw.Flush()
	if verbose {
		for i, r := range results {
			fmt.Fprintf(stdout, "\n%s %s:\n", targets[i].Name, targets[i].Addr)
			for _, l := range r.Transcript {
				fmt.Fprintln(stdout, "  "+l.String())
			}
		}
	}
	if worst == relaytest.Open {
		fmt.Fprintf(stdout, "OPEN RELAY: at least one target accepted RCPT TO:<%s> from <%s>\n", opts.To, opts.From)
	}
	return outcomeExit(worst)
}
