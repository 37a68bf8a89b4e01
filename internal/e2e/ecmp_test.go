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

// ecmpEnv is an ECMP lab with a dsrlb node and a BIRD on some of its
// balancers: nodes[i] runs on lab.LBs[i].
type ecmpEnv struct {
	t     *testing.T
	lab   *lab.ECMP
	nodes []*labnode.Node
	smtp  []*lab.SMTPServer
}

// newECMPEnv builds an ECMP lab with lbs balancers (the router peers with
// all of them) and prepares a node on the first nodes of them; start runs
// them. The others stay idle until addNode.
func newECMPEnv(t *testing.T, lbs, nodes int) *ecmpEnv {
	t.Helper()
	l, err := lab.NewECMP(lab.ECMPOptions{VIPs: labnode.LabVIPs(), Password: ecmpPassword, LBs: lbs})
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
	for range nodes {
		e.addNode()
	}
	return e
}

// addNode prepares a node on the next idle balancer: starts its BIRD
// (peering with the router, announcing nothing yet) and writes its lb.toml
// (the same as every other node's but for router_id). start runs it.
func (e *ecmpEnv) addNode() *labnode.Node {
	t, l, i := e.t, e.lab, len(e.nodes)
	t.Helper()
	if i >= len(l.LBs) {
		t.Fatalf("no idle balancer for node %d (the lab has %d)", i, len(l.LBs))
	}
	h := l.LBs[i]
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
	cleanupNode(t, n, pins, h.Name)
	e.nodes = append(e.nodes, n)
	return n
}

