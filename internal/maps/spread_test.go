package maps

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Offsets in an untagged IPv4/TCP frame without IP options.
const (
	offSrcLastByte = 14 + 15 // last byte of the IPv4 source address
	offSourcePort  = 14 + 20 // TCP source port
)

// flowSpreader is an XDP program that gives every repetition of a test run
// a flow of its own: a per-CPU counter c becomes the TCP source port
// (c & 0xffff) and the last byte of the source address ((c >> 16) & 0xff),
// so 16.7M repetitions see 16.7M distinct 5-tuples. Then it tail-calls
// slot 0 of the returned program array. It measures what one repeated
// frame cannot: the cost of recording a flow the table has never seen.
func flowSpreader(tb testing.TB) (*ebpf.Program, *ebpf.Map) {
	tb.Helper()
	ctr, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ctr.Close() })
	progs, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { progs.Close() })
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, ctr.FD()),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R7, asm.R0, 0, asm.DWord),
		asm.Mov.Reg(asm.R8, asm.R7),
		asm.Add.Imm(asm.R8, 1),
		asm.StoreMem(asm.R0, 0, asm.R8, asm.DWord),
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, offSourcePort+2),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.Mov.Reg(asm.R5, asm.R7),
		asm.And.Imm(asm.R5, 0xffff),
		asm.HostTo(asm.BE, asm.R5, asm.Half),
		asm.StoreMem(asm.R2, offSourcePort, asm.R5, asm.Half),
		asm.Mov.Reg(asm.R5, asm.R7),
		asm.RSh.Imm(asm.R5, 16),
		asm.StoreMem(asm.R2, offSrcLastByte, asm.R5, asm.Byte),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMapPtr(asm.R2, progs.FD()),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnTailCall.Call(),
		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, AttachType: ebpf.AttachXDP, License: "GPL", Instructions: insns})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { prog.Close() })
	return prog, progs
}

// TestFlowSpreaderRecordsNewFlows: behind the spreader every repetition
// is a new flow that the data plane records (so the benchmark measures
// inserts, not one key rewritten).
func TestFlowSpreaderRecordsNewFlows(t *testing.T) {
	tb := newTestbed(t)
	tb.addVIP(1, vip4, []uint16{25}, 0, 3)
	spread, progs := flowSpreader(t)
	if err := progs.Put(uint32(0), tb.d.Program()); err != nil {
		t.Fatal(err)
	}
	syn := pkt{src: ap(client4, 50000), dst: ap(vip4, 25), flags: "S"}.frame(t)
	if _, _, err := spread.Benchmark(syn, 1000, nil); err != nil {
		t.Fatal(err)
	}
	recorded := 0
	src := netip.AddrFrom4([4]byte{10, 1, 2, 0}) // client4 with the spread byte (0 below 65536 flows)
	for port := range 1000 {
		k := NewFlowKey(ap(src, uint16(port)), ap(vip4, 25))
		if _, ok, _ := tb.d.LookupFlow(k); ok {
			recorded++
		}
	}
	// The counter is per CPU: the run may start on either CPU's count.
	if recorded < 500 {
		t.Fatalf("%d of 1000 spread SYNs recorded as distinct flows", recorded)
	}
}
