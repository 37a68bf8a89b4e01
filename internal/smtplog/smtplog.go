// Package smtplog reports on Exchange SMTP Receive protocol logs: how many
// sessions came from each remote IP, reached each Receive connector, local
// endpoint (the VIP or real address that was hit) and server.
//
// It does in one pass what the field report did with Log Parser ("hits per
// remote IP", "hits per connector"), and flags the two findings of that
// report: one remote IP carrying most sessions (a source-NAT balancer or a
// single gateway in front of the servers), and Receive connectors that
// receive nothing (internet mail arriving on the internal relay connector).
//
// The files are W3C-style CSV: `#Software:`, `#Version:`, `#Log-type:`,
// `#Date:` and `#Fields:` header lines (the last may repeat mid-file), then
// one line per event:
//
//	date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context
//
// Reading streams line by line in constant memory: the only maps are keyed
// by remote IP, connector, local endpoint and server, plus a bounded set of
// open sessions (see Options.MaxOpenSessions).
package smtplog

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// LogType is the #Log-type this package reads; files of another type (SMTP
// Send logs, message tracking) are skipped.
const LogType = "SMTP Receive Protocol Log"

// DefaultFields returns the field order assumed until a #Fields line is seen.
func DefaultFields() []string {
	return []string{"date-time", "connector-id", "session-id", "sequence-number",
		"local-endpoint", "remote-endpoint", "event", "data", "context"}
}

// Defaults for Options.
const (
	// DefaultMaxOpenSessions bounds the set of sessions seen but not yet
	// disconnected: about 100 bytes each, so a few MB. Exchange's own
	// default limit is 5000 concurrent inbound connections per server.
	DefaultMaxOpenSessions = 1 << 16
	// DefaultNATShare: one remote IP with more than this share of all
	// sessions is flagged.
	DefaultNATShare = 0.5
	// DefaultNATMinSessions: the single-source flag needs at least this
	// many sessions, so that a quiet test server is not flagged.
	DefaultNATMinSessions = 100
)

// Options tune an Analyzer. The zero value uses the defaults above.
type Options struct {
	// Connectors names Receive connectors that must receive sessions:
	// "SERVER1\Internet via Gateway" names one connector, a bare
	// "Internet via Gateway" names it on every server seen.
	Connectors []string
	// MaxOpenSessions bounds the open-session set (default
	// DefaultMaxOpenSessions). When full, the least recently active
	// session is forgotten (Report.Evicted counts them); if it logs again
	// it is counted a second time.
	MaxOpenSessions int
	// NATShare and NATMinSessions set the single-source flag's thresholds.
	NATShare       float64
	NATMinSessions int64
	// Progress, if set, is called now and then with bytes read so far and
	// the total size of all inputs.
	Progress func(done, total int64)
}

// Analyzer accumulates counts over any number of log files.
type Analyzer struct {
	opts     Options
	total    tally
	remote   map[string]*tally
	conn     map[string]*tally
	local    map[string]*tally
	server   map[string]*tally
	open     *lru
	stats    Report
	first    string
	last     string
	progress progress
}

// tally is the count behind one report row.
type tally struct {
	sessions int64
	lines    int64
}

// New returns an empty Analyzer.
func New(opts Options) *Analyzer {
	if opts.MaxOpenSessions <= 0 {
		opts.MaxOpenSessions = DefaultMaxOpenSessions
	}
	if opts.NATShare <= 0 {
		opts.NATShare = DefaultNATShare
	}
	if opts.NATMinSessions <= 0 {
		opts.NATMinSessions = DefaultNATMinSessions
	}
	return &Analyzer{
		opts:   opts,
		remote: map[string]*tally{},
		conn:   map[string]*tally{},
		local:  map[string]*tally{},
		server: map[string]*tally{},
		open:   newLRU(opts.MaxOpenSessions),
	}
}

// Analyze reads every path (files, and directories searched recursively
// for *.log) and returns the report.
func Analyze(paths []string, opts Options) (*Report, error) {
	files, total, err := Expand(paths)
	if err != nil {
		return nil, err
	}
	a := New(opts)
	a.progress = progress{fn: opts.Progress, total: total}
	for _, f := range files {
		if err := a.ReadFile(f); err != nil {
			return nil, err
		}
	}
	return a.Report(), nil
}

// Expand turns files and directories into the list of files to read, in
// order (a directory's *.log files, case-insensitive, sorted by path), and
// their total size.
func Expand(paths []string) ([]string, int64, error) {
	var files []string
	var total int64
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, 0, err
		}
		if !fi.IsDir() {
			files = append(files, p)
			total += fi.Size()
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.EqualFold(filepath.Ext(path), ".log") {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, path)
			total += info.Size()
			return nil
		})
		if err != nil {
			return nil, 0, fmt.Errorf("reading directory %s: %w", p, err)
		}
	}
	return files, total, nil
}

// ReadFile reads one log file. The server of a connector-id without a
// server part is the name of the file's directory.
func (a *Analyzer) ReadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := a.Read(f, path, filepath.Base(filepath.Dir(path))); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// column indexes of the fields the report uses; -1 when absent.
type columns struct {
	dateTime, connector, session, local, remote, event int
	need                                               int // fields a line must have
}

