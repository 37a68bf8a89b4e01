package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsrlb/dsrlb/internal/daemon"
	"github.com/dsrlb/dsrlb/internal/lab"
	"github.com/dsrlb/dsrlb/internal/labnode"
)

// binary is the dsrlb built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dsrlb-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "dsrlb")
	if out, err := exec.Command("go", "build", "-o", binary, "../../cmd/dsrlb").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build dsrlb: %v\n%s", err, out)
		os.Exit(1)
	}
	lab.CleanupStale("")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var envSeq atomic.Int32

// env is a lab with a dsrlb node, torn down after the test.
type env struct {
	t    *testing.T
	lab  *lab.Lab
	node *labnode.Node
	ctx  context.Context
	smtp []*lab.SMTPServer
}

type envOptions struct {
	backendsWithoutVIP []int
	xdpMode            string
	extra              string
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	l, err := lab.New(lab.Options{VIPs: labnode.LabVIPs(), BackendsWithoutVIP: o.backendsWithoutVIP, GenericXDP: o.xdpMode == "generic"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e := &env{t: t, lab: l, ctx: context.Background()}
	for _, b := range l.Backends {
		s, err := b.StartSMTP(nil)
		if err != nil {
			t.Fatal(err)
		}
		e.smtp = append(e.smtp, s)
	}
	pins := fmt.Sprintf("/sys/fs/bpf/dsrlb-e2e-%d-%d", os.Getpid(), envSeq.Add(1))
	n, err := labnode.New(l, labnode.Options{Binary: binary, Dir: t.TempDir(), PinPath: pins, XDPMode: o.xdpMode,
		Interval: 500 * time.Millisecond, Timeout: 400 * time.Millisecond, Metrics: "127.0.0.1:9425"})
	if err != nil {
		t.Fatal(err)
	}
	if o.extra != "" {
		if err := n.WriteConfig(o.extra); err != nil {
			t.Fatal(err)
		}
	}
	e.node = n
	cleanupNode(t, n, pins, l.LB.Name)
	return e
}

// cleanupNode stops node n after the test, detaches it, removes its pins
// and, when the test failed, prints its logs.
func cleanupNode(t *testing.T, n *labnode.Node, pins, name string) {
	t.Cleanup(func() {
		n.Stop()
		if out, err := n.Run("detach"); err != nil {
			t.Logf("detach: %v\n%s", err, out)
		}
		os.RemoveAll(pins)
		if t.Failed() {
			t.Logf("dsrlb logs of %s:\n%s", name, n.Logs())
		}
	})
}

func (e *env) start() {
	e.t.Helper()
	if err := e.node.Start(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) waitFor(what string, timeout time.Duration, cond func(daemon.Status) bool) daemon.Status {
	e.t.Helper()
	st, err := e.node.WaitFor(e.ctx, timeout, what, cond)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) waitAllUp() daemon.Status {
	return e.waitFor("every backend up", 15*time.Second, labnode.AllUp)
}

// sessionsFrom counts, per backend, sessions that hit addr from client.
func (e *env) sessionsFrom(client *lab.Host, addr netip.Addr) []int {
	counts := make([]int, len(e.smtp))
	for i, s := range e.smtp {
		for _, sess := range s.Sessions() {
			if sess.Local.Addr() == addr && sess.Remote.Addr() == client.Addr4 {
				counts[i]++
			}
		}
	}
	return counts
}

// send sends n messages from client to vip:25 with sender from.
func (e *env) send(client *lab.Host, vip netip.Addr, from string, n int) {
	e.t.Helper()
	for i := range n {
		if err := lab.SendMail(client, netip.AddrPortFrom(vip, 25), from, "postmaster@example.net"); err != nil {
			e.t.Fatalf("message %d: %v", i, err)
		}
	}
}

func stateOf(st daemon.Status, vip, backend string) string {
	b, _ := labnode.Backend(st, vip, backend)
	return b.State + " (" + b.Reason + ")"
}

func hasState(vip, backend, state, reasonPart string) func(daemon.Status) bool {
	return func(st daemon.Status) bool {
		b, ok := labnode.Backend(st, vip, backend)
		return ok && b.State == state && strings.Contains(b.Reason, reasonPart)
	}
}
