package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dsrlb/dsrlb/internal/config"
)

// SorryReply is what the sorry server says: RFC 5321 allows a 421 greeting,
// and a sending MTA that gets it queues the message or tries its next MX at
// once instead of waiting for a timeout.
const SorryReply = "421 4.3.2 Service not available, try again later"

// sorryServer listens on every VIP:port. The XDP program forwards a VIP's
// packets while its ring has a backend, so these sockets only ever see
// connections when the VIP has no usable backend (XDP_PASS). The greeting is
// written by hand rather than by go-smtp, whose server always greets 220.
// sync follows config reloads: VIPs added get a listener, removed ones lose it.
type sorryServer struct {
	ctx context.Context
	wg  *sync.WaitGroup
	lc  net.ListenConfig

	mu        sync.Mutex
	listeners map[netip.AddrPort]net.Listener
}

func newSorryServer(ctx context.Context, wg *sync.WaitGroup) *sorryServer {
	s := &sorryServer{ctx: ctx, wg: wg, listeners: map[netip.AddrPort]net.Listener{}}
	s.lc.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// Bind even when the VIP is not (yet) on a local interface.
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		s.mu.Lock()
		defer s.mu.Unlock()
		for a, l := range s.listeners {
			l.Close()
			delete(s.listeners, a)
		}
	}()
	return s
}

// sync makes the listeners match cfg's VIP:ports.
func (s *sorryServer) sync(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return nil
	}
	want := map[netip.AddrPort]string{}
	for _, v := range cfg.VIPs {
		for _, p := range v.Ports {
			want[netip.AddrPortFrom(v.Address, p)] = v.Name
		}
	}
	for a, l := range s.listeners {
		if _, ok := want[a]; !ok {
			l.Close()
			delete(s.listeners, a)
		}
	}
	var errs []error
	for a, name := range want {
		if _, ok := s.listeners[a]; ok {
			continue
		}
		l, err := s.lc.Listen(s.ctx, "tcp", a.String())
		if err != nil {
			errs = append(errs, fmt.Errorf("sorry server on %s (vip %q): %w", a, name, err))
			continue
		}
		s.listeners[a] = l
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(l)
		}()
	}
	return errors.Join(errs...)
}

// serve answers every connection on l with the 421 greeting.
func (s *sorryServer) serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "%s\r\n", SorryReply)
		}()
	}
}
