// Package webview is dsrlb's live web view: a Recorder keeping the last
// hour of status samples in memory, and a read-only HTTP handler serving
// one page that draws, per VIP, new sessions per second per backend, each
// backend's share of sessions against its ring share, the backend states
// and the moments they changed. It knows nothing of the daemon: the daemon
// converts its status into Samples and feeds them in.
package webview

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Sample is one snapshot of the balancer's status.
type Sample struct {
	At   time.Time
	VIPs []VIPSample
}

// VIPSample is one VIP in a Sample.
type VIPSample struct {
	Name     string
	Backends []BackendSample
}

// BackendSample is one backend of one VIP in a Sample.
type BackendSample struct {
	Name string
	// State is "up", "draining" or "down"; Reason says why in words.
	State, Reason string
	// LastReply is the server's reply to the last probe.
	LastReply string
	// RingShare is the fraction of the VIP's ring pointing at the backend.
	RingShare float64
	// NewFlows is the cumulative count of new sessions sent to the backend.
	NewFlows uint64
	// LastPacketAt is when the last packet went to the backend (zero: never).
	LastPacketAt time.Time
}

// Removed is the state a marker goes to when a backend leaves a VIP.
const Removed = "removed"

// maxMarkers bounds the state-change markers kept.
const maxMarkers = 1024

// maxPoints bounds the points of one backend's series; longer windows are
// merged into buckets (rate = the bucket's sessions / its duration).
const maxPoints = 600

// Recorder keeps the recent samples in a fixed-size ring, so its memory is
// bounded whatever the uptime. It is safe for concurrent use.
type Recorder struct {
	window time.Duration

	mu      sync.Mutex
	ring    []record // capacity fixed at creation
	head    int      // index of the oldest record
	n       int
	latest  Sample // the newest sample in full (reasons, replies)
	markers []Marker
}

// record is the compact form of a sample kept in the ring: only what the
// series need, with names and states shared with the sample's strings.
type record struct {
	at   time.Time
	vips []vipRecord
}

type vipRecord struct {
	name     string
	backends []backendRecord
}

type backendRecord struct {
	name      string
	state     string
	ringShare float64
	newFlows  uint64
}

func (v *vipRecord) backend(name string) (backendRecord, bool) {
	for _, b := range v.backends {
		if b.name == name {
			return b, true
		}
	}
	return backendRecord{}, false
}

// hasRing says whether any backend had a share of the VIP's ring.
func (v *vipRecord) hasRing() bool {
	return slices.ContainsFunc(v.backends, func(b backendRecord) bool { return b.ringShare > 0 })
}

func (r *record) vip(name string) *vipRecord {
	for i := range r.vips {
		if r.vips[i].name == name {
			return &r.vips[i]
		}
	}
	return nil
}

// Marker is a change of a backend's state for one VIP. From is "" when the
// backend joined the VIP; To is Removed when it left.
type Marker struct {
	T       int64  `json:"t"` // Unix milliseconds
	VIP     string `json:"vip"`
	Backend string `json:"backend"`
	From    string `json:"from"`
	To      string `json:"to"`
	Reason  string `json:"reason"`
}

// NewRecorder keeps window worth of samples taken every interval.
func NewRecorder(window, interval time.Duration) *Recorder {
	size := 2
	if interval > 0 && window > 0 {
		size = int(window/interval) + 2
	}
	return &Recorder{window: window, ring: make([]record, size)}
}

// Window is how far back the recorder keeps samples.
func (r *Recorder) Window() time.Duration { return r.window }

