package main

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Targets (issue 2 and DESIGN section 2).
const (
	targetEstablished = 5.0  // established <= 5x bounce
	targetSYN         = 7.0  // SYN <= 7x bounce
	targetLive        = 0.7  // live rate dsrlb >= 0.7x bounce
	targetDSRvsSpread = 0.95 // (b)/(s) >= 0.95
)

// Report is everything one run measured; a section's Err is set when it
// could not run.
type Report struct {
	Machine   Machine
	Params    Params
	Cost      []CostRow
	CostErr   string
	Live      []LiveRow
	LiveErr   string
	E2E       *E2EResult
	E2EErr    string
	Maglev    []MaglevRow
	MaglevErr string
	DaemonRes *DaemonResult
	DaemonErr string
}

// profileNotes is the hand-recorded profile (section 5): what was tried,
// measured before and after, and what is left.
//
//go:embed profile.md
var profileNotes string

// Markdown renders BENCHMARKS.md.
func (r Report) Markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# dsrlb benchmarks")
	w("")
	w("Written by `go run ./scripts/bench` (`make bench`); do not edit by hand. Every number is a ratio to a")
	w("baseline measured side by side in the same run; PASS/MISS mark the targets and never fail the build.")
	if r.Params.Quick {
		w("")
		w("**Quick mode (`-quick`): a smoke test with few repeats; do not quote these numbers.**")
	}
	w("")
	w("| machine | |")
	w("| --- | --- |")
	w("| CPU | %s |", r.Machine.CPU)
	w("| cores | %d |", r.Machine.Cores)
	w("| kernel | %s |", r.Machine.Kernel)
	w("| Go | %s |", r.Machine.GoVersion)
	w("| date | %s |", r.Machine.Date.UTC().Format(time.RFC3339))
	w("")
	r.costSection(w)
	r.liveSection(w)
	r.e2eSection(w)
	r.controlSection(w)
	b.WriteString(profileNotes)
	return b.String()
}

type writer func(format string, a ...any)

func (r Report) costSection(w writer) {
	w("## 1. XDP cost per packet")
	w("")
	w("Method: `BenchmarkXDPCost` in internal/maps (`go test -run '^$' -bench XDPCost -benchtime 1x ./internal/maps`):")
	w("BPF_PROG_TEST_RUN with one repeat of 10,000,000 per measurement, 5 measurements per packet kind,")
	w("kernel-reported ns/packet. The baseline is `bounce` (bpf/bounce.c: a bare MAC swap and XDP_TX).")
	w("The kernel reuses one buffer across repeats, so the SYN rows measure the 2nd..Nth identical SYN:")
	w("with the flood guard off every one is a flow-table insert (the cost of a new connection), with the")
	w("guard on (200,000 new flows per CPU per second) the guard stops inserting (the cost during a flood).")
	w("The `-spread` rows run behind a flow spreader (a tiny XDP program that gives every repetition its own")
	w("source port and address byte, then tail-calls the program): `syn-new-flow` is a SYN of a flow never")
	w("seen before, so after the first 1M the table is full and every insert evicts (a busy node's steady")
	w("state). Their ratio is to `bounce-spread`, the bounce behind the same spreader.")
	w("Katran's balancer measured on this kind of machine (LAB-FACTS): SYN 12.8x, LRU hit 11x, non-VIP pass 4x.")
	w("")
	if notMeasured(w, r.CostErr) {
		return
	}
	bounce, _ := findCost(r.Cost, "bounce")
	spreadBase, spreadOK := findCost(r.Cost, "bounce-spread")
	w("| packet | min ns | median ns | max ns | x bounce | target | verdict | Katran |")
	w("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, c := range r.Cost {
		x := c.Median / bounce.Median
		if spreadOK && (c.Case == "syn-new-flow" || c.Case == "bounce-spread") {
			x = c.Median / spreadBase.Median
		}
		target, verdict, katran := "", "", ""
		switch c.Case {
		case "established":
			target, verdict, katran = fmt.Sprintf("<= %gx", targetEstablished), pass(x <= targetEstablished), "11x"
		case "syn-guard-off", "syn-guard-on":
			target, verdict, katran = fmt.Sprintf("<= %gx", targetSYN), pass(x <= targetSYN), "12.8x"
		case "non-vip-pass":
			katran = "4x"
		}
		w("| %s | %.2f | %.2f | %.2f | %.2fx | %s | %s | %s |", c.Case, c.Min, c.Median, c.Max, x, target, verdict, katran)
	}
	w("")
}

