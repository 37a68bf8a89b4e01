package main

import (
	"strings"
	"testing"
	"time"
)

// cannedCost is BenchmarkXDPCost's verbose output as go test prints it.
const cannedCost = `goos: linux
goarch: amd64
pkg: github.com/dsrlb/dsrlb/internal/maps
BenchmarkXDPCost
    bench_test.go:96: bounce         min   5.00 median   6.00 max   7.00 ns/pkt   1.00x bounce
    bench_test.go:96: syn-guard-off  min  50.00 median  54.00 max  60.00 ns/pkt   9.00x bounce
    bench_test.go:96: syn-guard-on   min  20.00 median  21.00 max  22.00 ns/pkt   3.50x bounce
    bench_test.go:96: established    min  29.00 median  30.00 max  31.00 ns/pkt   5.00x bounce
    bench_test.go:96: non-vip-pass   min  10.00 median  12.00 max  13.00 ns/pkt   2.00x bounce
    bench_test.go:99: targets: established <= 5x bounce: PASS; SYN <= 7x bounce: PASS
BenchmarkXDPCost-2   	       1	1234567890 ns/op	  30.00 established-ns/pkt
PASS
`

// cannedMaglev is BenchmarkMaglevBuild's output.
const cannedMaglev = `BenchmarkMaglevBuild/N=10-2         	     700	   1500000 ns/op
BenchmarkMaglevBuild/N=100-2        	     500	   2250000 ns/op
BenchmarkMaglevBuild/N=1000         	     400	   2500000 ns/op
PASS
`

