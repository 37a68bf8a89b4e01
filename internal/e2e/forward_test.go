package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsrlb/dsrlb/internal/daemon"
	"github.com/dsrlb/dsrlb/internal/lab"
	"github.com/dsrlb/dsrlb/internal/labnode"
)

// TestForwardKeepsClientIP: mail from both clients through the VIP is
// spread over the backends by XDP, and every backend sees the client's own
// address (no source NAT) and the VIP as its local address.
func TestForwardKeepsClientIP(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	e.waitAllUp()
	const n = 30
	for _, c := range e.lab.Clients {
		e.send(c, labnode.InternetAddr, "sender@outside.example", n)
	}
	for _, c := range e.lab.Clients {
		counts := e.sessionsFrom(c, labnode.InternetAddr)
		total, used := 0, 0
		for _, k := range counts {
			total += k
			if k > 0 {
				used++
			}
		}
		if total != n {
			t.Fatalf("client %s: backends saw %d sessions from its own address to the VIP, want %d (per backend %v)", c.Name, total, n, counts)
		}
		if used < 2 {
			t.Fatalf("client %s: %d sessions all on one backend %v: not spread", c.Name, n, counts)
		}
	}
	st, err := e.node.Status(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var share float64
	var newFlows uint64
	for _, b := range st.VIPs[0].Backends {
		share += b.RingShare
		newFlows += b.NewFlows
		if b.LastPacketAt == nil {
			t.Errorf("backend %s: no last packet time", b.Name)
		}
	}
	if share < 0.999 || share > 1.001 {
		t.Fatalf("ring shares sum to %f", share)
	}
	if newFlows < 2*n {
		t.Fatalf("status counts %d new flows, want >= %d", newFlows, 2*n)
	}
}

// TestBackPressureDrains: a backend answering 452 to external senders is
// drained for the internet VIP (probed with an external sender) but stays up
// for the relay VIP (internal sender); no new internet session reaches it,
// a session already open on it completes; recovery brings it back.
func TestBackPressureDrains(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	e.waitAllUp()
	client := e.lab.Clients[0]

	// Open sessions through the VIP until one lands on EX1; keep it open.
	var held *heldSession
	for i := 0; i < 40 && held == nil; i++ {
		s, err := openSession(client, netip.AddrPortFrom(labnode.InternetAddr, 25))
		if err != nil {
			t.Fatal(err)
		}
		if e.sessionOn(0, s.local) {
			held = s
		} else {
			s.close()
		}
	}
	if held == nil {
		t.Fatal("no session landed on EX1 in 40 tries")
	}
	defer held.close()

	start := time.Now()
	if err := e.smtp[0].SetMode(lab.ModeBackPressure); err != nil {
		t.Fatal(err)
	}
	// fall x interval + timeout, plus scheduling slack.
	st := e.waitFor("EX1 draining on the internet VIP", 2*500*time.Millisecond+400*time.Millisecond+3*time.Second,
		hasState(labnode.InternetVIP, "EX1", "draining", "452 4.3.1"))
	t.Logf("EX1 draining after %s: %s", time.Since(start).Round(time.Millisecond), stateOf(st, labnode.InternetVIP, "EX1"))
	if b, _ := labnode.Backend(st, labnode.RelayVIP, "EX1"); b.State != "up" {
		t.Fatalf("EX1 on the relay VIP (internal sender) is %s, want up", stateOf(st, labnode.RelayVIP, "EX1"))
	}
	if b, _ := labnode.Backend(st, labnode.InternetVIP, "EX1"); b.RingShare != 0 || !strings.Contains(b.LastReply, "452") {
		t.Fatalf("draining EX1: ring share %f, last reply %q", b.RingShare, b.LastReply)
	}

	before := e.sessionsFrom(client, labnode.InternetAddr)[0]
	e.send(client, labnode.InternetAddr, "sender@outside.example", 20)
	if after := e.sessionsFrom(client, labnode.InternetAddr)[0]; after != before {
		t.Fatalf("%d new sessions reached the draining backend", after-before)
	}
	// The open session finishes its message on EX1 (internal sender: medium
	// back pressure refuses external senders only).
	if err := held.sendMail("user@"+lab.DefaultInternalDomain, "postmaster@example.net"); err != nil {
		t.Fatalf("session open on the draining backend broke: %v", err)
	}

	e.smtp[0].SetMode(lab.ModeHealthy)
	e.waitFor("EX1 back up", 5*time.Second, hasState(labnode.InternetVIP, "EX1", "up", ""))
}

// TestSorryServer: with no usable backend the VIP's packets go to the LB's
// own stack, where the sorry server answers 421 so senders queue at once.
func TestSorryServer(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	e.waitAllUp()
	for _, s := range e.smtp {
		s.SetMode(lab.ModeDown)
	}
	e.waitFor("every backend down", 10*time.Second, func(st daemon.Status) bool {
		for _, b := range st.VIPs[0].Backends {
			if b.State != "down" {
				return false
			}
		}
		return true
	})
	line, err := readGreeting(e.lab.Clients[1], netip.AddrPortFrom(labnode.InternetAddr, 25))
	if err != nil {
		t.Fatal(err)
	}
	if line != daemon.SorryReply {
		t.Fatalf("client got %q, want %q", line, daemon.SorryReply)
	}
	for _, s := range e.smtp {
		s.SetMode(lab.ModeHealthy)
	}
	e.waitAllUp()
	e.send(e.lab.Clients[1], labnode.InternetAddr, "sender@outside.example", 3)
}

// TestVIPPathProbe: a backend without the VIP on its loopback answers SMTP
// on its own address but would black-hole balanced flows: it is down with
// a "VIP path" reason, and mail keeps flowing to the others.
func TestVIPPathProbe(t *testing.T) {
	e := newEnv(t, envOptions{backendsWithoutVIP: []int{1}})
	e.start()
	st := e.waitFor("EX2 down by the VIP-path probe", 10*time.Second, hasState(labnode.InternetVIP, "EX2", "down", "VIP path: no SYN-ACK"))
	t.Logf("EX2: %s", stateOf(st, labnode.InternetVIP, "EX2"))
	e.waitFor("EX1 and EX3 up", 10*time.Second, func(st daemon.Status) bool {
		a, _ := labnode.Backend(st, labnode.InternetVIP, "EX1")
		c, _ := labnode.Backend(st, labnode.InternetVIP, "EX3")
		return a.State == "up" && c.State == "up"
	})
	e.send(e.lab.Clients[0], labnode.InternetAddr, "sender@outside.example", 10)
}

// TestRestartKeepsDataPlane: stopping the daemon leaves XDP forwarding (an
// open session continues, new mail flows); a restart reuses the pins and
// the rings are never emptied; detach removes program, pins and address.
func TestRestartKeepsDataPlane(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	e.waitAllUp()
	client := e.lab.Clients[0]
	held, err := openSession(client, netip.AddrPortFrom(labnode.InternetAddr, 25))
	if err != nil {
		t.Fatal(err)
	}
	defer held.close()
	if err := e.node.Stop(); err != nil {
		t.Fatal(err)
	}
	e.send(client, labnode.InternetAddr, "sender@outside.example", 5) // no daemon: XDP alone
	if err := e.node.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	// Right after the restart, before any new probe round, the rings stand.
	st, err := e.node.Status(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !labnode.AllUp(st) {
		t.Fatalf("restart lost the backends' states: %+v", st.VIPs[0].Backends)
	}
	if err := held.sendMail("user@outside.example", "postmaster@example.net"); err != nil {
		t.Fatalf("session across the restart: %v", err)
	}
	if st.VIPs[0].NewFlows < 6 {
		t.Fatalf("counters did not survive the restart: %d new flows", st.VIPs[0].NewFlows)
	}
	e.node.Stop()
	out, err := e.node.Run("detach")
	if err != nil {
		t.Fatalf("detach: %v\n%s", err, out)
	}
	if _, err := os.Stat(e.node.Opts.PinPath); !os.IsNotExist(err) {
		t.Fatalf("pins left after detach: %v", err)
	}
	if _, err := readGreeting(client, netip.AddrPortFrom(labnode.InternetAddr, 25)); err == nil {
		t.Fatal("VIP still answered after detach")
	}
}

// TestReload: an invalid file changes nothing and is reported; a valid one
// removing a backend is applied.
func TestReload(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	e.waitAllUp()
	good, _ := os.ReadFile(e.node.Config)
	bad := strings.Replace(string(good), `name = "EX1"`+"\n", `name = "EX1"`+"\nbogus = 1\n", 1)
	os.WriteFile(e.node.Config, []byte(bad), 0o600)
	e.node.Signal(syscall.SIGHUP)
	st := e.waitFor("reload error in status", 5*time.Second, func(st daemon.Status) bool { return st.Node.ReloadError != "" })
	if !strings.Contains(st.Node.ReloadError, "bogus") || !labnode.AllUp(st) {
		t.Fatalf("reload error %q; all up %v", st.Node.ReloadError, labnode.AllUp(st))
	}
	// Drop EX3 from the internet VIP.
	fixed := strings.Replace(string(good), `{ name = "EX1" }, { name = "EX2" }, { name = "EX3" }`, `{ name = "EX1" }, { name = "EX2" }`, 1)
	if fixed == string(good) {
		t.Fatal("test config shape changed")
	}
	os.WriteFile(e.node.Config, []byte(fixed), 0o600)
	e.node.Signal(syscall.SIGHUP)
	// Gone from status is not enough: the ring without EX3 is swapped in by
	// the reconcile after the reload, and only then do EX1 and EX2 hold it all.
	e.waitFor("EX3 gone from the internet VIP and its ring", 5*time.Second, func(st daemon.Status) bool {
		_, ok := labnode.Backend(st, labnode.InternetVIP, "EX3")
		var share float64
		for _, v := range st.VIPs {
			if v.Name == labnode.InternetVIP {
				for _, b := range v.Backends {
					share += b.RingShare
				}
			}
		}
		return !ok && st.Node.ReloadError == "" && share > 0.999
	})
	before := e.sessionsFrom(e.lab.Clients[0], labnode.InternetAddr)[2]
	e.send(e.lab.Clients[0], labnode.InternetAddr, "sender@outside.example", 15)
	if after := e.sessionsFrom(e.lab.Clients[0], labnode.InternetAddr)[2]; after != before {
		t.Fatal("removed backend still got sessions")
	}

	// A VIP added by a reload, with no usable backend, gets the sorry
	// server's 421 like the VIPs present at start.
	late := fixed + fmt.Sprintf("\n[[backend]]\nname = \"GHOST\"\naddress = \"10.77.0.250\"\n\n[[vip]]\nname = \"late\"\naddress = %q\nports = [25]\nbackends = [{ name = \"GHOST\" }]\n", labnode.SpareAddr)
	os.WriteFile(e.node.Config, []byte(late), 0o600)
	e.node.Signal(syscall.SIGHUP)
	e.waitFor("the late VIP in status", 5*time.Second, func(st daemon.Status) bool {
		_, ok := labnode.Backend(st, "late", "GHOST")
		return ok && st.Node.ReloadError == ""
	})
	var line string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if line, _ = readGreeting(e.lab.Clients[0], netip.AddrPortFrom(labnode.SpareAddr, 25)); line == daemon.SorryReply {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if line != daemon.SorryReply {
		t.Fatalf("VIP added by reload: greeting %q, want the sorry server's %q", line, daemon.SorryReply)
	}
}

// TestAdminDrainPersists: `dsrlb drain` stops new sessions, survives a
// restart, and `dsrlb drain --wait` returns once the backend is idle.
func TestAdminDrainPersists(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.start()
	e.waitAllUp()
	if out, err := e.node.Run("drain", "EX2", "--vip", labnode.InternetVIP); err != nil {
		t.Fatalf("drain: %v\n%s", err, out)
	}
	e.waitFor("EX2 admin-drained", 3*time.Second, hasState(labnode.InternetVIP, "EX2", "draining", "admin drain"))
	e.node.Stop()
	if err := e.node.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.waitFor("EX2 still drained after restart", 5*time.Second, hasState(labnode.InternetVIP, "EX2", "draining", "admin drain"))
	out, err := e.node.Run("drain", "EX2", "--vip", labnode.InternetVIP, "--wait", "--idle", "1s", "--timeout", "20s")
	if err != nil || !strings.Contains(out, "idle") {
		t.Fatalf("drain --wait: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(e.node.Opts.Dir, "state", "admin.json")); err != nil {
		t.Fatal(err)
	}
	if out, err := e.node.Run("undrain", "EX2", "--vip", labnode.InternetVIP); err != nil {
		t.Fatalf("undrain: %v\n%s", err, out)
	}
	e.waitFor("EX2 up", 3*time.Second, hasState(labnode.InternetVIP, "EX2", "up", ""))
}
