package daemon

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestLoopbackHostOnly(t *testing.T) {
	h := loopbackHostOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	for host, want := range map[string]int{
		"127.0.0.1:9426":    http.StatusOK,
		"[::1]:9426":        http.StatusOK,
		"localhost:9426":    http.StatusOK,
		"LOCALHOST":         http.StatusOK,
		"evil.example:9426": http.StatusForbidden,
		"10.0.0.1:9426":     http.StatusForbidden,
		"127.0.0.1.nip.io":  http.StatusForbidden,
		"":                  http.StatusForbidden,
	} {
		r := httptest.NewRequest(http.MethodGet, "/api/status", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
		}
	}
	if !isLoopbackListen(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}) || isLoopbackListen(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1)}) {
		t.Error("isLoopbackListen")
	}
}
