package maps

import (
	"bytes"
	"testing"
)

// FuzzXDP feeds arbitrary frames through the loaded program. Invariants:
// the verdict is PASS or TX (never DROP or ABORTED); PASS leaves the frame
// byte-identical; TX changes only the 12 MAC bytes, to a known backend.
func FuzzXDP(f *testing.F) {
	tb := newTestbed(f)
	tb.addVIP(1, vip4, []uint16{25}, 0, 3)
	tb.addVIP(2, vip6, []uint16{25}, 0, 3)
	for _, p := range []pkt{
		{src: ap(client4, 1), dst: ap(vip4, 25), flags: "S"},
		{src: ap(client4, 2), dst: ap(vip4, 25), flags: "A", vlans: []uint16{1, 2}, qinq: true, ipOptions: true},
		{src: ap(client6, 1), dst: ap(vip6, 25), flags: "S", vlans: []uint16{3}},
		{src: ap(client6, 1), dst: ap(vip6, 25), fragOffset: 3},
		{src: ap(client4, 1), dst: ap(vip4, 25), fragOffset: 3},
	} {
		f.Add(p.frame(f))
	}
	f.Add(icmpPTB(f, ap(client4, 5), ap(vip4, 25), client4))
	f.Add(icmpPTB(f, ap(client6, 5), ap(vip6, 25), client6))
	f.Add(arpRequest(f, vip4))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 1500 {
			return // BPF_PROG_TEST_RUN refuses these; nothing to test
		}
		tb.t = t
		ret, out := tb.run(frame)
		switch ret {
		case xdpPass:
			if !bytes.Equal(out, frame) {
				t.Fatalf("XDP_PASS changed the frame")
			}
		case xdpTX:
			tb.checkTX(frame, out)
		default:
			t.Fatalf("verdict %d", ret)
		}
	})
}
