package maps

import (
	"net/netip"
	"testing"
)

// flowSpreader is a spreader over 2^24 flows for the test's life.
func flowSpreader(tb testing.TB) *FlowSpreader {
	tb.Helper()
	s, err := NewFlowSpreader(1<<24, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// TestFlowSpreaderRecordsNewFlows: behind the spreader every repetition
// is a new flow that the data plane records (so the benchmark measures
// inserts, not one key rewritten).
func TestFlowSpreaderRecordsNewFlows(t *testing.T) {
	tb := newTestbed(t)
	tb.addVIP(1, vip4, []uint16{25}, 0, 3)
	spread := flowSpreader(t)
	if err := spread.Target(tb.d.Program()); err != nil {
		t.Fatal(err)
	}
	syn := pkt{src: ap(client4, 50000), dst: ap(vip4, 25), flags: "S"}.frame(t)
	if _, _, err := spread.Program.Benchmark(syn, 1000, nil); err != nil {
		t.Fatal(err)
	}
	recorded := 0
	src := netip.AddrFrom4([4]byte{10, 1, 2, 0}) // client4 with the spread byte (0 below 65536 flows)
	for port := range 1000 {
		k := NewFlowKey(ap(src, uint16(port)), ap(vip4, 25))
		if _, ok, _ := tb.d.LookupFlow(k); ok {
			recorded++
		}
	}
	// The counter is per CPU: the run may start on either CPU's count.
	if recorded < 500 {
		t.Fatalf("%d of 1000 spread SYNs recorded as distinct flows", recorded)
	}
}
