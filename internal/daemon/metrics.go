package daemon

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// collector exposes the daemon's status as Prometheus metrics at scrape
// time: the counters live in BPF maps, so nothing is kept twice.
type collector struct{ d *Daemon }

var (
	descPackets   = prometheus.NewDesc("dsrlb_backend_packets_total", "Packets forwarded to a backend for a VIP.", []string{"vip", "backend"}, nil)
	descBytes     = prometheus.NewDesc("dsrlb_backend_bytes_total", "Bytes forwarded to a backend for a VIP.", []string{"vip", "backend"}, nil)
	descNewFlows  = prometheus.NewDesc("dsrlb_backend_new_flows_total", "New connections (SYNs) sent to a backend for a VIP.", []string{"vip", "backend"}, nil)
	descState     = prometheus.NewDesc("dsrlb_backend_state", "1 for the backend's current state for a VIP (up, draining, down).", []string{"vip", "backend", "state"}, nil)
	descShare     = prometheus.NewDesc("dsrlb_backend_ring_share", "Fraction of the VIP's Maglev slots pointing at the backend.", []string{"vip", "backend"}, nil)
	descLatency   = prometheus.NewDesc("dsrlb_probe_latency_seconds", "MAIL FROM latency of the last deep SMTP probe.", []string{"vip", "backend"}, nil)
	descProbeOK   = prometheus.NewDesc("dsrlb_probe_last_good", "1 when the last probe was good, 0 otherwise.", []string{"vip", "backend"}, nil)
	descVIPPkts   = prometheus.NewDesc("dsrlb_vip_packets_total", "Packets forwarded for a VIP.", []string{"vip"}, nil)
	descXDP       = prometheus.NewDesc("dsrlb_xdp_packets_total", "XDP program counters by kind.", []string{"kind"}, nil)
	descReloads   = prometheus.NewDesc("dsrlb_config_reloads_total", "Config reloads by result.", []string{"result"}, nil)
	descReloadErr = prometheus.NewDesc("dsrlb_config_last_reload_failed", "1 when the last config reload was refused.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.d.Status()
	if err != nil {
		return
	}
	for _, v := range st.VIPs {
		ch <- prometheus.MustNewConstMetric(descVIPPkts, prometheus.CounterValue, float64(v.Packets), v.Name)
		for _, b := range v.Backends {
			l := []string{v.Name, b.Name}
			ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(b.Packets), l...)
			ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(b.Bytes), l...)
			ch <- prometheus.MustNewConstMetric(descNewFlows, prometheus.CounterValue, float64(b.NewFlows), l...)
			ch <- prometheus.MustNewConstMetric(descShare, prometheus.GaugeValue, b.RingShare, l...)
			ch <- prometheus.MustNewConstMetric(descLatency, prometheus.GaugeValue, b.LatencyMS/1000, l...)
			good := 0.0
			if b.CheckedAt != nil && b.State == "up" && b.Reason == "" {
				good = 1
			}
			ch <- prometheus.MustNewConstMetric(descProbeOK, prometheus.GaugeValue, good, l...)
			for _, s := range []string{"up", "draining", "down"} {
				val := 0.0
				if b.State == s {
					val = 1
				}
				ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, val, v.Name, b.Name, s)
			}
		}
	}
	n := st.Node.Counters
	for kind, val := range map[string]uint64{"pass": n.Pass, "no_backend": n.NoBackend, "fragment": n.Fragments,
		"icmp_forwarded": n.ICMPForwarded, "non_syn_miss": n.NonSYNMiss, "flood_guard": n.FloodGuard, "repick": n.Repick} {
		ch <- prometheus.MustNewConstMetric(descXDP, prometheus.CounterValue, float64(val), kind)
	}
	for _, r := range []string{"success", "failure"} {
		ch <- prometheus.MustNewConstMetric(descReloads, prometheus.CounterValue, float64(st.Node.Reloads[r]), r)
	}
	failed := 0.0
	if st.Node.ReloadError != "" {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(descReloadErr, prometheus.GaugeValue, failed)
}

// metricsHandler serves /metrics from a registry of the daemon's own.
func (d *Daemon) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{d})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
