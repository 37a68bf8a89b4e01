package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/dsrlb/dsrlb/internal/config"
	"github.com/dsrlb/dsrlb/internal/netif"
)

// Detach removes what dsrlb made on this node: the XDP program (by removing
// its pinned link), the pinned maps and the VIP addresses it added. Admin
// drains stay (they are the operator's, until `dsrlb undrain`). It refuses
// while a daemon runs on the same state_dir.
func Detach(cfg *config.Config) ([]string, error) {
	lb := cfg.LB
	var done []string
	if err := os.MkdirAll(lb.StateDir, 0o700); err != nil {
		return nil, err
	}
	lock, err := lockStateDir(lb.StateDir)
	if err != nil {
		return nil, fmt.Errorf("%w (stop it before detaching)", err)
	}
	defer lock.Close()
	st, _, err := loadState(lb.StateDir)
	if err != nil {
		return nil, err
	}
	var errs []error
	done, errs = withdrawOnDetach(cfg, done, errs)
	linkPin := filepath.Join(lb.PinPath, linkPinName)
	if _, err := os.Stat(linkPin); err == nil {
		if err := netif.DetachXDP(linkPin); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, "detached XDP program (pinned link "+linkPin+")")
		}
	}
	if _, err := os.Stat(lb.PinPath); err == nil {
		if err := os.RemoveAll(lb.PinPath); err != nil {
			errs = append(errs, fmt.Errorf("remove pins %s: %w", lb.PinPath, err))
		} else {
			done = append(done, "removed pinned maps under "+lb.PinPath)
		}
	}
	if len(st.AddedAddresses) > 0 {
		ifname := st.Interface
		if ifname == "" {
			ifname = lb.Interface
		}
		link, err := netif.LookupLink(ifname)
		if err != nil {
			errs = append(errs, err)
		} else {
			for _, a := range st.AddedAddresses {
				if err := netif.RemoveAddress(link, netip.MustParseAddr(a)); err != nil {
					errs = append(errs, err)
					continue
				}
				done = append(done, "removed VIP address "+a+" from "+ifname)
			}
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(filepath.Join(lb.StateDir, stateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return done, errors.Join(errs...)
}
