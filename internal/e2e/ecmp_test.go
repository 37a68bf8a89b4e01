package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsrlb/dsrlb/internal/bgp"
	"github.com/dsrlb/dsrlb/internal/daemon"
	"github.com/dsrlb/dsrlb/internal/lab"
	"github.com/dsrlb/dsrlb/internal/labnode"
)

// ecmpPassword is the TCP MD5 password of the lab's BGP sessions.
const ecmpPassword = "e2e s3cret"

// soloVIP has EX3 as its only backend: the test takes EX3 down to empty its
// ring and see the VIP withdrawn.
const soloVIP = "solo"

// ecmpEnv is an ECMP lab with a dsrlb node and a BIRD on each balancer.
type ecmpEnv struct {
	t     *testing.T
	lab   *lab.ECMP
	nodes []*labnode.Node
	smtp  []*lab.SMTPServer
}

func newECMPEnv(t *testing.T) *ecmpEnv {
	t.Helper()
	l, err := lab.NewECMP(lab.ECMPOptions{VIPs: labnode.LabVIPs(), Password: ecmpPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e := &ecmpEnv{t: t, lab: l}
	for _, b := range l.Backends {
		s, err := b.StartSMTP(nil)
		if err != nil {
			t.Fatal(err)
		}
		e.smtp = append(e.smtp, s)
	}
	for i, h := range l.LBs {
		dir := t.TempDir()
		include := filepath.Join(dir, "dsrlb-bird.conf")
		if err := os.WriteFile(include, nil, 0o640); err != nil {
			t.Fatal(err)
		}
		birdConf, err := bgp.NodeConfig(lab.LBAddr(i), include)
		if err != nil {
			t.Fatal(err)
		}
		bird, err := h.StartBIRD(dir, birdConf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("BIRD of %s:\n%s", h.Name, bird.Log())
			}
			bird.Stop()
		})
		pins := fmt.Sprintf("/sys/fs/bpf/dsrlb-e2e-%d-%d", os.Getpid(), envSeq.Add(1))
		n, err := labnode.New(l.Lab, labnode.Options{Binary: binary, Dir: dir, PinPath: pins, XDPMode: "generic",
			Interval: 500 * time.Millisecond, Timeout: 400 * time.Millisecond, Host: h, RunArgs: []string{"--withdraw-on-exit"}})
		if err != nil {
			t.Fatal(err)
		}
		extra := fmt.Sprintf(`
[[vip]]
name = %q
address = %q
backends = [{ name = "EX3" }]
bgp_communities = ["65001:27", "65001:1:27"]
bgp_med = 5

[bgp]
local_as = %d
router_id = %q
hold_time = "3s"
bird_socket = %q
bird_config = %q

[[bgp.peer]]
address = %q
as = %d
password = %q
`, soloVIP, labnode.SpareAddr, l.Opts.NodeAS, lab.LBAddr(i), bird.Socket, include, lab.RouterAddr, l.Opts.RouterAS, ecmpPassword)
		if err := n.WriteConfig(extra); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			n.Stop()
			if out, err := n.Run("detach"); err != nil {
				t.Logf("detach: %v\n%s", err, out)
			}
			os.RemoveAll(pins)
			if t.Failed() {
				t.Logf("dsrlb logs of %s:\n%s", h.Name, n.Logs())
			}
		})
		e.nodes = append(e.nodes, n)
	}
	return e
}

