package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DrainRequest asks for (or ends) an admin drain.
type DrainRequest struct {
	Backend string `json:"backend"`
	VIP     string `json:"vip"` // "" = every VIP the backend serves
	Drain   bool   `json:"drain"`
}

// listenAPI opens the status API's unix socket (0600, root only). A stale
// socket left by a killed daemon is removed; a live one means another
// daemon runs, and is an error.
func listenAPI(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("api_socket: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("api_socket %s: another dsrlb is answering on it", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api_socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// apiHandler serves GET /status and POST /drain.
func (d *Daemon) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st, err := d.Status()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		var req DrainRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := d.SetDrain(req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// SetDrain records an admin drain (persisted in state_dir) and applies it.
func (d *Daemon) SetDrain(req DrainRequest) error {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	if err := CheckDrainTarget(cfg, req.VIP, req.Backend); err != nil {
		return err
	}
	// One change at a time from file to d.admin, so a slower request
	// cannot put back an admin state older than a faster one's.
	d.adminMu.Lock()
	defer d.adminMu.Unlock()
	if err := SetAdminDrain(cfg.LB.StateDir, req.VIP, req.Backend, req.Drain); err != nil {
		return err
	}
	_, admin, err := loadState(cfg.LB.StateDir)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.admin = admin
	d.mu.Unlock()
	d.log.Info("admin state changed", "backend", req.Backend, "vip", req.VIP, "drain", req.Drain)
	return d.reconcile()
}

// startServers starts the status API, metrics, the web view and the sorry server.
func (d *Daemon) startServers(ctx context.Context, wg *sync.WaitGroup) error {
	lb := d.cfg.LB
	l, err := listenAPI(lb.APISocket)
	if err != nil {
		return err
	}
	serve(ctx, wg, d.log, &http.Server{Handler: d.apiHandler()}, l, func() { os.Remove(lb.APISocket) })
	if lb.MetricsListen != "" {
		ml, err := net.Listen("tcp", lb.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics_listen %s: %w", lb.MetricsListen, err)
		}
		serve(ctx, wg, d.log, &http.Server{Handler: d.metricsHandler()}, ml, nil)
	}
	if lb.WebListen != "" {
		if err := d.startWeb(ctx, wg); err != nil {
			return err
		}
	}
	if lb.SorryServer {
		d.sorry = newSorryServer(ctx, wg)
		if err := d.sorry.sync(d.currentConfig()); err != nil {
			return err
		}
	}
	return nil
}

// serve runs srv on l until ctx ends.
func serve(ctx context.Context, wg *sync.WaitGroup, log *slog.Logger, srv *http.Server, l net.Listener, after func()) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("server stopped", "listen", l.Addr().String(), "err", err)
		}
		if after != nil {
			after()
		}
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
}
