package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dsrlb/dsrlb/internal/daemon"
	"github.com/dsrlb/dsrlb/internal/lab"
	"github.com/dsrlb/dsrlb/internal/labnode"
)

// DaemonResult are the control-plane measurements that need `dsrlb run`.
type DaemonResult struct {
	// Drain are the times from a backend's first 452 to its ring removal.
	Drain []time.Duration
	// Interval, Fall and Timeout of the probes during Drain.
	Interval, Timeout time.Duration
	Fall              int
	// RSSKiB is the daemon's resident set with VIPs x Backends pairs.
	RSSKiB       int
	VIPs, PerVIP int
	Reload       []time.Duration // SIGHUP to the reload being applied (big config)
}

// runDaemon builds dsrlb and measures it in a lab.
func runDaemon(p Params, logf func(string, ...any)) (*DaemonResult, error) {
	dir, err := os.MkdirTemp("", "dsrlb-bench-daemon-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := dir + "/dsrlb"
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/dsrlb").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/dsrlb: %v\n%s", err, out)
	}
	l, err := lab.New(lab.Options{Prefix: "dsrbd", VIPs: labnode.LabVIPs()})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	var servers []*lab.SMTPServer
	for _, b := range l.Backends {
		s, err := b.StartSMTP(nil)
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
	}
	pins := fmt.Sprintf("/sys/fs/bpf/dsrlb-bench-%d", os.Getpid())
	defer os.RemoveAll(pins)
	res := &DaemonResult{Interval: time.Second, Timeout: 800 * time.Millisecond, Fall: 2, VIPs: 100, PerVIP: 10}
	node, err := labnode.New(l, labnode.Options{Binary: bin, Dir: dir + "/node", PinPath: pins, Interval: res.Interval, Timeout: res.Timeout})
	if err != nil {
		return nil, err
	}
	defer func() { node.Stop(); node.Run("detach") }()
	ctx := context.Background()
	if err := node.Start(ctx); err != nil {
		return nil, err
	}
	if _, err := node.WaitFor(ctx, 20*time.Second, "all up", labnode.AllUp); err != nil {
		return nil, err
	}

	rounds := 3
	if p.Quick {
		rounds = 1
	}
	logf("daemon: first 452 to ring removal, %d rounds", rounds)
	for range rounds {
		start := time.Now()
		servers[0].SetMode(lab.ModeBackPressure)
		if _, err := node.WaitFor(ctx, 20*time.Second, "EX1 out of the ring", func(st daemon.Status) bool {
			b, _ := labnode.Backend(st, labnode.InternetVIP, "EX1")
			return b.RingShare == 0
		}); err != nil {
			return nil, err
		}
		res.Drain = append(res.Drain, time.Since(start))
		servers[0].SetMode(lab.ModeHealthy)
		if _, err := node.WaitFor(ctx, 20*time.Second, "all up", labnode.AllUp); err != nil {
			return nil, err
		}
	}

	logf("daemon: RSS with %d VIPs x %d backends", res.VIPs, res.PerVIP)
	node.Stop()
	node.Run("detach")
	if err := node.WriteConfig(bigConfig(res.VIPs, res.PerVIP, len(l.Backends), 0)); err != nil {
		return nil, err
	}
	if err := node.Start(ctx); err != nil {
		return nil, err
	}
	// 700 of the 1000 pairs time out (nobody answers): with 16 probes in
	// flight the first round takes about 700 x 0.8 s / 16 = 35 s.
	if _, err := node.WaitFor(ctx, 2*time.Minute, "every pair probed", func(st daemon.Status) bool {
		if len(st.VIPs) < res.VIPs {
			return false
		}
		for _, v := range st.VIPs {
			for _, b := range v.Backends {
				if b.CheckedAt == nil {
					return false
				}
			}
		}
		return true
	}); err != nil {
		return nil, err
	}
	time.Sleep(2 * res.Interval) // a few probe rounds in steady state
	res.RSSKiB = rssKiB(node.PID())

	logf("daemon: reload time")
	for i := range 5 {
		st, err := node.Status(ctx)
		if err != nil {
			return nil, err
		}
		before := st.Node.Reloads["success"]
		// Alternate between dropping the last VIP and putting it back.
		if err := node.WriteConfig(bigConfig(res.VIPs, res.PerVIP, len(l.Backends), (i+1)%2)); err != nil {
			return nil, err
		}
		start := time.Now()
		node.Signal(syscall.SIGHUP)
		if _, err := node.WaitFor(ctx, 20*time.Second, "reload applied", func(st daemon.Status) bool {
			return st.Node.Reloads["success"] > before
		}); err != nil {
			return nil, err
		}
		res.Reload = append(res.Reload, time.Since(start))
	}
	return res, nil
}

// bigConfig is the lab config plus vips VIPs each listing perVIP backends:
// the lab's real servers and unanswered addresses, dropping the last drop VIPs.
func bigConfig(vips, perVIP, real, drop int) string {
	var b strings.Builder
	var names []string
	for i := range perVIP {
		if i < real {
			names = append(names, fmt.Sprintf("{ name = %q }", labnode.BackendName(i)))
			continue
		}
		fmt.Fprintf(&b, "\n[[backend]]\nname = \"GHOST%d\"\naddress = \"10.77.0.%d\"\n", i, 200+i)
		names = append(names, fmt.Sprintf("{ name = \"GHOST%d\" }", i))
	}
	for v := range vips - drop {
		// The bulk VIPs are on no server's loopback: no VIP-path probe.
		fmt.Fprintf(&b, "\n[[vip]]\nname = \"bulk%d\"\naddress = \"198.51.100.%d\"\nports = [25]\nbackends = [%s]\n[vip.health]\nvip_path = false\n", v, 100+v, strings.Join(names, ", "))
	}
	return b.String()
}

// rssKiB reads VmRSS of pid.
func rssKiB(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// medianDuration returns the median of ds.
func medianDuration(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
