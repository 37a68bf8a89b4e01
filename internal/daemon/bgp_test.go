package daemon

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dsrlb/dsrlb/internal/bgp"
	"github.com/dsrlb/dsrlb/internal/config"
)

// fakeBirdc writes a birdc stand-in that logs its arguments and answers
// like BIRD (reply is printed after the welcome line; exit code rc).
func fakeBirdc(t *testing.T, dir, reply string, rc int) (path, log string) {
	path, log = filepath.Join(dir, "birdc"), filepath.Join(dir, "birdc.log")
	script := "#!/bin/sh\necho \"$*\" >> " + log + "\necho '0001 BIRD 2.0.12 ready.'\nprintf '%s\\n' '" + reply + "'\nexit " +
		string(rune('0'+rc)) + "\n"
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return path, log
}

func bgpTestConfig(dir string) *config.Config {
	vip := func(name, addr string) config.VIP { return config.VIP{Name: name, Address: netip.MustParseAddr(addr)} }
	return &config.Config{
		VIPs: []config.VIP{vip("internet", "198.51.100.25"), vip("relay", "198.51.100.26"), vip("solo", "198.51.100.27")},
		BGP: &config.BGP{LocalAS: 65001, RouterID: netip.MustParseAddr("10.77.0.2"), HoldTime: 3 * time.Second,
			BirdSocket: filepath.Join(dir, "bird.ctl"), BirdConfig: filepath.Join(dir, "dsrlb.conf"),
			Peers: []config.BGPPeer{{Address: netip.MustParseAddr("10.77.0.1"), AS: 65000}}},
	}
}

// TestAnnounceVIPsKeepsUndecided: VIPs with a ring are announced, VIPs
// whose ring is empty are withdrawn, and a VIP still waiting for its first
// probe round keeps what the file of a previous daemon announced, so a
// restart does not withdraw and re-announce it.
func TestAnnounceVIPsKeepsUndecided(t *testing.T) {
	dir := t.TempDir()
	cfg := bgpTestConfig(dir)
	// A previous daemon announced internet and relay.
	prev, err := bgp.Render(*cfg.BGP, cfg.VIPs, []string{"internet", "relay"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.BGP.BirdConfig, []byte(prev), 0o640); err != nil {
		t.Fatal(err)
	}
	birdc, log := fakeBirdc(t, dir, "0003 Reconfigured", 0)
	d := &Daemon{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), vips: map[string]*vipState{
		"internet": {cfg: cfg.VIPs[0]},                                                                         // first round not done
		"relay":    {cfg: cfg.VIPs[1], ringApplied: true},                                                      // no usable backend
		"solo":     {cfg: cfg.VIPs[2], ringApplied: true, ringKey: "1:100,", shares: map[uint32]float64{1: 1}}, // ring
	}}
	d.bgp.opts = bgp.Options{Birdc: birdc}
	d.announceVIPs()
	ann, names, _ := d.bgp.prepare(d.log)
	if !slices.Equal(names, []string{"internet", "solo"}) {
		t.Fatalf("names = %v, want [internet solo]", names)
	}
	d.bgp.apply(ann, names, d.log)
	text, _ := os.ReadFile(cfg.BGP.BirdConfig)
	if !strings.Contains(string(text), "route 198.51.100.25/32") || strings.Contains(string(text), "route 198.51.100.26/32") ||
		!strings.Contains(string(text), "route 198.51.100.27/32") {
		t.Fatalf("file:\n%s", text)
	}
	st := d.bgpStatus()
	if !slices.Equal(st.Announced, []string{"198.51.100.25/32", "198.51.100.27/32"}) || !slices.Equal(st.AnnouncedVIPs, []string{"internet", "solo"}) ||
		st.Error != "" || len(st.Peers) != 1 || st.Peers[0].State != "unknown" {
		t.Fatalf("status = %+v", st)
	}
	calls, _ := os.ReadFile(log)
	if strings.Count(string(calls), "configure") != 1 {
		t.Fatalf("birdc calls:\n%s", calls)
	}

	// The first round ends with no usable backend: internet is withdrawn.
	d.vips["internet"].ringApplied = true
	d.announceVIPs()
	ann, names, _ = d.bgp.prepare(d.log)
	if !slices.Equal(names, []string{"solo"}) {
		t.Fatalf("names = %v, want [solo]", names)
	}
	d.bgp.apply(ann, names, d.log)
	if got := d.bgpStatus().Announced; !slices.Equal(got, []string{"198.51.100.27/32"}) {
		t.Fatalf("announced = %v", got)
	}

	// Without [bgp] there is no BGP status.
	d.cfg = &config.Config{VIPs: cfg.VIPs}
	if d.bgpStatus() != nil {
		t.Fatal("BGP status without [bgp]")
	}
}

// TestWithdrawOnDetach: detach withdraws every VIP; a BIRD that is not
// running is no error (the file it will read announces nothing).
func TestWithdrawOnDetach(t *testing.T) {
	dir := t.TempDir()
	cfg := bgpTestConfig(dir)
	done, errs := withdrawOnDetach(cfg, nil, nil)
	if len(errs) != 0 || len(done) != 1 || !strings.Contains(done[0], "BIRD is not running") {
		t.Fatalf("done %v errs %v", done, errs)
	}
	text, _ := os.ReadFile(cfg.BGP.BirdConfig)
	if strings.Contains(string(text), "blackhole") || !strings.Contains(string(text), "protocol bgp dsrlb_peer_10_77_0_1") {
		t.Fatalf("file after detach:\n%s", text)
	}
	if done, errs := withdrawOnDetach(&config.Config{}, nil, nil); done != nil || errs != nil {
		t.Fatalf("without [bgp]: %v %v", done, errs)
	}
}
