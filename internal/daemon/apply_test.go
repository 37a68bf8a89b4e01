package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsrlb/dsrlb/internal/config"
	"github.com/dsrlb/dsrlb/internal/health"
	"github.com/dsrlb/dsrlb/internal/maps"
	"github.com/dsrlb/dsrlb/internal/netif"
)

// applyTestConfig is a config on the loopback interface; backends names
// the internet VIP's backends.
func applyTestConfig(dir, backends string) string {
	return `[lb]
interface = "lo"
manage_vip_addresses = false
ring_size = 251
flow_table_size = 1024
pin_path = "` + filepath.Join(dir, "pins") + `"
state_dir = "` + filepath.Join(dir, "state") + `"
api_socket = "` + filepath.Join(dir, "api.sock") + `"
metrics_listen = ""

[health]
interval = "1h"
vip_path = false

[[backend]]
name = "EX1"
address = "192.0.2.11"

[[backend]]
name = "EX2"
address = "192.0.2.12"

[[backend]]
name = "EX3"
address = "192.0.2.13"

[[vip]]
name = "internet"
address = "198.51.100.25"
ports = [25]
backends = [` + backends + `]
`
}

// newApplyDaemon is a daemon with an unpinned data plane and no XDP
// attached, enough to run apply and reload. It needs root (BPF maps).
func newApplyDaemon(t *testing.T, backends string) *Daemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create BPF maps")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "lb.toml")
	if err := os.WriteFile(path, []byte(applyTestConfig(dir, backends)), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := New(path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if d.dp, err = maps.Load(maps.Options{RingSize: d.cfg.LB.RingSize, FlowTableSize: d.cfg.LB.FlowTableSize}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.dp.Close() })
	// Loopback has no MAC and nothing is attached: a name and index do.
	d.link = netif.Link{Name: "lo", Index: 1, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	d.state, d.admin, _ = loadState(d.cfg.LB.StateDir)
	os.MkdirAll(d.cfg.LB.StateDir, 0o700)
	d.vipIDs = maps.NewIDAllocator(0, maps.MaxVIPs)
	d.realID = maps.NewIDAllocator(1, 3) // room for two pairs only
	ctx, cancel := context.WithCancel(context.Background())
	d.checker = health.NewChecker(ctx, health.CheckerOptions{Logger: d.log})
	t.Cleanup(func() { cancel(); d.checker.Stop() })
	d.neigh = netif.NewNeighbors(d.link, d.log)
	if err := d.apply(d.cfg); err != nil {
		t.Fatal(err)
	}
	if err := d.reconcile(); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReloadThatCannotBeAppliedKeepsVIP: a valid reload that cannot get
// the ids it needs (here: a third pair with room for two) leaves the VIP
// serving as before, with its pairs and map entry, and is reported as a
// failed reload in status, not counted as a success.
func TestReloadThatCannotBeAppliedKeepsVIP(t *testing.T) {
	d := newApplyDaemon(t, `{ name = "EX1" }, { name = "EX2" }`)
	before := map[string]uint32{}
	for name, rs := range d.vips["internet"].reals {
		before[name] = rs.id
	}
	if len(before) != 2 {
		t.Fatalf("pairs before the reload: %v", before)
	}
	grown := applyTestConfig(filepath.Dir(d.cfgPath), `{ name = "EX1" }, { name = "EX2" }, { name = "EX3" }`)
	if err := os.WriteFile(d.cfgPath, []byte(grown), 0o600); err != nil {
		t.Fatal(err)
	}
	d.reload("test")

	vs := d.vips["internet"]
	if vs == nil {
		t.Fatal("the VIP was torn down by a reload that could not be applied")
	}
	for name, id := range before {
		rs := vs.reals[name]
		if rs == nil || rs.id != id {
			t.Fatalf("pair %s: was id %d, now %+v", name, id, rs)
		}
		if got := d.state.RealIDs[pairKey("internet", name)]; got != id {
			t.Fatalf("state.json loses pair %s: id %d, want %d", name, got, id)
		}
		if r, err := d.dp.Real(id); err != nil || r.State == maps.RealUnused {
			t.Fatalf("pair %s (id %d) released in the kernel: %+v %v", name, id, r, err)
		}
	}
	entries, err := d.dp.VIPs()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("the VIP's map entry was deleted")
	}
	st, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.Node.ReloadError, "EX3") || st.Node.Reloads["failure"] != 1 || st.Node.Reloads["success"] != 0 {
		t.Fatalf("status: reload_error %q, reloads %v; want the EX3 failure reported", st.Node.ReloadError, st.Node.Reloads)
	}
	if len(st.VIPs) != 1 || len(st.VIPs[0].Backends) != 2 {
		t.Fatalf("status lost the VIP's backends: %+v", st.VIPs)
	}
}

// TestApplyVIPFailureLeaksNoID: a new VIP that cannot get all its pair
// ids takes none: the ids stay free for the next VIP.
func TestApplyVIPFailureLeaksNoID(t *testing.T) {
	d := newApplyDaemon(t, `{ name = "EX1" }`)
	v := d.cfg.VIPs[0]
	v.Name = "relay"
	v.Backends = []config.VIPBackend{{Name: "EX2", Weight: 100, Priority: 1}, {Name: "EX3", Weight: 100, Priority: 1}}
	if _, err := d.applyVIP(v, nil); err == nil {
		t.Fatal("three pairs fitted in room for two")
	}
	if _, ok := d.state.RealIDs[pairKey("relay", "EX2")]; ok {
		t.Fatal("a failed VIP left a pair id in state")
	}
	v.Backends = v.Backends[:1]
	if _, err := d.applyVIP(v, nil); err != nil {
		t.Fatalf("the id freed by the failed VIP is not available: %v", err)
	}
}

// TestRemovedPairRetiredAfterRing: a reload removing a backend does not
// mark its pair unused (nor free its id) before the reconcile that swaps
// the ring still pointing at it; otherwise SYNs hashed to its slots fall
// to the local stack and get the sorry server's 421 in between.
func TestRemovedPairRetiredAfterRing(t *testing.T) {
	d := newApplyDaemon(t, `{ name = "EX1" }, { name = "EX2" }`)
	id := d.vips["internet"].reals["EX2"].id
	shrunk := applyTestConfig(filepath.Dir(d.cfgPath), `{ name = "EX1" }`)
	if err := os.WriteFile(d.cfgPath, []byte(shrunk), 0o600); err != nil {
		t.Fatal(err)
	}
	d.reload("test")
	if st, _ := d.Status(); st.Node.ReloadError != "" {
		t.Fatal(st.Node.ReloadError)
	}
	if r, err := d.dp.Real(id); err != nil || r.State == maps.RealUnused {
		t.Fatalf("EX2's pair marked unused before the ring was swapped: %+v %v", r, err)
	}
	if _, err := d.realID.Alloc(); err == nil {
		t.Fatal("EX2's id was free before the ring was swapped")
	}
	if err := d.reconcile(); err != nil {
		t.Fatal(err)
	}
	if r, err := d.dp.Real(id); err != nil || r.State != maps.RealUnused {
		t.Fatalf("EX2's pair after the reconcile: %+v %v, want unused", r, err)
	}
	if got, err := d.realID.Alloc(); err != nil || got != id {
		t.Fatalf("EX2's id %d not freed after the reconcile: %d %v", id, got, err)
	}
}