func (r Report) liveSection(w writer) {
	w("## 2. Live packet rate (BPF_F_TEST_XDP_LIVE_FRAMES)")
	w("")
	w("Method: a veth pair v0/v1 in a namespace of its own; the test run's context names v0 as the ingress")
	w("device, so XDP_TX frames really leave through v0 into v1, where a counting sink (XDP, counts in a")
	w("per-CPU array, then XDP_DROP, so the receiving stack's cost stays out) is attached in driver mode.")
	w("dsrlb is loaded with `maps.Load` and configured through the maps API: one VIP (198.51.100.25:25),")
	w("3 backends whose MAC is v1's, a 65537-slot Maglev ring. The frame is a 66-byte TCP ACK of an")
	w("established flow (recorded with `PutFlow`, so every packet is a flow-table hit).")
	w("For the many-flow case the flows are pre-recorded with `PutFlow` and a small XDP \"flow spreader\"")
	w("runs first for every packet: a per-CPU counter c (mod the flow count) becomes the TCP source port")
	w("(c & 0xffff) and the last byte of the source address (c >> 16), then it tail-calls the program")
	w("under test. The bounce gets the same spreader, so the ratio stays fair. Mpps = repeat count / wall")
	w("time of the Run call (%d repeats, %d run(s) per case, median; the order alternates between runs).", r.Params.LiveRepeat, r.Params.LiveRuns)
	w("\"sink saw\" is the share of the sent frames the sink counted (veth's ring drops the rest); \"flow")
	w("misses\" are dsrlb's non-SYN flow-table misses during the runs (0: every packet hit its flow).")
	w("")
	if notMeasured(w, r.LiveErr) {
		return
	}
	w("| flows | bounce Mpps | dsrlb Mpps | dsrlb / bounce | target | verdict | sink saw (bounce / dsrlb) | flow misses | runs (bounce; dsrlb) |")
	w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for i := 0; i+1 < len(r.Live); i += 2 {
		bo, ds := r.Live[i], r.Live[i+1]
		ratio := median(ds.Mpps) / median(bo.Mpps)
		w("| %s | %.2f | %.2f | %.2fx | >= %gx | %s | %.0f%% / %.0f%% | %d | %s; %s |", groupDigits(bo.Flows),
			median(bo.Mpps), median(ds.Mpps), ratio, targetLive, pass(ratio >= targetLive),
			100*bo.SinkFraction, 100*ds.SinkFraction, ds.Misses, joinFloats(bo.Mpps, "%.2f"), joinFloats(ds.Mpps, "%.2f"))
	}
	w("")
}

func (r Report) e2eSection(w writer) {
	w("## 3. End to end: SMTP sessions through dsrlb, HAProxy and none")
	w("")
	w("Method: an internal/lab namespace lab (one client, the balancer, 3 backends on a bridge; native XDP).")
	w("Each backend runs a real Postfix instance of its own (`postfix -c DIR start`, separate config, queue")
	w("and data directories on tmpfs; smtpd on the backend's address and the VIP on lo; every recipient of")
	w("example.org accepted and delivered through the `discard:` transport; no DNS). Load: Postfix's")
	w("`smtp-source` in the client, one message per session (a new TCP connection and SMTP session for each")
	w("message), %d sessions in parallel. Scenarios:", r.e2eParallel())
	w("(a) direct to one backend; (b) to the VIP through dsrlb (the data plane attached to the balancer's eth0")
	w("in driver mode, configured through the maps API with the VIP, 3 backends and their ring; the VIP on the")
	w("balancer's eth0 so ARP finds it); (c) to the VIP through HAProxy `mode tcp`, roundrobin to the same")
	w("backends (the XDP program detached); (s) the client spreading the sessions itself: 3 smtp-source")
	w("processes in parallel, one per backend address. Rounds are interleaved (a b c s, s c b a, ...);")
	w("medians are reported. Balancer CPU per 1,000 sessions: for (b) the XDP program's run time from the")
	w("kernel's BPF statistics (run_time_ns, kernel.bpf_stats_enabled via BPF_ENABLE_STATS), for (c) HAProxy's")
	w("user+system time from /proc/PID/stat (10 ms resolution). Neither includes the softirq cost of the veth")
	w("driver. \"delivered\" counts the messages each backend's Postfix discarded during all timed runs.")
	if r.E2E != nil {
		w("Backends: %s; balancer: %s.", r.E2E.Postfix, r.E2E.HAProxy)
	}
	w("")
	if notMeasured(w, r.E2EErr) {
		return
	}
	names := map[string]string{scDirect: "(a) direct to one backend", scDsrlb: "(b) dsrlb VIP",
		scHAProxy: "(c) HAProxy VIP", scSpread: "(s) client spreads over 3"}
	w("| scenario | median sessions/s | runs | balancer CPU ms / 1,000 sessions | delivered per backend |")
	w("| --- | --- | --- | --- | --- |")
	med := map[string]float64{}
	for _, sc := range []string{scDirect, scDsrlb, scHAProxy, scSpread} {
		var rates, cpu []float64
		delivered := make([]int, e2eBackend)
		for _, run := range r.E2E.Runs {
			if run.Scenario != sc {
				continue
			}
			rates = append(rates, run.Rate())
			cpu = append(cpu, float64(run.LBCPU)/float64(time.Millisecond)*1000/float64(run.Sessions))
			for i, d := range run.Delivered {
				if i < len(delivered) {
					delivered[i] += d
				}
			}
		}
		med[sc] = median(rates)
		cpuText := "-"
		if sc == scDsrlb || sc == scHAProxy {
			cpuText = fmt.Sprintf("%.3f", median(cpu))
		}
		w("| %s | %.0f | %s | %s | %s |", names[sc], med[sc], joinFloats(rates, "%.0f"), cpuText, joinInts(delivered))
	}
	w("")
	w("| ratio | value | target | verdict |")
	w("| --- | --- | --- | --- |")
	w("| (b) / (s) | %.3f | >= %g | %s |", med[scDsrlb]/med[scSpread], targetDSRvsSpread, pass(med[scDsrlb]/med[scSpread] >= targetDSRvsSpread))
	w("| (c) / (s) | %.3f | | |", med[scHAProxy]/med[scSpread])
	w("| (b) / (a) | %.3f | | |", med[scDsrlb]/med[scDirect])
	w("| (b) / (c) | %.3f | > 1 | %s |", med[scDsrlb]/med[scHAProxy], pass(med[scDsrlb] > med[scHAProxy]))
	w("")
}

