// Command bench runs dsrlb's benchmarks side by side with their baselines
// and writes BENCHMARKS.md: the XDP program's per-packet cost against a bare
// MAC-swap bounce, the live packet rate through a veth, end-to-end SMTP
// sessions through dsrlb against HAProxy and against clients spreading the
// load themselves, and the control plane's Maglev build time.
//
// Run it as root from the repository root:
//
//	go run ./scripts/bench [-quick] [-out BENCHMARKS.md]
//
// Every result is a ratio measured in the same run, with PASS or MISS beside
// each target; a MISS never makes the program fail. A section that cannot
// run (a missing tool, no privileges) is reported as such in the file.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf/rlimit"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses the flags, runs every section and writes the report.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "fewer repeats: a smoke test, not numbers to publish")
	out := fs.String("out", "BENCHMARKS.md", "report to write")
	only := fs.String("only", "cost,live,e2e,control", "sections to run (comma-separated); the others are reported as skipped")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	p := paramsFor(*quick)
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		logf("remove memlock limit: %v", err)
	}
	r := Report{Machine: machineInfo(time.Now()), Params: p}

	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		want[strings.TrimSpace(s)] = true
	}
	const skipped = "skipped (-only)"
	r.CostErr, r.LiveErr, r.E2EErr, r.MaglevErr, r.DaemonErr = skipped, skipped, skipped, skipped, skipped
	if want["cost"] {
		logf("XDP cost (go test -bench XDPCost)")
		r.Cost, r.CostErr = errText(runXDPCost())
	}
	if want["live"] {
		logf("live packet rate (BPF_F_TEST_XDP_LIVE_FRAMES)")
		r.Live, r.LiveErr = errText(runLive(p, logf))
	}
	if want["e2e"] {
		logf("end to end SMTP (Postfix backends, smtp-source)")
		r.E2E, r.E2EErr = errText(runE2E(p, logf))
	}
	if want["control"] {
		logf("control plane (go test -bench MaglevBuild)")
		r.Maglev, r.MaglevErr = errText(runMaglev(p))
		logf("control plane (dsrlb run in a lab)")
		r.DaemonRes, r.DaemonErr = errText(runDaemon(p, logf))
	}

	if err := os.WriteFile(*out, []byte(r.Markdown()), 0o644); err != nil {
		fmt.Fprintf(stderr, "bench: write %s: %v\n", *out, err)
		return 1
	}
	logf("wrote %s", *out)
	return 0
}

// Params are the sizes of one run; -quick shrinks them.
type Params struct {
	Quick bool
	// LiveRepeat is the repeat count of one live-frames test run and
	// LiveRuns how many runs per case (median reported).
	LiveRepeat uint32
	LiveRuns   int
	// LiveFlows is the number of distinct flows of the flow-pressure case.
	LiveFlows int
	// Sessions is the number of SMTP sessions per end-to-end run,
	// Parallel the concurrent sessions and Rounds the interleaved rounds.
	Sessions, Parallel, Rounds int
	// MaglevBenchtime is go test's -benchtime for the Maglev build.
	MaglevBenchtime string
}

func paramsFor(quick bool) Params {
	if quick {
		return Params{Quick: true, LiveRepeat: 1_000_000, LiveRuns: 1, LiveFlows: 1_000_000,
			Sessions: 300, Parallel: 21, Rounds: 1, MaglevBenchtime: "5x"}
	}
	return Params{LiveRepeat: 20_000_000, LiveRuns: 3, LiveFlows: 1_000_000,
		Sessions: 3000, Parallel: 21, Rounds: 3, MaglevBenchtime: "1s"}
}

// errText turns a section's error into the text the report shows.
func errText[T any](v T, err error) (T, string) {
	if err != nil {
		return v, err.Error()
	}
	return v, ""
}
