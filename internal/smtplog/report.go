package smtplog

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Report is what the logs say.
type Report struct {
	// Files is the number of SMTP Receive log files read.
	Files int `json:"files"`
	// SkippedFiles lists files of another #Log-type, as "path: type".
	SkippedFiles []string `json:"skipped_files,omitempty"`
	// Lines is the number of event lines counted.
	Lines int64 `json:"lines"`
	// SkippedLines counts malformed lines; SkippedExamples shows a few.
	SkippedLines    int64    `json:"skipped_lines"`
	SkippedExamples []string `json:"skipped_examples,omitempty"`
	// Sessions is the number of distinct (connector-id, session-id) pairs.
	Sessions int64 `json:"sessions"`
	// OpenAtEnd is the number of sessions with no `-` line by the end of
	// the input (still connected when the log was copied, or cut off).
	OpenAtEnd int `json:"open_at_end"`
	// Evicted counts sessions dropped from the bounded open-session set
	// (see Options.MaxOpenSessions); 0 unless the logs are unusual.
	Evicted int64 `json:"evicted"`
	// First and Last are the earliest and latest date-time seen.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// The four breakdowns, most sessions first.
	ByRemoteIP      []Row `json:"by_remote_ip"`
	ByConnector     []Row `json:"by_connector"`
	ByLocalEndpoint []Row `json:"by_local_endpoint"`
	ByServer        []Row `json:"by_server"`
	// Flags are the findings; empty when nothing looks wrong.
	Flags []Flag `json:"flags"`
}

// Row is one line of a breakdown.
type Row struct {
	Key      string  `json:"key"`
	Sessions int64   `json:"sessions"`
	Lines    int64   `json:"lines"`
	Share    float64 `json:"share"` // of all sessions, 0..1
}

// Flag kinds.
const (
	// FlagSingleSource: one remote IP carries most sessions.
	FlagSingleSource = "single-source"
	// FlagIdleConnector: a Receive connector received no sessions.
	FlagIdleConnector = "idle-connector"
)

// Flag is one finding.
type Flag struct {
	Kind    string `json:"kind"`
	Key     string `json:"key"`
	Message string `json:"message"`
}

// Report returns the counts so far with their findings.
func (a *Analyzer) Report() *Report {
	r := a.stats
	r.Sessions = a.total.sessions
	r.OpenAtEnd = a.open.len()
	r.First = parseTime(a.first)
	r.Last = parseTime(a.last)
	idle := a.idleConnectors()
	conns := a.conn
	if len(idle) > 0 {
		conns = make(map[string]*tally, len(a.conn)+len(idle))
		for k, v := range a.conn {
			conns[k] = v
		}
		for _, k := range idle {
			conns[k] = &tally{}
		}
	}
	r.ByRemoteIP = rows(a.remote, r.Sessions)
	r.ByConnector = rows(conns, r.Sessions)
	r.ByLocalEndpoint = rows(a.local, r.Sessions)
	r.ByServer = rows(a.server, r.Sessions)
	r.Flags = []Flag{}
	if len(r.ByRemoteIP) > 0 {
		top := r.ByRemoteIP[0]
		if r.Sessions >= a.opts.NATMinSessions && top.Share > a.opts.NATShare {
			r.Flags = append(r.Flags, Flag{Kind: FlagSingleSource, Key: top.Key, Message: fmt.Sprintf(
				"%s carries %d of %d sessions (%.1f%%): a source-NAT load balancer or a single gateway is in front of the servers. "+
					"They cannot tell clients apart: protocol logs show one IP, and connectors chosen by RemoteIPRanges "+
					"(such as an internal relay connector) get everyone's mail, internet mail included.",
				top.Key, top.Sessions, r.Sessions, 100*top.Share)})
		}
	}
	for _, k := range idle {
		r.Flags = append(r.Flags, Flag{Kind: FlagIdleConnector, Key: k, Message: fmt.Sprintf(
			"%s received no sessions: the traffic meant for it is arriving on another connector (check the remote IPs above).", k)})
	}
	return &r
}

// idleConnectors lists the connector-ids with no sessions, sorted: a
// connector name seen on one server but silent on another server seen in
// the logs, and every Options.Connectors entry without sessions. A server's
// own name inside a connector name is a placeholder, so that Exchange's
// "SERVER1\Default SERVER1" expects "SERVER2\Default SERVER2".
func (a *Analyzer) idleConnectors() []string {
	servers := map[string]bool{}
	names := map[string]bool{} // with serverMark for the server's own name
	for c := range a.conn {
		if i := strings.IndexByte(c, '\\'); i > 0 {
			servers[c[:i]] = true
			names[strings.ReplaceAll(connectorName(c), c[:i], serverMark)] = true
		}
	}
	want := map[string]bool{}
	for n := range names {
		for s := range servers {
			want[s+`\`+strings.ReplaceAll(n, serverMark, s)] = true
		}
	}
	for _, c := range a.opts.Connectors {
		switch {
		case strings.Contains(c, `\`), len(servers) == 0:
			want[c] = true
		default:
			for s := range servers {
				want[s+`\`+c] = true
			}
		}
	}
	var idle []string
	for c := range want {
		if t := a.conn[c]; t == nil || t.sessions == 0 {
			idle = append(idle, c)
		}
	}
	slices.Sort(idle)
	return idle
}

// serverMark stands for a server's own name inside a connector name.
const serverMark = "\x00"

// rows turns a tally map into rows, most sessions first, then by key.
func rows(m map[string]*tally, total int64) []Row {
	out := make([]Row, 0, len(m))
	for k, t := range m {
		r := Row{Key: k, Sessions: t.sessions, Lines: t.lines}
		if total > 0 {
			r.Share = float64(t.sessions) / float64(total)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Row) int {
		if c := cmp.Compare(b.Sessions, a.Sessions); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

// parseTime parses an Exchange date-time (RFC 3339 with milliseconds, UTC);
// the zero time if s is empty or not a time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