func cannedReport(t *testing.T) Report {
	t.Helper()
	cost, err := parseXDPCost(cannedCost)
	if err != nil {
		t.Fatal(err)
	}
	mg, err := parseMaglev(cannedMaglev)
	if err != nil {
		t.Fatal(err)
	}
	run := func(sc string, wall time.Duration, cpu time.Duration) E2ERun {
		return E2ERun{Scenario: sc, Sessions: 1000, Wall: wall, LBCPU: cpu, Delivered: []int{400, 300, 300}}
	}
	return Report{
		Machine: Machine{CPU: "Test CPU", Cores: 2, Kernel: "6.18.0", GoVersion: "go1.26", Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		Params:  paramsFor(true),
		Cost:    cost,
		Live: []LiveRow{
			{Prog: "bounce", Flows: 1, Mpps: []float64{20, 21, 22}, SinkFraction: 1},
			{Prog: "dsrlb", Flows: 1, Mpps: []float64{15, 14, 16}, SinkFraction: 0.98},
			{Prog: "bounce", Flows: 1000000, Mpps: []float64{18, 18}, SinkFraction: 1},
			{Prog: "dsrlb", Flows: 1000000, Mpps: []float64{9, 11}, SinkFraction: 1, Misses: 3},
		},
		E2E: &E2EResult{Parallel: 21, Postfix: "Postfix 3.7.11", HAProxy: "HAProxy version 2.6", Runs: []E2ERun{
			run(scDirect, 2*time.Second, 0), run(scDsrlb, time.Second, 5*time.Millisecond),
			run(scHAProxy, 1250*time.Millisecond, 400*time.Millisecond), run(scSpread, 1000*time.Millisecond, 0),
			run(scSpread, 1040*time.Millisecond, 0), run(scHAProxy, 1250*time.Millisecond, 200*time.Millisecond),
			run(scDsrlb, 1010*time.Millisecond, 7*time.Millisecond), run(scDirect, 2*time.Second, 0),
		}},
		Maglev: mg,
		DaemonRes: &DaemonResult{Drain: []time.Duration{1100 * time.Millisecond, 1300 * time.Millisecond, 1200 * time.Millisecond},
			Interval: time.Second, Timeout: 800 * time.Millisecond, Fall: 2, RSSKiB: 20480, VIPs: 100, PerVIP: 10,
			Reload: []time.Duration{30 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}},
	}
}

func TestParseXDPCost(t *testing.T) {
	rows, err := parseXDPCost(cannedCost)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 {
		t.Fatalf("got %d rows, want 5: %+v", len(rows), rows)
	}
	want := CostRow{Case: "established", Min: 29, Median: 30, Max: 31}
	if got, _ := findCost(rows, "established"); got != want {
		t.Errorf("established = %+v, want %+v", got, want)
	}
	if _, err := parseXDPCost("BenchmarkXDPCost-2 1 5 ns/op\n"); err == nil {
		t.Error("output without a bounce line parsed without error")
	}
}

func TestParseMaglev(t *testing.T) {
	rows, err := parseMaglev(cannedMaglev)
	if err != nil {
		t.Fatal(err)
	}
	want := []MaglevRow{{10, 1.5e6}, {100, 2.25e6}, {1000, 2.5e6}}
	if len(rows) != len(want) {
		t.Fatalf("got %+v, want %+v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
	if _, err := parseMaglev("PASS\n"); err == nil {
		t.Error("output without benchmark lines parsed without error")
	}
}

func TestMarkdown(t *testing.T) {
	md := cannedReport(t).Markdown()
	for _, want := range []string{
		"| CPU | Test CPU |",
		"| date | 2026-01-02T03:04:05Z |",
		"Quick mode",
		// 54/6 = 9x: over the 7x SYN target; 30/6 = 5x: within 5x.
		"| syn-guard-off | 50.00 | 54.00 | 60.00 | 9.00x | <= 7x | MISS | 12.8x |",
		"| syn-guard-on | 20.00 | 21.00 | 22.00 | 3.50x | <= 7x | PASS | 12.8x |",
		"| established | 29.00 | 30.00 | 31.00 | 5.00x | <= 5x | PASS | 11x |",
		// medians 21 and 15 Mpps: 0.71x; 18 and 10: 0.56x.
		"| 1 | 21.00 | 15.00 | 0.71x | >= 0.7x | PASS | 100% / 98% | 0 | 20.00, 21.00, 22.00; 15.00, 14.00, 16.00 |",
		"| 1,000,000 | 18.00 | 10.00 | 0.56x | >= 0.7x | MISS | 100% / 100% | 3 |",
		// (b): 1000 and 990.1 sessions/s, median 995; CPU 5 and 7 ms per 1000 sessions.
		"| (b) dsrlb VIP | 995 | 1000, 990 | 6.000 | 800 / 600 / 600 |",
		"| (c) HAProxy VIP | 800 | 800, 800 | 300.000 |",
		"| (a) direct to one backend | 500 | 500, 500 | - |",
		// (s) median of 1000 and 961.5 = 980.8; b/s = 1.0145.
		"| (b) / (s) | 1.015 | >= 0.95 | PASS |",
		"| (b) / (c) | 1.244 | > 1 | PASS |",
		"| (b) / (a) | 1.990 | | |",
		"| 100 | 2.250 |",
		"| first 452 to ring removal | median 1.2s (runs 1.1s, 1.3s, 1.2s) | <= fall x interval + timeout = 2.8s | PASS |",
		"| daemon RSS, 100 VIPs x 10 backends | 20.0 MiB |",
		"## 5. Profile and improvements",
		"| config reload time | median 20ms (runs 30ms, 10ms, 20ms) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q; report:\n%s", want, md)
		}
	}
}

func TestMarkdownErrors(t *testing.T) {
	r := Report{Params: paramsFor(false), CostErr: "go test failed:\nline two", LiveErr: "no veth",
		E2EErr: "postfix not found", MaglevErr: "skipped (-only)", DaemonErr: "lab failed"}
	md := r.Markdown()
	for _, want := range []string{"Not measured: go test failed: line two", "Not measured: no veth",
		"Not measured: postfix not found", "Not measured: skipped (-only)", "Not measured: lab failed"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "Quick mode") {
		t.Error("full-mode report says quick mode")
	}
}

func TestParseProcStatCPU(t *testing.T) {
	// pid (comm with ) and spaces) state ... utime=250 stime=50 (fields 14, 15).
	stat := "1234 (ha proxy) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 2 0 5000 100000 500"
	got, err := parseProcStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; got != want {
		t.Errorf("CPU = %v, want %v", got, want)
	}
	if _, err := parseProcStatCPU("1234 (x) S 1"); err == nil {
		t.Error("short stat line parsed without error")
	}
}

func TestMedianAndOrder(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
	if got := median(nil); got != 0 {
		t.Errorf("median empty = %v", got)
	}
	if a, b := strings.Join(e2eOrder(0), ""), strings.Join(e2eOrder(1), ""); a != "abcs" || b != "scba" {
		t.Errorf("orders %q %q, want abcs scba", a, b)
	}
	if got := groupDigits(1000000); got != "1,000,000" {
		t.Errorf("groupDigits = %q", got)
	}
	if k := flowKey(65536); k.SPort != liveSport || k.Src[3] != 1 {
		t.Errorf("flowKey(65536) = port %d, last byte %d; the spreader writes %d and 1", k.SPort, k.Src[3], liveSport)
	}
}
