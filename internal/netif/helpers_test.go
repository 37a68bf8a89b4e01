package netif

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/dsrlb/dsrlb/internal/lab"
	"github.com/dsrlb/dsrlb/internal/maps"
)

// newLab builds a lab closed at the end of the test.
func newLab(t *testing.T, opts lab.Options) *lab.Lab {
	t.Helper()
	opts.Prefix = "nif"
	l, err := lab.New(opts)
	if err != nil {
		t.Fatalf("lab.New: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab Close: %v", err)
		}
	})
	return l
}

// in runs fn inside h's namespace on a locked thread. fn may call t.Fatal.
func in(t *testing.T, h *lab.Host, fn func()) {
	t.Helper()
	if err := h.Do(func() error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}

var pinCounter atomic.Int64

// testPin returns a unique link pin path on bpffs. After the test, whatever
// is pinned there is detached and the directory removed.
func testPin(t *testing.T) string {
	t.Helper()
	const root = "/sys/fs/bpf"
	if err := maps.EnsureBPFFS(root); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, fmt.Sprintf("dsrlb-netif-%d-%d", os.Getpid(), pinCounter.Add(1)))
	pin := filepath.Join(dir, "link")
	t.Cleanup(func() {
		if err := DetachXDP(pin); err != nil {
			t.Errorf("cleanup DetachXDP: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove pin directory: %v", err)
		}
	})
	return pin
}

// loadProgram loads the committed data plane (no pins) and returns its XDP
// program and id; it is closed after the test.
func loadProgram(t *testing.T) (*ebpf.Program, ebpf.ProgramID) {
	t.Helper()
	d, err := maps.Load(maps.Options{RingSize: 251, FlowTableSize: 1024})
	if err != nil {
		t.Fatalf("load data plane: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	info, err := d.Program().Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("kernel gives no program id")
	}
	return d.Program(), id
}

// xdpState returns the attach mode and program id netlink reports for the
// interface index (0, 0 when nothing is attached). Call it in the namespace.
func xdpState(t *testing.T, index int) (mode uint32, progID uint32) {
	t.Helper()
	nlk, err := netlink.LinkByIndex(index)
	if err != nil {
		t.Fatal(err)
	}
	x := nlk.Attrs().Xdp
	if x == nil || !x.Attached {
		return 0, 0
	}
	return x.AttachMode, x.ProgId
}

// addBridge creates an up bridge interface (a device without native XDP;
// this kernel has no bridge driver) in the calling thread's namespace and
// returns it as a Link.
func addBridge(t *testing.T, name string) Link {
	t.Helper()
	d := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(d); err != nil {
		t.Fatalf("add bridge %s: %v", name, err)
	}
	if err := netlink.LinkSetUp(d); err != nil {
		t.Fatal(err)
	}
	l, err := LookupLink(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// logBuffer collects log output.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// contains reports whether the log holds every one of parts on one line.
func (l *logBuffer) contains(parts ...string) bool {
	for line := range strings.SplitSeq(l.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// newLog returns a logger writing to a buffer.
func newLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

// eventually polls cond every 50 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
