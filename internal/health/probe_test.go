package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsrlb/dsrlb/internal/config"
	"github.com/dsrlb/dsrlb/internal/health/healthtest"
)

// testProfile is a probe profile with test-sized timeouts.
func testProfile() config.Health {
	return config.Health{
		Interval:        50 * time.Millisecond,
		Timeout:         300 * time.Millisecond,
		Rise:            2,
		Fall:            2,
		HELO:            "probe.test",
		MailFrom:        "probe@outside.example",
		StartTLS:        config.StartTLSOff,
		TarpitThreshold: 300 * time.Millisecond,
	}
}

// scripted runs a raw server that sends banner (raw, CRLFs included) then
// answers each command line by its first word from replies ("" closes the
// connection); QUIT gets "221 2.0.0 Bye" unless replies says otherwise.
func scripted(t *testing.T, banner string, replies map[string]string) *healthtest.Server {
	t.Helper()
	return healthtest.StartRaw(t, func(c net.Conn, done <-chan struct{}) {
		if _, err := c.Write([]byte(banner)); err != nil {
			return
		}
		r := bufio.NewReader(c)
		for {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			verb, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			verb, _, _ = strings.Cut(strings.ToUpper(verb), ":")
			out, ok := replies[verb]
			if !ok && verb == "QUIT" {
				out = "221 2.0.0 Bye\r\n"
			}
			if out == "" {
				return
			}
			c.Write([]byte(out))
			if verb == "QUIT" {
				return
			}
		}
	})
}

func TestProbeVerdicts(t *testing.T) {
	exchange452 := func(string) error { return healthtest.Reply(452, "4.3.1", "Insufficient system resources") }
	tests := []struct {
		name    string
		backend healthtest.Backend
		profile func(*config.Health)
		verdict Verdict
		reply   string // prefix
		reason  string // exact, or prefix when it ends in "..."
	}{
		{
			name:    "healthy",
			verdict: Good,
			reply:   "250 2.0.0 Roger, accepting mail from <probe@outside.example>",
		},
		{
			name:    "exchange back pressure",
			backend: healthtest.Backend{MailReply: exchange452},
			verdict: BackPressure,
			reply:   "452 4.3.1 Insufficient system resources",
			reason:  "back pressure: 452 4.3.1 Insufficient system resources",
		},
		{
			name: "postfix queue_minfree",
			backend: healthtest.Backend{MailReply: func(string) error {
				return healthtest.Reply(452, "4.3.1", "Insufficient system storage")
			}},
			verdict: BackPressure,
			reply:   "452 4.3.1 Insufficient system storage",
			reason:  "back pressure: 452 4.3.1 Insufficient system storage",
		},
		{
			name: "exchange maintenance",
			backend: healthtest.Backend{MailReply: func(string) error {
				return healthtest.Reply(421, "4.3.2", "Service not available")
			}},
			verdict: BackPressure,
			reply:   "421 4.3.2 Service not available",
			reason:  "back pressure: 421 4.3.2 Service not available",
		},
		{
			name: "sender refused by policy",
			backend: healthtest.Backend{MailReply: func(string) error {
				return healthtest.Reply(550, "5.7.1", "Client does not have permissions to send as this sender")
			}},
			verdict: Bad,
			reply:   "550 5.7.1 Client does not have permissions",
			reason:  "MAIL FROM refused by policy: 550 5.7.1 Client does not have permissions to send as this sender (check mail_from)",
		},
		{
			name: "recipient back pressure",
			backend: healthtest.Backend{RcptReply: func(string) error {
				return healthtest.Reply(452, "4.5.3", "Too many recipients")
			}},
			profile: func(p *config.Health) { p.RcptTo = "postmaster@corp.example" },
			verdict: BackPressure,
			reply:   "452 4.5.3 Too many recipients",
			reason:  "back pressure at RCPT TO: 452 4.5.3 Too many recipients",
		},
		{
			name: "recipient unknown",
			backend: healthtest.Backend{RcptReply: func(string) error {
				return healthtest.Reply(550, "5.1.1", "User unknown")
			}},
			profile: func(p *config.Health) { p.RcptTo = "nobody@corp.example" },
			verdict: Bad,
			reply:   "550 5.1.1 User unknown",
			reason:  "RCPT TO refused: 550 5.1.1 User unknown (check rcpt_to)",
		},
		{
			name:    "hang after banner",
			backend: healthtest.Backend{HelloDelay: 5 * time.Second},
			verdict: Bad,
			reason:  "timeout waiting for EHLO reply after 300ms",
		},
		{
			name:    "starttls required but not offered",
			profile: func(p *config.Health) { p.StartTLS = config.StartTLSRequire },
			verdict: Bad,
			reason:  "STARTTLS required but not advertised",
		},
		{
			name:    "starttls try without offer",
			profile: func(p *config.Health) { p.StartTLS = config.StartTLSTry },
			verdict: Good,
			reply:   "250 ",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := healthtest.Start(t, tc.backend)
			p := testProfile()
			if tc.profile != nil {
				tc.profile(&p)
			}
			res := Probe(context.Background(), srv.Addr, p)
			checkResult(t, res, tc.verdict, tc.reply, tc.reason)
			if res.CheckedAt.IsZero() {
				t.Error("CheckedAt is zero")
			}
			if n := srv.Count("DATA"); n != 0 {
				t.Errorf("server saw DATA %d times", n)
			}
		})
	}
}

