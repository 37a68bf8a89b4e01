// Command demo is `make demo`: it builds a network-namespace lab (two
// clients, the LB, three simulated Exchange servers), runs the real dsrlb
// binary on it with a config shaped like the repo's lb.toml, sends mail,
// pushes one server into back pressure and back, and tears everything
// down. Run it as root from the repository root after `make build`.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dsrlb/dsrlb/internal/daemon"
	"github.com/dsrlb/dsrlb/internal/lab"
	"github.com/dsrlb/dsrlb/internal/labnode"
)

func main() {
	binary := flag.String("dsrlb", "bin/dsrlb", "the dsrlb binary")
	pause := flag.Bool("pause", false, "wait for Enter before tearing the lab down (to look at the web view and metrics)")
	flag.Parse()
	if err := run(*binary, *pause); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func run(binary string, pause bool) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root (network namespaces, XDP)")
	}
	bin, err := filepath.Abs(binary)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: %w (run `make build` first)", bin, err)
	}
	ctx := context.Background()

	step("Building the lab: a switch, the load balancer, two clients, three Exchange-like servers")
	l, err := lab.New(lab.Options{Prefix: "dsrdemo", VIPs: labnode.LabVIPs()})
	if err != nil {
		return err
	}
	defer func() {
		step("Tearing the lab down")
		l.Close()
		fmt.Println("    namespaces, links and pins removed")
	}()
	var servers []*lab.SMTPServer
	for i, b := range l.Backends {
		s, err := b.StartSMTP(nil)
		if err != nil {
			return err
		}
		servers = append(servers, s)
		fmt.Printf("    %s  %-12s MAC %s  VIPs on its loopback %v (arp_ignore=1, arp_announce=2)\n", labnode.BackendName(i), b.Addr4, b.MAC, b.LoopbackVIPs())
	}
	for _, c := range l.Clients {
		fmt.Printf("    client %-6s %s\n", c.Name, c.Addr4)
	}
	fmt.Printf("    load balancer %s on %s (MAC %s)\n", l.LB.Addr4, l.LB.IfName, l.LB.MAC)

	dir, err := os.MkdirTemp("", "dsrlb-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pins := fmt.Sprintf("/sys/fs/bpf/dsrlb-demo-%d", os.Getpid())
	node, err := labnode.New(l, labnode.Options{Binary: bin, Dir: dir, PinPath: pins, Metrics: "127.0.0.1:9425", Web: "127.0.0.1:9426",
		Interval: time.Second, Timeout: 800 * time.Millisecond})
	if err != nil {
		return err
	}
	defer func() {
		node.Stop()
		out, _ := node.Run("detach")
		fmt.Print(indent(out))
		os.RemoveAll(pins)
	}()

	step("The config (shaped like the repo's lb.toml): %s", node.Config)
	cfg, _ := os.ReadFile(node.Config)
	fmt.Print(indent(string(cfg)))

	step("Starting `dsrlb run` in the LB namespace: it attaches XDP, adds the VIPs, probes EHLO + MAIL FROM + RSET + QUIT")
	if err := node.Start(ctx); err != nil {
		return err
	}
	if _, err := node.WaitFor(ctx, 20*time.Second, "every backend up", labnode.AllUp); err != nil {
		return err
	}
	if err := showStatus(node); err != nil {
		return err
	}
	fmt.Printf("    live web view: http://127.0.0.1:9426/ inside the LB namespace (run with -pause to keep it up), e.g.\n")
	fmt.Printf("      nsenter --net=%s curl -s http://127.0.0.1:9426/api/series | head -c 300\n", l.LB.NetnsPath)
	fmt.Printf("    metrics:       nsenter --net=%s curl -s http://127.0.0.1:9425/metrics | grep dsrlb_backend\n", l.LB.NetnsPath)

	step("Sending 20 messages from each client to the internet VIP %s and 10 to the relay VIP %s", labnode.InternetAddr, labnode.RelayAddr)
	if err := sendAll(l, 20, 10); err != nil {
		return err
	}
	report(l, servers)

	step("Pushing EX1 into Exchange medium back pressure: MAIL FROM from outside senders gets 452 4.3.1")
	servers[0].SetMode(lab.ModeBackPressure)
	if _, err := node.WaitFor(ctx, 15*time.Second, "EX1 draining", func(st daemon.Status) bool {
		b, _ := labnode.Backend(st, labnode.InternetVIP, "EX1")
		return b.State == "draining"
	}); err != nil {
		return err
	}
	fmt.Println("    EX1 is draining for the internet VIP (probed with an external sender) and still up for the")
	fmt.Println("    relay VIP (probed with an internal sender): exactly how Exchange refuses outside mail first.")
	if err := showStatus(node); err != nil {
		return err
	}
	before := sessionsTo(servers[0], labnode.InternetAddr)
	step("Mail keeps flowing: 20 more messages per client to the internet VIP")
	if err := sendAll(l, 20, 0); err != nil {
		return err
	}
	fmt.Printf("    new internet-VIP sessions on EX1 while draining: %d\n", sessionsTo(servers[0], labnode.InternetAddr)-before)
	report(l, servers)

	step("EX1 recovers: after `rise` good probes it is back in the ring")
	servers[0].SetMode(lab.ModeHealthy)
	if _, err := node.WaitFor(ctx, 15*time.Second, "every backend up", labnode.AllUp); err != nil {
		return err
	}
	if err := showStatus(node); err != nil {
		return err
	}

	step("Patching EX2 without downtime: `dsrlb drain EX2 --wait` returns when it is idle")
	out, err := node.Run("drain", "EX2", "--wait", "--idle", "2s", "--timeout", "60s")
	fmt.Print(indent(out))
	if err != nil {
		return err
	}
	out, err = node.Run("undrain", "EX2")
	fmt.Print(indent(out))
	if err != nil {
		return err
	}

	if pause {
		step("Paused: the lab, dsrlb, the web view and metrics are live; press Enter to tear down")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	step("Stopping the daemon and detaching (`dsrlb detach` removes program, pins and VIP addresses)")
	return nil
}

func showStatus(node *labnode.Node) error {
	out, err := node.Run("status")
	fmt.Print(indent(out))
	return err
}

// sendAll sends n messages from each client to the internet VIP and m to the relay VIP.
func sendAll(l *lab.Lab, n, m int) error {
	for _, c := range l.Clients {
		for range n {
			if err := lab.SendMail(c, netip.AddrPortFrom(labnode.InternetAddr, 25), "sender@outside.example", "postmaster@example.net"); err != nil {
				return err
			}
		}
		for range m {
			if err := lab.SendMail(c, netip.AddrPortFrom(labnode.RelayAddr, 25), "app@"+lab.DefaultInternalDomain, "postmaster@example.net"); err != nil {
				return err
			}
		}
	}
	return nil
}

func sessionsTo(s *lab.SMTPServer, vip netip.Addr) int {
	n := 0
	for _, sess := range s.Sessions() {
		if sess.Local.Addr() == vip {
			n++
		}
	}
	return n
}

// report prints what each server saw: which client addresses, on which VIP.
func report(l *lab.Lab, servers []*lab.SMTPServer) {
	fmt.Println("    what each server logged (remote address = the real client, no source NAT):")
	for i, s := range servers {
		seen := map[string]int{}
		for _, sess := range s.Sessions() {
			if sess.Local.Addr() == l.Backends[i].Addr4 {
				continue // health probes from the LB
			}
			seen[fmt.Sprintf("%s -> %s", sess.Remote.Addr(), sess.Local.Addr())]++
		}
		var parts []string
		for k, v := range seen {
			parts = append(parts, fmt.Sprintf("%s x%d", k, v))
		}
		fmt.Printf("    %s: %s\n", labnode.BackendName(i), strings.Join(sorted(parts), "; "))
	}
}

func sorted(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
