package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dsrlb/dsrlb/internal/config"
	"github.com/dsrlb/dsrlb/internal/health"
	"github.com/dsrlb/dsrlb/internal/maps"
	"github.com/dsrlb/dsrlb/internal/netif"
)

// apply makes cfg the running config: VIP ids and map entries, (VIP,
// backend) ids, VIP addresses and health targets. Rings and states follow
// in reconcile. Ids of removed pairs are freed (and not reused at once).
func (d *Daemon) apply(cfg *config.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.vips
	next := map[string]*vipState{}
	d.cfg = cfg
	var errs []error

	for _, v := range cfg.VIPs {
		vs, err := d.applyVIP(v, old[v.Name])
		if err != nil {
			errs = append(errs, err)
			if o := old[v.Name]; o != nil {
				next[v.Name] = o // keeps serving as before, not torn down
			}
			continue
		}
		next[v.Name] = vs
	}
	// VIPs that went away: stop matching them, then free their ids.
	for name, vs := range old {
		nv, kept := next[name]
		if kept && nv.cfg.Address == vs.cfg.Address && slices.Equal(nv.cfg.Ports, vs.cfg.Ports) {
			continue
		}
		if err := d.dp.DeleteVIP(vs.cfg.Address, vs.cfg.Ports); err != nil {
			errs = append(errs, err)
		}
		if kept {
			if err := d.dp.SetVIP(nv.cfg.Address, nv.cfg.Ports, nv.id, vipFlags(nv.cfg)); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		d.releaseVIP(vs)
	}
	d.vips = next
	if err := d.manageAddresses(cfg); err != nil {
		errs = append(errs, err)
	}
	if err := d.checker.Replace(d.healthTargets(cfg)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// applyVIP creates or updates one VIP's ids and map entries. Every id the
// VIP needs is allocated before anything is changed, so a VIP that cannot
// be applied (ids exhausted, map update refused) keeps its running state
// whole: no pair is released half-way and no id is leaked.
func (d *Daemon) applyVIP(v config.VIP, vs *vipState) (*vipState, error) {
	fresh := map[string]uint32{} // backend -> newly allocated real id
	undo := func() {
		for _, id := range fresh {
			d.realID.Free(id)
		}
	}
	for _, vb := range v.Backends {
		b, _ := d.cfg.Backend(vb.Name)
		var rs *realState
		if vs != nil {
			rs = vs.reals[vb.Name]
		}
		if rs != nil && rs.backend.Address == b.Address {
			continue // the pair stands as it is
		}
		if _, ok := d.state.RealIDs[pairKey(v.Name, vb.Name)]; ok && rs == nil {
			continue // adopted from state_dir (pinned maps reused)
		}
		id, err := d.realID.Alloc()
		if err != nil {
			undo()
			return nil, fmt.Errorf("vip %q backend %q: %w", v.Name, vb.Name, err)
		}
		fresh[vb.Name] = id
	}
	if vs == nil {
		vs = &vipState{reals: map[string]*realState{}, born: time.Now()}
		id, ok := d.state.VIPIDs[v.Name]
		if !ok {
			var err error
			if id, err = d.vipIDs.Alloc(); err != nil {
				undo()
				return nil, fmt.Errorf("vip %q: %w", v.Name, err)
			}
			d.dp.ResetVIPCounters(id)
			d.dp.ClearRing(id)
			prev := undo
			undo = func() { prev(); d.vipIDs.Free(id) }
		}
		vs.id = id
	}
	if err := d.dp.SetVIP(v.Address, v.Ports, vs.id, vipFlags(v)); err != nil {
		undo()
		return nil, fmt.Errorf("vip %q: %w", v.Name, err)
	}
	d.state.VIPIDs[v.Name] = vs.id
	vs.cfg = v
	keep := map[string]bool{}
	for _, vb := range v.Backends {
		keep[vb.Name] = true
		b, _ := d.cfg.Backend(vb.Name)
		rs := vs.reals[vb.Name]
		if rs == nil || rs.backend.Address != b.Address {
			if rs != nil {
				d.releaseReal(v.Name, vb.Name, rs)
			}
			key := pairKey(v.Name, vb.Name)
			id, ok := fresh[vb.Name]
			if ok {
				d.state.RealIDs[key] = id
				d.dp.ResetRealCounters(id)
			} else {
				id = d.state.RealIDs[key]
			}
			rs = &realState{id: id, state: maps.RealDown, reason: "not probed yet"}
			vs.reals[vb.Name] = rs
		}
		rs.backend, rs.weight, rs.priority = b, vb.Weight, vb.Priority
	}
	for name, rs := range vs.reals {
		if !keep[name] {
			d.releaseReal(v.Name, name, rs)
			delete(vs.reals, name)
		}
	}
	return vs, nil
}

func vipFlags(v config.VIP) uint32 {
	if v.Persistence == config.PersistSourceIP {
		return maps.VIPSourceIP
	}
	return 0
}

// releaseReal retires a pair. Its reals entry is marked unused (its flows
// re-pick) and its id queued for reuse only by the next reconcile, after
// the ring that still points at it has been swapped: until then a SYN
// hashed to one of its slots still finds it up instead of falling to the
// local stack (the sorry server's 421).
func (d *Daemon) releaseReal(vip, backend string, rs *realState) {
	d.retired = append(d.retired, rs.id)
	delete(d.state.RealIDs, pairKey(vip, backend))
	delete(d.state.Health, pairKey(vip, backend))
}

// retirePairs marks the released pairs unused and frees their ids; called
// once no ring points at them.
func (d *Daemon) retirePairs() error {
	var errs []error
	for _, id := range d.retired {
		if err := d.dp.SetReal(id, maps.Real{State: maps.RealUnused}); err != nil {
			errs = append(errs, fmt.Errorf("retire pair id %d: %w", id, err))
		}
		d.realID.Free(id)
	}
	d.retired = nil
	return errors.Join(errs...)
}

// releaseVIP retires a removed VIP.
func (d *Daemon) releaseVIP(vs *vipState) {
	d.dp.ClearRing(vs.id)
	for name, rs := range vs.reals {
		d.releaseReal(vs.cfg.Name, name, rs)
	}
	d.vipIDs.Free(vs.id)
	delete(d.state.VIPIDs, vs.cfg.Name)
}

// manageAddresses adds the VIP addresses to the interface (when
// manage_vip_addresses) and removes the ones dsrlb added that are gone.
func (d *Daemon) manageAddresses(cfg *config.Config) error {
	want := map[string]bool{}
	if cfg.LB.ManageVIPAddresses {
		for _, v := range cfg.VIPs {
			want[v.Address.String()] = true
		}
	}
	var errs []error
	var kept []string
	for _, a := range d.state.AddedAddresses {
		if want[a] {
			kept = append(kept, a)
			continue
		}
		if err := netif.RemoveAddress(d.link, netip.MustParseAddr(a)); err != nil {
			errs = append(errs, err)
			kept = append(kept, a)
		}
	}
	d.state.AddedAddresses = kept
	for a := range want {
		if slices.Contains(d.state.AddedAddresses, a) {
			continue
		}
		added, err := netif.AddAddress(d.link, netip.MustParseAddr(a))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if added {
			d.state.AddedAddresses = append(d.state.AddedAddresses, a)
		}
	}
	slices.Sort(d.state.AddedAddresses)
	return errors.Join(errs...)
}

// healthTargets lists one probe target per (VIP, backend): the backend's
// own address on the VIP's first port, with the VIP's profile.
func (d *Daemon) healthTargets(cfg *config.Config) []health.Target {
	var ts []health.Target
	for _, v := range cfg.VIPs {
		for _, vb := range v.Backends {
			b, _ := cfg.Backend(vb.Name)
			t := health.Target{VIP: v.Name, Backend: b.Name, Addr: netip.AddrPortFrom(b.Address, v.Ports[0]),
				Profile: v.Health, Initial: d.state.Health[pairKey(v.Name, b.Name)]}
			if v.Health.VIPPath {
				t.PathProbe = d.pathProbe(v, b)
			}
			ts = append(ts, t)
		}
	}
	return ts
}

// reconcile turns MACs, health and admin state into reals and rings. The
// order keeps the program consistent at every step: pairs becoming up are
// written before the rings that use them; rings are swapped atomically;
// pairs leaving up are written after the rings that dropped them.
func (d *Daemon) reconcile() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dp == nil {
		return nil
	}
	d.refreshMACs()
	var errs []error
	type pair struct {
		vs *vipState
		rs *realState
	}
	var later []pair // pairs leaving up: written after the rings
	for _, vs := range d.vips {
		for _, rs := range vs.reals {
			state, reason := d.effectiveState(vs.cfg.Name, rs)
			mac := d.macs[rs.backend.Address]
			changed := !rs.written || state != rs.state || !bytes.Equal(mac, rs.mac)
			rs.state, rs.reason, rs.mac = state, reason, mac
			if !changed {
				continue
			}
			if state == maps.RealUp {
				errs = append(errs, d.writeReal(vs, rs))
			} else {
				later = append(later, pair{vs, rs})
			}
		}
	}
	ringsOK := true
	for _, vs := range d.vips {
		if err := d.updateRing(vs); err != nil {
			errs = append(errs, err)
			ringsOK = false
		}
	}
	if ringsOK {
		errs = append(errs, d.retirePairs())
	}
	d.announceVIPs()
	for _, p := range later {
		errs = append(errs, d.writeReal(p.vs, p.rs))
	}
	return errors.Join(errs...)
}

func (d *Daemon) writeReal(vs *vipState, rs *realState) error {
	err := d.dp.SetReal(rs.id, maps.Real{MAC: rs.mac, State: rs.state, VIPID: vs.id})
	rs.written = err == nil
	return err
}

// refreshMACs reads the neighbour table. A backend the table does not know
// now keeps its last MAC while its probes succeed (the probe's own TCP
// session proves ARP/ND works); otherwise it has none.
func (d *Daemon) refreshMACs() {
	var addrs []netip.Addr
	for _, b := range d.cfg.Backends {
		addrs = append(addrs, b.Address)
	}
	known := d.neigh.Resolve(addrs)
	for _, a := range addrs {
		if mac, ok := known[a]; ok {
			d.macs[a] = mac
		} else if !d.backendAnswering(a) {
			delete(d.macs, a)
		}
	}
}

// backendAnswering reports whether any probe of the backend at a is good.
func (d *Daemon) backendAnswering(a netip.Addr) bool {
	for _, vs := range d.vips {
		for _, rs := range vs.reals {
			if rs.backend.Address != a {
				continue
			}
			if s, ok := d.checker.StatusOf(vs.cfg.Name, rs.backend.Name); ok && s.State != health.StateDown && s.State != health.StateUnknown {
				return true
			}
		}
	}
	return false
}

// effectiveState combines MAC, health and admin drain (DESIGN section 4).
func (d *Daemon) effectiveState(vip string, rs *realState) (maps.RealState, string) {
	if d.macs[rs.backend.Address] == nil {
		return maps.RealDown, "no ARP/ND reply"
	}
	hs, _ := d.checker.StatusOf(vip, rs.backend.Name)
	drained := d.admin.drained(vip, rs.backend.Name)
	switch hs.State {
	case health.StateUp:
		if drained {
			return maps.RealDraining, "admin drain"
		}
		return maps.RealUp, ""
	case health.StateDraining:
		if drained {
			return maps.RealDraining, "admin drain; " + hs.Reason
		}
		return maps.RealDraining, hs.Reason
	case health.StateDown:
		return maps.RealDown, hs.Reason
	}
	return maps.RealDown, "not probed yet"
}

// activeSet is the ring's content: the up pairs of the lowest priority
// group that has at least one up pair.
func activeSet(vs *vipState) []*realState {
	best := uint32(0)
	for _, rs := range vs.reals {
		if rs.state == maps.RealUp && (best == 0 || rs.priority < best) {
			best = rs.priority
		}
	}
	var out []*realState
	for _, rs := range vs.reals {
		if rs.state == maps.RealUp && rs.priority == best {
			out = append(out, rs)
		}
	}
	slices.SortFunc(out, func(a, b *realState) int { return a.backend.Address.Compare(b.backend.Address) })
	return out
}

// updateRing rebuilds and swaps the VIP's ring when its active set changed.
func (d *Daemon) updateRing(vs *vipState) error {
	if !vs.ringApplied && !d.firstRoundDone(vs) {
		return nil // DESIGN 4: nothing is forwarded before one probe round
	}
	active := activeSet(vs)
	var b strings.Builder
	for _, rs := range active {
		b.WriteString(strconv.Itoa(int(rs.id)) + ":" + strconv.Itoa(int(rs.weight)) + ",")
	}
	key := b.String()
	if vs.ringApplied && vs.ringKey == key {
		return nil
	}
	if len(active) == 0 {
		if err := d.dp.ClearRing(vs.id); err != nil {
			return err
		}
		vs.ringApplied, vs.ringKey, vs.shares = true, key, nil
		d.log.Warn("no usable backend: VIP traffic goes to the local stack", "vip", vs.cfg.Name)
		return nil
	}
	bs := make([]maps.MaglevBackend, len(active))
	for i, rs := range active {
		bs[i] = maps.MaglevBackend{ID: rs.id, Address: rs.backend.Address, Weight: rs.weight}
	}
	table, err := maps.BuildMaglev(bs, d.dp.RingSize())
	if err != nil {
		return fmt.Errorf("vip %q: %w", vs.cfg.Name, err)
	}
	if err := d.dp.SwapRing(vs.id, table); err != nil {
		return err
	}
	vs.ringApplied, vs.ringKey, vs.shares = true, key, maps.Shares(table)
	names := make([]string, len(active))
	for i, rs := range active {
		names[i] = rs.backend.Name
	}
	d.log.Info("ring updated", "vip", vs.cfg.Name, "backends", strings.Join(names, ","))
	return nil
}

// macString prints a MAC or "-".
func macString(m net.HardwareAddr) string {
	if m == nil {
		return "-"
	}
	return m.String()
}

// firstRoundDone reports whether every backend of a VIP that never had a
// ring has been probed once (or restored from state_dir), so the first
// ring holds all the healthy backends instead of whichever answered first.
// A backend that never answers does not hold the VIP back longer than two
// intervals plus the probe timeouts.
func (d *Daemon) firstRoundDone(vs *vipState) bool {
	h := vs.cfg.Health
	if time.Since(vs.born) > 2*h.Interval+h.Timeout+h.TarpitThreshold {
		return true
	}
	for _, rs := range vs.reals {
		if s, ok := d.checker.StatusOf(vs.cfg.Name, rs.backend.Name); !ok || s.State == health.StateUnknown {
			return false
		}
	}
	return true
}
