package relaytest

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"github.com/dsrlb/dsrlb/internal/config"
)

var testOpts = Options{From: "probe@outside.example", To: "victim@elsewhere.example", HELO: "tester.example", Timeout: 3 * time.Second}

// wantEnding checks what the server saw: the session ended RSET, QUIT
// and DATA was never sent.
func wantEnding(t *testing.T, ts *testServer) {
	t.Helper()
	cmds := ts.commands()
	for _, c := range cmds {
		if strings.HasPrefix(strings.ToUpper(c), "DATA") || strings.HasPrefix(strings.ToUpper(c), "BDAT") {
			t.Errorf("client sent %q; commands: %q", c, cmds)
		}
	}
	if ts.data != 0 {
		t.Errorf("server Session.Data called %d times", ts.data)
	}
	n := len(cmds)
	if n < 2 || cmds[n-2] != "RSET" || cmds[n-1] != "QUIT" {
		t.Errorf("session did not end RSET, QUIT: %q", cmds)
	}
}

func TestOutcomes(t *testing.T) {
	cases := []struct {
		name    string
		p       policy
		outcome Outcome
		stage   Stage
		reply   string
		cmds    []string // expected client commands, in order
	}{
		{
			name: "open", p: policy{}, outcome: Open, stage: StageRcpt,
			reply: "250 2.0.0 Roger, accepting mail from <probe@outside.example>",
		},
		{
			name:    "closed exchange",
			p:       policy{rcpt: smtpErr(550, smtp.EnhancedCode{5, 7, 54}, "SMTP; Unable to relay recipient in non-accepted domain")},
			outcome: Closed, stage: StageRcpt,
			reply: "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain",
		},
		{
			name:    "postfix 454",
			p:       policy{rcpt: smtpErr(454, smtp.EnhancedCode{4, 7, 1}, "<victim@elsewhere.example>: Relay access denied")},
			outcome: Inconclusive, stage: StageRcpt,
			reply: "454 4.7.1 <victim@elsewhere.example>: Relay access denied",
		},
		{
			name:    "back pressure at MAIL",
			p:       policy{mail: smtpErr(452, smtp.EnhancedCode{4, 3, 1}, "Insufficient system resources")},
			outcome: Inconclusive, stage: StageMail,
			reply: "452 4.3.1 Insufficient system resources",
		},
		{
			name:    "banner 554",
			p:       policy{banner: "554 5.7.1 mx1.example.test: no SMTP service here"},
			outcome: Inconclusive, stage: StageBanner,
			reply: "554 5.7.1 mx1.example.test: no SMTP service here",
			cmds:  []string{"RSET", "QUIT"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, tc.p)
			// go-smtp's server answers an accepted RCPT with this text.
			tc.reply = strings.ReplaceAll(tc.reply, "Roger, accepting mail from <probe@outside.example>", "I'll make sure <victim@elsewhere.example> gets this")
			r := Test(context.Background(), ts.addr, testOpts)
			if r.Outcome != tc.outcome || r.Stage != tc.stage || r.Reply != tc.reply {
				t.Fatalf("got %s at %s reply %q err %v, want %s at %s reply %q\n%s",
					r.Outcome, r.Stage, r.Reply, r.Err, tc.outcome, tc.stage, tc.reply, transcript(r))
			}
			if want, _ := strconv.Atoi(tc.reply[:3]); r.Code != want {
				t.Errorf("code %d, want %d", r.Code, want)
			}
			if r.Err != nil {
				t.Errorf("unexpected Err %v for a clean reply", r.Err)
			}
			wantEnding(t, ts)
			if tc.cmds != nil && strings.Join(ts.commands(), ",") != strings.Join(tc.cmds, ",") {
				t.Errorf("commands %q, want %q", ts.commands(), tc.cmds)
			}
			if tc.stage == StageRcpt {
				cmds := ts.commands()
				want := []string{"EHLO tester.example", "MAIL FROM:<probe@outside.example> BODY=8BITMIME", "RCPT TO:<victim@elsewhere.example>", "RSET", "QUIT"}
				if strings.Join(cmds, ",") != strings.Join(want, ",") {
					t.Errorf("commands %q, want %q", cmds, want)
				}
			}
			// The transcript holds the deciding reply as a server line.
			found := false
			for _, l := range r.Transcript {
				if l.Dir == Server && l.Text == tc.reply {
					found = true
				}
			}
			if !found {
				t.Errorf("reply %q not in transcript:\n%s", tc.reply, transcript(r))
			}
		})
	}
}