func (r Report) e2eParallel() int {
	if r.E2E != nil {
		return r.E2E.Parallel
	}
	return r.Params.Parallel
}

func (r Report) controlSection(w writer) {
	w("## 4. Control plane")
	w("")
	w("Maglev table build at M = 65537 (`go test -run '^$' -bench MaglevBuild -benchtime %s ./internal/maps`):", r.Params.MaglevBenchtime)
	w("")
	if r.MaglevErr != "" {
		w("Not measured: %s", oneLine(r.MaglevErr))
	} else {
		w("| backends N | ms per build | target | verdict |")
		w("| --- | --- | --- | --- |")
		for _, m := range r.Maglev {
			if m.N == 1000 {
				w("| %d | %.3f | < 20 ms | %s |", m.N, m.NsPerOp/1e6, pass(m.NsPerOp < 20e6))
				continue
			}
			w("| %d | %.3f | | |", m.N, m.NsPerOp/1e6)
		}
	}
	w("")
	w("Daemon (the real `dsrlb run` in a lab, `internal/labnode`):")
	w("")
	if r.DaemonErr != "" {
		w("Not measured: %s", oneLine(r.DaemonErr))
		w("")
		return
	}
	d := r.DaemonRes
	limit := time.Duration(d.Fall)*d.Interval + d.Timeout
	w("| daemon measurement | result | target | verdict | how |")
	w("| --- | --- | --- | --- | --- |")
	w("| first 452 to ring removal | median %s (runs %s) | <= fall x interval + timeout = %s | %s | probes every %s, fall %d, timeout %s |",
		medianDuration(d.Drain).Round(time.Millisecond), durations(d.Drain), limit, pass(slices.Max(d.Drain) <= limit), d.Interval, d.Fall, d.Timeout)
	w("| daemon RSS, %d VIPs x %d backends | %.1f MiB | | | VmRSS after every pair was probed and two more rounds |", d.VIPs, d.PerVIP, float64(d.RSSKiB)/1024)
	w("| config reload time | median %s (runs %s) | | | SIGHUP to the status showing the reload applied (%d VIPs, one added or removed) |",
		medianDuration(d.Reload).Round(time.Millisecond), durations(d.Reload), d.VIPs)
	w("")
}

func durations(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, d.Round(time.Millisecond).String())
	}
	return strings.Join(parts, ", ")
}

// notMeasured writes why a section has no numbers; it reports whether it did.
func notMeasured(w writer, why string) bool {
	if why == "" {
		return false
	}
	w("Not measured: %s", oneLine(why))
	w("")
	return true
}

// pass renders a verdict.
func pass(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// median of xs (the mean of the two middle values for an even count); 0
// for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func joinFloats(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, ", ")
}

func joinInts(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, " / ")
}

// groupDigits writes 1000000 as 1,000,000.
func groupDigits(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// oneLine squeezes an error onto one Markdown line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
