package maps

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Limits of the data plane; they mirror bpf/consts.h.
const (
	MaxVIPs  = 1024 // VIP ids are 0..MaxVIPs-1
	MaxReals = 8192 // (VIP, backend) ids are 1..MaxReals-1; 0 is never used
)

// RealState is the per-(VIP, backend) state the program acts on
// (DESIGN section 4). Values mirror REAL_* in bpf/consts.h.
type RealState uint8

// Real states.
const (
	RealUnused   RealState = 0
	RealUp       RealState = 1
	RealDraining RealState = 2
	RealDown     RealState = 3
)

// String returns the state's name as `dsrlb status` prints it.
func (s RealState) String() string {
	switch s {
	case RealUp:
		return "up"
	case RealDraining:
		return "draining"
	case RealDown:
		return "down"
	}
	return "unused"
}

// ErrIncompatiblePins means the maps pinned under the pin path were made by
// a dsrlb with another map layout (or another ring_size/flow_table_size).
// Nothing was reused; `dsrlb detach` clears them (dropping open flows).
var ErrIncompatiblePins = errors.New("pinned maps are incompatible with this dsrlb")

// Options say how to load the data plane.
type Options struct {
	// PinPath is the bpffs directory to pin (and reuse) maps in; "" pins nothing.
	PinPath string
	// RingSize is the Maglev table size M of every VIP (a prime).
	RingSize uint32
	// FlowTableSize is the number of flows each LRU table (IPv4, IPv6) holds.
	FlowTableSize uint32
}

// Dataplane is the loaded XDP program and its maps.
type Dataplane struct {
	objs     dsrlbObjects
	ringSpec *ebpf.MapSpec
	ringSize uint32
	clock    jiffiesClock
	// Reused is true when the maps came from existing pins (a restart).
	Reused bool
}

