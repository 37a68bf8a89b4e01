package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named network namespaces are bind-mounted, as `ip netns`
// does it.
const netnsDir = "/run/netns"

// errNameTaken reports that a namespace of that name already exists.
var errNameTaken = errors.New("network namespace name already taken")

// createNamedNetns creates a new network namespace bind-mounted at
// /run/netns/name, like `ip netns add name`, without moving the caller into
// it. It fails with errNameTaken when the name exists (the claim is atomic:
// the mount point is created with O_EXCL).
func createNamedNetns(name string) (err error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: get current namespace: %w", name, err)
	}
	defer orig.Close()
	defer func() {
		// NewNamed unshares this thread into the new namespace: go back.
		if serr := netns.Set(orig); serr != nil {
			// Keep the thread locked so that it dies with this goroutine
			// instead of running other goroutines in the wrong namespace.
			err = errors.Join(err, fmt.Errorf("netns %s: switch back: %w", name, serr))
			return
		}
		runtime.UnlockOSThread()
	}()
	ns, err := netns.NewNamed(name)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return errNameTaken
		}
		return fmt.Errorf("netns %s: create: %w", name, err)
	}
	return ns.Close()
}

// deleteNamedNetns removes /run/netns/name, like `ip netns del name`. A name
// that does not exist is not an error.
func deleteNamedNetns(name string) error {
	p := filepath.Join(netnsDir, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("netns %s: unmount %s: %w", name, p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("netns %s: remove %s: %w", name, p, err)
	}
	return nil
}

// CleanupStale deletes the namespaces a killed lab left behind: every
// /run/netns entry named <prefix><pid>-... whose PID is no longer running.
// Namespaces of live processes (labs running in parallel) are kept. Deleting a
// namespace also removes its interfaces. An empty prefix means the default
// one. It returns the names it deleted.
func CleanupStale(prefix string) ([]string, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cleanup %q: %w", prefix, err)
	}
	var deleted []string
	var errs []error
	for _, e := range entries {
		pid, ok := labPID(e.Name(), prefix)
		if !ok || processAlive(pid) {
			continue
		}
		if err := deleteNamedNetns(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, e.Name())
	}
	return deleted, errors.Join(errs...)
}

// labPID returns the PID in a lab namespace name <prefix><pid>-<n>-<role>.
func labPID(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// processAlive reports whether a process with that PID exists.
func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
