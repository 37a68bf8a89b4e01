package lab

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// DialTCP connects to addr from inside the host's namespace. The connection
// can be used from any goroutine.
func (h *Host) DialTCP(addr netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr.String(), timeout)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: connect to %s: %w", h.Name, addr, err)
	}
	return c, nil
}

// SendMail sends one message from "from" to "to" through the SMTP server
// at addr (a VIP or a backend's own address), from inside the client's
// namespace, with go-smtp's client. The whole exchange has a 10 s deadline.
func SendMail(client *Host, addr netip.AddrPort, from, to string) error {
	conn, err := client.DialTCP(addr, 3*time.Second)
	if err != nil {
		return err
	}
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		conn.Close()
		return fmt.Errorf("%s: mail to %s: %w", client.Name, addr, err)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello(client.Name); err != nil {
		return fmt.Errorf("%s: mail to %s: EHLO: %w", client.Name, addr, err)
	}
	msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: dsrlb lab\r\n\r\nSent by %s.\r\n", from, to, client.Name)
	if err := c.SendMail(from, []string{to}, strings.NewReader(msg)); err != nil {
		return fmt.Errorf("%s: mail from %s to %s via %s: %w", client.Name, from, to, addr, err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("%s: mail to %s: QUIT: %w", client.Name, addr, err)
	}
	return nil
}
