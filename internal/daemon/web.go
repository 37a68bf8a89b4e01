package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/dsrlb/dsrlb/internal/webview"
)

// The web view samples the status every webSampleEvery and keeps webWindow
// of samples (1800 at 2 s: well under a megabyte).
const (
	webSampleEvery = 2 * time.Second
	webWindow      = time.Hour
)

// startWeb serves the read-only web view on web_listen and starts the
// sampler feeding it, both until ctx ends.
func (d *Daemon) startWeb(ctx context.Context, wg *sync.WaitGroup) error {
	addr := d.cfg.LB.WebListen
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("web_listen %s: %w", addr, err)
	}
	rec := webview.NewRecorder(webWindow, webSampleEvery)
	d.sampleWeb(rec)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(webSampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				d.sampleWeb(rec)
			}
		}
	}()
	var h http.Handler = webview.Handler(d.statusJSON, rec)
	if isLoopbackListen(l.Addr()) {
		h = loopbackHostOnly(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	serve(ctx, wg, d.log, srv, l, nil)
	d.log.Info("web view listening", "address", l.Addr().String())
	return nil
}

// sampleWeb adds the current status to rec; a failed snapshot is skipped
// (the chart shows a longer interval, not a false zero).
func (d *Daemon) sampleWeb(rec *webview.Recorder) {
	st, err := d.Status()
	if err != nil {
		d.log.Warn("web view sample", "err", err)
		return
	}
	rec.Add(webSample(st, time.Now()))
}

// webSample converts a status into the web view's sample.
func webSample(st Status, at time.Time) webview.Sample {
	s := webview.Sample{At: at, VIPs: make([]webview.VIPSample, 0, len(st.VIPs))}
	for _, v := range st.VIPs {
		vs := webview.VIPSample{Name: v.Name, Backends: make([]webview.BackendSample, 0, len(v.Backends))}
		for _, b := range v.Backends {
			bs := webview.BackendSample{Name: b.Name, State: b.State, Reason: b.Reason, LastReply: b.LastReply,
				RingShare: b.RingShare, NewFlows: b.NewFlows}
			if b.LastPacketAt != nil {
				bs.LastPacketAt = *b.LastPacketAt
			}
			vs.Backends = append(vs.Backends, bs)
		}
		s.VIPs = append(s.VIPs, vs)
	}
	return s
}

// statusJSON is the status document exactly as `dsrlb status --json`
// prints it.
func (d *Daemon) statusJSON() ([]byte, error) {
	st, err := d.Status()
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// isLoopbackListen reports whether a listener is bound to a loopback address.
func isLoopbackListen(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// loopbackHostOnly refuses requests whose Host header is not a loopback
// address or "localhost". A page on another site can point its own name at
// 127.0.0.1 (DNS rebinding) and read a loopback-bound view; such requests
// carry that site's name in Host, and get 403.
func loopbackHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); (err != nil || !ip.IsLoopback()) && !strings.EqualFold(host, "localhost") {
			http.Error(w, "forbidden: the web view answers only to a loopback Host", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
