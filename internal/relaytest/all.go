package relaytest

import (
	"context"
	"net/netip"
	"sync"

	"github.com/dsrlb/dsrlb/internal/config"
)

// Target is one address `relay-test --all` checks.
type Target struct {
	// Name says what the address is, e.g. `vip internet` or `backend EX1`.
	Name string
	// Addr is the address and port tested.
	Addr netip.AddrPort
}

// Targets lists what `relay-test --all` checks in cfg: every VIP on each of
// its ports (the path outside senders take), then every backend's own
// address on smtpPort (normally 25) and on each port of the VIPs that list
// it (a real server must refuse to relay when reached directly, too: with
// DSR it sees the client's own address, not the balancer's). Duplicates
// within one VIP or one backend are dropped; order follows lb.toml.
func Targets(cfg *config.Config, smtpPort uint16) []Target {
	var out []Target
	for _, v := range cfg.VIPs {
		seen := map[uint16]bool{}
		for _, p := range v.Ports {
			if !seen[p] {
				seen[p] = true
				out = append(out, Target{Name: "vip " + v.Name, Addr: netip.AddrPortFrom(v.Address, p)})
			}
		}
	}
	for _, b := range cfg.Backends {
		ports := []uint16{smtpPort}
		seen := map[uint16]bool{smtpPort: true}
		for _, v := range cfg.VIPs {
			if !vipLists(v, b.Name) {
				continue
			}
			for _, p := range v.Ports {
				if !seen[p] {
					seen[p] = true
					ports = append(ports, p)
				}
			}
		}
		for _, p := range ports {
			out = append(out, Target{Name: "backend " + b.Name, Addr: netip.AddrPortFrom(b.Address, p)})
		}
	}
	return out
}

// vipLists reports whether v lists the backend named name.
func vipLists(v config.VIP, name string) bool {
	for _, vb := range v.Backends {
		if vb.Name == name {
			return true
		}
	}
	return false
}

// maxParallel bounds how many targets All tests at once.
const maxParallel = 8

// All tests every target of Targets(cfg, smtpPort), a few at a time, and
// returns the results in the same order as the targets, with the worst
// outcome (Open if any target is open).
func All(ctx context.Context, cfg *config.Config, smtpPort uint16, opts Options) ([]Target, []Result, Outcome) {
	targets := Targets(cfg, smtpPort)
	results := make([]Result, len(targets))
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = Test(ctx, t.Addr.String(), opts)
		}()
	}
	wg.Wait()
	worst := Closed
	for _, r := range results {
		worst = Worse(worst, r.Outcome)
	}
	return targets, results, worst
}
