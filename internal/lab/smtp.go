package lab

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Mode is how a simulated Exchange server answers. Use the constants or
// ModeTarpit.
type Mode string

// Modes of a simulated Exchange server.
const (
	// ModeHealthy accepts mail: "250 2.1.0 Sender OK" to MAIL FROM.
	ModeHealthy Mode = "healthy"
	// ModeBackPressure is Exchange's medium back pressure: MAIL FROM gets
	// "452 4.3.1 Insufficient system resources" unless the sender is in the
	// internal domain, which still gets 250.
	ModeBackPressure Mode = "back-pressure"
	// ModeBackPressureAll answers 452 4.3.1 to every sender.
	ModeBackPressureAll Mode = "back-pressure-all"
	// ModeMaintenance is a draining HubTransport: MAIL FROM gets
	// "421 4.3.2 Service not available".
	ModeMaintenance Mode = "maintenance"
	// ModeDown closes the listeners and every open session: connects are
	// refused.
	ModeDown Mode = "down"
)

// tarpitPrefix starts a ModeTarpit value.
const tarpitPrefix = "tarpit "

// ModeTarpit delays every MAIL FROM reply by d (Exchange's submission-queue
// back pressure), then accepts the sender.
func ModeTarpit(d time.Duration) Mode { return Mode(tarpitPrefix + d.String()) }

// tarpit returns the delay of a ModeTarpit mode.
func (m Mode) tarpit() (time.Duration, bool, error) {
	s, ok := strings.CutPrefix(string(m), tarpitPrefix)
	if !ok {
		return 0, false, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, true, fmt.Errorf("lab: bad tarpit mode %q", m)
	}
	return d, true, nil
}

// validate reports an unknown mode.
func (m Mode) validate() error {
	switch m {
	case ModeHealthy, ModeBackPressure, ModeBackPressureAll, ModeMaintenance, ModeDown:
		return nil
	}
	if _, ok, err := m.tarpit(); ok {
		return err
	}
	return fmt.Errorf("lab: unknown SMTP mode %q", m)
}

// Session is what a simulated server recorded about one connection.
type Session struct {
	// Remote is the client's address as the server saw it.
	Remote netip.AddrPort
	// Local is the address the client reached (a VIP or the host's own).
	Local netip.AddrPort
	// HELO is the argument of the last HELO or EHLO.
	HELO string
	// Commands are the command lines the client sent, in order, without
	// message contents ("EHLO probe", "MAIL FROM:<a@example.net>", "QUIT").
	Commands []string
	// Messages counts the messages accepted in the session.
	Messages int
}

// SMTPServer is a simulated Exchange server running in a host namespace.
type SMTPServer struct {
	host   *Host
	srv    *smtp.Server
	addrs  []netip.AddrPort
	done   chan struct{}
	serves sync.WaitGroup

	mu        sync.Mutex
	mode      Mode
	listeners []net.Listener
	conns     map[*recConn]struct{}
	sessions  []*Session
	messages  int
	closed    bool
}

// StartSMTP starts a simulated Exchange server in the host's namespace,
// listening on addrs (port 0 picks a free port; see Addrs). With no addrs it
// listens on port 25 of the host's own addresses and of the VIPs on its lo.
// Lab.Close stops it.
func (h *Host) StartSMTP(addrs []netip.AddrPort) (*SMTPServer, error) {
	if len(addrs) == 0 {
		addrs = h.defaultSMTPAddrs(25)
	}
	s := &SMTPServer{
		host:  h,
		addrs: slices.Clone(addrs),
		done:  make(chan struct{}),
		mode:  ModeHealthy,
		conns: map[*recConn]struct{}{},
	}
	s.srv = smtp.NewServer(&backend{s: s})
	s.srv.Domain = h.Name
	s.srv.ReadTimeout = 30 * time.Second
	s.srv.WriteTimeout = 30 * time.Second
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	s.mu.Lock()
	err := s.listenLocked()
	s.mu.Unlock()
	if err != nil {
		return nil, errors.Join(err, s.Close())
	}
	h.trackServer(s)
	return s, nil
}

// defaultSMTPAddrs is port on the host's addresses and loopback VIPs.
func (h *Host) defaultSMTPAddrs(port uint16) []netip.AddrPort {
	addrs := []netip.AddrPort{netip.AddrPortFrom(h.Addr4, port), netip.AddrPortFrom(h.Addr6, port)}
	for _, v := range h.LoopbackVIPs() {
		addrs = append(addrs, netip.AddrPortFrom(v, port))
	}
	return addrs
}

