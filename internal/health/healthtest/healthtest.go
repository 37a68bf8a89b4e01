// Package healthtest runs SMTP servers on 127.0.0.1 for tests of the deep
// probe: a go-smtp server with knobs for each behaviour the probe must
// classify (back pressure, tarpit, hang, TLS), and a raw TCP server for
// what go-smtp will not send (a 421 banner, garbage).
//
// Both count, on the server side, the sessions open at once and every
// command line clients sent, so tests can check the probe's QUIT and that it
// never sends DATA.
package healthtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Backend sets how a test SMTP server behaves. The zero value is a healthy
// server that accepts every sender and recipient.
type Backend struct {
	// Domain is the name in the banner; "" means "mx.test".
	Domain string
	// MailReply, when non-nil, answers MAIL FROM: a non-nil error (an
	// *smtp.SMTPError) refuses the sender.
	MailReply func(from string) error
	// MailDelay delays the MAIL FROM reply (Exchange's tarpit).
	MailDelay time.Duration
	// RcptReply, when non-nil, answers RCPT TO like MailReply.
	RcptReply func(to string) error
	// HelloDelay delays the EHLO/HELO reply: a long one is a server that
	// hangs after its banner.
	HelloDelay time.Duration
	// TLS, when non-nil, makes the server advertise and accept STARTTLS.
	TLS *tls.Config
}

// Server is a running test server. Its methods are safe for concurrent use.
type Server struct {
	// Addr is where it listens.
	Addr netip.AddrPort

	ln   net.Listener
	done chan struct{} // closed on shutdown: ends every delay

	mu       sync.Mutex
	commands []string // every command line clients sent, in order
	open     int      // sessions open now
	maxOpen  int      // most sessions open at once
	total    int      // sessions accepted
}

// Start runs a go-smtp server behaving as b on 127.0.0.1 and stops it when
// the test ends.
func Start(t testing.TB, b Backend) *Server {
	t.Helper()
	s := listen(t)
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		if !s.wait(b.HelloDelay) {
			return nil, errors.New("shutting down")
		}
		return &session{b: b, s: s}, nil
	}))
	srv.Domain = b.Domain
	if srv.Domain == "" {
		srv.Domain = "mx.test"
	}
	srv.TLSConfig = b.TLS
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go srv.Serve(s.ln)
	t.Cleanup(func() {
		close(s.done)
		srv.Close()
	})
	return s
}

// StartRaw runs a plain TCP server on 127.0.0.1 that hands every accepted
// connection to handle, then closes it; it stops when the test ends. Use it
// for what go-smtp cannot do, such as a 421 banner or garbage.
func StartRaw(t testing.TB, handle func(c net.Conn, done <-chan struct{})) *Server {
	t.Helper()
	s := listen(t)
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c, s.done)
			}()
		}
	}()
	t.Cleanup(func() {
		close(s.done)
		s.ln.Close()
		wg.Wait()
	})
	return s
}

// listen opens the counting listener on 127.0.0.1:0.
func listen(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("healthtest: listen on 127.0.0.1:0: %v", err)
	}
	s := &Server{done: make(chan struct{})}
	s.ln = &countingListener{Listener: ln, s: s}
	s.Addr = netip.MustParseAddrPort(ln.Addr().String())
	return s
}

// wait sleeps d, or less when the server shuts down; it reports whether
// the full delay passed.
func (s *Server) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

// Commands returns every command line clients sent so far, in order.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commands)
}

// Count returns how many commands whose first word is verb
// (case-insensitive: "QUIT", "DATA", "MAIL") clients sent.
func (s *Server) Count(verb string) int {
	n := 0
	for _, c := range s.Commands() {
		if w, _, _ := strings.Cut(c, " "); strings.EqualFold(w, verb) {
			n++
		}
	}
	return n
}

// Sessions returns the sessions open now, the most ever open at once, and
// the number accepted. A session is open from its accept until the client
// sends QUIT or hangs up, or the server closes it.
func (s *Server) Sessions() (open, maxOpen, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open, s.maxOpen, s.total
}

// countingListener counts sessions and records what clients send.
type countingListener struct {
	net.Listener
	s *Server
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	l.s.open++
	l.s.total++
	l.s.maxOpen = max(l.s.maxOpen, l.s.open)
	l.s.mu.Unlock()
	return &countingConn{Conn: c, s: l.s}, nil
}

// countingConn records complete client lines (before TLS only: after
// STARTTLS they are encrypted and not recorded).
type countingConn struct {
	net.Conn
	s       *Server
	partial []byte
	tls     bool
	once    sync.Once
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.tls {
		c.partial = append(c.partial, p[:n]...)
		for {
			i := bytes.IndexByte(c.partial, '\n')
			if i < 0 {
				break
			}
			line := strings.TrimRight(string(c.partial[:i]), "\r")
			c.partial = c.partial[i+1:]
			c.s.mu.Lock()
			c.s.commands = append(c.s.commands, line)
			c.s.mu.Unlock()
			if strings.EqualFold(line, "QUIT") {
				c.end()
			}
			if strings.EqualFold(line, "STARTTLS") {
				c.tls = true
				c.partial = nil
				break
			}
		}
	}
	if err != nil {
		c.end()
	}
	return n, err
}

func (c *countingConn) Close() error {
	c.end()
	return c.Conn.Close()
}

// end counts the session as over: the client sent QUIT or hung up, or the
// server closed the connection.
func (c *countingConn) end() {
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.open--
		c.s.mu.Unlock()
	})
}

// session is one go-smtp session of a Backend.
type session struct {
	b Backend
	s *Server
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if !ss.s.wait(ss.b.MailDelay) {
		return errors.New("shutting down")
	}
	if ss.b.MailReply != nil {
		return ss.b.MailReply(from)
	}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.b.RcptReply != nil {
		return ss.b.RcptReply(to)
	}
	return nil
}

func (ss *session) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

func (ss *session) Reset()        {}
func (ss *session) Logout() error { return nil }

// Reply returns the SMTP error "code x.y.z message", e.g.
// Reply(452, "4.3.1", "Insufficient system resources").
func Reply(code int, enhanced, message string) *smtp.SMTPError {
	e := &smtp.SMTPError{Code: code, Message: message}
	var a, b, c int
	if n, _ := fmt.Sscanf(enhanced, "%d.%d.%d", &a, &b, &c); n == 3 {
		e.EnhancedCode = smtp.EnhancedCode{a, b, c}
	} else {
		e.EnhancedCode = smtp.NoEnhancedCode
	}
	return e
}

// Cert returns a self-signed certificate for "mx.test" valid until
// notAfter.
func Cert(t testing.TB, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("healthtest: generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "mx.test"},
		DNSNames:     []string{"mx.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("healthtest: create certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
