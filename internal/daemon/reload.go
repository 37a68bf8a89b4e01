package daemon

import (
	"errors"
	"fmt"

	"github.com/dsrlb/dsrlb/internal/config"
)

// reload re-reads the config. An invalid file, or one that changes what
// only a restart can change, changes nothing: the error is logged, kept for
// `dsrlb status` and counted in metrics. A valid one is applied; Maglev
// keeps the ring changes (and moved flows) to the minimum.
func (d *Daemon) reload(why string) {
	stamp := stampOf(d.cfgPath)
	cfg, err := config.Load(d.cfgPath)
	if err == nil {
		d.mu.Lock()
		err = restartOnly(d.cfg, cfg)
		d.mu.Unlock()
	}
	d.mu.Lock()
	d.cfgStamp = stamp
	d.mu.Unlock()
	if err != nil {
		d.mu.Lock()
		d.reloadErr = err
		d.reloads["failure"]++
		d.mu.Unlock()
		d.log.Error("config reload refused: nothing changed", "why", why, "err", err)
		return
	}
	applyErr := d.apply(cfg)
	if d.sorry != nil {
		if err := d.sorry.sync(cfg); err != nil {
			applyErr = errors.Join(applyErr, err)
		}
	}
	d.mu.Lock()
	if applyErr != nil {
		// Valid, but not every part could be applied: what failed keeps
		// running as before, and the operator must see it in status and
		// metrics, not only in the log.
		d.reloadErr = fmt.Errorf("%s: applied with errors (what failed runs as before): %w", cfg.Path, applyErr)
		d.reloads["failure"]++
	} else {
		d.reloadErr = nil
		d.reloads["success"]++
	}
	d.mu.Unlock()
	if err := d.saveState(); err != nil {
		d.log.Error("save state", "err", err)
	}
	if applyErr != nil {
		d.log.Error("config reload applied with errors", "why", why, "err", applyErr)
		return
	}
	d.log.Info("config reloaded", "why", why, "vips", len(cfg.VIPs), "backends", len(cfg.Backends))
}

// restartOnly refuses changes to [lb] keys that the running daemon cannot
// take over (they name the interface, the pins or the listeners).
func restartOnly(old, cfg *config.Config) error {
	o, n := old.LB, cfg.LB
	for _, c := range []struct {
		key      string
		old, new any
	}{
		{"interface", o.Interface, n.Interface},
		{"xdp_mode", o.XDPMode, n.XDPMode},
		{"pin_path", o.PinPath, n.PinPath},
		{"state_dir", o.StateDir, n.StateDir},
		{"ring_size", o.RingSize, n.RingSize},
		{"flow_table_size", o.FlowTableSize, n.FlowTableSize},
		{"hash_seed", o.HashSeed, n.HashSeed},
		{"api_socket", o.APISocket, n.APISocket},
		{"metrics_listen", o.MetricsListen, n.MetricsListen},
		{"web_listen", o.WebListen, n.WebListen},
		{"sorry_server", o.SorryServer, n.SorryServer},
		{"manage_vip_addresses", o.ManageVIPAddresses, n.ManageVIPAddresses},
	} {
		if c.old != c.new {
			return fmt.Errorf("%s: [lb] %s changed from %v to %v: that needs a restart of dsrlb (not applied)", cfg.Path, c.key, c.old, c.new)
		}
	}
	return nil
}