// listenLocked opens the listeners inside the namespace and serves them.
// Ports chosen by the kernel are kept so that a restart reuses them.
func (s *SMTPServer) listenLocked() error {
	var lns []net.Listener
	err := s.host.Do(func() error {
		for i, a := range s.addrs {
			ln, err := net.Listen("tcp", a.String())
			if err != nil {
				return fmt.Errorf("%s: SMTP listen on %s: %w", s.host.Name, a, err)
			}
			lns = append(lns, ln)
			s.addrs[i] = ln.Addr().(*net.TCPAddr).AddrPort()
		}
		return nil
	})
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		return err
	}
	for _, ln := range lns {
		rl := &recListener{Listener: ln, s: s}
		s.listeners = append(s.listeners, rl)
		s.serves.Add(1)
		go func() {
			defer s.serves.Done()
			_ = s.srv.Serve(rl) // returns when the listener is closed
		}()
	}
	return nil
}

// Addrs returns the addresses the server listens on (with real ports).
func (s *SMTPServer) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.addrs)
}

// Mode returns the current mode.
func (s *SMTPServer) Mode() Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

// SetMode switches the server's behaviour at once, without a restart.
// ModeDown closes the listeners and open sessions; leaving it listens again
// on the same addresses.
func (s *SMTPServer) SetMode(m Mode) error {
	if err := m.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("%s: SMTP server closed", s.host.Name)
	}
	was := s.mode
	s.mode = m
	switch {
	case m == ModeDown && was != ModeDown:
		s.dropLocked()
	case m != ModeDown && was == ModeDown:
		if err := s.listenLocked(); err != nil {
			s.mode = ModeDown
			return err
		}
	}
	return nil
}

// dropLocked closes the listeners and every open connection.
func (s *SMTPServer) dropLocked() {
	for _, ln := range s.listeners {
		ln.Close()
	}
	s.listeners = nil
	for c := range s.conns {
		c.Conn.Close()
	}
}

// Sessions returns a copy of every session recorded so far, oldest first.
func (s *SMTPServer) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Session, len(s.sessions))
	for i, r := range s.sessions {
		out[i] = *r
		out[i].Commands = slices.Clone(r.Commands)
	}
	return out
}

// Messages returns how many messages the server accepted.
func (s *SMTPServer) Messages() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.messages
}

// Close stops the server and closes every session. It is idempotent.
func (s *SMTPServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.dropLocked()
	s.mu.Unlock()
	err := s.srv.Close()
	s.serves.Wait()
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	return err
}

// mailReply decides the MAIL FROM answer for the current mode.
func (s *SMTPServer) mailReply(from string) error {
	mode := s.Mode()
	if d, ok, _ := mode.tarpit(); ok {
		select {
		case <-time.After(d):
		case <-s.done:
		}
		return nil
	}
	switch mode {
	case ModeBackPressure:
		if senderDomain(from) == strings.ToLower(s.host.internalDomain) {
			return nil
		}
		return errInsufficientResources()
	case ModeBackPressureAll:
		return errInsufficientResources()
	case ModeMaintenance, ModeDown:
		return errServiceNotAvailable()
	}
	return nil
}

// senderDomain is the lower-cased domain of a reverse path.
func senderDomain(addr string) string {
	_, dom, _ := strings.Cut(strings.Trim(addr, "<>"), "@")
	return strings.ToLower(dom)
}

// errInsufficientResources is Exchange's back-pressure refusal.
func errInsufficientResources() error {
	return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system resources"}
}

// errServiceNotAvailable is a draining Exchange's refusal.
func errServiceNotAvailable() error {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service not available"}
}

// backend creates sessions for go-smtp.
type backend struct{ s *SMTPServer }

// NewSession implements smtp.Backend.
func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	rc, _ := c.Conn().(*recConn)
	return &session{s: b.s, rc: rc}, nil
}

// session answers one client.
type session struct {
	s  *SMTPServer
	rc *recConn
}

// Mail implements smtp.Session.
func (se *session) Mail(from string, _ *smtp.MailOptions) error { return se.s.mailReply(from) }

// Rcpt implements smtp.Session.
func (se *session) Rcpt(string, *smtp.RcptOptions) error { return nil }

// Data implements smtp.Session: it reads the message and counts it.
func (se *session) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	se.s.mu.Lock()
	defer se.s.mu.Unlock()
	se.s.messages++
	if se.rc != nil {
		se.rc.rec.Messages++
	}
	return nil
}

// Reset implements smtp.Session.
func (se *session) Reset() {}

// Logout implements smtp.Session.
func (se *session) Logout() error { return nil }
