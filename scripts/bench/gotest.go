package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CostRow is one packet kind of the XDP cost benchmark, in kernel-reported
// ns/packet over 5 runs of 10,000,000 repeats.
type CostRow struct {
	Case             string
	Min, Median, Max float64
}

// costLine matches BenchmarkXDPCost's log lines, for example
// "bench_test.go:96: established    min  20.10 median  20.50 max  21.00 ns/pkt   3.40x bounce".
var costLine = regexp.MustCompile(`:\d+: (\S+)\s+min\s+([\d.]+)\s+median\s+([\d.]+)\s+max\s+([\d.]+)\s+ns/pkt`)

// parseXDPCost extracts the rows of BenchmarkXDPCost's output; the bounce
// must be among them (every ratio is to it).
func parseXDPCost(out string) ([]CostRow, error) {
	var rows []CostRow
	for _, m := range costLine.FindAllStringSubmatch(out, -1) {
		var v [3]float64
		for i := range v {
			f, err := strconv.ParseFloat(m[2+i], 64)
			if err != nil {
				return nil, fmt.Errorf("parse XDP cost line %q: %w", m[0], err)
			}
			v[i] = f
		}
		rows = append(rows, CostRow{Case: m[1], Min: v[0], Median: v[1], Max: v[2]})
	}
	if _, ok := findCost(rows, "bounce"); !ok {
		return nil, fmt.Errorf("parse XDP cost: no bounce line in the benchmark's output:\n%s", tail(out, 2000))
	}
	return rows, nil
}

// findCost returns the row of case name.
func findCost(rows []CostRow, name string) (CostRow, bool) {
	for _, r := range rows {
		if r.Case == name {
			return r, true
		}
	}
	return CostRow{}, false
}

// runXDPCost runs BenchmarkXDPCost of internal/maps once (it measures 5 runs
// of 10M repeats per packet kind itself) and parses its log.
func runXDPCost() ([]CostRow, error) {
	out, err := goTest("-run", "^$", "-bench", "XDPCost", "-benchtime", "1x", "./internal/maps")
	if err != nil {
		return nil, err
	}
	return parseXDPCost(out)
}

// MaglevRow is the time to build one Maglev table of N backends.
type MaglevRow struct {
	N       int
	NsPerOp float64
}

// maglevLine matches "BenchmarkMaglevBuild/N=100-2   	     123	   9876543 ns/op".
var maglevLine = regexp.MustCompile(`(?m)^BenchmarkMaglevBuild/N=(\d+)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op`)

// parseMaglev extracts the rows of BenchmarkMaglevBuild's output.
func parseMaglev(out string) ([]MaglevRow, error) {
	var rows []MaglevRow
	for _, m := range maglevLine.FindAllStringSubmatch(out, -1) {
		n, err1 := strconv.Atoi(m[1])
		ns, err2 := strconv.ParseFloat(m[2], 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("parse Maglev line %q", m[0])
		}
		rows = append(rows, MaglevRow{N: n, NsPerOp: ns})
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("parse Maglev: no BenchmarkMaglevBuild line in:\n%s", tail(out, 2000))
	}
	return rows, nil
}

// runMaglev runs BenchmarkMaglevBuild of internal/maps.
func runMaglev(p Params) ([]MaglevRow, error) {
	out, err := goTest("-run", "^$", "-bench", "MaglevBuild", "-benchtime", p.MaglevBenchtime, "./internal/maps")
	if err != nil {
		return nil, err
	}
	return parseMaglev(out)
}

// goTest runs `go test -v args...` from the current directory (the
// repository root) and returns its output.
func goTest(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"test", "-v"}, args...)...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go test %s: %w\n%s", strings.Join(args, " "), err, tail(buf.String(), 2000))
	}
	return buf.String(), nil
}

// Machine describes where the numbers were measured.
type Machine struct {
	CPU, Kernel, GoVersion string
	Cores                  int
	Date                   time.Time
}

// machineInfo reads the CPU model, core count and kernel release.
func machineInfo(now time.Time) Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), GoVersion: runtime.Version(), Date: now}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	return m
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// firstLine returns s up to its first newline.
func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
