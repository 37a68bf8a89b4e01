package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/dsrlb/dsrlb/internal/health"
)

// pairKey names a (VIP, backend) pair in persisted state.
func pairKey(vip, backend string) string { return vip + "/" + backend }

// persisted is what the daemon keeps in state_dir/state.json so a restart
// neither empties a ring nor moves a flow: the ids the pinned maps use and
// the last health states (DESIGN section 4).
type persisted struct {
	VIPIDs  map[string]uint32       `json:"vip_ids"`
	RealIDs map[string]uint32       `json:"real_ids"` // "vip/backend" -> id
	Health  map[string]health.State `json:"health"`   // "vip/backend" -> state
	// AddedAddresses are VIP addresses dsrlb added to the interface (and
	// will remove on detach); addresses that were already there are not.
	AddedAddresses []string `json:"added_addresses"`
	Interface      string   `json:"interface"`
}

// adminState is state_dir/admin.json: admin drains, which survive
// restarts and detach until `dsrlb undrain`.
type adminState struct {
	// Drained holds "vip/backend" pairs, or "*/backend" for every VIP.
	Drained map[string]bool `json:"drained"`
}

const (
	stateFile = "state.json"
	adminFile = "admin.json"
	lockFile  = "dsrlb.lock"
	// adminLockFile serialises changes to adminFile.
	adminLockFile = "admin.lock"
)

// readJSON reads path into v; a missing file leaves v untouched.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeJSON writes v to path atomically (temp file + rename).
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadState reads both state files of dir.
func loadState(dir string) (persisted, adminState, error) {
	p := persisted{VIPIDs: map[string]uint32{}, RealIDs: map[string]uint32{}, Health: map[string]health.State{}}
	a := adminState{Drained: map[string]bool{}}
	if err := readJSON(filepath.Join(dir, stateFile), &p); err != nil {
		return p, a, fmt.Errorf("read state: %w", err)
	}
	if err := readJSON(filepath.Join(dir, adminFile), &a); err != nil {
		return p, a, fmt.Errorf("read admin state: %w", err)
	}
	if p.VIPIDs == nil {
		p.VIPIDs = map[string]uint32{}
	}
	if p.RealIDs == nil {
		p.RealIDs = map[string]uint32{}
	}
	if p.Health == nil {
		p.Health = map[string]health.State{}
	}
	if a.Drained == nil {
		a.Drained = map[string]bool{}
	}
	return p, a, nil
}

// SetAdminDrain records (or clears) an admin drain of backend for vip
// ("" = every VIP) in state dir, whether or not a daemon is running.
func SetAdminDrain(dir, vip, backend string, drained bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Read-modify-write under a lock of its own (the daemon holds the
	// state_dir lock): two drains at once must not lose one of them.
	lock, err := os.OpenFile(filepath.Join(dir, adminLockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock admin state: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock admin state %s: %w", lock.Name(), err)
	}
	_, a, err := loadState(dir)
	if err != nil {
		return err
	}
	if vip == "" {
		vip = "*"
	}
	k := pairKey(vip, backend)
	if !drained && vip != "*" && a.Drained[pairKey("*", backend)] {
		return fmt.Errorf("%s is drained for every VIP: `dsrlb undrain %s` (without --vip) ends that drain", backend, backend)
	}
	if drained {
		a.Drained[k] = true
	} else {
		delete(a.Drained, k)
		if vip == "*" { // undrain for every VIP clears per-VIP drains too
			for key := range a.Drained {
				if filepath.Base(key) == backend {
					delete(a.Drained, key)
				}
			}
		}
	}
	return writeJSON(filepath.Join(dir, adminFile), a)
}

func (a adminState) drained(vip, backend string) bool {
	return a.Drained[pairKey(vip, backend)] || a.Drained[pairKey("*", backend)]
}