// Load loads the XDP program and its maps, creating the maps or reusing
// compatible pinned ones under opts.PinPath.
func Load(opts Options) (*Dataplane, error) {
	if opts.RingSize < 3 || opts.FlowTableSize == 0 {
		return nil, fmt.Errorf("load data plane: ring size %d / flow table size %d out of range", opts.RingSize, opts.FlowTableSize)
	}
	spec, err := loadDsrlb()
	if err != nil {
		return nil, err
	}
	spec.Maps[dsrlbMapFlows4].MaxEntries = opts.FlowTableSize
	spec.Maps[dsrlbMapFlows6].MaxEntries = opts.FlowTableSize
	ringSpec := spec.Maps[dsrlbMapRings].InnerMap
	ringSpec.MaxEntries = opts.RingSize

	var colOpts ebpf.CollectionOptions
	reused := false
	if opts.PinPath != "" {
		if err := os.MkdirAll(opts.PinPath, 0o700); err != nil {
			return nil, fmt.Errorf("load data plane: pin path: %w", err)
		}
		for name, m := range spec.Maps {
			m.Pinning = ebpf.PinByName
			if _, err := os.Stat(opts.PinPath + "/" + name); err == nil {
				reused = true
			}
		}
		colOpts.Maps.PinPath = opts.PinPath
	}
	d := &Dataplane{ringSpec: ringSpec.Copy(), ringSize: opts.RingSize, Reused: reused}
	if err := spec.LoadAndAssign(&d.objs, &colOpts); err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("%w (%s): %v", ErrIncompatiblePins, opts.PinPath, err)
		}
		return nil, fmt.Errorf("load data plane: %w", err)
	}
	if reused {
		if err := d.checkPinnedRingSize(); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// checkPinnedRingSize refuses pins whose rings were built for another M:
// the outer map does not record its inner maps' size.
func (d *Dataplane) checkPinnedRingSize() error {
	s, err := d.Settings()
	if err != nil {
		return err
	}
	if s.RingSize != 0 && s.RingSize != d.ringSize {
		return fmt.Errorf("%w: pinned rings have ring_size %d, config says %d", ErrIncompatiblePins, s.RingSize, d.ringSize)
	}
	return nil
}

// Program is the XDP program to attach.
func (d *Dataplane) Program() *ebpf.Program { return d.objs.DsrlbXdp }

// RingSize is the Maglev table size the data plane was loaded with.
func (d *Dataplane) RingSize() uint32 { return d.ringSize }

// Close releases the process's handles; pinned maps stay in the kernel.
func (d *Dataplane) Close() error { return d.objs.Close() }

// Unpin removes every map pin (the maps go when the last user closes them).
func (d *Dataplane) Unpin() error {
	var errs []error
	for _, m := range []*ebpf.Map{d.objs.Flood, d.objs.Flows4, d.objs.Flows6, d.objs.GlobalStats, d.objs.RealStats,
		d.objs.Reals, d.objs.Rings, d.objs.Settings, d.objs.VipStats, d.objs.Vips4, d.objs.Vips6, d.objs.Clock} {
		if err := m.Unpin(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// EnsureBPFFS mounts bpffs on dir unless it is mounted there already (it
// is not by default on Debian), so maps and links can be pinned under it.
func EnsureBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bpffs: %w", err)
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		return fmt.Errorf("mount bpffs on %s: %w", dir, err)
	}
	return nil
}

// Settings are the node-wide values the program reads on every packet.
type Settings struct {
	HashSeed   uint32
	RingSize   uint32
	FloodLimit uint32 // flow-table inserts per CPU per second; 0 disables the guard
	IfMAC      net.HardwareAddr
}

// DefaultFloodLimit is the per-CPU new-flow rate past which flows are no
// longer recorded (they still follow the consistent hash).
const DefaultFloodLimit = 200000

// SetSettings writes the settings map.
func (d *Dataplane) SetSettings(s Settings) error {
	v := dsrlbLbSettings{HashSeed: s.HashSeed, RingSize: s.RingSize, FloodLimit: s.FloodLimit}
	copy(v.IfMac[:], s.IfMAC)
	if err := d.objs.Settings.Put(uint32(0), v); err != nil {
		return fmt.Errorf("write settings: %w", err)
	}
	return nil
}

// Settings reads the settings map.
func (d *Dataplane) Settings() (Settings, error) {
	var v dsrlbLbSettings
	if err := d.objs.Settings.Lookup(uint32(0), &v); err != nil {
		return Settings{}, fmt.Errorf("read settings: %w", err)
	}
	return Settings{HashSeed: v.HashSeed, RingSize: v.RingSize, FloodLimit: v.FloodLimit,
		IfMAC: net.HardwareAddr(v.IfMac[:])}, nil
}

// addr16 lays an address out as the program does: IPv4 in the first 4 bytes.
func addr16(a netip.Addr) (b [16]byte, family uint8) {
	a = a.Unmap()
	if a.Is4() {
		v4 := a.As4()
		copy(b[:], v4[:])
		return b, familyV4
	}
	return a.As16(), familyV6
}

const (
	familyV4 = 4
	familyV6 = 6
	protoTCP = 6
)

// VIPFlags mirror VIP_F_* in bpf/consts.h.
const (
	// VIPSourceIP hashes the source address only (persistence = "source-ip").
	VIPSourceIP uint32 = 1
)

// SetVIP maps addr:port (and addr alone, for fragments) to VIP id with flags.
func (d *Dataplane) SetVIP(addr netip.Addr, ports []uint16, id, flags uint32) error {
	if id >= MaxVIPs {
		return fmt.Errorf("set VIP %s: id %d out of range", addr, id)
	}
	meta := dsrlbVipMeta{Id: id, Flags: flags}
	for _, k := range d.vipKeys(addr, ports) {
		if err := k.m.Put(k.key, meta); err != nil {
			return fmt.Errorf("set VIP %s port %d: %w", addr, k.port, err)
		}
	}
	return nil
}

// DeleteVIP removes addr:port entries (and the address entry).
func (d *Dataplane) DeleteVIP(addr netip.Addr, ports []uint16) error {
	var errs []error
	for _, k := range d.vipKeys(addr, ports) {
		if err := k.m.Delete(k.key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete VIP %s port %d: %w", addr, k.port, err))
		}
	}
	return errors.Join(errs...)
}

// vipMapKey is one key of a VIP in the map of its family.
type vipMapKey struct {
	m    *ebpf.Map
	key  any
	port uint16
}

// vipKeys are the keys of one VIP: one per port, plus the address alone
// (port 0, proto 0), which the program uses to count fragments to the VIP.
func (d *Dataplane) vipKeys(addr netip.Addr, ports []uint16) []vipMapKey {
	a, fam := addr16(addr)
	key := func(port uint16, proto uint8) vipMapKey {
		if fam == familyV4 {
			return vipMapKey{d.objs.Vips4, dsrlbVipKey4{Addr: be32(a), Port: htons(port), Proto: proto}, port}
		}
		return vipMapKey{d.objs.Vips6, dsrlbVipKey{Addr: a, Port: htons(port), Proto: proto, Family: fam}, port}
	}
	keys := []vipMapKey{key(0, 0)}
	for _, p := range ports {
		keys = append(keys, key(p, protoTCP))
	}
	return keys
}

// be32 is the first 4 bytes of an address as the program's __be32 field
// holds them (network order in memory).
func be32(a [16]byte) uint32 { return binary.NativeEndian.Uint32(a[:4]) }

// VIPEntry is one entry of the vips maps.
type VIPEntry struct {
	Addr  netip.Addr
	Port  uint16 // 0: the address entry
	ID    uint32
	Flags uint32
}

// VIPs lists the vips maps (used to adopt pins after a restart).
func (d *Dataplane) VIPs() ([]VIPEntry, error) {
	var (
		k4  dsrlbVipKey4
		k6  dsrlbVipKey
		v   dsrlbVipMeta
		out []VIPEntry
	)
	it := d.objs.Vips4.Iterate()
	for it.Next(&k4, &v) {
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], k4.Addr)
		out = append(out, VIPEntry{Addr: netip.AddrFrom4(b), Port: ntohs(k4.Port), ID: v.Id, Flags: v.Flags})
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	it = d.objs.Vips6.Iterate()
	for it.Next(&k6, &v) {
		out = append(out, VIPEntry{Addr: netip.AddrFrom16(k6.Addr), Port: ntohs(k6.Port), ID: v.Id, Flags: v.Flags})
	}
	return out, it.Err()
}

// Real is one (VIP, backend) entry: where to send and in which state.
type Real struct {
	MAC   net.HardwareAddr
	State RealState
	VIPID uint32
}

// SetReal writes real id.
func (d *Dataplane) SetReal(id uint32, r Real) error {
	if id == 0 || id >= MaxReals {
		return fmt.Errorf("set real %d: id out of range", id)
	}
	v := dsrlbRealEntry{State: uint8(r.State), VipId: r.VIPID}
	copy(v.Mac[:], r.MAC)
	if err := d.objs.Reals.Put(id, v); err != nil {
		return fmt.Errorf("set real %d: %w", id, err)
	}
	return nil
}

// Real reads real id.
func (d *Dataplane) Real(id uint32) (Real, error) {
	var v dsrlbRealEntry
	if err := d.objs.Reals.Lookup(id, &v); err != nil {
		return Real{}, fmt.Errorf("read real %d: %w", id, err)
	}
	return Real{MAC: net.HardwareAddr(v.Mac[:]), State: RealState(v.State), VIPID: v.VipId}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
func ntohs(v uint16) uint16 { return htons(v) }