func transcript(r Result) string {
	var b strings.Builder
	for _, l := range r.Transcript {
		b.WriteString(l.String() + "\n")
	}
	return b.String()
}

// A server that refuses EHLO gets HELO, and the test goes on.
func TestHELOFallback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan []string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var cmds []string
		buf := make([]byte, 4096)
		c.Write([]byte("220 old.example.test SMTP\r\n"))
		var pending string
		for {
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			pending += string(buf[:n])
			for strings.Contains(pending, "\r\n") {
				i := strings.Index(pending, "\r\n")
				cmd := pending[:i]
				pending = pending[i+2:]
				cmds = append(cmds, cmd)
				switch {
				case strings.HasPrefix(cmd, "EHLO"):
					c.Write([]byte("502 5.5.1 Command not implemented\r\n"))
				case strings.HasPrefix(cmd, "RCPT"):
					c.Write([]byte("550 5.7.1 Relaying denied\r\n"))
				case cmd == "QUIT":
					c.Write([]byte("221 Bye\r\n"))
					got <- cmds
					return
				default:
					c.Write([]byte("250 OK\r\n"))
				}
			}
		}
		got <- cmds
	}()
	r := Test(context.Background(), ln.Addr().String(), testOpts)
	if r.Outcome != Closed || r.Reply != "550 5.7.1 Relaying denied" {
		t.Fatalf("got %s %q, want closed\n%s", r.Outcome, r.Reply, transcript(r))
	}
	cmds := <-got
	want := "EHLO tester.example,HELO tester.example,MAIL FROM:<probe@outside.example>,RCPT TO:<victim@elsewhere.example>,RSET,QUIT"
	if strings.Join(cmds, ",") != want {
		t.Errorf("commands %q, want %s", cmds, want)
	}
}

func TestConnectFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r := Test(context.Background(), addr, testOpts)
	if r.Outcome != Inconclusive || r.Stage != StageConnect || r.Err == nil || r.Reply != "" {
		t.Fatalf("got %+v", r)
	}
}

// A server that never answers makes the test inconclusive within the
// timeout, at the banner.
func TestSilentServerTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}()
	o := testOpts
	o.Timeout = 300 * time.Millisecond
	start := time.Now()
	r := Test(context.Background(), ln.Addr().String(), o)
	if r.Outcome != Inconclusive || r.Stage != StageBanner || r.Err == nil {
		t.Fatalf("got %s at %s err %v", r.Outcome, r.Stage, r.Err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v with a 300ms timeout", d)
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]string{
		"mx.example.test":     "mx.example.test:25",
		"mx.example.test:587": "mx.example.test:587",
		"192.0.2.25":          "192.0.2.25:25",
		"2001:db8::25":        "[2001:db8::25]:25",
		"[2001:db8::25]:2525": "[2001:db8::25]:2525",
		"[2001:db8::25]":      "[2001:db8::25]:25",
	} {
		got, err := ParseTarget(in)
		if err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "host:0", "host:x", ":25", "host:70000"} {
		if got, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q) = %q, want an error", bad, got)
		}
	}
}

func TestWorse(t *testing.T) {
	if Worse(Closed, Open) != Open || Worse(Open, Inconclusive) != Open || Worse(Closed, Inconclusive) != Inconclusive || Worse(Closed, Closed) != Closed {
		t.Fatal("Worse does not order open > inconclusive > closed")
	}
}

func port(t *testing.T, addr string) uint16 {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return ap.Port()
}

// testConfig builds a Config with one VIP on the given ports and backends
// on 127.0.0.1 (the real address of each backend is loopback in tests).
func testConfig(vipPorts []uint16, backends ...string) *config.Config {
	lo := netip.MustParseAddr("127.0.0.1")
	cfg := &config.Config{}
	var vbs []config.VIPBackend
	for _, b := range backends {
		cfg.Backends = append(cfg.Backends, config.Backend{Name: b, Address: lo, OS: config.OSWindows})
		vbs = append(vbs, config.VIPBackend{Name: b, Weight: 100, Priority: 1})
	}
	cfg.VIPs = []config.VIP{{Name: "internet", Address: lo, Ports: vipPorts, Persistence: config.PersistNone, Backends: vbs}}
	return cfg
}

