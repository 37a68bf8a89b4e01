package main

import (
	"bytes"
	"io"
	"log"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/dsrlb/dsrlb/internal/config"
	"github.com/dsrlb/dsrlb/internal/relaytest"
)

// relaySession answers RCPT TO with rcpt (nil: accept, an open relay).
type relaySession struct{ rcpt error }

func (s relaySession) Reset()                               {}
func (s relaySession) Logout() error                        { return nil }
func (s relaySession) Mail(string, *smtp.MailOptions) error { return nil }
func (s relaySession) Rcpt(string, *smtp.RcptOptions) error { return s.rcpt }
func (s relaySession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }

// relayServer starts a go-smtp server on 127.0.0.1:0 and returns its port.
func relayServer(t *testing.T, rcpt error) uint16 {
	t.Helper()
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return relaySession{rcpt}, nil }))
	srv.Domain = "mx.example.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return netip.MustParseAddrPort(ln.Addr().String()).Port()
}

func relaytestOpts() relaytest.Options {
	return relaytest.Options{From: "a@outside.example", To: "x@elsewhere.example", Timeout: relaytest.DefaultTimeout}
}

var relayDenied = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 54}, Message: "SMTP; Unable to relay recipient in non-accepted domain"}

func TestCmdRelayTest(t *testing.T) {
	open := relayServer(t, nil)
	closed := relayServer(t, relayDenied)
	soft := relayServer(t, &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Relay access denied"})
	for _, tc := range []struct {
		port uint16
		code int
		want string
	}{
		{open, exitBad, "OPEN RELAY: 127.0.0.1:%d accepted RCPT TO:<x@elsewhere.example> from <a@outside.example>: 250 2.0.0 I'll make sure <x@elsewhere.example> gets this"},
		{closed, exitOK, "closed: 127.0.0.1:%d refused RCPT TO:<x@elsewhere.example> from <a@outside.example>: 550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"},
		{soft, exitError, "inconclusive: 127.0.0.1:%d at rcpt: 454 4.7.1 Relay access denied"},
	} {
		var out, errOut bytes.Buffer
		host := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tc.port).String()
		// Flags after the positional, as operators type them.
		code := cmdRelayTest([]string{host, "--from", "a@outside.example", "--to", "x@elsewhere.example", "--timeout", "3s"}, &out, &errOut)
		want := strings.Replace(tc.want, "%d", host[len("127.0.0.1:"):], 1)
		if code != tc.code || !strings.Contains(out.String(), want) {
			t.Errorf("port %d: exit %d, want %d; output lacks %q:\n%s%s", tc.port, code, tc.code, want, out.String(), errOut.String())
		}
		if !strings.Contains(out.String(), "C: RCPT TO:<x@elsewhere.example>") || strings.Contains(out.String(), "C: DATA") {
			t.Errorf("transcript wrong:\n%s", out.String())
		}
	}
}

func TestCmdRelayTestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"mx.example.test"}, // no --from/--to
		{"--from", "a@b.example", "--to", "c@d.example"}, // no host
		{"h1", "h2", "--from", "a@b.example", "--to", "c@d.example"},
		{"--all", "h1", "--from", "a@b.example", "--to", "c@d.example"},
		{"h1", "--from", "a@b.example", "--to", "nodomain"},
	} {
		var out, errOut bytes.Buffer
		if code := cmdRelayTest(args, &out, &errOut); code != exitError || errOut.Len() == 0 {
			t.Errorf("%q: exit %d (stderr %q), want %d with a message", args, code, errOut.String(), exitError)
		}
	}
}

func TestRelayTestAll(t *testing.T) {
	closed := relayServer(t, relayDenied)
	open := relayServer(t, nil)
	lo := netip.MustParseAddr("127.0.0.1")
	cfg := &config.Config{
		Backends: []config.Backend{{Name: "EX1", Address: lo}},
		VIPs: []config.VIP{{Name: "internet", Address: lo, Ports: []uint16{closed},
			Backends: []config.VIPBackend{{Name: "EX1", Weight: 100, Priority: 1}}}},
	}
	opts := relaytestOpts()
	var out, errOut bytes.Buffer
	// The backend's own SMTP port is the open server: reached directly,
	// bypassing the VIP, it relays.
	code := relayTestAll(t.Context(), cfg, open, opts, false, &out, &errOut)
	if code != exitBad {
		t.Errorf("exit %d, want %d:\n%s", code, exitBad, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 { // header, 3 targets, OPEN RELAY summary
		t.Fatalf("want 5 lines:\n%s", out.String())
	}
	for i, want := range []string{"closed  ", "OPEN RELAY", "closed  "} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("line %d %q, want prefix %q", i+1, lines[i+1], want)
		}
	}
	if !strings.HasPrefix(lines[4], "OPEN RELAY: at least one target") {
		t.Errorf("last line %q", lines[4])
	}

	out.Reset()
	if code := relayTestAll(t.Context(), cfg, closed, opts, true, &out, &errOut); code != exitOK {
		t.Errorf("all closed: exit %d, want 0:\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "C: QUIT") {
		t.Errorf("-v prints no transcript:\n%s", out.String())
	}
	if code := relayTestAll(t.Context(), &config.Config{}, 25, opts, false, &out, &errOut); code != exitError {
		t.Errorf("empty config: exit %d, want %d", code, exitError)
	}
}
