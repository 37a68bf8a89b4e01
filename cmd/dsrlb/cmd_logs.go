package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dsrlb/dsrlb/internal/smtplog"
)

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// cmdLogs reports on Exchange SMTP Receive protocol logs:
// `dsrlb logs FILE|DIR... [--json] [--top N] [--connector NAME]...`.
// Exit codes: 0 nothing flagged, 1 findings (single source, idle
// connector), 2 usage or read error.
func cmdLogs(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("logs", stderr)
	configFlag(fs) // accepted like every subcommand; the logs need no config
	asJSON := fs.Bool("json", false, "print the report as JSON")
	top := fs.Int("top", 10, "rows per table (0: all); with --json, limits the arrays only when given")
	var connectors stringsFlag
	fs.Var(&connectors, "connector", `a Receive connector that must get sessions: "SERVER1\Internet via Gateway", or a name for every server (repeatable)`)
	natShare := fs.Float64("nat-share", smtplog.DefaultNATShare, "flag one remote IP with more than this share of sessions")
	natMin := fs.Int64("nat-min", smtplog.DefaultNATMinSessions, "... when there are at least this many sessions")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dsrlb logs FILE|DIR... [--json] [--top N] [--connector NAME]...")
		fmt.Fprintln(stderr, "Reads Exchange SMTP Receive protocol logs (directories: *.log, recursively).")
		fmt.Fprintln(stderr, "Exit: 0 nothing flagged, 1 findings, 2 error.")
		fs.PrintDefaults()
	}
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError(stderr, fs, err)
	}
	if len(paths) == 0 {
		return usageError(stderr, fs, errors.New("want at least one log file or directory"))
	}
	if *top < 0 {
		return usageError(stderr, fs, fmt.Errorf("--top %d: want 0 or more", *top))
	}
	opts := smtplog.Options{Connectors: connectors, NATShare: *natShare, NATMinSessions: *natMin}
	if isTerminal(stderr) {
		opts.Progress = progressBar(stderr)
	}
	r, err := smtplog.Analyze(paths, opts)
	if opts.Progress != nil {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err != nil {
		fmt.Fprintf(stderr, "dsrlb logs: %v\n", err)
		return exitError
	}
	if r.Files == 0 {
		fmt.Fprintf(stderr, "dsrlb logs: no SMTP Receive protocol logs in %s\n", strings.Join(paths, " "))
		return exitError
	}
	if *asJSON {
		if flagGiven(fs, "top") && *top > 0 {
			limitRows(r, *top)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(stderr, "dsrlb logs: %v\n", err)
			return exitError
		}
	} else if err := smtplog.WriteTable(stdout, r, *top); err != nil {
		fmt.Fprintf(stderr, "dsrlb logs: %v\n", err)
		return exitError
	}
	if len(r.Flags) > 0 {
		return exitBad
	}
	return exitOK
}

// flagGiven reports whether the flag name was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// limitRows keeps the first n rows of each breakdown.
func limitRows(r *smtplog.Report, n int) {
	for _, rows := range []*[]smtplog.Row{&r.ByRemoteIP, &r.ByConnector, &r.ByLocalEndpoint, &r.ByServer} {
		if len(*rows) > n {
			*rows = (*rows)[:n]
		}
	}
}

// isTerminal reports whether w is a character device (a terminal), without
// golang.org/x/term.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar returns a Progress callback drawing a one-line bar on w.
func progressBar(w io.Writer) func(done, total int64) {
	const width = 40
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		frac := min(float64(done)/float64(total), 1)
		n := int(frac * width)
		fmt.Fprintf(w, "\r[%s%s] %5.1f%% %d/%d MB", strings.Repeat("#", n), strings.Repeat(" ", width-n),
			100*frac, done>>20, total>>20)
	}
}
