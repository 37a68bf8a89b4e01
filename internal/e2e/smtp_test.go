package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"os"
	osexec "os/exec"

	"github.com/emersion/go-smtp"

	"github.com/dsrlb/dsrlb/internal/lab"
)

// heldSession is an SMTP session opened through a VIP and kept open.
type heldSession struct {
	conn  net.Conn
	c     *smtp.Client
	local netip.AddrPort // the client's side: identifies it on the backend
}

func openSession(client *lab.Host, addr netip.AddrPort) (*heldSession, error) {
	conn, err := client.DialTCP(addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	c := smtp.NewClient(conn)
	if err := c.Hello(client.Name); err != nil {
		conn.Close()
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	return &heldSession{conn: conn, c: c, local: netip.MustParseAddrPort(conn.LocalAddr().String())}, nil
}

func (h *heldSession) sendMail(from, to string) error {
	h.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := h.c.SendMail(from, []string{to}, strings.NewReader("Subject: held\r\n\r\nheld session\r\n")); err != nil {
		return err
	}
	return h.c.Quit()
}

func (h *heldSession) close() { h.conn.Close() }

// sessionOn reports whether backend i has a session from local.
func (e *env) sessionOn(i int, local netip.AddrPort) bool {
	for _, s := range e.smtp[i].Sessions() {
		if s.Remote == local {
			return true
		}
	}
	return false
}

// readGreeting connects and returns the first line the server sends.
func readGreeting(client *lab.Host, addr netip.AddrPort) (string, error) {
	conn, err := client.DialTCP(addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// run runs a command and returns its combined output.
func run(name string, args ...string) (string, error) {
	out, err := osexec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }
