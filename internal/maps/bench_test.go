package maps

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// xdpRepeat is the BPF_PROG_TEST_RUN repeat count per measurement: one
// large repeat so the kernel-reported mean is not distorted by the fixed
// per-call overhead (LAB-FACTS).
const (
	xdpRepeat = 10_000_000
	xdpRuns   = 5
)

// measure returns the kernel-reported ns/packet of runs measurements.
func measure(b *testing.B, prog *ebpf.Program, frame []byte, reset func()) []float64 {
	var out []float64
	for range xdpRuns {
		if reset != nil {
			reset()
		}
		_, d, err := prog.Benchmark(frame, xdpRepeat, nil)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, float64(d)/float64(time.Nanosecond))
	}
	slices.Sort(out)
	return out
}

// BenchmarkXDPCost measures dsrlb's per-packet cost in the kernel for each
// kind of packet, as a ratio to a bare MAC-swap XDP_TX bounce measured in
// the same run. Metrics: ns/pkt (median) and x-bounce (median ratio).
// Targets (issue 2): established <= 5x bounce, SYN <= 7x.
func BenchmarkXDPCost(b *testing.B) {
	tb := newTestbed(b)
	tb.addVIP(1, vip4, []uint16{25}, 0, 10)
	tb.addVIP(2, vip6, []uint16{25}, 0, 10)
	var bounce bounceObjects
	if err := loadBounceObjects(&bounce, nil); err != nil {
		b.Fatal(err)
	}
	defer bounce.Close()

	syn := pkt{src: ap(client4, 50000), dst: ap(vip4, 25), flags: "S"}
	est := pkt{src: ap(client4, 50001), dst: ap(vip4, 25), flags: "A", payload: []byte("RCPT TO:<a@example.org>\r\n")}
	tb.expectTX(est.frame(b)) // records the flow
	syn6 := pkt{src: ap(client6, 50000), dst: ap(vip6, 25), flags: "S"}
	nonVIP := pkt{src: ap(client4, 50002), dst: ap(client4, 25), flags: "S"}
	ptb := icmpPTB(b, ap(client4, 50001), ap(vip4, 25), client4)

	setGuard := func(limit uint32) func() {
		return func() {
			s, _ := tb.d.Settings()
			s.FloodLimit = limit
			tb.d.SetSettings(s)
			tb.d.ResetFloodWindow()
		}
	}
	spreader := flowSpreader(b)
	spread := spreader.Program
	behindSpreader := func(p *ebpf.Program, reset func()) func() {
		return func() {
			if err := spreader.Target(p); err != nil {
				b.Fatal(err)
			}
			if reset != nil {
				reset()
			}
		}
	}
	cases := []struct {
		name  string
		prog  *ebpf.Program
		frame []byte
		reset func()
	}{
		{"bounce", bounce.Bounce, syn.frame(b), nil},
		{"syn-guard-off", tb.d.Program(), syn.frame(b), setGuard(0)},
		{"syn-guard-on", tb.d.Program(), syn.frame(b), setGuard(DefaultFloodLimit)},
		{"established", tb.d.Program(), est.frame(b), setGuard(DefaultFloodLimit)},
		{"non-vip-pass", tb.d.Program(), nonVIP.frame(b), nil},
		{"icmp-ptb", tb.d.Program(), ptb, nil},
		{"ipv6-syn", tb.d.Program(), syn6.frame(b), setGuard(0)},
		// Behind the flow spreader every repetition is a flow never seen
		// before: the first 1M fill the table, the rest evict (a busy node).
		{"bounce-spread", spread, syn.frame(b), behindSpreader(bounce.Bounce, nil)},
		{"syn-new-flow", spread, syn.frame(b), behindSpreader(tb.d.Program(), setGuard(0))},
	}
	results := map[string][]float64{}
	for b.Loop() {
		for _, c := range cases {
			results[c.name] = measure(b, c.prog, c.frame, c.reset)
		}
	}
	for _, c := range cases {
		r := results[c.name]
		// Runs behind the spreader compare with the bounce behind it.
		baseName := "bounce"
		if c.prog == spread {
			baseName = "bounce-spread"
		}
		base := median(results[baseName])
		b.ReportMetric(median(r), c.name+"-ns/pkt")
		if c.name != baseName {
			b.ReportMetric(median(r)/base, c.name+"-x-bounce")
		}
		b.Logf("%-14s min %6.2f median %6.2f max %6.2f ns/pkt  %5.2fx %s", c.name, r[0], median(r), r[len(r)-1], median(r)/base, baseName)
	}
	base := median(results["bounce"])
	b.Logf("targets: established <= 5x bounce: %s; SYN <= 7x bounce: %s",
		verdict(median(results["established"])/base <= 5), verdict(median(results["syn-guard-on"])/base <= 7))
}

func median(xs []float64) float64 { return xs[len(xs)/2] }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

var _ = fmt.Sprintf
