package relaytest

import (
	"bytes"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// policy is how a test server answers RCPT TO.
type policy struct {
	// rcpt is returned by Session.Rcpt; nil accepts (an open relay).
	rcpt error
	// mail is returned by Session.Mail; nil accepts.
	mail error
	// banner, when set, replaces the server's 220 greeting line.
	banner string
}

// testServer is a real go-smtp server on 127.0.0.1:0 that records every
// byte clients send, to check what the relay test did on the wire.
type testServer struct {
	addr string
	mu   sync.Mutex
	recv bytes.Buffer
	data int // Session.Data calls
}

// commands returns the commands clients sent, upper-cased verb first.
func (s *testServer) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s.recv.String(), "\r\n"), "\r\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func startServer(t *testing.T, p policy) *testServer {
	t.Helper()
	ts := &testServer{}
	be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session1{ts: ts, p: p}, nil })
	srv := smtp.NewServer(be)
	srv.Domain = "mx1.example.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	go srv.Serve(&recListener{Listener: ln, ts: ts, banner: p.banner})
	t.Cleanup(func() { srv.Close() })
	return ts
}

// session1 is one server-side session following a policy.
type session1 struct {
	ts *testServer
	p  policy
}

func (s *session1) Reset()        {}
func (s *session1) Logout() error { return nil }
func (s *session1) Mail(string, *smtp.MailOptions) error {
	return s.p.mail
}
func (s *session1) Rcpt(string, *smtp.RcptOptions) error { return s.p.rcpt }
func (s *session1) Data(r io.Reader) error {
	s.ts.mu.Lock()
	s.ts.data++
	s.ts.mu.Unlock()
	_, err := io.Copy(io.Discard, r)
	return err
}

// recListener wraps accepted connections to record client bytes and,
// optionally, replace the banner.
type recListener struct {
	net.Listener
	ts     *testServer
	banner string
}

func (l *recListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recConn{Conn: c, ts: l.ts, banner: l.banner}, nil
}

type recConn struct {
	net.Conn
	ts       *testServer
	banner   string
	bannered bool
}

func (c *recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.ts.mu.Lock()
	c.ts.recv.Write(p[:n])
	c.ts.mu.Unlock()
	return n, err
}

func (c *recConn) Write(p []byte) (int, error) {
	if !c.bannered {
		c.bannered = true
		if c.banner != "" && bytes.HasPrefix(p, []byte("220 ")) {
			if _, err := c.Conn.Write([]byte(c.banner + "\r\n")); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

// smtpErr builds a reply the server sends verbatim.
func smtpErr(code int, enh smtp.EnhancedCode, msg string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}
