package webview

import (
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// be is a backend in a test sample.
type be struct {
	name, state string
	flows       uint64
	ring        float64
}

// sample builds a sample at t0+sec with one VIP per entry of vips.
func sample(sec float64, vips map[string][]be) Sample {
	s := Sample{At: t0.Add(time.Duration(sec * float64(time.Second)))}
	for _, name := range []string{"internet", "internal-relay"} {
		bs, ok := vips[name]
		if !ok {
			continue
		}
		v := VIPSample{Name: name}
		for _, b := range bs {
			v.Backends = append(v.Backends, BackendSample{Name: b.name, State: b.state, Reason: "why " + b.state,
				LastReply: "250 2.1.0 Sender OK", RingShare: b.ring, NewFlows: b.flows})
		}
		s.VIPs = append(s.VIPs, v)
	}
	return s
}

func internet(bs ...be) map[string][]be { return map[string][]be{"internet": bs} }

func ms(sec float64) int64 { return t0.Add(time.Duration(sec * float64(time.Second))).UnixMilli() }

func backendOf(t *testing.T, s Series, vip, name string) BackendSeries {
	t.Helper()
	for _, v := range s.VIPs {
		if v.Name != vip {
			continue
		}
		for _, b := range v.Backends {
			if b.Name == name {
				return b
			}
		}
	}
	t.Fatalf("series has no %s/%s: %+v", vip, name, s)
	return BackendSeries{}
}

func TestRatesAreCounterDeltasOverTime(t *testing.T) {
	r := NewRecorder(time.Hour, 2*time.Second)
	r.Add(sample(0, internet(be{"EX1", "up", 100, 0.5}, be{"EX2", "up", 7, 0.5})))
	r.Add(sample(2, internet(be{"EX1", "up", 110, 0.5}, be{"EX2", "up", 11, 0.5})))
	r.Add(sample(4, internet(be{"EX1", "up", 130, 0.5}, be{"EX2", "up", 11, 0.5})))
	r.Add(sample(4.5, internet(be{"EX1", "up", 130, 0.5}, be{"EX2", "up", 13, 0.5})))
	s := r.Series(0)
	if s.Now != ms(4.5) || s.From != ms(0) || s.Window != 3600 {
		t.Fatalf("now/from/window = %d/%d/%v", s.Now, s.From, s.Window)
	}
	want1 := []Point{{T: ms(2), Rate: 5}, {T: ms(4), Rate: 10}, {T: ms(4.5), Rate: 0}}
	want2 := []Point{{T: ms(2), Rate: 2}, {T: ms(4), Rate: 0}, {T: ms(4.5), Rate: 4}}
	if got := backendOf(t, s, "internet", "EX1").Points; !reflect.DeepEqual(got, want1) {
		t.Errorf("EX1 points %+v, want %+v", got, want1)
	}
	if got := backendOf(t, s, "internet", "EX2").Points; !reflect.DeepEqual(got, want2) {
		t.Errorf("EX2 points %+v, want %+v", got, want2)
	}
	if v := s.VIPs[0]; v.Sessions != 36 {
		t.Errorf("VIP sessions %d, want 30+6", v.Sessions)
	}
	b := backendOf(t, s, "internet", "EX2")
	if b.Sessions != 6 || b.Share != 6.0/36 || b.State != "up" || b.Reason != "why up" || b.LastReply != "250 2.1.0 Sender OK" || !b.Present {
		t.Errorf("EX2 = %+v", b)
	}
}

func TestCounterResetCountsFromZero(t *testing.T) {
	r := NewRecorder(time.Hour, time.Second)
	r.Add(sample(0, internet(be{"EX1", "up", 100, 1})))
	r.Add(sample(2, internet(be{"EX1", "up", 110, 1})))
	r.Add(sample(4, internet(be{"EX1", "up", 5, 1}))) // detach: counters restart at 0
	r.Add(sample(5, internet(be{"EX1", "up", 8, 1})))
	b := backendOf(t, r.Series(0), "internet", "EX1")
	want := []Point{{T: ms(2), Rate: 5}, {T: ms(4), Rate: 2.5}, {T: ms(5), Rate: 3}}
	if !reflect.DeepEqual(b.Points, want) || b.Sessions != 18 {
		t.Errorf("points %+v sessions %d, want %+v and 18", b.Points, b.Sessions, want)
	}
}

func TestWindowShareAgainstRingShare(t *testing.T) {
	r := NewRecorder(time.Hour, time.Second)
	// Before the first probe round there is no ring: that time does not
	// count in the average ring share.
	r.Add(sample(-100, internet(be{"EX1", "down", 0, 0}, be{"EX2", "down", 0, 0})))
	// 0..10 s: both up, EX1 gets 30 sessions, EX2 10. At 10 s EX2 drains:
	// 10..20 s EX1 alone gets 40 more; EX2 none.
	r.Add(sample(0, internet(be{"EX1", "up", 0, 0.5}, be{"EX2", "up", 0, 0.5})))
	r.Add(sample(10, internet(be{"EX1", "up", 30, 0.5}, be{"EX2", "up", 10, 0.5})))
	r.Add(sample(20, internet(be{"EX1", "up", 70, 1}, be{"EX2", "draining", 10, 0})))
	r.Add(sample(30, internet(be{"EX1", "up", 70, 1}, be{"EX2", "draining", 10, 0})))

	all := r.Series(0)
	if all.From != ms(-100) {
		t.Errorf("from %d, want %d", all.From, ms(-100))
	}
	ex1, ex2 := backendOf(t, all, "internet", "EX1"), backendOf(t, all, "internet", "EX2")
	if ex1.Sessions != 70 || ex2.Sessions != 10 || ex1.Share != 70.0/80 || ex2.Share != 10.0/80 {
		t.Errorf("whole window: EX1 %d %.3f, EX2 %d %.3f", ex1.Sessions, ex1.Share, ex2.Sessions, ex2.Share)
	}
	// Ring share during each interval is the share at its start:
	// EX1 (0.5*10 + 0.5*10 + 1*10)/30, EX2 (0.5*10 + 0.5*10 + 0)/30.
	if !near(ex1.RingShareAvg, 20.0/30) || !near(ex2.RingShareAvg, 10.0/30) || ex2.RingShare != 0 || ex2.State != "draining" {
		t.Errorf("ring shares: EX1 avg %v, EX2 avg %v now %v state %s", ex1.RingShareAvg, ex2.RingShareAvg, ex2.RingShare, ex2.State)
	}

	// The last 15 s hold the samples at 20 and 30 s: nothing happened.
	last := r.Series(15 * time.Second)
	if last.From != ms(20) || last.Window != 15 {
		t.Fatalf("from %d window %v, want %d and 15", last.From, last.Window, ms(20))
	}
	ex1, ex2 = backendOf(t, last, "internet", "EX1"), backendOf(t, last, "internet", "EX2")
	if ex1.Sessions != 0 || ex1.Share != 0 || ex1.RingShareAvg != 1 || ex2.RingShareAvg != 0 || len(ex1.Points) != 1 {
		t.Errorf("last 15 s: EX1 %+v EX2 %+v", ex1, ex2)
	}
	// The last 25 s: from 10 s on, EX1 has every session.
	mid := r.Series(25 * time.Second)
	if ex1 := backendOf(t, mid, "internet", "EX1"); ex1.Sessions != 40 || ex1.Share != 1 {
		t.Errorf("last 25 s: EX1 %+v", ex1)
	}
	// A window wider than the recorder's is clamped.
	if w := r.Series(5 * time.Hour).Window; w != 3600 {
		t.Errorf("window clamped to %v, want 3600", w)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestStateChangeMarkers(t *testing.T) {
	r := NewRecorder(time.Minute, time.Second)
	r.Add(sample(0, internet(be{"EX1", "up", 0, 0.5}, be{"EX2", "down", 0, 0.5})))
	r.Add(sample(1, internet(be{"EX1", "up", 0, 0.5}, be{"EX2", "up", 0, 0.5})))
	r.Add(sample(2, internet(be{"EX1", "up", 0, 1}, be{"EX2", "draining", 0, 0})))
	r.Add(sample(3, internet(be{"EX1", "up", 0, 1}, be{"EX2", "draining", 0, 0}, be{"EX3", "up", 0, 0})))
	r.Add(sample(4, internet(be{"EX1", "up", 0, 1}, be{"EX3", "up", 0, 0})))
	// A new VIP's first states are not changes.
	r.Add(sample(5, map[string][]be{"internet": {{"EX1", "up", 0, 1}, {"EX3", "up", 0, 0}}, "internal-relay": {{"EX1", "down", 0, 0}}}))
	want := []Marker{
		{T: ms(1), VIP: "internet", Backend: "EX2", From: "down", To: "up", Reason: "why up"},
		{T: ms(2), VIP: "internet", Backend: "EX2", From: "up", To: "draining", Reason: "why draining"},
		{T: ms(3), VIP: "internet", Backend: "EX3", From: "", To: "up", Reason: "why up"},
		{T: ms(4), VIP: "internet", Backend: "EX2", From: "draining", To: Removed},
	}
	s := r.Series(0)
	if !reflect.DeepEqual(s.Markers, want) {
		t.Errorf("markers\n got %+v\nwant %+v", s.Markers, want)
	}
	if got := r.Series(2 * time.Second).Markers; !reflect.DeepEqual(got, want[2:]) {
		t.Errorf("markers of the last 2 s: %+v", got)
	}
	if ex2 := backendOf(t, s, "internet", "EX2"); ex2.Present || ex2.State != Removed {
		t.Errorf("EX2 left: %+v", ex2)
	}
	// Markers older than the recorder's window are dropped.
	r.Add(sample(62, internet(be{"EX1", "up", 0, 1})))
	for _, m := range r.Series(0).Markers {
		if m.T < ms(2) {
			t.Errorf("marker %+v outlived the window", m)
		}
	}
}

func TestBackendLeavingAndReturningBreaksTheLine(t *testing.T) {
	r := NewRecorder(time.Hour, time.Second)
	r.Add(sample(0, internet(be{"EX1", "up", 0, 1}, be{"EX2", "up", 0, 0})))
	r.Add(sample(1, internet(be{"EX1", "up", 2, 1}, be{"EX2", "up", 1, 0})))
	r.Add(sample(2, internet(be{"EX1", "up", 4, 1})))
	r.Add(sample(3, internet(be{"EX1", "up", 6, 1}, be{"EX2", "up", 1, 0})))
	r.Add(sample(4, internet(be{"EX1", "up", 8, 1}, be{"EX2", "up", 4, 0})))
	s := r.Series(0)
	want := []Point{{T: ms(1), Rate: 1}, {T: ms(4), Rate: 3, Gap: true}}
	if got := backendOf(t, s, "internet", "EX2").Points; !reflect.DeepEqual(got, want) {
		t.Errorf("EX2 points %+v, want %+v", got, want)
	}
	if got := backendOf(t, s, "internet", "EX1").Points; len(got) != 4 || got[3].Gap {
		t.Errorf("EX1 points %+v", got)
	}
	if n := len(s.VIPs[0].Backends); n != 2 || s.VIPs[0].Backends[0].Name != "EX1" {
		t.Errorf("backends %+v", s.VIPs[0].Backends)
	}
}

func TestMemoryIsBoundedAndLongWindowsAreBucketed(t *testing.T) {
	r := NewRecorder(time.Hour, time.Second)
	const n = 5000 // more than the 3602 the ring holds
	for i := range n {
		r.Add(sample(float64(i), internet(be{"EX1", "up", uint64(3 * i), 1})))
	}
	if r.n != len(r.ring) || len(r.ring) != 3602 {
		t.Fatalf("ring holds %d of %d", r.n, len(r.ring))
	}
	s := r.Series(0)
	b := backendOf(t, s, "internet", "EX1")
	if s.From != ms(n-1-3600) || b.Sessions != 3*3600 {
		t.Errorf("from %d sessions %d, want %d and %d", s.From, b.Sessions, ms(n-1-3600), 3*3600)
	}
	if len(b.Points) > maxPoints || len(b.Points) < maxPoints/2 {
		t.Errorf("%d points for 3600 intervals, want at most %d", len(b.Points), maxPoints)
	}
	for _, p := range b.Points {
		if p.Rate != 3 || p.Gap {
			t.Fatalf("bucketed point %+v, want rate 3", p)
		}
	}
	if last := b.Points[len(b.Points)-1]; last.T != ms(n-1) {
		t.Errorf("last point at %d, want the newest sample %d", last.T, ms(n-1))
	}
}

func TestOlderSamplesAreIgnoredAndAddCopies(t *testing.T) {
	r := NewRecorder(time.Hour, time.Second)
	s := sample(5, internet(be{"EX1", "up", 10, 1}))
	r.Add(s)
	s.VIPs[0].Backends[0].State = "down" // the caller reuses its slices
	r.Add(sample(5, internet(be{"EX1", "up", 99, 1})))
	r.Add(sample(4, internet(be{"EX1", "up", 99, 1})))
	got := r.Series(0)
	if r.n != 1 || backendOf(t, got, "internet", "EX1").State != "up" || len(got.Markers) != 0 {
		t.Errorf("n=%d series %+v", r.n, got)
	}
	if empty := NewRecorder(time.Hour, time.Second).Series(0); len(empty.VIPs) != 0 || empty.Now != 0 || empty.Markers == nil {
		t.Errorf("empty recorder: %+v", empty)
	}
}
