package lab

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// prepareNativeXDP readies the balancer's bridge port for native XDP on the
// balancer's eth0: XDP_TX frames need an XDP program on the peer (else they
// vanish), and the peer must checksum in software because native XDP loses
// the offload state.
func (l *Lab) prepareNativeXDP() error {
	prog, err := loadXDPPass()
	if err != nil {
		return err
	}
	l.pushCleanup(prog.Close)
	port := l.LB.PortName
	return l.Switch.Do(func() error {
		lk, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: l.LB.PortIndex, Flags: link.XDPDriverMode})
		if err != nil {
			return fmt.Errorf("%s: attach xdp_pass to %s: %w", l.Switch.Name, port, err)
		}
		l.pushCleanup(lk.Close)
		if err := setTxChecksum(port, false); err != nil {
			return fmt.Errorf("%s: %w", l.Switch.Name, err)
		}
		return nil
	})
}

// loadXDPPass loads a program that returns XDP_PASS for every frame.
func loadXDPPass() (*ebpf.Program, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("lab: remove memlock limit: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "xdp_pass",
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 2), // XDP_PASS
			asm.Return(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("lab: load xdp_pass: %w", err)
	}
	return prog, nil
}

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with the ifr_data member of the union.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte
}

// ethtool runs one ETHTOOL_* command taking an ethtool_value on ifname, in
// the calling thread's namespace, and returns the value's data.
func ethtool(ifname string, cmd, data uint32) (uint32, error) {
	if len(ifname) >= unix.IFNAMSIZ {
		return 0, fmt.Errorf("ethtool %s: name too long", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("ethtool %s: socket: %w", ifname, err)
	}
	defer unix.Close(fd)
	val := ethtoolValue{cmd: cmd, data: data}
	var req ifreqData
	copy(req.name[:], ifname)
	req.data = unsafe.Pointer(&val)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req)))
	runtime.KeepAlive(&val)
	if errno != 0 {
		return 0, errno
	}
	return val.data, nil
}

// setTxChecksum switches TX checksum offload of ifname (ethtool -K tx).
func setTxChecksum(ifname string, on bool) error {
	var v uint32
	if on {
		v = 1
	}
	if _, err := ethtool(ifname, unix.ETHTOOL_STXCSUM, v); err != nil {
		return fmt.Errorf("ethtool -K %s tx %v: %w", ifname, on, err)
	}
	return nil
}

// txChecksum reports whether TX checksum offload of ifname is on.
func txChecksum(ifname string) (bool, error) {
	v, err := ethtool(ifname, unix.ETHTOOL_GTXCSUM, 0)
	if err != nil {
		return false, fmt.Errorf("ethtool -k %s: %w", ifname, err)
	}
	return v != 0, nil
}
