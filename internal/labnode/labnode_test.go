package labnode

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dsrlb/dsrlb/internal/lab"
)

// A Start that gives up (here its context ends while the daemon never
// answers) kills the daemon: nothing is left running.
func TestFailedStartLeavesNoProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		t.Skip("no /proc/self/ns/net")
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "dsrlb")
	// A daemon that never opens its API socket.
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	host := &lab.Host{Name: "self", NetnsPath: "/proc/self/ns/net", IfName: "lo"}
	n, err := New(&lab.Lab{Name: "test"}, Options{Binary: fake, Dir: dir, PinPath: filepath.Join(dir, "pins"), Host: host})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var pid int
	done := make(chan error, 1)
	go func() { done <- n.Start(ctx) }()
	for pid == 0 {
		select {
		case err := <-done:
			t.Fatalf("Start returned %v before the process was seen", err)
		case <-time.After(10 * time.Millisecond):
			pid = n.PID()
		}
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start = %v, want the context's deadline", err)
	}
	if n.PID() != 0 {
		t.Errorf("node still records PID %d after a failed Start", n.PID())
	}
	if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
		t.Errorf("the daemon (PID %d) is still running after a failed Start (kill -0: %v)", pid, err)
		unix.Kill(pid, unix.SIGKILL)
	}
}