// waitPaths waits until the router's kernel route to vip goes through
// exactly the balancers in lbs (none: no route).
func (e *ecmpEnv) waitPaths(vip netip.Addr, lbs []int, timeout time.Duration) {
	e.t.Helper()
	var want []netip.Addr
	for _, i := range lbs {
		want = append(want, lab.LBAddr(i))
	}
	deadline := time.Now().Add(timeout)
	for {
		got, err := e.lab.NextHops(vip)
		if err == nil && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			out, _ := e.lab.RouterBIRD.Birdc("show", "route", "all")
			e.t.Fatalf("router's paths to %s = %v (%v), want %v\nrouter's BIRD routes:\n%s", vip, got, err, want, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// vipNewFlows returns each node's new-flow count for the internet VIP.
func (e *ecmpEnv) vipNewFlows() []uint64 {
	e.t.Helper()
	out := make([]uint64, len(e.nodes))
	for i, n := range e.nodes {
		st, err := n.Status(e.t.Context())
		if err != nil {
			e.t.Fatal(err)
		}
		for _, v := range st.VIPs {
			if v.Name == labnode.InternetVIP {
				out[i] = v.NewFlows
			}
		}
	}
	return out
}

// TestECMPFailover: two dsrlb nodes behind a BIRD router doing ECMP, each
// announcing the VIPs over BGP (MD5) through its own BIRD. Sessions spread
// over both nodes; a VIP without a usable backend is withdrawn and comes
// back with its backend; an SMTP session held open through one node
// survives that node's loss (its link cut: the router drops it after the
// hold time and the other node, hashing with the same seed over the same
// Maglev table, picks the same backend) and completes a message; a node
// stopping with --withdraw-on-exit withdraws its routes.
func TestECMPFailover(t *testing.T) {
	e := newECMPEnv(t)
	for _, n := range e.nodes {
		if err := n.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range e.nodes {
		if _, err := n.WaitFor(t.Context(), 15*time.Second, "every backend up", labnode.AllUp); err != nil {
			t.Fatal(err)
		}
	}
	both := []int{0, 1}
	for _, vip := range []netip.Addr{labnode.InternetAddr, labnode.RelayAddr, labnode.SpareAddr} {
		e.waitPaths(vip, both, 20*time.Second)
	}

	// Each node reports its session Established and what it announces; the
	// status (with its bgp object) still matches the schema.
	for i, n := range e.nodes {
		st, err := n.WaitFor(t.Context(), 10*time.Second, "BGP session Established", func(st daemon.Status) bool {
			return st.Node.BGP != nil && len(st.Node.BGP.Peers) == 1 && st.Node.BGP.Peers[0].State == "Established"
		})
		if err != nil {
			t.Fatal(err)
		}
		b := st.Node.BGP
		if want := []string{"198.51.100.25/32", "198.51.100.26/32", "198.51.100.27/32"}; !slices.Equal(b.Announced, want) || b.Error != "" {
			t.Fatalf("node %d announces %v (error %q), want %v", i, b.Announced, b.Error, want)
		}
		out, err := n.Run("status", "--json")
		if err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		var v any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatal(err)
		}
		if err := validate(loadSchema(t), v, "$"); err != nil {
			t.Fatalf("status --json with BGP breaks the contract: %v\n%s", err, out)
		}
		if table, _ := n.Run("status"); !strings.Contains(table, "BGP: announcing 198.51.100.25/32") || !strings.Contains(table, "(AS 65000) Established") {
			t.Errorf("status table lacks the BGP line:\n%s", table)
		}
	}
	// The per-VIP communities and MED reach the router.
	route, err := e.lab.RouterBIRD.Birdc("show", "route", "for", labnode.SpareAddr.String(), "all")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"BGP.med: 5", "(65001,27)", "(65001, 1, 27)"} {
		if !strings.Contains(route, want) {
			t.Errorf("router's route to the solo VIP lacks %q:\n%s", want, route)
		}
	}

	// Sessions from many source ports spread over both nodes.
	before := e.vipNewFlows()
	const sessions = 40
	for i := range sessions {
		c := e.lab.Clients[i%len(e.lab.Clients)]
		if err := lab.SendMail(c, netip.AddrPortFrom(labnode.InternetAddr, 25), "sender@outside.example", "postmaster@example.net"); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	after := e.vipNewFlows()
	var total uint64
	for i := range after {
		d := after[i] - before[i]
		total += d
		if d == 0 {
			t.Fatalf("node %d got none of %d sessions (new flows per node %v -> %v): ECMP does not spread", i, sessions, before, after)
		}
	}
	t.Logf("new flows per node: %v -> %v", before, after)
	if total < sessions {
		t.Fatalf("nodes counted %d new flows for %d sessions", total, sessions)
	}

	// A VIP whose only backend goes down is withdrawn by both nodes, and
	// announced again when the backend returns.
	e.smtp[2].SetMode(lab.ModeDown)
	e.waitPaths(labnode.SpareAddr, nil, 15*time.Second)
	if out, _ := e.lab.RouterBIRD.Birdc("show", "route", "for", labnode.SpareAddr.String()); strings.Contains(out, "198.51.100.27/32") {
		t.Fatalf("router's BIRD still has the solo VIP:\n%s", out)
	}
	e.waitPaths(labnode.InternetAddr, both, time.Second) // the others stay
	e.smtp[2].SetMode(lab.ModeHealthy)
	e.waitPaths(labnode.SpareAddr, both, 15*time.Second)
	for _, n := range e.nodes {
		if _, err := n.WaitFor(t.Context(), 10*time.Second, "every backend up again", labnode.AllUp); err != nil {
			t.Fatal(err)
		}
	}

	// Hold a session open and find the node carrying it.
	client := e.lab.Clients[0]
	flows := e.vipNewFlows()
	held, err := openSession(client, netip.AddrPortFrom(labnode.InternetAddr, 25))
	if err != nil {
		t.Fatal(err)
	}
	defer held.close()
	carrier := -1
	for i, f := range e.vipNewFlows() {
		if f > flows[i] {
			carrier = i
		}
	}
	if carrier < 0 {
		t.Fatal("no node counted the held session")
	}
	survivor := 1 - carrier
	backend := -1
	for i := range e.smtp {
		for _, s := range e.smtp[i].Sessions() {
			if s.Remote == held.local {
				backend = i
			}
		}
	}
	if backend < 0 {
		t.Fatal("no backend has the held session")
	}
	t.Logf("held session %s: node %d, backend EX%d", held.local, carrier, backend+1)
	st, err := e.nodes[survivor].Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	missesBefore := st.Node.Counters.NonSYNMiss

	// Cut the carrier's link: after the hold time the router sends
	// everything to the survivor.
	cut := time.Now()
	if err := e.lab.LBs[carrier].SetLinkUp(false); err != nil {
		t.Fatal(err)
	}
	e.waitPaths(labnode.InternetAddr, []int{survivor}, 10*time.Second)
	t.Logf("router dropped node %d after %s", carrier, time.Since(cut).Round(100*time.Millisecond))

	if err := held.sendMail("user@outside.example", "postmaster@example.net"); err != nil {
		t.Fatalf("the held session broke when its node went away: %v", err)
	}
	var sess *lab.Session
	for _, s := range e.smtp[backend].Sessions() {
		if s.Remote == held.local {
			sess = &s
		}
	}
	if sess == nil || sess.Messages != 1 {
		t.Fatalf("backend EX%d: session %+v, want one message", backend+1, sess)
	}
	cmds := strings.Join(sess.Commands, " | ")
	for _, want := range []string{"EHLO", "MAIL FROM:<user@outside.example>", "RCPT TO:<postmaster@example.net>", "DATA", "QUIT"} {
		if !strings.Contains(cmds, want) {
			t.Errorf("backend EX%d did not see %q of the held session: %s", backend+1, want, cmds)
		}
	}
	if !strings.HasPrefix(cmds, "EHLO") {
		t.Errorf("the held session's conversation is not whole on EX%d: %s", backend+1, cmds)
	}
	for i := range e.smtp {
		for _, s := range e.smtp[i].Sessions() {
			if i != backend && s.Remote == held.local {
				t.Errorf("EX%d also saw the held session", i+1)
			}
		}
	}
	st, err = e.nodes[survivor].Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Node.Counters.NonSYNMiss <= missesBefore {
		t.Errorf("the survivor did not take the flow over mid-stream (non_syn_miss %d -> %d)", missesBefore, st.Node.Counters.NonSYNMiss)
	}

	// The survivor stops with --withdraw-on-exit: the VIP has no path left.
	if err := e.nodes[survivor].Stop(); err != nil {
		t.Fatal(err)
	}
	e.waitPaths(labnode.InternetAddr, nil, 5*time.Second)
	if !strings.Contains(e.nodes[survivor].Logs(), "every VIP withdrawn") {
		t.Errorf("no withdraw log line:\n%s", e.nodes[survivor].Logs())
	}
}