func TestTargets(t *testing.T) {
	cfg := &config.Config{
		Backends: []config.Backend{
			{Name: "EX1", Address: netip.MustParseAddr("192.0.2.11")},
			{Name: "EX2", Address: netip.MustParseAddr("2001:db8::12")},
			{Name: "SPARE", Address: netip.MustParseAddr("192.0.2.13")},
		},
		VIPs: []config.VIP{
			{Name: "internet", Address: netip.MustParseAddr("198.51.100.25"), Ports: []uint16{25},
				Backends: []config.VIPBackend{{Name: "EX1"}, {Name: "EX2"}}},
			{Name: "internal-relay", Address: netip.MustParseAddr("192.0.2.25"), Ports: []uint16{25, 587, 587},
				Backends: []config.VIPBackend{{Name: "EX1"}}},
		},
	}
	var got []string
	for _, tg := range Targets(cfg, 25) {
		got = append(got, tg.Name+"="+tg.Addr.String())
	}
	want := []string{
		"vip internet=198.51.100.25:25",
		"vip internal-relay=192.0.2.25:25",
		"vip internal-relay=192.0.2.25:587",
		"backend EX1=192.0.2.11:25",
		"backend EX1=192.0.2.11:587",
		"backend EX2=[2001:db8::12]:25",
		"backend SPARE=192.0.2.13:25",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Targets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAll(t *testing.T) {
	closed := startServer(t, policy{rcpt: smtpErr(550, smtp.EnhancedCode{5, 7, 54}, "SMTP; Unable to relay recipient in non-accepted domain")})
	open := startServer(t, policy{})
	soft := startServer(t, policy{rcpt: smtpErr(454, smtp.EnhancedCode{4, 7, 1}, "Relay access denied")})

	// VIP port -> closed server; backend's own SMTP port -> open server.
	cfg := testConfig([]uint16{port(t, closed.addr)}, "EX1")
	targets, results, worst := All(context.Background(), cfg, port(t, open.addr), testOpts)
	if len(targets) != 3 || len(results) != 3 {
		t.Fatalf("%d targets, %d results; want 3 (VIP, backend:smtp, backend:VIP port)", len(targets), len(results))
	}
	wantOutcomes := []Outcome{Closed, Open, Closed}
	for i, r := range results {
		if r.Outcome != wantOutcomes[i] || r.Target != targets[i].Addr.String() {
			t.Errorf("target %d %s: %s (%s), want %s", i, targets[i].Addr, r.Outcome, r.Target, wantOutcomes[i])
		}
	}
	if worst != Open {
		t.Errorf("worst %s, want open", worst)
	}
	wantEnding(t, open)

	cfg = testConfig([]uint16{port(t, closed.addr)}, "EX1")
	_, _, worst = All(context.Background(), cfg, port(t, soft.addr), testOpts)
	if worst != Inconclusive {
		t.Errorf("closed + 454: worst %s, want inconclusive", worst)
	}
	_, _, worst = All(context.Background(), cfg, port(t, closed.addr), testOpts)
	if worst != Closed {
		t.Errorf("all closed: worst %s, want closed", worst)
	}
}

// A hostile server's replies cannot reach the operator's terminal as
// control sequences: the transcript, the reply and the summary escape
// them.
func TestHostileRepliesEscaped(t *testing.T) {
	const esc = "\x1b]0;owned\x07\x1b[2J"
	s := startServer(t, policy{
		banner: "220 mx1.example.test " + esc + " ready \u202e",
		rcpt:   &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 1, 5}, Message: "ok " + esc + "\xff"},
	})
	r := Test(context.Background(), s.addr, testOpts)
	if r.Outcome != Open {
		t.Fatalf("got %s %q, want open\n%s", r.Outcome, r.Reply, transcript(r))
	}
	texts := []string{r.Reply, r.Summary(testOpts.From, testOpts.To)}
	for _, l := range r.Transcript {
		texts = append(texts, l.Text)
	}
	for _, s := range texts {
		if strings.ContainsAny(s, "\x1b\x07\u202e") || !utf8.ValidString(s) {
			t.Errorf("control or invalid text passed through: %q", s)
		}
	}
	if want := `250 2.1.5 ok \x1b]0;owned\x07\x1b[2J\xff`; r.Reply != want {
		t.Errorf("reply = %q, want %q", r.Reply, want)
	}
	if want := `220 mx1.example.test \x1b]0;owned\x07\x1b[2J ready \u202e`; r.Transcript[0].Text != want {
		t.Errorf("banner = %q, want %q", r.Transcript[0].Text, want)
	}
	wantEnding(t, s)
}