// checkResult compares res with the wanted verdict, reply prefix and
// reason (exact, "" for none).
func checkResult(t *testing.T, res Result, verdict Verdict, reply, reason string) {
	t.Helper()
	if res.Verdict != verdict || !strings.HasPrefix(res.Reply, reply) || res.Reason != reason {
		t.Errorf("got verdict %q reply %q reason %q, want %q, %q..., %q\ntranscript:\n%s",
			res.Verdict, res.Reply, res.Reason, verdict, reply, reason, strings.Join(res.Transcript, "\n"))
	}
	if reply == "" && res.Reply != "" {
		t.Errorf("reply %q, want none", res.Reply)
	}
}

func TestProbeRawServers(t *testing.T) {
	tests := []struct {
		name     string
		banner   string
		replies  map[string]string
		verdict  Verdict
		reply    string
		reason   string
		wantSent string // a line the transcript must hold
		quits    int    // QUITs the server must see
	}{
		{
			name:    "421 at banner",
			banner:  "421 4.3.2 Service not available, closing transmission channel\r\n",
			verdict: Bad,
			reply:   "421 4.3.2 Service not available, closing transmission channel",
			reason:  "banner: 421 4.3.2 Service not available, closing transmission channel",
		},
		{
			name:    "garbage banner",
			banner:  "HTTP/1.1 400 Bad Request\r\n",
			verdict: Bad,
			reason:  `banner: garbage from server: "HTTP/1.1 400 Bad Request"`,
		},
		{
			name:    "closed right after banner",
			banner:  "220 mx.test ESMTP\r\n",
			replies: map[string]string{"EHLO": ""},
			verdict: Bad,
			reason:  "EHLO: connection closed by server",
		},
		{
			name:   "multi-line banner and HELO fallback",
			banner: "220-mx.test ESMTP\r\n220 no UCE\r\n",
			replies: map[string]string{
				"EHLO": "502 5.5.2 Command not recognised\r\n",
				"HELO": "250 mx.test\r\n",
				"MAIL": "250 2.1.0 Sender OK\r\n",
				"RSET": "250 2.0.0 Resetting\r\n",
			},
			verdict:  Good,
			reply:    "250 2.1.0 Sender OK",
			wantSent: "C: HELO probe.test",
			quits:    1,
		},
		{
			name:   "EHLO refused and HELO too",
			banner: "220 mx.test ESMTP\r\n",
			replies: map[string]string{
				"EHLO": "554 5.7.1 Access denied\r\n",
				"HELO": "554 5.7.1 Access denied\r\n",
			},
			verdict: Bad,
			reply:   "554 5.7.1 Access denied",
			reason:  "HELO: 554 5.7.1 Access denied",
			quits:   1,
		},
		{
			name:   "mixed codes in one reply",
			banner: "220 mx.test ESMTP\r\n",
			replies: map[string]string{
				"EHLO": "250-mx.test\r\n251 PIPELINING\r\n",
			},
			verdict: Bad,
			reason:  `EHLO: garbage from server: "251 PIPELINING"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := scripted(t, tc.banner, tc.replies)
			res := Probe(context.Background(), srv.Addr, testProfile())
			checkResult(t, res, tc.verdict, tc.reply, tc.reason)
			if tc.wantSent != "" && !slices.Contains(res.Transcript, tc.wantSent) {
				t.Errorf("transcript lacks %q:\n%s", tc.wantSent, strings.Join(res.Transcript, "\n"))
			}
			waitFor(t, func() bool { open, _, _ := srv.Sessions(); return open == 0 }, "session left open")
			if n := srv.Count("QUIT"); n != tc.quits {
				t.Errorf("server saw QUIT %d times, want %d (after a 421, garbage or a hang-up: none)", n, tc.quits)
			}
		})
	}
}

// TestProbeSenderDecides: Exchange's medium back pressure refuses only
// senders outside its domains, so the profile's mail_from decides what the
// probe sees.
func TestProbeSenderDecides(t *testing.T) {
	srv := healthtest.Start(t, healthtest.Backend{MailReply: func(from string) error {
		if strings.HasSuffix(from, "@corp.example") {
			return nil
		}
		return healthtest.Reply(452, "4.3.1", "Insufficient system resources")
	}})
	p := testProfile()
	p.MailFrom = "probe@outside.example"
	ext := Probe(context.Background(), srv.Addr, p)
	checkResult(t, ext, BackPressure, "452 4.3.1 Insufficient system resources",
		"back pressure: 452 4.3.1 Insufficient system resources")
	p.MailFrom = "probe@corp.example"
	internal := Probe(context.Background(), srv.Addr, p)
	checkResult(t, internal, Good, "250 ", "")
}

// TestProbeQuitNeverData counts commands on the server side: QUIT ends
// every session, after a 452 too; RSET follows an accepted MAIL FROM; no
// DATA ever.
func TestProbeQuitNeverData(t *testing.T) {
	srv := healthtest.Start(t, healthtest.Backend{MailReply: func(from string) error {
		if strings.HasPrefix(from, "busy@") {
			return healthtest.Reply(452, "4.3.1", "Insufficient system resources")
		}
		return nil
	}})
	p := testProfile()
	p.RcptTo = "postmaster@corp.example"
	for _, from := range []string{"ok@outside.example", "busy@outside.example", "ok@outside.example"} {
		p.MailFrom = from
		Probe(context.Background(), srv.Addr, p)
	}
	got := map[string]int{}
	for _, verb := range []string{"EHLO", "MAIL", "RCPT", "RSET", "QUIT", "DATA"} {
		got[verb] = srv.Count(verb)
	}
	want := map[string]int{"EHLO": 3, "MAIL": 3, "RCPT": 2, "RSET": 2, "QUIT": 3, "DATA": 0}
	for verb, n := range want {
		if got[verb] != n {
			t.Errorf("server saw %s %d times, want %d (commands: %q)", verb, got[verb], n, srv.Commands())
		}
	}
	waitFor(t, func() bool { open, _, _ := srv.Sessions(); return open == 0 }, "sessions left open")
}

// TestProbeTarpit: a MAIL FROM reply slower than tarpit_threshold is back
// pressure, the probe returns within the threshold plus a little, and QUIT
// is still written for the server to read when its delay ends.
func TestProbeTarpit(t *testing.T) {
	// The reply comes long after the threshold, so a probe that waited for
	// it cannot pass the bound below, even on a loaded machine.
	const delay = 4 * time.Second
	srv := healthtest.Start(t, healthtest.Backend{MailDelay: delay})
	p := testProfile()
	p.TarpitThreshold = 200 * time.Millisecond
	start := time.Now()
	res := Probe(context.Background(), srv.Addr, p)
	elapsed := time.Since(start)
	checkResult(t, res, BackPressure, "", "tarpit: no reply to MAIL FROM within 200ms")
	if elapsed >= delay-time.Second {
		t.Errorf("probe took %s: it waited for the tarpitted reply (threshold %s, reply after %s)", elapsed, p.TarpitThreshold, delay)
	}
	if res.Latency < p.TarpitThreshold {
		t.Errorf("latency %s, want at least the threshold %s", res.Latency, p.TarpitThreshold)
	}
	waitFor(t, func() bool { return srv.Count("QUIT") == 1 }, "server never read QUIT after the tarpit")
}

func TestProbeSTARTTLS(t *testing.T) {
	notAfter := time.Now().Add(3 * 24 * time.Hour).Truncate(time.Second)
	cert := healthtest.Cert(t, notAfter)
	srv := healthtest.Start(t, healthtest.Backend{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	for _, mode := range []config.StartTLS{config.StartTLSTry, config.StartTLSRequire} {
		t.Run(string(mode), func(t *testing.T) {
			p := testProfile()
			p.StartTLS = mode
			res := Probe(context.Background(), srv.Addr, p)
			checkResult(t, res, Good, "250 ", "")
			if !res.CertNotAfter.Equal(notAfter) {
				t.Errorf("CertNotAfter %s, want %s", res.CertNotAfter, notAfter)
			}
			if !strings.Contains(res.Warning, `TLS certificate "mx.test" expires on`) ||
				!strings.Contains(res.Warning, "(in 2 days)") && !strings.Contains(res.Warning, "(in 3 days)") {
				t.Errorf("warning %q, want the certificate's near expiry", res.Warning)
			}
			// EHLO again after the handshake, as RFC 3207 requires.
			ehlo := 0
			for _, l := range res.Transcript {
				if l == "C: EHLO probe.test" {
					ehlo++
				}
			}
			if ehlo != 2 || !slices.Contains(res.Transcript, "C: STARTTLS") {
				t.Errorf("want STARTTLS and two EHLOs, transcript:\n%s", strings.Join(res.Transcript, "\n"))
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		res := Probe(context.Background(), srv.Addr, testProfile())
		checkResult(t, res, Good, "250 ", "")
		if !res.CertNotAfter.IsZero() || res.Warning != "" {
			t.Errorf("without TLS: CertNotAfter %s warning %q", res.CertNotAfter, res.Warning)
		}
	})
}

func TestProbeTLSHandshakeFailure(t *testing.T) {
	// The server says 220 to STARTTLS but never speaks TLS.
	srv := scripted(t, "220 mx.test ESMTP\r\n", map[string]string{
		"EHLO":     "250-mx.test\r\n250 STARTTLS\r\n",
		"STARTTLS": "220 2.0.0 Ready\r\n",
	})
	p := testProfile()
	p.StartTLS = config.StartTLSRequire
	res := Probe(context.Background(), srv.Addr, p)
	if res.Verdict != Bad || !strings.HasPrefix(res.Reason, "STARTTLS handshake: ") {
		t.Errorf("got %q %q, want bad STARTTLS handshake", res.Verdict, res.Reason)
	}
}

func TestProbeConnectRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	res := Probe(context.Background(), addr, testProfile())
	checkResult(t, res, Bad, "", "connect: connection refused")
	if len(res.Transcript) != 0 {
		t.Errorf("transcript %q, want none", res.Transcript)
	}
}

func TestProbeCancel(t *testing.T) {
	// Banner, then silence until the client hangs up.
	srv := healthtest.StartRaw(t, func(c net.Conn, done <-chan struct{}) {
		c.Write([]byte("220 mx.test ESMTP\r\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c)
	})
	p := testProfile()
	p.Timeout = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := Probe(ctx, srv.Addr, p)
	if d := time.Since(start); d > time.Second {
		t.Errorf("cancelled probe took %s", d)
	}
	if res.Verdict != Bad || !strings.HasPrefix(res.Reason, "probe cancelled: ") {
		t.Errorf("got %q %q, want bad, cancelled", res.Verdict, res.Reason)
	}
	waitFor(t, func() bool { open, _, _ := srv.Sessions(); return open == 0 }, "session left open")
}

// waitFor polls cond for up to 2s.
func waitFor(t *testing.T, cond func() bool, failure string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second) // generous: it returns as soon as cond holds
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(failure)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProbeSTARTTLS421: a 421 to STARTTLS closes the channel, so even in
// "try" mode the probe must not go on in plain text (it would blame MAIL
// FROM for the closed connection): the 421 decides, and no QUIT follows.
func TestProbeSTARTTLS421(t *testing.T) {
	srv := scripted(t, "220 mx.test ESMTP\r\n", map[string]string{
		"EHLO":     "250-mx.test\r\n250 STARTTLS\r\n",
		"STARTTLS": "421 4.3.2 Service not available, closing transmission channel\r\n",
		"MAIL":     "250 2.1.0 Sender OK\r\n",
		"RSET":     "250 2.0.0 Resetting\r\n",
	})
	p := testProfile()
	p.StartTLS = config.StartTLSTry
	res := Probe(context.Background(), srv.Addr, p)
	checkResult(t, res, Bad, "421 4.3.2 Service not available, closing transmission channel",
		"STARTTLS refused: 421 4.3.2 Service not available, closing transmission channel")
	waitFor(t, func() bool { open, _, _ := srv.Sessions(); return open == 0 }, "session left open")
	if n := srv.Count("MAIL") + srv.Count("QUIT"); n != 0 {
		t.Errorf("the probe went on after the 421 (commands %q)", srv.Commands())
	}
}

// TestProbeRefusesLineBreaks: a profile value with a line break would
// smuggle another command (DATA) into the session; the probe refuses it
// without connecting.
func TestProbeRefusesLineBreaks(t *testing.T) {
	srv := healthtest.Start(t, healthtest.Backend{})
	for _, set := range []func(*config.Health){
		func(p *config.Health) { p.MailFrom = "probe@outside.example>\r\nDATA" },
		func(p *config.Health) { p.HELO = "probe.test\nDATA" },
		func(p *config.Health) { p.RcptTo = "postmaster@corp.example>\rDATA" },
	} {
		p := testProfile()
		set(&p)
		res := Probe(context.Background(), srv.Addr, p)
		if res.Verdict != Bad || !strings.HasPrefix(res.Reason, "probe profile: ") || len(res.Transcript) != 0 {
			t.Errorf("verdict %s, reason %q, transcript %q; want bad, a profile reason, nothing sent", res.Verdict, res.Reason, res.Transcript)
		}
	}
	if _, _, total := srv.Sessions(); total != 0 {
		t.Errorf("the server saw %d sessions (commands %q), want none", total, srv.Commands())
	}
}

// TestProbeEscapesHostileReply: a reply carrying terminal escapes or bidi
// overrides reaches `dsrlb status` escaped, and still drives the verdict.
func TestProbeEscapesHostileReply(t *testing.T) {
	srv := healthtest.Start(t, healthtest.Backend{MailReply: func(string) error {
		return healthtest.Reply(452, "4.3.1", "busy \x1b]0;pwned\x07 \u202eKO")
	}})
	res := Probe(context.Background(), srv.Addr, testProfile())
	if res.Verdict != BackPressure {
		t.Fatalf("verdict %s (%s), want back pressure", res.Verdict, res.Reason)
	}
	for _, s := range append([]string{res.Reply, res.Reason}, res.Transcript...) {
		if strings.ContainsAny(s, "\x1b\x07\u202e") {
			t.Fatalf("raw control text reached the result: %q", s)
		}
	}
	if want := `452 4.3.1 busy \x1b]0;pwned\x07 \u202eKO`; res.Reply != want {
		t.Fatalf("reply %q, want %q", res.Reply, want)
	}
}