func columnsOf(fields []string) columns {
	c := columns{dateTime: -1, connector: -1, session: -1, local: -1, remote: -1, event: -1}
	at := map[string]*int{"date-time": &c.dateTime, "connector-id": &c.connector, "session-id": &c.session,
		"local-endpoint": &c.local, "remote-endpoint": &c.remote, "event": &c.event}
	for i, f := range fields {
		if p := at[strings.ToLower(strings.TrimSpace(f))]; p != nil {
			*p = i
		}
	}
	for _, i := range []int{c.dateTime, c.connector, c.session, c.local, c.remote, c.event} {
		c.need = max(c.need, i+1)
	}
	return c
}

// errNoSession reports a #Fields line without connector-id or session-id.
var errNoSession = errors.New("#Fields has no connector-id or session-id")

// Read reads one log from r. source names it in errors and in
// Report.SkippedFiles; server is used for connector-ids with no server
// part. A file whose #Log-type is not an SMTP Receive log is skipped.
func (a *Analyzer) Read(r io.Reader, source, server string) error {
	br := bufio.NewReaderSize(a.progress.wrap(r), 64<<10)
	// csv.NewReader reuses br (it is already a large enough *bufio.Reader)
	// and reads exactly one record per Read, so header lines can be taken
	// off the same buffer between records.
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	cols := columnsOf(DefaultFields())
	a.stats.Files++
	first := true
	lineNo := 0
	for {
		b, err := br.Peek(1)
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if first {
			first = false
			if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
				br.Discard(3)
				continue
			}
		}
		if b[0] == '#' || b[0] == '\n' || b[0] == '\r' {
			line, err := br.ReadString('\n')
			lineNo++
			if err != nil && err != io.EOF {
				return err
			}
			line = strings.TrimRight(line, "\r\n")
			if v, ok := strings.CutPrefix(line, "#Log-type:"); ok && strings.TrimSpace(v) != LogType {
				a.stats.Files--
				a.stats.SkippedFiles = append(a.stats.SkippedFiles, source+": "+strings.TrimSpace(v))
				return nil
			}
			if v, ok := strings.CutPrefix(line, "#Fields:"); ok {
				cols = columnsOf(strings.Split(strings.TrimSpace(v), ","))
				if cols.connector < 0 || cols.session < 0 {
					return fmt.Errorf("line %d: %w: %q", lineNo, errNoSession, line)
				}
			}
			continue
		}
		rec, err := cr.Read()
		lineNo++
		if err != nil {
			if err == io.EOF {
				return nil
			}
			a.skip(fmt.Sprintf("%s:%d: %v", source, lineNo, err))
			continue
		}
		if len(rec) < cols.need {
			a.skip(fmt.Sprintf("%s:%d: %d fields, want at least %d", source, lineNo, len(rec), cols.need))
			continue
		}
		a.line(rec, cols, server)
	}
}

// skip counts a malformed line, keeping the first few examples.
func (a *Analyzer) skip(why string) {
	a.stats.SkippedLines++
	if len(a.stats.SkippedExamples) < 5 {
		a.stats.SkippedExamples = append(a.stats.SkippedExamples, why)
	}
}

// line counts one event line.
func (a *Analyzer) line(rec []string, c columns, server string) {
	a.stats.Lines++
	if c.dateTime >= 0 {
		t := rec[c.dateTime]
		if a.first == "" || t < a.first {
			a.first = strings.Clone(t)
		}
		if t > a.last {
			a.last = strings.Clone(t)
		}
	}
	key := sessionKey{connector: rec[c.connector], session: rec[c.session]}
	s := a.open.get(key)
	if s == nil {
		// The session's first line: count it once, here.
		s = &openSession{key: sessionKey{strings.Clone(key.connector), strings.Clone(key.session)}}
		s.counts[0] = bump(a.conn, s.key.connector)
		s.counts[1] = bump(a.server, serverOf(s.key.connector, server))
		s.counts[2] = bump(a.remote, field(rec, c.remote, hostOf))
		s.counts[3] = bump(a.local, field(rec, c.local, strings.TrimSpace))
		for _, t := range s.counts {
			t.sessions++
		}
		a.total.sessions++
		if a.open.add(s) {
			a.stats.Evicted++
		}
	}
	for _, t := range s.counts {
		t.lines++
	}
	a.total.lines++
	if c.event >= 0 && rec[c.event] == "-" {
		a.open.remove(s)
	}
}

// bump returns m[key], creating it.
func bump(m map[string]*tally, key string) *tally {
	t := m[key]
	if t == nil {
		t = &tally{}
		m[strings.Clone(key)] = t
	}
	return t
}

// field returns f(rec[i]), or "" when the column is absent.
func field(rec []string, i int, f func(string) string) string {
	if i < 0 {
		return ""
	}
	return f(rec[i])
}

// hostOf returns the address of an endpoint such as "10.0.0.1:25" or
// "[2001:db8::1]:25", or the endpoint itself if it is not host:port.
func hostOf(ep string) string {
	ep = strings.TrimSpace(ep)
	if ap, err := netip.ParseAddrPort(ep); err == nil {
		return ap.Addr().Unmap().String()
	}
	return ep
}

// serverOf derives the server from a connector-id: the part before the
// first backslash ("SERVER1\Internet via Gateway" -> "SERVER1"), else
// fallback (the log file's directory name).
func serverOf(connector, fallback string) string {
	if i := strings.IndexByte(connector, '\\'); i > 0 {
		return connector[:i]
	}
	return fallback
}

// connectorName is the connector-id without its server part.
func connectorName(connector string) string {
	if i := strings.IndexByte(connector, '\\'); i >= 0 {
		return connector[i+1:]
	}
	return connector
}
