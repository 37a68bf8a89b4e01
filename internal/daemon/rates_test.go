package daemon

import (
	"math"
	"testing"
	"time"

	"github.com/dsrlb/dsrlb/internal/maps"
)

func TestRateTracker(t *testing.T) {
	var r rateTracker
	t0 := time.Unix(1000, 0)
	if pps, fps := r.rates(1); pps != 0 || fps != 0 {
		t.Fatal("rates before any reading")
	}
	r.observe(1, maps.Counters{Packets: 100, NewFlows: 10}, t0)
	r.observe(1, maps.Counters{Packets: 300, NewFlows: 14}, t0.Add(2*time.Second))
	if pps, fps := r.rates(1); pps != 100 || fps != 2 {
		t.Fatalf("got %v pps %v fps, want 100 and 2", pps, fps)
	}
	// Old readings leave the window.
	for i := 3; i <= 10; i++ {
		r.observe(1, maps.Counters{Packets: 300 + uint64(i-2)*10, NewFlows: 14}, t0.Add(time.Duration(i)*time.Second))
	}
	if pps, fps := r.rates(1); math.Abs(pps-10) > 1e-9 || fps != 0 {
		t.Fatalf("after the burst: %v pps %v fps, want 10 and 0", pps, fps)
	}
	if n := len(r.samples[1]); n > int(rateWindow/time.Second)+2 {
		t.Fatalf("%d readings kept: the window does not bound them", n)
	}
	// A counter that went back (a new pair on a reused id) counts from zero.
	var z rateTracker
	z.observe(2, maps.Counters{Packets: 500}, t0)
	z.observe(2, maps.Counters{Packets: 40}, t0.Add(time.Second))
	if pps, _ := z.rates(2); pps != 40 {
		t.Fatalf("after a reset: %v pps, want 40", pps)
	}
	z.forget(map[uint32]bool{})
	if len(z.samples) != 0 {
		t.Fatal("forget kept a dropped id")
	}
}
