package lab

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// recListener records a Session for every accepted connection.
type recListener struct {
	net.Listener
	s    *SMTPServer
	once sync.Once
}

// Accept implements net.Listener.
func (l *recListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rec := &Session{Remote: addrPortOf(c.RemoteAddr()), Local: addrPortOf(c.LocalAddr())}
	rc := &recConn{Conn: c, s: l.s, rec: rec}
	l.s.mu.Lock()
	l.s.sessions = append(l.s.sessions, rec)
	l.s.conns[rc] = struct{}{}
	l.s.mu.Unlock()
	return rc, nil
}

// Close implements net.Listener; closing twice is not an error (go-smtp
// closes every listener it ever served on Close).
func (l *recListener) Close() error {
	var err error
	l.once.Do(func() { err = l.Listener.Close() })
	return err
}

// addrPortOf converts a TCP address.
func addrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// recConn records the client's command lines and dresses go-smtp's replies
// as Exchange's. go-smtp reads and writes a connection from one goroutine,
// so the parser state needs no lock; the Session does (Sessions reads it).
type recConn struct {
	net.Conn
	s   *SMTPServer
	rec *Session

	greeted bool
	partial []byte // an incomplete command line
	inData  bool   // reading message contents up to "."
	skip    int    // BDAT chunk bytes still to pass over
}

// Read implements net.Conn.
func (c *recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.observe(p[:n])
	return n, err
}

// observe splits client bytes into command lines, skipping message data.
func (c *recConn) observe(b []byte) {
	for len(b) > 0 {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			continue
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.partial = append(c.partial, b...)
			return
		}
		line := strings.TrimRight(string(append(c.partial, b[:i]...)), "\r")
		c.partial = c.partial[:0]
		b = b[i+1:]
		c.line(line)
	}
}

// line handles one complete line from the client.
func (c *recConn) line(line string) {
	if c.inData {
		if line == "." {
			c.inData = false
		}
		return
	}
	verb, arg, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "BDAT":
		size, _, _ := strings.Cut(arg, " ")
		if n, err := strconv.Atoi(size); err == nil && n > 0 {
			c.skip = n
		}
	case "HELO", "EHLO":
		c.s.mu.Lock()
		c.rec.HELO = strings.TrimSpace(arg)
		c.s.mu.Unlock()
	}
	c.s.mu.Lock()
	c.rec.Commands = append(c.rec.Commands, line)
	c.s.mu.Unlock()
}

// Write implements net.Conn. go-smtp writes one reply line per call.
func (c *recConn) Write(p []byte) (int, error) {
	out := p
	switch {
	case !c.greeted && bytes.HasPrefix(p, []byte("220 ")):
		out = []byte("220 " + c.s.host.Name + " Microsoft ESMTP MAIL Service ready\r\n")
	case bytes.HasPrefix(p, []byte("250 2.0.0 Roger, accepting mail from")):
		out = []byte("250 2.1.0 Sender OK\r\n")
	case bytes.HasPrefix(p, []byte("250 2.0.0 I'll make sure")):
		out = []byte("250 2.1.5 Recipient OK\r\n")
	}
	c.greeted = true
	if bytes.HasPrefix(p, []byte("354")) {
		// Only DATA gets 354, and the client sends the contents only
		// after it, so everything up to "." is message data.
		c.inData = true
	}
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close implements net.Conn.
func (c *recConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}
