package daemon

import (
	"time"

	"github.com/dsrlb/dsrlb/internal/maps"
)

// rateWindow is how far back the per-second rates of `dsrlb status` look.
const rateWindow = 5 * time.Second

// rateSample is one reading of a pair's counters.
type rateSample struct {
	at                time.Time
	packets, newFlows uint64
}

// rateTracker turns cumulative BPF counters into per-second rates: it keeps
// the readings of the last rateWindow for each real id.
type rateTracker struct {
	samples map[uint32][]rateSample
}

// observe records a reading of real id's counters at now.
func (r *rateTracker) observe(id uint32, c maps.Counters, now time.Time) {
	if r.samples == nil {
		r.samples = map[uint32][]rateSample{}
	}
	s := append(r.samples[id], rateSample{at: now, packets: c.Packets, newFlows: c.NewFlows})
	for len(s) > 2 && now.Sub(s[1].at) >= rateWindow {
		s = s[1:]
	}
	r.samples[id] = s
}

// rates returns packets/s and new flows/s of real id over the window (0
// until two readings exist; a counter that went back counts from zero).
func (r *rateTracker) rates(id uint32) (pps, fps float64) {
	s := r.samples[id]
	if len(s) < 2 {
		return 0, 0
	}
	first, last := s[0], s[len(s)-1]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 {
		return 0, 0
	}
	return float64(delta(first.packets, last.packets)) / dt, float64(delta(first.newFlows, last.newFlows)) / dt
}

// forget drops ids no longer in use.
func (r *rateTracker) forget(keep map[uint32]bool) {
	for id := range r.samples {
		if !keep[id] {
			delete(r.samples, id)
		}
	}
}

func delta(a, b uint64) uint64 {
	if b < a {
		return b
	}
	return b - a
}

// sampleRates reads every pair's counters into the rate tracker; the run
// loop calls it every second.
func (d *Daemon) sampleRates() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dp == nil {
		return
	}
	now := time.Now()
	keep := map[uint32]bool{}
	for _, vs := range d.vips {
		for _, rs := range vs.reals {
			keep[rs.id] = true
			if c, err := d.dp.RealCounters(rs.id); err == nil {
				d.rates.observe(rs.id, c, now)
			}
		}
	}
	d.rates.forget(keep)
}
