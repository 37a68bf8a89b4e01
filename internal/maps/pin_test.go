package maps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
)

// testPinPath returns a unique directory on bpffs, removed after the test.
func testPinPath(t *testing.T) string {
	t.Helper()
	const root = "/sys/fs/bpf"
	if err := EnsureBPFFS(root); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, fmt.Sprintf("dsrlb-test-%d-%s", os.Getpid(), t.Name()))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestPinReuse: a second load reuses the pinned maps (flows, VIPs, rings and
// counters survive); a different ring or flow-table size is refused whole.
func TestPinReuse(t *testing.T) {
	dir := testPinPath(t)
	opts := Options{PinPath: dir, RingSize: 251, FlowTableSize: 1024}
	d1, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	if d1.Reused {
		t.Fatal("fresh pins reported as reused")
	}
	if err := d1.SetSettings(Settings{HashSeed: 1, RingSize: 251, IfMAC: ifMAC}); err != nil {
		t.Fatal(err)
	}
	k := NewFlowKey(ap(client4, 1), ap(vip4, 25))
	d1.PutFlow(k, 42)
	d1.SetVIP(vip4, []uint16{25}, 3, 0)
	table := make([]uint32, 251)
	for i := range table {
		table[i] = 42
	}
	if err := d1.SwapRing(3, table); err != nil {
		t.Fatal(err)
	}
	d1.Close()

	d2, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if !d2.Reused {
		t.Fatal("pins not reported as reused")
	}
	if id, ok, _ := d2.LookupFlow(k); !ok || id != 42 {
		t.Fatal("flow lost across reload")
	}
	if got, _ := d2.Ring(3); !slices.Equal(got, table) {
		t.Fatal("ring lost across reload")
	}
	if vips, _ := d2.VIPs(); len(vips) != 2 {
		t.Fatalf("VIPs after reload: %v", vips)
	}

	for _, bad := range []Options{
		{PinPath: dir, RingSize: 257, FlowTableSize: 1024},
		{PinPath: dir, RingSize: 251, FlowTableSize: 2048},
	} {
		if d, err := Load(bad); !errors.Is(err, ErrIncompatiblePins) {
			if d != nil {
				d.Close()
			}
			t.Fatalf("%+v: got %v, want ErrIncompatiblePins", bad, err)
		}
	}
	// The refused loads left the pins usable.
	if id, ok, _ := d2.LookupFlow(k); !ok || id != 42 {
		t.Fatal("refused load damaged the pins")
	}
	if err := d2.Unpin(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("pins left after Unpin: %v", entries)
	}
}

// TestRingSwapAtomic: a reader never sees a mix of two tables while they
// are swapped in and out.
func TestRingSwapAtomic(t *testing.T) {
	d, err := Load(Options{RingSize: 65537, FlowTableSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a, b := make([]uint32, 65537), make([]uint32, 65537)
	for i := range a {
		a[i], b[i] = 1, 2
	}
	if err := d.SwapRing(0, a); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	done := make(chan error)
	go func() {
		defer close(done)
		for i := 0; !stop.Load(); i++ {
			tbl := a
			if i%2 == 1 {
				tbl = b
			}
			if err := d.SwapRing(0, tbl); err != nil {
				done <- err
				return
			}
		}
	}()
	for range 30 {
		got, err := d.Ring(0)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range got {
			if v != got[0] {
				t.Fatal("read a half-written ring")
			}
		}
	}
	stop.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
