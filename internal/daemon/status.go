package daemon

import (
	"time"
)

// Status is what `dsrlb status --json` prints (DESIGN section 9). Fields
// may be added; none may be removed or renamed.
type Status struct {
	VIPs []VIPStatus `json:"vips"`
	Node NodeStatus  `json:"node"`
}

// VIPStatus is one VIP.
type VIPStatus struct {
	Name        string          `json:"name"`
	Address     string          `json:"address"`
	Ports       []uint16        `json:"ports"`
	Persistence string          `json:"persistence"`
	Backends    []BackendStatus `json:"backends"`
	// Packets, Bytes and NewFlows are the VIP's forwarded traffic.
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	NewFlows uint64 `json:"new_flows"`
}

// BackendStatus is one backend of one VIP.
type BackendStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// State is "up", "draining" or "down"; Reason says why in words.
	State  string `json:"state"`
	Reason string `json:"reason"`
	// LastReply is the server's own reply line to the last probe.
	LastReply string     `json:"last_reply"`
	LatencyMS float64    `json:"latency_ms"`
	CheckedAt *time.Time `json:"checked_at"` // null before the first probe
	Weight    uint32     `json:"weight"`
	Priority  uint32     `json:"priority"`
	// RingShare is the fraction of the VIP's Maglev slots pointing here.
	RingShare float64 `json:"ring_share"`
	Packets   uint64  `json:"packets"`
	Bytes     uint64  `json:"bytes"`
	NewFlows  uint64  `json:"new_flows"`
	// PacketsPerSec and NewFlowsPerSec are rates over the last few seconds.
	PacketsPerSec  float64 `json:"packets_per_sec"`
	NewFlowsPerSec float64 `json:"new_flows_per_sec"`
	// LastPacketAt is when the last packet went to the backend (null: never),
	// so an operator sees when a drained backend is idle.
	LastPacketAt *time.Time `json:"last_packet_at"`
	AdminDrain   bool       `json:"admin_drain"`
	MAC          string     `json:"mac"`
	Warning      string     `json:"warning,omitempty"`
}

// NodeStatus describes the node itself.
type NodeStatus struct {
	Interface   string    `json:"interface"`
	XDPMode     string    `json:"xdp_mode"`
	Config      string    `json:"config"`
	StartedAt   time.Time `json:"started_at"`
	ReloadError string    `json:"reload_error"` // "" when the last reload succeeded
	Counters    struct {
		Pass          uint64 `json:"pass"`
		NoBackend     uint64 `json:"no_backend"`
		Fragments     uint64 `json:"fragments"`
		ICMPForwarded uint64 `json:"icmp_forwarded"`
		NonSYNMiss    uint64 `json:"non_syn_miss"`
		FloodGuard    uint64 `json:"flood_guard"`
		Repick        uint64 `json:"repick"`
	} `json:"counters"`
	Reloads map[string]uint64 `json:"reloads"`
	BGP     *BGPStatus        `json:"bgp,omitempty"` // nil without [bgp]
}

// Status snapshots the node.
func (d *Daemon) Status() (Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := Status{VIPs: []VIPStatus{}}
	n := &st.Node
	n.Interface, n.XDPMode, n.Config, n.StartedAt = d.link.Name, d.xdpMode, d.cfgPath, d.started
	if d.reloadErr != nil {
		n.ReloadError = d.reloadErr.Error()
	}
	n.Reloads = map[string]uint64{"success": d.reloads["success"], "failure": d.reloads["failure"]}
	n.BGP = d.bgpStatus()
	g, err := d.dp.GlobalCounters()
	if err != nil {
		return st, err
	}
	c := &n.Counters
	c.Pass, c.NoBackend, c.Fragments, c.ICMPForwarded = g.Pass, g.NoBackend, g.Fragments, g.ICMPForwarded
	c.NonSYNMiss, c.FloodGuard, c.Repick = g.NonSYNMiss, g.FloodGuard, g.Repick

	for _, v := range d.cfg.VIPs {
		vs := d.vips[v.Name]
		if vs == nil {
			continue
		}
		shares := vs.shares
		vst := VIPStatus{Name: v.Name, Address: v.Address.String(), Ports: v.Ports, Persistence: string(v.Persistence), Backends: []BackendStatus{}}
		for _, vb := range v.Backends {
			rs := vs.reals[vb.Name]
			if rs == nil {
				continue
			}
			bs := BackendStatus{Name: vb.Name, Address: rs.backend.Address.String(), State: rs.state.String(), Reason: rs.reason,
				Weight: rs.weight, Priority: rs.priority, RingShare: shares[rs.id], MAC: macString(rs.mac),
				AdminDrain: d.admin.drained(v.Name, vb.Name)}
			if hs, ok := d.checker.StatusOf(v.Name, vb.Name); ok {
				bs.LastReply, bs.Warning = hs.LastReply, hs.Warning
				bs.LatencyMS = float64(hs.Latency.Microseconds()) / 1000
				if !hs.CheckedAt.IsZero() {
					t := hs.CheckedAt.UTC()
					bs.CheckedAt = &t
				}
			}
			bs.PacketsPerSec, bs.NewFlowsPerSec = d.rates.rates(rs.id)
			if cnt, err := d.dp.RealCounters(rs.id); err == nil {
				bs.Packets, bs.Bytes, bs.NewFlows = cnt.Packets, cnt.Bytes, cnt.NewFlows
				if !cnt.LastSeen.IsZero() {
					t := cnt.LastSeen.UTC()
					bs.LastPacketAt = &t
				}
			}
			vst.Backends = append(vst.Backends, bs)
		}
		if cnt, err := d.dp.VIPCounters(vs.id); err == nil {
			vst.Packets, vst.Bytes, vst.NewFlows = cnt.Packets, cnt.Bytes, cnt.NewFlows
		}
		st.VIPs = append(st.VIPs, vst)
	}
	return st, nil
}
