package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/dsrlb/dsrlb/internal/lab"
	"github.com/dsrlb/dsrlb/internal/maps"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LiveRow is one live-frames measurement: a program sending frames through
// a veth for real, at a given number of distinct flows.
type LiveRow struct {
	Prog  string // "bounce" or "dsrlb"
	Flows int
	// Mpps are the runs' rates (kernel repeat count / wall time of the run).
	Mpps []float64
	// SinkFraction is the share of sent frames the peer's sink counted
	// (median run).
	SinkFraction float64
	// Misses are the data plane's flow-table misses on non-SYN packets
	// during the runs (dsrlb only; 0 means every packet hit its flow).
	Misses uint64
}

// bounceObject is the committed bounce build (bpf/bounce.c).
const bounceObject = "internal/maps/bounce_bpfel.o"

// Live-frame packet: client 10.1.0.x:sport -> VIP 198.51.100.25:25, an ACK
// of an established flow. The flow-pressure case rewrites the source port
// and the last byte of the source address per packet.
var (
	liveVIP    = netip.MustParseAddr("198.51.100.25")
	liveClient = netip.MustParseAddr("10.1.0.0")
)

const (
	liveSport     = 40000
	liveRingSize  = 65537
	liveFlowTable = 1 << 22 // per-CPU LRU lists: each CPU gets a share
)

