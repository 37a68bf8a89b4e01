package webview

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

//go:embed assets
var assets embed.FS

// DefaultWindow is the series window when the request names none.
const DefaultWindow = time.Hour

// Handler serves the web view, read-only: GET (or HEAD) of / (the page),
// /static/... (its script and style), /api/status (statusJSON, the same
// document as `dsrlb status --json`) and /api/series?window=SECONDS (rec's
// series). Any other method gets 405.
func Handler(statusJSON func() ([]byte, error), rec *Recorder) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		serveAsset(w, r, "assets/index.html", "text/html; charset=utf-8")
	})
	mux.HandleFunc("/static/app.js", func(w http.ResponseWriter, r *http.Request) {
		serveAsset(w, r, "assets/app.js", "text/javascript; charset=utf-8")
	})
	mux.HandleFunc("/static/style.css", func(w http.ResponseWriter, r *http.Request) {
		serveAsset(w, r, "assets/style.css", "text/css; charset=utf-8")
	})
	mux.HandleFunc("/api/status", func(w http.ResponseWriter, r *http.Request) {
		b, err := statusJSON()
		if err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, b)
	})
	mux.HandleFunc("/api/series", func(w http.ResponseWriter, r *http.Request) {
		window, err := parseWindow(r.URL.Query().Get("window"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b, err := json.Marshal(rec.Series(window))
		if err != nil {
			http.Error(w, "series: "+err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, b)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "read-only: "+r.Method+" is not allowed", http.StatusMethodNotAllowed)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// parseWindow reads the window query parameter: whole seconds > 0; empty
// means DefaultWindow.
func parseWindow(s string) (time.Duration, error) {
	if s == "" {
		return DefaultWindow, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("window=%q: want whole seconds > 0", s)
	}
	return time.Duration(n) * time.Second, nil
}

func serveAsset(w http.ResponseWriter, r *http.Request, name, contentType string) {
	b, err := assets.ReadFile(name)
	if err != nil {
		http.Error(w, "asset "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

func writeJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}
