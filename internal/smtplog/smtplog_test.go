package smtplog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// rowsString renders rows as "key=sessions/lines" for exact comparison.
func rowsString(rows []Row) string {
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s=%d/%d", r.Key, r.Sessions, r.Lines))
	}
	return strings.Join(parts, " ")
}

func flagsString(fs []Flag) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, f.Kind+":"+f.Key)
	}
	return strings.Join(parts, " ")
}

func check(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// The committed fixtures: two servers behind a source-NAT balancer
// (10.0.0.5), a session that spans a log roll, an IPv6 client, a repeated
// header block mid-file, a malformed line, and a Send log to skip.
func TestFixtures(t *testing.T) {
	r, err := Analyze([]string{"testdata/logs"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Files != 3 || r.Sessions != 7 || r.Lines != 126 || r.SkippedLines != 1 || r.OpenAtEnd != 0 || r.Evicted != 0 {
		t.Errorf("files %d sessions %d lines %d skipped %d open %d evicted %d; want 3 7 126 1 0 0",
			r.Files, r.Sessions, r.Lines, r.SkippedLines, r.OpenAtEnd, r.Evicted)
	}
	check(t, "skipped files", strings.Join(r.SkippedFiles, ";"),
		filepath.Join("testdata", "logs", "SERVER2", "SEND2013042609-1.LOG")+": SMTP Send Protocol Log")
	check(t, "remote IPs", rowsString(r.ByRemoteIP), "10.0.0.5=4/72 198.51.100.20=1/18 198.51.100.7=1/18 2001:db8::5=1/18")
	check(t, "connectors", rowsString(r.ByConnector),
		`SERVER1\Internal Relay=3/54 SERVER1\Default SERVER1=1/18 SERVER2\Default SERVER2=1/18 SERVER2\Internal Relay=1/18 SERVER2\Internet via Gateway=1/18 SERVER1\Internet via Gateway=0/0`)
	check(t, "local endpoints", rowsString(r.ByLocalEndpoint), "192.0.2.25:25=4/72 192.0.2.12:25=2/36 192.0.2.11:25=1/18")
	check(t, "servers", rowsString(r.ByServer), "SERVER1=4/72 SERVER2=3/54")
	// 7 sessions is below the single-source threshold of 100.
	check(t, "flags", flagsString(r.Flags), `idle-connector:SERVER1\Internet via Gateway`)
	check(t, "first", r.First.Format(time.RFC3339Nano), "2013-04-26T09:40:12Z")
	check(t, "last", r.Last.Format(time.RFC3339Nano), "2013-04-26T09:40:34.119Z")
	if got := r.ByRemoteIP[0].Share; got != 4.0/7 {
		t.Errorf("share %v, want 4/7", got)
	}

	// With a lower threshold the source-NAT finding appears.
	r, err = Analyze([]string{"testdata/logs/SERVER1", "testdata/logs/SERVER2/RECV2013042609-1.LOG"}, Options{NATMinSessions: 5})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "flags with NATMinSessions 5", flagsString(r.Flags), `single-source:10.0.0.5 idle-connector:SERVER1\Internet via Gateway`)
}

func writeFile(t *testing.T, path string, fill func(lw *logWriter)) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lw := newLogWriter(f)
	fill(lw)
	if err := lw.flush(); err != nil {
		t.Fatal(err)
	}
}

// natSessions returns n sessions on connector, all from one SNAT address,
// ids starting at base.
func natSessions(connector, remote string, n int, base uint64) []genSession {
	ss := make([]genSession, n)
	for i := range ss {
		ss[i] = genSession{connector: connector, id: base + uint64(i), local: "10.1.0.11:25", remote: fmt.Sprintf("%s:%d", remote, 40000+i)}
	}
	return ss
}

// The field report's situation, generated: 150 sessions through a source-
// NAT balancer land on the internal relay connector, a reordered #Fields
// line mid-file, IPv6, a second file, a named connector that stays idle.
func TestGeneratedSourceNAT(t *testing.T) {
	dir := t.TempDir()
	const relay, internet = `SERVER1\Internal Relay`, `SERVER1\Internet via Gateway`
	writeFile(t, filepath.Join(dir, "SERVER1", "RECV2013042600-1.LOG"), func(lw *logWriter) {
		lw.header(DefaultFields())
		lw.sessions(natSessions(relay, "10.0.0.5", 100, 0x08D0125A00000000))
		// The log rolls: a new header block, here with another field order.
		reordered := DefaultFields()
		slices.Reverse(reordered)
		lw.header(reordered)
		lw.sessions(natSessions(relay, "10.0.0.5", 50, 0x08D0125A10000000))
		lw.sessions([]genSession{{connector: `SERVER1\Default SERVER1`, id: 1, local: "[2001:db8::11]:25", remote: "[2001:db8::99]:50000"}})
	})
	writeFile(t, filepath.Join(dir, "SERVER2", "RECV2013042600-1.LOG"), func(lw *logWriter) {
		lw.header(DefaultFields())
		lw.sessions([]genSession{{connector: `SERVER2\Internet via Gateway`, id: 2, local: "10.1.0.12:25", remote: "198.51.100.20:3000"}})
	})
	r, err := Analyze([]string{dir}, Options{Connectors: []string{"Internet via Gateway", `SERVER3\Internal Relay`}})
	if err != nil {
		t.Fatal(err)
	}
	const per = 17 // lines per generated session
	if r.Files != 2 || r.Sessions != 152 || r.Lines != 152*per || r.SkippedLines != 0 || r.OpenAtEnd != 0 {
		t.Errorf("files %d sessions %d lines %d skipped %d open %d", r.Files, r.Sessions, r.Lines, r.SkippedLines, r.OpenAtEnd)
	}
	check(t, "remote IPs", rowsString(r.ByRemoteIP), fmt.Sprintf("10.0.0.5=150/%d 198.51.100.20=1/%d 2001:db8::99=1/%d", 150*per, per, per))
	check(t, "connectors", rowsString(r.ByConnector), fmt.Sprintf(
		`%s=150/%d SERVER1\Default SERVER1=1/%d SERVER2\Internet via Gateway=1/%d SERVER1\Internet via Gateway=0/0 SERVER2\Default SERVER2=0/0 SERVER2\Internal Relay=0/0 SERVER3\Internal Relay=0/0`,
		relay, 150*per, per, per))
	check(t, "local endpoints", rowsString(r.ByLocalEndpoint), fmt.Sprintf("10.1.0.11:25=150/%d 10.1.0.12:25=1/%d [2001:db8::11]:25=1/%d", 150*per, per, per))
	check(t, "servers", rowsString(r.ByServer), fmt.Sprintf("SERVER1=151/%d SERVER2=1/%d", 151*per, per))
	check(t, "flags", flagsString(r.Flags), `single-source:10.0.0.5 idle-connector:`+internet+
		` idle-connector:SERVER2\Default SERVER2 idle-connector:SERVER2\Internal Relay idle-connector:SERVER3\Internal Relay`)

	var buf bytes.Buffer
	if err := WriteTable(&buf, r, 2); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"Exchange SMTP Receive protocol logs: 2 files, 2584 lines, 152 sessions",
		"10.0.0.5             150   98.7%       2550",
		"(5 more)",
		"! single-source: 10.0.0.5 carries 150 of 152 sessions (98.7%)",
		`! idle-connector: SERVER1\Internet via Gateway received no sessions`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// Sessions are counted once at their first line even when interleaved,
// the open set forgets a session at its disconnect, and a full set evicts
// the least recently active session (counted again if it logs again).
func TestOpenSessionBound(t *testing.T) {
	var buf bytes.Buffer
	lw := newLogWriter(&buf)
	lw.header(DefaultFields())
	// 10 concurrent sessions with no disconnect line, interleaved.
	ss := natSessions(`S1\Relay`, "10.0.0.5", 10, 100)
	for i := range ss {
		ss[i].noClose = true
	}
	lw.sessions(ss)
	if err := lw.flush(); err != nil {
		t.Fatal(err)
	}
	data := buf.String()

	a := New(Options{})
	if err := a.Read(strings.NewReader(data), "mem", "S1"); err != nil {
		t.Fatal(err)
	}
	r := a.Report()
	if r.Sessions != 10 || r.OpenAtEnd != 10 || r.Evicted != 0 {
		t.Errorf("unbounded: sessions %d open %d evicted %d, want 10 10 0", r.Sessions, r.OpenAtEnd, r.Evicted)
	}

	// A bound of 4 with 10 interleaved sessions: each round of lines
	// touches all 10, so every line of a session after its first finds it
	// evicted: 10 sessions x 16 lines are all "first lines".
	a = New(Options{MaxOpenSessions: 4})
	if err := a.Read(strings.NewReader(data), "mem", "S1"); err != nil {
		t.Fatal(err)
	}
	r = a.Report()
	if r.Sessions != 160 || r.OpenAtEnd != 4 || r.Evicted != 156 {
		t.Errorf("bound 4: sessions %d open %d evicted %d, want 160 4 156", r.Sessions, r.OpenAtEnd, r.Evicted)
	}
}

// The field order comes from #Fields; a #Fields without the session
// columns is an error naming the line.
func TestFieldsLine(t *testing.T) {
	in := "#Log-type: SMTP Receive Protocol Log\r\n#Fields: remote-endpoint,session-id,connector-id,event\r\n" +
		"[2001:db8::7]:25,AAA,X\\C,+\r\n[2001:db8::7]:25,AAA,X\\C,-\r\n"
	a := New(Options{})
	if err := a.Read(strings.NewReader(in), "mem", "dir"); err != nil {
		t.Fatal(err)
	}
	r := a.Report()
	check(t, "remote", rowsString(r.ByRemoteIP), "2001:db8::7=1/2")
	check(t, "local (no column)", rowsString(r.ByLocalEndpoint), "=1/2")
	check(t, "server", rowsString(r.ByServer), "X=1/2")

	err := New(Options{}).Read(strings.NewReader("#Fields: date-time,event\n"), "mem", "dir")
	if err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("want an error at line 1, got %v", err)
	}
}

// A connector-id without a server part takes the directory name.
func TestServerFromDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "HUB7", "RECV1.log"), func(lw *logWriter) {
		lw.header(DefaultFields())
		lw.sessions([]genSession{{connector: `X\Y`, id: 1, local: "10.1.0.1:25", remote: "10.2.0.1:1"}})
	})
	// Rewrite the connector to have no server part.
	p := filepath.Join(dir, "HUB7", "RECV1.log")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte(`X\Y`), []byte("Default")), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Analyze([]string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "servers", rowsString(r.ByServer), "HUB7=1/17")
}