// runLive measures the bounce and dsrlb with BPF_F_TEST_XDP_LIVE_FRAMES.
func runLive(p Params, logf func(string, ...any)) ([]LiveRow, error) {
	ns := fmt.Sprintf("dbl%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", ns, err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	h := &lab.Host{Name: ns, NetnsPath: "/run/netns/" + ns}
	for _, args := range [][]string{
		{"link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"link", "set", "v0", "up"},
		{"link", "set", "v1", "up"},
	} {
		if out, err := h.Command("ip", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%s: ip %v: %v: %s", ns, args, err, out)
		}
	}
	var lb *liveBench
	err := h.Do(func() error {
		var err error
		lb, err = newLiveBench(p)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer lb.Close()

	var rows []LiveRow
	for _, flows := range []int{1, p.LiveFlows} {
		if err := lb.populate(flows); err != nil {
			return nil, err
		}
		br := LiveRow{Prog: "bounce", Flows: flows}
		dr := LiveRow{Prog: "dsrlb", Flows: flows}
		var bFrac, dFrac []float64
		for i := range p.LiveRuns {
			logf("live: %d flow(s), run %d/%d", flows, i+1, p.LiveRuns)
			// Alternate the order so drift hits both alike.
			order := []*LiveRow{&br, &dr}
			if i%2 == 1 {
				slices.Reverse(order)
			}
			for _, row := range order {
				var mpps, frac float64
				var miss uint64
				err := h.Do(func() error {
					var err error
					mpps, frac, miss, err = lb.run(row.Prog, flows)
					return err
				})
				if err != nil {
					return nil, err
				}
				row.Mpps = append(row.Mpps, mpps)
				row.Misses += miss
				if row.Prog == "bounce" {
					bFrac = append(bFrac, frac)
				} else {
					dFrac = append(dFrac, frac)
				}
			}
		}
		br.SinkFraction, dr.SinkFraction = median(bFrac), median(dFrac)
		rows = append(rows, br, dr)
	}
	return rows, nil
}

// liveBench holds the programs and maps of the live-frame runs; everything
// is created inside the benchmark's namespace.
type liveBench struct {
	p         Params
	dp        *maps.Dataplane
	bounce    *ebpf.Collection
	sink      *ebpf.Program
	sinkCount *ebpf.Map
	sinkLink  link.Link
	spreader  *maps.FlowSpreader
	ifindex   uint32
	frame     []byte
	realIDs   []uint32
	populated int
}

func newLiveBench(p Params) (_ *liveBench, err error) {
	lb := &liveBench{p: p}
	defer func() {
		if err != nil {
			lb.Close()
		}
	}()
	v0, err := netlink.LinkByName("v0")
	if err != nil {
		return nil, fmt.Errorf("live: find v0: %w", err)
	}
	v1, err := netlink.LinkByName("v1")
	if err != nil {
		return nil, fmt.Errorf("live: find v1: %w", err)
	}
	lb.ifindex = uint32(v0.Attrs().Index)
	spec, err := ebpf.LoadCollectionSpec(bounceObject)
	if err != nil {
		return nil, fmt.Errorf("live: %w (run from the repository root)", err)
	}
	if lb.bounce, err = ebpf.NewCollection(spec); err != nil {
		return nil, fmt.Errorf("live: load %s: %w", bounceObject, err)
	}
	if lb.sink, lb.sinkCount, err = countingSink(); err != nil {
		return nil, err
	}
	if lb.sinkLink, err = link.AttachXDP(link.XDPOptions{Program: lb.sink, Interface: v1.Attrs().Index, Flags: link.XDPDriverMode}); err != nil {
		return nil, fmt.Errorf("live: attach sink to v1: %w", err)
	}
	if lb.dp, err = maps.Load(maps.Options{RingSize: liveRingSize, FlowTableSize: liveFlowTable}); err != nil {
		return nil, fmt.Errorf("live: %w", err)
	}
	var reals []realSpec
	for i := range 3 {
		reals = append(reals, realSpec{MAC: v1.Attrs().HardwareAddr, Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})})
	}
	if lb.realIDs, err = configureOneVIP(lb.dp, liveVIP, v0.Attrs().HardwareAddr, reals); err != nil {
		return nil, fmt.Errorf("live: %w", err)
	}
	if lb.spreader, err = maps.NewFlowSpreader(uint32(p.LiveFlows), liveSport); err != nil {
		return nil, fmt.Errorf("live: %w", err)
	}
	lb.frame, err = ackFrame(v1.Attrs().HardwareAddr, v0.Attrs().HardwareAddr,
		netip.AddrPortFrom(liveClient, liveSport), netip.AddrPortFrom(liveVIP, 25))
	return lb, err
}

// Close releases the programs and maps.
func (lb *liveBench) Close() {
	if lb.sinkLink != nil {
		lb.sinkLink.Close()
	}
	// Closing a nil *ebpf.Program or *ebpf.Map is a no-op.
	lb.sink.Close()
	lb.sinkCount.Close()
	if lb.spreader != nil {
		lb.spreader.Close()
	}
	if lb.bounce != nil {
		lb.bounce.Close()
	}
	if lb.dp != nil {
		lb.dp.Close()
	}
}

// flowKey is the i-th flow of the flow-pressure case, as the spreader
// writes it into the frame.
func flowKey(i int) maps.FlowKey {
	src := liveClient.As4()
	src[3] = byte(i >> 16)
	sport := uint16(i)
	if sport == 0 {
		sport = liveSport
	}
	return maps.NewFlowKey(netip.AddrPortFrom(netip.AddrFrom4(src), sport), netip.AddrPortFrom(liveVIP, 25))
}

// populate records flows 0..n-1 in the flow table (spread over the reals),
// so every packet of the runs is an established-flow hit.
func (lb *liveBench) populate(n int) error {
	for i := lb.populated; i < n; i++ {
		if err := lb.dp.PutFlow(flowKey(i), lb.realIDs[i%len(lb.realIDs)]); err != nil {
			return fmt.Errorf("live: record flow %d: %w", i, err)
		}
	}
	lb.populated = max(lb.populated, n)
	return nil
}

// xdpMd is struct xdp_md, the context of an XDP test run.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// run sends p.LiveRepeat frames with prog ("bounce" or "dsrlb"), directly
// for one flow or through the flow spreader for more, and returns the rate,
// the share the sink counted and dsrlb's non-SYN flow misses.
func (lb *liveBench) run(prog string, flows int) (mpps, sinkFrac float64, misses uint64, err error) {
	target := lb.bounce.Programs["bounce"]
	if prog == "dsrlb" {
		target = lb.dp.Program()
	}
	runProg := target
	if flows > 1 {
		if err := lb.spreader.Target(target); err != nil {
			return 0, 0, 0, fmt.Errorf("live: spreader before %s: %w", prog, err)
		}
		runProg = lb.spreader.Program
	}
	g0, err := lb.dp.GlobalCounters()
	if err != nil {
		return 0, 0, 0, err
	}
	var start time.Time
	var seen0 uint64
	reset := func() {
		seen0, _ = sumPerCPU(lb.sinkCount)
		start = time.Now()
	}
	reset()
	opts := ebpf.RunOptions{
		Data:    lb.frame,
		Context: xdpMd{DataEnd: uint32(len(lb.frame)), IngressIfindex: lb.ifindex},
		Repeat:  lb.p.LiveRepeat,
		Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		Reset:   reset,
	}
	if _, err := runProg.Run(&opts); err != nil {
		return 0, 0, 0, fmt.Errorf("live: run %s (%d flows): %w", prog, flows, err)
	}
	wall := time.Since(start)
	time.Sleep(50 * time.Millisecond) // let the peer's NAPI drain its ring
	seen, err := sumPerCPU(lb.sinkCount)
	if err != nil {
		return 0, 0, 0, err
	}
	g1, err := lb.dp.GlobalCounters()
	if err != nil {
		return 0, 0, 0, err
	}
	n := float64(lb.p.LiveRepeat)
	return n / wall.Seconds() / 1e6, float64(seen-seen0) / n, g1.NonSYNMiss - g0.NonSYNMiss, nil
}

// realSpec is one backend of a benchmark VIP: where frames go and the
// address its Maglev permutation derives from.
type realSpec struct {
	MAC  net.HardwareAddr
	Addr netip.Addr
}

// configureOneVIP installs VIP id 1 on port 25 with one up real per spec
// (ids 1..n) and its Maglev ring; ifMAC is the attached interface's MAC.
func configureOneVIP(dp *maps.Dataplane, vip netip.Addr, ifMAC net.HardwareAddr, reals []realSpec) ([]uint32, error) {
	if err := dp.SetSettings(maps.Settings{HashSeed: 0x5eed, RingSize: dp.RingSize(), FloodLimit: maps.DefaultFloodLimit, IfMAC: ifMAC}); err != nil {
		return nil, err
	}
	if err := dp.SetVIP(vip, []uint16{25}, 1, 0); err != nil {
		return nil, err
	}
	var ids []uint32
	var mb []maps.MaglevBackend
	for i, r := range reals {
		id := uint32(i + 1)
		if err := dp.SetReal(id, maps.Real{MAC: r.MAC, State: maps.RealUp, VIPID: 1}); err != nil {
			return nil, err
		}
		ids = append(ids, id)
		mb = append(mb, maps.MaglevBackend{ID: id, Address: r.Addr, Weight: 1})
	}
	table, err := maps.BuildMaglev(mb, dp.RingSize())
	if err != nil {
		return nil, err
	}
	return ids, dp.SwapRing(1, table)
}

// ackFrame builds an Ethernet/IPv4/TCP ACK from src to dst.
func ackFrame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort) ([]byte, error) {
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
		Seq: 1000, Ack: 2000, ACK: true, Window: 65535}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		return nil, err
	}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload("NOOP\r\n"))
	if err != nil {
		return nil, fmt.Errorf("build frame: %w", err)
	}
	return buf.Bytes(), nil
}

// countingSink is an XDP program that counts frames in a per-CPU array and
// drops them: the receiving end of the veth (native XDP_TX and redirects
// into a veth need a program on the peer), cheaper than passing frames up
// a stack that would discard them anyway.
func countingSink() (*ebpf.Program, *ebpf.Map, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "sink_count", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, nil, fmt.Errorf("live: sink counter map: %w", err)
	}
	insns := append(lookupSlot0(m, "out"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("out"), // XDP_DROP
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "count_sink", Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("live: load counting sink: %w", err)
	}
	return prog, m, nil
}

// lookupSlot0 looks up key 0 of m into R0, jumping to label when absent.
func lookupSlot0(m *ebpf.Map, label string) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, label),
	}
}

// sumPerCPU sums key 0 of a per-CPU u64 array.
func sumPerCPU(m *ebpf.Map) (uint64, error) {
	var vals []uint64
	if err := m.Lookup(uint32(0), &vals); err != nil {
		return 0, fmt.Errorf("read %s: %w", m, err)
	}
	var s uint64
	for _, v := range vals {
		s += v
	}
	return s, nil
}
