package lab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpClient connects from h to addr with go-smtp and says EHLO.
func smtpClient(t *testing.T, h *Host, addr netip.AddrPort) *smtp.Client {
	t.Helper()
	conn, err := h.DialTCP(addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	c := smtp.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("probe.example.net"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	return c
}

// mailCode returns the reply code to MAIL FROM (250 on success).
func mailCode(t *testing.T, h *Host, addr netip.AddrPort, from string) (int, string) {
	t.Helper()
	c := smtpClient(t, h, addr)
	err := c.Mail(from, nil)
	if err == nil {
		return 250, ""
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("MAIL FROM:<%s>: %v", from, err)
	}
	return se.Code, fmt.Sprintf("%d.%d.%d %s", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
}

func TestSMTPBannerAndSenderOK(t *testing.T) {
	l := newTestLab(t, Options{Clients: 1, Backends: 1})
	b := l.Backends[0]
	startSMTP(t, b)
	conn, err := l.Clients[0].DialTCP(netip.AddrPortFrom(b.Addr4, 25), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	readLine := func() string {
		t.Helper()
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimRight(s, "\r\n")
	}
	if got, want := readLine(), "220 "+b.Name+" Microsoft ESMTP MAIL Service ready"; got != want {
		t.Fatalf("banner %q, want %q", got, want)
	}
	if _, err := conn.Write([]byte("HELO probe\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<y@example.net>\r\n")); err != nil {
		t.Fatal(err)
	}
	readLine() // HELO
	if got := readLine(); got != "250 2.1.0 Sender OK" {
		t.Errorf("MAIL FROM reply %q, want 250 2.1.0 Sender OK", got)
	}
	if got := readLine(); got != "250 2.1.5 Recipient OK" {
		t.Errorf("RCPT TO reply %q, want 250 2.1.5 Recipient OK", got)
	}
}

func TestSMTPModes(t *testing.T) {
	l := newTestLab(t, Options{Clients: 1, Backends: 1, InternalDomain: "corp.example"})
	b, c := l.Backends[0], l.Clients[0]
	s := startSMTP(t, b)
	addr := netip.AddrPortFrom(b.Addr6, 25)
	cases := []struct {
		mode               Mode
		external, internal int
		text               string
	}{
		{ModeHealthy, 250, 250, ""},
		{ModeBackPressure, 452, 250, "4.3.1 Insufficient system resources"},
		{ModeBackPressureAll, 452, 452, "4.3.1 Insufficient system resources"},
		{ModeMaintenance, 421, 421, "4.3.2 Service not available"},
		{ModeHealthy, 250, 250, ""},
	}
	for _, tc := range cases {
		if err := s.SetMode(tc.mode); err != nil {
			t.Fatal(err)
		}
		ext, text := mailCode(t, c, addr, "someone@example.org")
		internal, _ := mailCode(t, c, addr, "probe@Corp.Example")
		if ext != tc.external || internal != tc.internal || !strings.Contains(text, tc.text) {
			t.Errorf("%s: external %d %q, internal %d; want %d %q, %d", tc.mode, ext, text, internal, tc.external, tc.text, tc.internal)
		}
	}
	if err := s.SetMode("nonsense"); err == nil {
		t.Error("SetMode(nonsense) succeeded")
	}
}

func TestSMTPTarpit(t *testing.T) {
	l := newTestLab(t, Options{Clients: 1, Backends: 1})
	s := startSMTP(t, l.Backends[0])
	const delay = 400 * time.Millisecond
	if err := s.SetMode(ModeTarpit(delay)); err != nil {
		t.Fatal(err)
	}
	if got := s.Mode(); got != ModeTarpit(delay) {
		t.Fatalf("Mode() = %q", got)
	}
	start := time.Now()
	code, _ := mailCode(t, l.Clients[0], netip.AddrPortFrom(l.Backends[0].Addr4, 25), "a@example.org")
	if took := time.Since(start); code != 250 || took < delay {
		t.Errorf("tarpit: code %d after %v, want 250 after >= %v", code, took, delay)
	}
}

func TestSMTPDownAndBack(t *testing.T) {
	l := newTestLab(t, Options{Clients: 1, Backends: 1})
	b, c := l.Backends[0], l.Clients[0]
	s, err := b.StartSMTP([]netip.AddrPort{netip.AddrPortFrom(b.Addr4, 0)})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs()[0]
	if addr.Port() == 0 {
		t.Fatal("Addrs() kept port 0")
	}
	open := smtpClient(t, c, addr)
	if err := s.SetMode(ModeDown); err != nil {
		t.Fatal(err)
	}
	if err := open.Noop(); err == nil {
		t.Error("a session survived ModeDown")
	}
	if conn, err := c.DialTCP(addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("connect succeeded in ModeDown")
	} else if !strings.Contains(err.Error(), "refused") {
		t.Errorf("connect in ModeDown: %v, want connection refused", err)
	}
	if err := s.SetMode(ModeHealthy); err != nil {
		t.Fatal(err)
	}
	if err := SendMail(c, addr, "a@example.org", "b@example.net"); err != nil {
		t.Fatalf("after ModeDown -> ModeHealthy: %v", err)
	}
}

func TestSMTPRecordsCommandsWithoutMessageData(t *testing.T) {
	l := newTestLab(t, Options{Clients: 1, Backends: 1, VIPs: []netip.Addr{testVIP4}})
	b, c := l.Backends[0], l.Clients[0]
	s := startSMTP(t, b)
	if got := s.Addrs(); !slices.Contains(got, netip.AddrPortFrom(testVIP4, 25)) {
		t.Fatalf("default addresses %v lack the loopback VIP", got)
	}
	// A probe-like session, pipelined: no DATA.
	wantProbe := []string{"EHLO probe.example.net", "MAIL FROM:<probe@example.net>", "RSET", "QUIT"}
	conn, err := c.DialTCP(netip.AddrPortFrom(b.Addr4, 25), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(strings.Join(wantProbe, "\r\n") + "\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(conn); err != nil { // up to the server's close after QUIT
		t.Fatal(err)
	}
	if err := SendMail(c, netip.AddrPortFrom(b.Addr4, 25), "a@example.org", "b@example.net"); err != nil {
		t.Fatal(err)
	}
	ss := s.Sessions()
	if len(ss) != 2 {
		t.Fatalf("%d sessions, want 2", len(ss))
	}
	if !slices.Equal(ss[0].Commands, wantProbe) || ss[0].Messages != 0 {
		t.Errorf("probe session commands %q messages %d, want %q and 0", ss[0].Commands, ss[0].Messages, wantProbe)
	}
	var verbs []string
	for _, cmd := range ss[1].Commands {
		verb, _, _ := strings.Cut(cmd, " ")
		verbs = append(verbs, verb)
	}
	wantMail := []string{"EHLO", "MAIL", "RCPT", "DATA", "QUIT"} // no message lines
	if !slices.Equal(verbs, wantMail) || ss[1].Messages != 1 || ss[1].HELO != c.Name {
		t.Errorf("mail session commands %q HELO %q messages %d, want verbs %q, %q and 1", ss[1].Commands, ss[1].HELO, ss[1].Messages, wantMail, c.Name)
	}
}
