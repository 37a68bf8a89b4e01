package maps

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"testing"
)

func maglevBackends(n int, weight func(i int) uint32) []MaglevBackend {
	bs := make([]MaglevBackend, n)
	for i := range bs {
		bs[i] = MaglevBackend{ID: uint32(i + 1), Address: netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)}), Weight: weight(i)}
	}
	return bs
}

func equalWeight(int) uint32 { return 100 }

// TestMaglevBalance: each backend's share of slots is within 1% (relative)
// of its weight share, for N up to 256 at M=65537, equal and unequal weights.
func TestMaglevBalance(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 10, 31, 100, 256} {
		for _, w := range []struct {
			name string
			f    func(int) uint32
		}{{"equal", equalWeight}, {"1-2-3", func(i int) uint32 { return uint32(100 * (i%3 + 1)) }}} {
			bs := maglevBackends(n, w.f)
			table, err := BuildMaglev(bs, 65537)
			if err != nil {
				t.Fatal(err)
			}
			var total float64
			for _, b := range bs {
				total += float64(b.Weight)
			}
			shares := Shares(table)
			for _, b := range bs {
				want := float64(b.Weight) / total
				if got := shares[b.ID]; math.Abs(got-want)/want > 0.01 {
					t.Errorf("N=%d %s: backend %d share %.5f, weight share %.5f (%.2f%% off)", n, w.name, b.ID, got, want, 100*math.Abs(got-want)/want)
				}
			}
		}
	}
}

// TestMaglevDisruption: removing one of N equal backends moves at most 1% of
// M between the survivors; adding it back restores the same table.
func TestMaglevDisruption(t *testing.T) {
	const m = 65537
	for _, n := range []int{2, 3, 5, 10, 50, 100, 256} {
		bs := maglevBackends(n, equalWeight)
		before, _ := BuildMaglev(bs, m)
		for _, gone := range []int{0, n / 2, n - 1} {
			rest := slices.Delete(slices.Clone(bs), gone, gone+1)
			after, _ := BuildMaglev(rest, m)
			moved := 0
			for i := range before {
				if before[i] != bs[gone].ID && after[i] != before[i] {
					moved++
				}
			}
			if frac := float64(moved) / m; frac > 0.01 {
				t.Errorf("N=%d removing %d moved %.3f%% of slots between survivors", n, gone, 100*frac)
			}
			back, _ := BuildMaglev(append(rest, bs[gone]), m)
			if !slices.Equal(back, before) {
				t.Errorf("N=%d: adding backend %d back did not restore the table", n, gone)
			}
		}
	}
}

// TestMaglevOrderIndependent: the same set in any order gives the same table.
func TestMaglevOrderIndependent(t *testing.T) {
	bs := maglevBackends(20, func(i int) uint32 { return uint32(50 + i) })
	want, _ := BuildMaglev(bs, 65537)
	r := rand.New(rand.NewPCG(3, 4))
	for range 5 {
		r.Shuffle(len(bs), func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
		got, _ := BuildMaglev(bs, 65537)
		if !slices.Equal(got, want) {
			t.Fatal("reordered backends changed the table")
		}
	}
}

func TestMaglevErrors(t *testing.T) {
	if _, err := BuildMaglev(maglevBackends(2, equalWeight), 65536); err == nil {
		t.Error("non-prime size accepted")
	}
	if _, err := BuildMaglev(maglevBackends(2, func(int) uint32 { return 0 }), 65537); err == nil {
		t.Error("zero weight accepted")
	}
	dup := maglevBackends(2, equalWeight)
	dup[1].Address = dup[0].Address
	if _, err := BuildMaglev(dup, 65537); err == nil {
		t.Error("duplicate address accepted")
	}
	if table, err := BuildMaglev(nil, 65537); table != nil || err != nil {
		t.Error("empty set should give an empty table")
	}
}

func TestIDAllocatorNoImmediateReuse(t *testing.T) {
	a := NewIDAllocator(1, 5) // ids 1..4
	var ids []uint32
	for range 4 {
		id, err := a.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := a.Alloc(); err == nil {
		t.Fatal("allocated past the limit")
	}
	a.Free(2)
	a.Free(4)
	if id, _ := a.Alloc(); id != 2 {
		t.Fatalf("got %d, want the oldest freed id 2", id)
	}
	b := NewIDAllocator(1, 100)
	b.Alloc() // 1
	b.Free(1)
	if id, _ := b.Alloc(); id == 1 {
		t.Fatal("a freed id was reused at once while never-used ids remain")
	}
	c := NewIDAllocator(1, 100)
	if err := c.Reserve(7); err != nil {
		t.Fatal(err)
	}
	if err := c.Reserve(7); err == nil {
		t.Fatal("reserved twice")
	}
	for range 98 {
		id, err := c.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		if id == 7 {
			t.Fatal("allocated a reserved id")
		}
	}
}

func BenchmarkMaglevBuild(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		bs := maglevBackends(n, equalWeight)
		b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				if _, err := BuildMaglev(bs, 65537); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