// start runs the given nodes and waits until each sees every backend up.
func (e *ecmpEnv) start(nodes ...int) {
	e.t.Helper()
	for _, i := range nodes {
		if err := e.nodes[i].Start(e.t.Context()); err != nil {
			e.t.Fatalf("node %d: %v", i, err)
		}
	}
	for _, i := range nodes {
		if _, err := e.nodes[i].WaitFor(e.t.Context(), 15*time.Second, "every backend up", labnode.AllUp); err != nil {
			e.t.Fatalf("node %d: %v", i, err)
		}
	}
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

// statuses returns each node's status.
func (e *ecmpEnv) statuses() []daemon.Status {
	e.t.Helper()
	out := make([]daemon.Status, len(e.nodes))
	for i, n := range e.nodes {
		st, err := n.Status(e.t.Context())
		if err != nil {
			e.t.Fatalf("node %d: %v", i, err)
		}
		out[i] = st
	}
	return out
}

// internetVIP returns the internet VIP's part of st.
func internetVIP(st daemon.Status) daemon.VIPStatus {
	for _, v := range st.VIPs {
		if v.Name == labnode.InternetVIP {
			return v
		}
	}
	return daemon.VIPStatus{}
}

// vipNewFlows returns each node's new-flow count for the internet VIP.
func (e *ecmpEnv) vipNewFlows() []uint64 {
	e.t.Helper()
	var out []uint64
	for _, st := range e.statuses() {
		out = append(out, internetVIP(st).NewFlows)
	}
	return out
}

// sendMails sends n messages to the internet VIP, from the clients in turn
// (each from a new source port).
func (e *ecmpEnv) sendMails(n int) {
	e.t.Helper()
	for i := range n {
		c := e.lab.Clients[i%len(e.lab.Clients)]
		if err := lab.SendMail(c, netip.AddrPortFrom(labnode.InternetAddr, 25), "sender@outside.example", "postmaster@example.net"); err != nil {
			e.t.Fatalf("session %d: %v", i, err)
		}
	}
}

// backendOf returns the backend that has a session from local, -1 if none.
func (e *ecmpEnv) backendOf(local netip.AddrPort) int {
	for i, s := range e.smtp {
		for _, sess := range s.Sessions() {
			if sess.Remote == local {
				return i
			}
		}
	}
	return -1
}

// checkWhole fails the test unless backend alone saw the session from local,
// and saw all of it: EHLO first, then one message from -> to, then QUIT.
func (e *ecmpEnv) checkWhole(local netip.AddrPort, backend int, from, to string) {
	e.t.Helper()
	var sess *lab.Session
	for i, s := range e.smtp {
		for _, got := range s.Sessions() {
			switch {
			case got.Remote != local:
			case i == backend:
				sess = &got
			default:
				e.t.Errorf("EX%d also saw the session from %s: it moved to another backend", i+1, local)
			}
		}
	}
	if sess == nil || sess.Messages != 1 {
		e.t.Errorf("backend EX%d: session from %s is %+v, want one message", backend+1, local, sess)
		return
	}
	cmds := strings.Join(sess.Commands, " | ")
	for _, want := range []string{"EHLO", "MAIL FROM:<" + from + ">", "RCPT TO:<" + to + ">", "DATA", "QUIT"} {
		if !strings.Contains(cmds, want) {
			e.t.Errorf("backend EX%d did not see %q of the session from %s: %s", backend+1, want, local, cmds)
		}
	}
	if !strings.HasPrefix(cmds, "EHLO") {
		e.t.Errorf("the session from %s is not whole on EX%d: %s", local, backend+1, cmds)
	}
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
	e := newECMPEnv(t, 2, 2)
	e.start(0, 1)
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
	e.sendMails(sessions)
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
	backend := e.backendOf(held.local)
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
	e.checkWhole(held.local, backend, "user@outside.example", "postmaster@example.net")
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

// TestECMPNodeJoins: a third node joining moves some flows and breaks
// none. Sessions held open through two nodes are finished after a third
// node (its BIRD and dsrlb) has joined and the router hashes over three
// paths: every one completes its message on the backend it started on,
// whichever node its packets now reach, and some of them (and new
// sessions) now reach the third node.
func TestECMPNodeJoins(t *testing.T) {
	e := newECMPEnv(t, 3, 2)
	e.start(0, 1)
	e.waitPaths(labnode.InternetAddr, []int{0, 1}, 20*time.Second)

	// Hold sessions open (after EHLO) from many source ports. Going from
	// two paths to three moves about a third of the flows to the new node,
	// so 24 sessions all staying put is a (2/3)^24 chance.
	const heldN = 24
	vip := netip.AddrPortFrom(labnode.InternetAddr, 25)
	var held []*heldSession
	t.Cleanup(func() {
		for _, h := range held {
			h.close()
		}
	})
	for i := range heldN {
		h, err := openSession(e.lab.Clients[i%len(e.lab.Clients)], vip)
		if err != nil {
			t.Fatalf("held session %d: %v", i, err)
		}
		held = append(held, h)
	}
	backends := make([]int, heldN)
	for i, h := range held {
		if backends[i] = e.backendOf(h.local); backends[i] < 0 {
			t.Fatalf("no backend has held session %s", h.local)
		}
	}
	t.Logf("%d sessions held, new flows per node %v", heldN, e.vipNewFlows())

	// The third node joins: its BIRD peers with the router, dsrlb probes
	// the backends and announces the VIPs once they are up.
	joining := time.Now()
	e.addNode()
	e.start(2)
	e.waitPaths(labnode.InternetAddr, []int{0, 1, 2}, 20*time.Second)
	t.Logf("three paths %s after the third node started", time.Since(joining).Round(100*time.Millisecond))

	// Every held session completes on its backend.
	const from, to = "joined@outside.example", "postmaster@example.net"
	for i, h := range held {
		if err := h.sendMail(from, to); err != nil {
			t.Errorf("held session %d (%s, EX%d) broke when the third node joined: %v", i, h.local, backends[i]+1, err)
			continue
		}
		e.checkWhole(h.local, backends[i], from, to)
	}
	var misses []uint64
	for _, st := range e.statuses() {
		misses = append(misses, st.Node.Counters.NonSYNMiss)
	}
	t.Logf("flows taken over mid-stream (non_syn_miss) per node: %v", misses)
	if misses[2] == 0 {
		t.Errorf("none of %d held flows moved to the third node (non_syn_miss per node %v)", heldN, misses)
	}

	// New sessions reach the third node too.
	before := e.vipNewFlows()
	const sessions = 30
	e.sendMails(sessions)
	after := e.vipNewFlows()
	t.Logf("new flows per node: %v -> %v", before, after)
	if after[2] == before[2] {
		t.Errorf("the third node got none of %d new sessions (new flows per node %v -> %v)", sessions, before, after)
	}
}

// TestECMPNodeWithoutBackends: a node that sees every backend down (here
// node 1 alone: unreachable routes in its namespace make its probes fail
// while node 0 still reaches the backends) withdraws the VIPs; the router
// drops its path, new sessions all go to node 0 and mail still flows. When
// node 1 reaches its backends again it announces the VIPs again.
func TestECMPNodeWithoutBackends(t *testing.T) {
	e := newECMPEnv(t, 2, 2)
	e.start(0, 1)
	both := []int{0, 1}
	e.waitPaths(labnode.InternetAddr, both, 20*time.Second)

	// While both nodes announce, sessions reach both.
	const sessions = 20
	start := e.statuses()
	e.sendMails(sessions)
	before := e.statuses()
	for i := range e.nodes {
		if internetVIP(before[i]).Packets == internetVIP(start[i]).Packets {
			t.Fatalf("node %d got no packet of %d sessions while both announce: %+v -> %+v, node counters %+v", i, sessions, internetVIP(start[i]), internetVIP(before[i]), before[i].Node.Counters)
		}
	}

	var addrs []netip.Addr
	for _, b := range e.lab.Backends {
		addrs = append(addrs, b.Addr4)
	}
	if err := e.lab.LBs[1].SetUnreachable(true, addrs...); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	if _, err := e.nodes[1].WaitFor(t.Context(), 10*time.Second, "every backend down on node 1", labnode.AllDown); err != nil {
		t.Fatal(err)
	}
	for _, vip := range []netip.Addr{labnode.InternetAddr, labnode.RelayAddr, labnode.SpareAddr} {
		e.waitPaths(vip, []int{0}, 10*time.Second)
	}
	t.Logf("router dropped node 1 %s after its backends became unreachable", time.Since(cut).Round(100*time.Millisecond))
	route, err := e.lab.RouterBIRD.Birdc("show", "route", "for", labnode.InternetAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(route, "via "+lab.LBAddr(0).String()) || strings.Contains(route, lab.LBAddr(1).String()) {
		t.Fatalf("router's BIRD route to %s should go via node 0 alone:\n%s", labnode.InternetAddr, route)
	}
	if st := e.statuses()[0]; !labnode.AllUp(st) {
		t.Fatalf("node 0 lost backends too: %+v", internetVIP(st).Backends)
	}
	if st := e.statuses()[1]; st.Node.BGP == nil || len(st.Node.BGP.Announced) != 0 {
		t.Fatalf("node 1 still announces %+v", st.Node.BGP)
	}

	// New sessions: mail flows, all through node 0; node 1 sees none of it.
	before = e.statuses()
	e.sendMails(sessions)
	after := e.statuses()
	if b, a := internetVIP(before[1]).Packets, internetVIP(after[1]).Packets; a != b {
		t.Errorf("node 1 withdrew the VIP but still got %d of its packets", a-b)
	}
	if b, a := internetVIP(before[0]).NewFlows, internetVIP(after[0]).NewFlows; a-b < sessions {
		t.Errorf("node 0 counted %d new flows for %d sessions", a-b, sessions)
	}

	// Node 1 reaches its backends again: it announces again.
	if err := e.lab.LBs[1].SetUnreachable(false, addrs...); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	if _, err := e.nodes[1].WaitFor(t.Context(), 15*time.Second, "every backend up again on node 1", labnode.AllUp); err != nil {
		t.Fatal(err)
	}
	e.waitPaths(labnode.InternetAddr, both, 15*time.Second)
	t.Logf("router has node 1 again %s after it reached its backends", time.Since(healed).Round(100*time.Millisecond))
}
