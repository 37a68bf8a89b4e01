package maps

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Offsets in an untagged IPv4/TCP frame without IP options.
const (
	offSrcLastByte = 14 + 15 // last byte of the IPv4 source address
	offSourcePort  = 14 + 20 // TCP source port
)

// FlowSpreader is a benchmark tool: an XDP program that gives every
// repetition of a BPF_PROG_TEST_RUN (or every live frame) a flow of its
// own, then tail-calls the program under test. A per-CPU counter c (mod
// Flows) becomes the TCP source port (c & 0xffff; flow 0 keeps Port0) and
// the last byte of the IPv4 source address (c >> 16). It lets a benchmark
// measure what one repeated frame cannot: many distinct flows. The frame
// must be an untagged IPv4/TCP frame without IP options.
type FlowSpreader struct {
	// Program is what to run; Next holds, in slot 0, the program it calls.
	Program *ebpf.Program
	Next    *ebpf.Map
	counter *ebpf.Map
}

// NewFlowSpreader builds a spreader over flows distinct flows.
func NewFlowSpreader(flows uint32, port0 uint16) (*FlowSpreader, error) {
	if flows == 0 || flows > 1<<24 {
		return nil, fmt.Errorf("flow spreader: %d flows, want 1..%d", flows, 1<<24)
	}
	ctr, err := ebpf.NewMap(&ebpf.MapSpec{Name: "spread_next", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("flow spreader: counter map: %w", err)
	}
	next, err := ebpf.NewMap(&ebpf.MapSpec{Name: "spread_prog", Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		ctr.Close()
		return nil, fmt.Errorf("flow spreader: program array: %w", err)
	}
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
		asm.Mod.Imm(asm.R7, int32(flows)),
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, offSourcePort+2),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.Mov.Reg(asm.R5, asm.R7),
		asm.And.Imm(asm.R5, 0xffff),
		asm.JNE.Imm(asm.R5, 0, "port"),
		asm.Mov.Imm(asm.R5, int32(port0)),
		asm.HostTo(asm.BE, asm.R5, asm.Half).WithSymbol("port"),
		asm.StoreMem(asm.R2, offSourcePort, asm.R5, asm.Half),
		asm.Mov.Reg(asm.R5, asm.R7),
		asm.RSh.Imm(asm.R5, 16),
		asm.StoreMem(asm.R2, offSrcLastByte, asm.R5, asm.Byte),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMapPtr(asm.R2, next.FD()),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnTailCall.Call(),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("pass"), // XDP_PASS: the tail call failed
		asm.Return(),
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "flow_spreader", Type: ebpf.XDP, AttachType: ebpf.AttachXDP,
		License: "GPL", Instructions: insns})
	if err != nil {
		ctr.Close()
		next.Close()
		return nil, fmt.Errorf("flow spreader: load: %w", err)
	}
	return &FlowSpreader{Program: prog, Next: next, counter: ctr}, nil
}

// Target makes p the program the spreader calls, and restarts the count.
func (s *FlowSpreader) Target(p *ebpf.Program) error {
	if err := s.Next.Put(uint32(0), p); err != nil {
		return fmt.Errorf("flow spreader: target: %w", err)
	}
	if err := s.counter.Put(uint32(0), make([]uint64, ebpf.MustPossibleCPU())); err != nil {
		return fmt.Errorf("flow spreader: reset: %w", err)
	}
	return nil
}

// Close releases the spreader.
func (s *FlowSpreader) Close() error {
	return errors.Join(s.Program.Close(), s.Next.Close(), s.counter.Close())
}
