package maps

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Counters are a VIP's or a (VIP, backend)'s traffic, summed over CPUs.
// They live in pinned maps, so they are cumulative across daemon restarts.
type Counters struct {
	Packets  uint64
	Bytes    uint64
	NewFlows uint64
	// LastSeen is when the last packet went out; zero when none ever did.
	LastSeen time.Time
}

// Global are the node-wide counters (bpf/consts.h enum global_counter).
// Forwarded packets are not counted here: they are the sum of the
// per-backend counters (one map update less per packet).
type Global struct {
	Pass          uint64 // not for a VIP:port, handed to the kernel
	NoBackend     uint64 // for a VIP with an empty ring, handed to the kernel
	Fragments     uint64 // non-first fragments to a VIP, passed
	ICMPForwarded uint64 // ICMP frag-needed / packet-too-big sent to a flow's backend
	NonSYNMiss    uint64 // non-SYN packets without a flow entry (mid-flow takeover)
	FloodGuard    uint64 // new flows not recorded because of the rate guard
	Repick        uint64 // flows whose backend was down, re-picked
}

// VIPCounters reads VIP id's counters.
func (d *Dataplane) VIPCounters(id uint32) (Counters, error) {
	return d.sumCounters(d.objs.VipStats, id)
}

// RealCounters reads (VIP, backend) id's counters.
func (d *Dataplane) RealCounters(id uint32) (Counters, error) {
	return d.sumCounters(d.objs.RealStats, id)
}

// ResetRealCounters zeroes real id's counters, for an id given to a new pair.
func (d *Dataplane) ResetRealCounters(id uint32) error {
	return d.objs.RealStats.Put(id, make([]dsrlbCounters, ebpf.MustPossibleCPU()))
}

// ResetVIPCounters zeroes VIP id's counters, for an id given to a new VIP.
func (d *Dataplane) ResetVIPCounters(id uint32) error {
	return d.objs.VipStats.Put(id, make([]dsrlbCounters, ebpf.MustPossibleCPU()))
}

func (d *Dataplane) sumCounters(m *ebpf.Map, id uint32) (Counters, error) {
	var per []dsrlbCounters
	if err := m.Lookup(id, &per); err != nil {
		return Counters{}, fmt.Errorf("read counters %d: %w", id, err)
	}
	var c Counters
	var last uint64
	for _, p := range per {
		c.Packets += p.Packets
		c.Bytes += p.Bytes
		c.NewFlows += p.NewFlows
		last = max(last, p.LastSeen)
	}
	if last != 0 {
		t, err := d.jiffiesToTime(last)
		if err != nil {
			return c, err
		}
		c.LastSeen = t
	}
	return c, nil
}

// MonotonicToTime converts a CLOCK_MONOTONIC value (bpf_ktime_get_ns) to
// wall-clock time.
func MonotonicToTime(ns uint64) time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Time{}
	}
	now := time.Now()
	return now.Add(-time.Duration(uint64(ts.Nano()) - ns))
}

// GlobalCounters reads the node-wide counters.
func (d *Dataplane) GlobalCounters() (Global, error) {
	var vals [7]uint64
	for i := range vals {
		var per []uint64
		if err := d.objs.GlobalStats.Lookup(uint32(i), &per); err != nil {
			return Global{}, fmt.Errorf("read global counter %d: %w", i, err)
		}
		for _, v := range per {
			vals[i] += v
		}
	}
	return Global{Pass: vals[0], NoBackend: vals[1], Fragments: vals[2], ICMPForwarded: vals[3],
		NonSYNMiss: vals[4], FloodGuard: vals[5], Repick: vals[6]}, nil
}

// FlowKey is a 5-tuple as the flow table keys it (client -> VIP).
type FlowKey struct {
	Src, Dst     [16]byte // IPv4 in the first 4 bytes
	SPort, DPort uint16   // host byte order
	Family       uint8    // 4 or 6
}

func (k FlowKey) raw() dsrlbFlowKey {
	return dsrlbFlowKey{Src: k.Src, Dst: k.Dst, Sport: htons(k.SPort), Dport: htons(k.DPort), Proto: protoTCP, Family: k.Family}
}

// LookupFlow returns the real id a flow is recorded to.
func (d *Dataplane) LookupFlow(k FlowKey) (uint32, bool, error) {
	var id uint32
	m, key := d.flowMapKey(k)
	err := m.Lookup(key, &id)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("look up flow: %w", err)
	}
	return id, true, nil
}

// PutFlow records a flow (tests and tools).
func (d *Dataplane) PutFlow(k FlowKey, realID uint32) error {
	m, key := d.flowMapKey(k)
	return m.Put(key, realID)
}

// ResetFloodWindow clears the per-CPU new-flow rate windows.
func (d *Dataplane) ResetFloodWindow() error {
	return d.objs.Flood.Put(uint32(0), make([]dsrlbFloodWindow, ebpf.MustPossibleCPU()))
}

// flowMapKey picks the flow table of k's family and its key there.
func (d *Dataplane) flowMapKey(k FlowKey) (*ebpf.Map, any) {
	raw := k.raw()
	if k.Family == familyV4 {
		return d.objs.Flows4, dsrlbFlowKey4{Src: be32(raw.Src), Dst: be32(raw.Dst), Sport: raw.Sport, Dport: raw.Dport}
	}
	return d.objs.Flows6, raw
}
