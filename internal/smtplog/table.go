package smtplog

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteTable prints r as readable tables, in the spirit of the Log Parser
// output of the field report: one table per breakdown with at most top rows
// each (0: all), then the findings.
func WriteTable(w io.Writer, r *Report, top int) error {
	fmt.Fprintf(w, "Exchange SMTP Receive protocol logs: %d files, %d lines, %d sessions\n", r.Files, r.Lines, r.Sessions)
	if !r.First.IsZero() {
		fmt.Fprintf(w, "From %s to %s\n", r.First.Format(time.RFC3339Nano), r.Last.Format(time.RFC3339Nano))
	}
	for _, s := range r.SkippedFiles {
		fmt.Fprintf(w, "skipped (not an SMTP Receive log): %s\n", s)
	}
	if r.SkippedLines > 0 {
		fmt.Fprintf(w, "%d malformed lines skipped, e.g. %s\n", r.SkippedLines, r.SkippedExamples[0])
	}
	if r.Evicted > 0 {
		fmt.Fprintf(w, "%d sessions forgotten before their disconnect line (open-session bound); they may be counted twice\n", r.Evicted)
	}
	for _, t := range []struct {
		title, col string
		rows       []Row
	}{
		{"Sessions per remote IP", "Remote IP", r.ByRemoteIP},
		{"Sessions per Receive connector", "Connector", r.ByConnector},
		{"Sessions per local endpoint (the VIP or real address that was hit)", "Local endpoint", r.ByLocalEndpoint},
		{"Sessions per server", "Server", r.ByServer},
	} {
		fmt.Fprintf(w, "\n%s\n", t.title)
		rows := t.rows
		if top > 0 && len(rows) > top {
			rows = rows[:top]
		}
		kw := len(t.col)
		for _, row := range rows {
			kw = max(kw, len(row.Key))
		}
		fmt.Fprintf(w, "%-*s %10s %7s %10s\n", kw, t.col, "Sessions", "Share", "Lines")
		fmt.Fprintf(w, "%s %s %s %s\n", strings.Repeat("-", kw), strings.Repeat("-", 10), strings.Repeat("-", 7), strings.Repeat("-", 10))
		for _, row := range rows {
			fmt.Fprintf(w, "%-*s %10d %6.1f%% %10d\n", kw, row.Key, row.Sessions, 100*row.Share, row.Lines)
		}
		if len(rows) < len(t.rows) {
			fmt.Fprintf(w, "(%d more)\n", len(t.rows)-len(rows))
		}
	}
	fmt.Fprintln(w)
	if len(r.Flags) == 0 {
		_, err := fmt.Fprintln(w, "Findings: none")
		return err
	}
	fmt.Fprintln(w, "Findings:")
	for _, f := range r.Flags {
		fmt.Fprintf(w, "  ! %s: %s\n", f.Kind, f.Message)
	}
	return nil
}
