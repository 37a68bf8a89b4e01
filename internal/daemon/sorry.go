package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SorryReply is what the sorry server says: RFC 5321 allows a 421 greeting,
// and a sending MTA that gets it queues the message or tries its next MX at
// once instead of waiting for a timeout.
const SorryReply = "421 4.3.2 Service not available, try again later"

// startSorry listens on every VIP:port. The XDP program forwards a VIP's
// packets while its ring has a backend, so these sockets only ever see
// connections when the VIP has no usable backend (XDP_PASS). The greeting is
// written by hand rather than by go-smtp, whose server always greets 220.
func (d *Daemon) startSorry(ctx context.Context, wg *sync.WaitGroup) error {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// Bind even when the VIP is not (yet) on a local interface.
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	for _, v := range d.cfg.VIPs {
		for _, p := range v.Ports {
			addr := netip.AddrPortFrom(v.Address, p).String()
			l, err := lc.Listen(ctx, "tcp", addr)
			if err != nil {
				return fmt.Errorf("sorry server on %s (vip %q): %w", addr, v.Name, err)
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				<-ctx.Done()
				l.Close()
			}()
			go func() {
				defer wg.Done()
				sorryLoop(l)
			}()
		}
	}
	return nil
}

func sorryLoop(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "%s\r\n", SorryReply)
		}()
	}
}