// Add records s. A sample not newer than the last one is ignored.
func (r *Recorder) Add(s Sample) {
	rec := record{at: s.At, vips: make([]vipRecord, 0, len(s.VIPs))}
	for _, v := range s.VIPs {
		vr := vipRecord{name: v.Name, backends: make([]backendRecord, 0, len(v.Backends))}
		for _, b := range v.Backends {
			vr.backends = append(vr.backends, backendRecord{name: b.Name, state: b.State, ringShare: b.RingShare, newFlows: b.NewFlows})
		}
		rec.vips = append(rec.vips, vr)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n > 0 {
		last := r.at(r.n - 1)
		if !s.At.After(last.at) {
			return
		}
		r.addMarkers(last, &rec, s)
	}
	if r.n < len(r.ring) {
		r.ring[(r.head+r.n)%len(r.ring)] = rec
		r.n++
	} else {
		r.ring[r.head] = rec
		r.head = (r.head + 1) % len(r.ring)
	}
	r.latest = cloneSample(s)
	cut := s.At.Add(-r.window).UnixMilli()
	r.markers = slices.DeleteFunc(r.markers, func(m Marker) bool { return m.T < cut })
	if over := len(r.markers) - maxMarkers; over > 0 {
		r.markers = slices.Delete(r.markers, 0, over)
	}
}

// at returns the i-th record, oldest first. r.mu is held.
func (r *Recorder) at(i int) *record { return &r.ring[(r.head+i)%len(r.ring)] }

// addMarkers appends the state changes between prev and cur. r.mu is held.
func (r *Recorder) addMarkers(prev, cur *record, s Sample) {
	t := s.At.UnixMilli()
	for _, v := range s.VIPs {
		pv := prev.vip(v.Name)
		if pv == nil {
			continue // a new VIP: its backends' first states are no change
		}
		for _, b := range v.Backends {
			pb, ok := pv.backend(b.Name)
			switch {
			case !ok:
				r.markers = append(r.markers, Marker{T: t, VIP: v.Name, Backend: b.Name, To: b.State, Reason: b.Reason})
			case pb.state != b.State:
				r.markers = append(r.markers, Marker{T: t, VIP: v.Name, Backend: b.Name, From: pb.state, To: b.State, Reason: b.Reason})
			}
		}
		cv := cur.vip(v.Name)
		for _, pb := range pv.backends {
			if _, ok := cv.backend(pb.name); !ok {
				r.markers = append(r.markers, Marker{T: t, VIP: v.Name, Backend: pb.name, From: pb.state, To: Removed})
			}
		}
	}
}

func cloneSample(s Sample) Sample {
	c := Sample{At: s.At, VIPs: make([]VIPSample, len(s.VIPs))}
	for i, v := range s.VIPs {
		c.VIPs[i] = VIPSample{Name: v.Name, Backends: slices.Clone(v.Backends)}
	}
	return c
}

// Series is the document /api/series serves. Times are Unix milliseconds.
type Series struct {
	// Now is the newest sample's time, From the oldest one's in the window
	// (both 0 before the first sample).
	Now  int64 `json:"now"`
	From int64 `json:"from"`
	// Window is the window asked for, in seconds.
	Window  float64     `json:"window"`
	VIPs    []VIPSeries `json:"vips"`
	Markers []Marker    `json:"markers"`
}

// VIPSeries is one VIP's traffic over the window.
type VIPSeries struct {
	Name string `json:"name"`
	// Sessions is the VIP's new sessions over the window (all backends).
	Sessions uint64          `json:"sessions"`
	Backends []BackendSeries `json:"backends"`
}

// BackendSeries is one backend of one VIP over the window.
type BackendSeries struct {
	Name string `json:"name"`
	// Present says whether the newest sample still has the backend; State,
	// Reason, LastReply, RingShare and LastPacketAt come from the newest
	// sample. A backend no longer in it has State "removed", a zero ring
	// share and no details.
	Present      bool       `json:"present"`
	State        string     `json:"state"`
	Reason       string     `json:"reason"`
	LastReply    string     `json:"last_reply"`
	RingShare    float64    `json:"ring_share"`
	LastPacketAt *time.Time `json:"last_packet_at"`
	// RingShareAvg is the ring share averaged over the window's time
	// (the time the VIP had a ring at all).
	RingShareAvg float64 `json:"ring_share_avg"`
	// Sessions is the new sessions over the window; Share is Sessions
	// over the VIP's (0 when the VIP had none).
	Sessions uint64  `json:"sessions"`
	Share    float64 `json:"share"`
	// Points are new sessions per second, one per interval between
	// consecutive samples (or per bucket of them on long windows).
	Points []Point `json:"points"`
}

// Point is a rate at the end of an interval. Gap says the line must not
// join it to the previous point (the backend was absent in between).
type Point struct {
	T    int64   `json:"t"`
	Rate float64 `json:"rate"`
	Gap  bool    `json:"gap,omitempty"`
}

// delta is a counter's increase from prev to cur; a counter that went
// back was reset (a detach), so it counts from 0.
func delta(prev, cur uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// backendAcc accumulates one backend's series.
type backendAcc struct {
	out          *BackendSeries
	shareTime    float64 // ring share × seconds
	bucketFlows  uint64
	bucketDT     float64
	broken, seen bool // a gap since the last point; any point yet
}

// Series computes the series over the last window (clamped to the
// recorder's own window; <= 0 means all of it).
func (r *Recorder) Series(window time.Duration) Series {
	if window <= 0 || window > r.window {
		window = r.window
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := Series{Window: window.Seconds(), VIPs: []VIPSeries{}, Markers: []Marker{}}
	if r.n == 0 {
		return out
	}
	newest := r.at(r.n - 1)
	first := r.n - 1
	for first > 0 && !r.at(first-1).at.Before(newest.at.Add(-window)) {
		first--
	}
	out.Now, out.From = newest.at.UnixMilli(), r.at(first).at.UnixMilli()
	for _, m := range r.markers {
		if m.T >= out.From {
			out.Markers = append(out.Markers, m)
		}
	}

	// VIPs and backends in the order of the newest sample, then those that
	// left within the window.
	accs := map[[2]string]*backendAcc{}
	vipIdx := map[string]int{}
	vipTime := map[string]float64{}
	for i := r.n - 1; i >= first; i-- {
		for _, v := range r.at(i).vips {
			vi, ok := vipIdx[v.name]
			if !ok {
				vi = len(out.VIPs)
				vipIdx[v.name] = vi
				out.VIPs = append(out.VIPs, VIPSeries{Name: v.name})
			}
			for _, b := range v.backends {
				if _, ok := accs[[2]string{v.name, b.name}]; !ok {
					out.VIPs[vi].Backends = append(out.VIPs[vi].Backends, BackendSeries{Name: b.name, Points: []Point{}})
					accs[[2]string{v.name, b.name}] = nil // pointer set below, once the slice stops growing
				}
			}
		}
	}
	for vi := range out.VIPs {
		for bi := range out.VIPs[vi].Backends {
			b := &out.VIPs[vi].Backends[bi]
			accs[[2]string{out.VIPs[vi].Name, b.Name}] = &backendAcc{out: b}
		}
	}
	r.fillLatest(out.VIPs)

	pairs := r.n - 1 - first
	per := max(1, (pairs+maxPoints-1)/maxPoints)
	for i := first + 1; i < r.n; i++ {
		prev, cur := r.at(i-1), r.at(i)
		dt := cur.at.Sub(prev.at).Seconds()
		for _, v := range cur.vips {
			pv := prev.vip(v.name)
			if pv != nil && pv.hasRing() {
				vipTime[v.name] += dt // time without a ring does not dilute the average
			}
			for _, b := range v.backends {
				a := accs[[2]string{v.name, b.name}]
				pb, ok := backendRecord{}, false
				if pv != nil {
					pb, ok = pv.backend(b.name)
				}
				if !ok {
					a.broken = true
					continue
				}
				d := delta(pb.newFlows, b.newFlows)
				a.out.Sessions += d
				a.shareTime += pb.ringShare * dt
				a.bucketFlows += d
				a.bucketDT += dt
			}
			if pv != nil {
				for _, pb := range pv.backends {
					if _, ok := v.backend(pb.name); !ok {
						accs[[2]string{v.name, pb.name}].broken = true
					}
				}
			}
		}
		for _, pv := range prev.vips {
			if cur.vip(pv.name) == nil {
				for _, pb := range pv.backends {
					accs[[2]string{pv.name, pb.name}].broken = true
				}
			}
		}
		if (i-first)%per == 0 || i == r.n-1 {
			for _, a := range accs {
				a.flush(cur.at.UnixMilli())
			}
		}
	}
	for vi := range out.VIPs {
		v := &out.VIPs[vi]
		for bi := range v.Backends {
			v.Sessions += v.Backends[bi].Sessions
		}
		for bi := range v.Backends {
			b := &v.Backends[bi]
			if v.Sessions > 0 {
				b.Share = float64(b.Sessions) / float64(v.Sessions)
			}
			if t := vipTime[v.Name]; t > 0 {
				b.RingShareAvg = accs[[2]string{v.Name, b.Name}].shareTime / t
			} else {
				b.RingShareAvg = b.RingShare
			}
		}
	}
	return out
}

// flush ends a bucket at t, emitting its point if the backend was there.
func (a *backendAcc) flush(t int64) {
	if a.bucketDT > 0 {
		rate := float64(a.bucketFlows) / a.bucketDT
		a.out.Points = append(a.out.Points, Point{T: t, Rate: math.Round(rate*1e6) / 1e6, Gap: a.broken && a.seen})
		a.seen, a.broken = true, false
	}
	a.bucketFlows, a.bucketDT = 0, 0
}

// fillLatest copies the newest known details of each backend. r.mu is held.
func (r *Recorder) fillLatest(vips []VIPSeries) {
	type key struct{ vip, backend string }
	latest := map[key]BackendSample{}
	for _, v := range r.latest.VIPs {
		for _, b := range v.Backends {
			latest[key{v.Name, b.Name}] = b
		}
	}
	for vi := range vips {
		for bi := range vips[vi].Backends {
			b := &vips[vi].Backends[bi]
			lb, ok := latest[key{vips[vi].Name, b.Name}]
			if !ok {
				b.State, b.RingShare = Removed, 0
				continue
			}
			b.Present, b.State, b.Reason, b.LastReply, b.RingShare = true, lb.State, lb.Reason, lb.LastReply, lb.RingShare
			if !lb.LastPacketAt.IsZero() {
				t := lb.LastPacketAt.UTC()
				b.LastPacketAt = &t
			}
		}
	}
}
