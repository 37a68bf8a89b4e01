package maps

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/cilium/ebpf"
)

// jiffiesClock converts the program's bpf_jiffies64() timestamps (free to
// read per packet, unlike the kernel's clocks) to wall-clock time. It learns
// the kernel's HZ and a reference point once, from two samples of the
// clock_sample program 100 ms apart.
type jiffiesClock struct {
	once    sync.Once
	err     error
	hz      float64
	refJ    uint64
	refMono uint64
}

// knownHZ are the kernel's CONFIG_HZ choices.
var knownHZ = [...]float64{100, 250, 300, 1000}

// sampleClock runs clock_sample and reads the pair it wrote.
func (d *Dataplane) sampleClock() (dsrlbClockPair, error) {
	var pair dsrlbClockPair
	opts := ebpf.RunOptions{Data: make([]byte, 14)}
	if _, err := d.objs.ClockSample.Run(&opts); err != nil {
		return pair, fmt.Errorf("clock sample: %w", err)
	}
	if err := d.objs.Clock.Lookup(uint32(0), &pair); err != nil {
		return pair, fmt.Errorf("clock sample: %w", err)
	}
	return pair, nil
}

func (d *Dataplane) calibrateClock() {
	c := &d.clock
	a, err := d.sampleClock()
	if err != nil {
		c.err = err
		return
	}
	time.Sleep(100 * time.Millisecond)
	b, err := d.sampleClock()
	if err != nil {
		c.err = err
		return
	}
	measured := float64(b.Jiffies-a.Jiffies) / (float64(b.MonoNs-a.MonoNs) / 1e9)
	c.hz = knownHZ[0]
	for _, hz := range knownHZ {
		if math.Abs(hz-measured) < math.Abs(c.hz-measured) {
			c.hz = hz
		}
	}
	c.refJ, c.refMono = b.Jiffies, b.MonoNs
}

// jiffiesToTime converts a jiffies timestamp of the program to wall time.
func (d *Dataplane) jiffiesToTime(j uint64) (time.Time, error) {
	d.clock.once.Do(d.calibrateClock)
	if d.clock.err != nil {
		return time.Time{}, d.clock.err
	}
	delta := (float64(j) - float64(d.clock.refJ)) * 1e9 / d.clock.hz
	return MonotonicToTime(uint64(float64(d.clock.refMono) + delta)), nil
}
