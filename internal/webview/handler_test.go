package webview

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

const statusDoc = "{\n  \"vips\": []\n}\n"

func newServer(t *testing.T, status func() ([]byte, error)) (*httptest.Server, *Recorder) {
	t.Helper()
	rec := NewRecorder(time.Hour, time.Second)
	srv := httptest.NewServer(Handler(status, rec))
	t.Cleanup(srv.Close)
	return srv, rec
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestSeriesEndpoint(t *testing.T) {
	srv, rec := newServer(t, func() ([]byte, error) { return []byte(statusDoc), nil })
	rec.Add(sample(0, internet(be{"EX1", "up", 0, 0.5}, be{"EX2", "up", 0, 0.5})))
	rec.Add(sample(2, internet(be{"EX1", "up", 8, 0.5}, be{"EX2", "up", 4, 0.5})))
	rec.Add(sample(4, internet(be{"EX1", "up", 12, 1}, be{"EX2", "draining", 4, 0})))

	resp, body := get(t, srv.URL+"/api/series?window=3")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %s: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	var s Series
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	// The last 3 s hold the samples at 2 and 4 s.
	if s.Window != 3 || s.From != ms(2) || s.Now != ms(4) {
		t.Errorf("window %v from %d now %d", s.Window, s.From, s.Now)
	}
	ex1, ex2 := backendOf(t, s, "internet", "EX1"), backendOf(t, s, "internet", "EX2")
	if !reflect.DeepEqual(ex1.Points, []Point{{T: ms(4), Rate: 2}}) || ex1.Share != 1 || ex1.Sessions != 4 {
		t.Errorf("EX1 %+v", ex1)
	}
	if ex2.State != "draining" || ex2.Share != 0 || ex2.RingShareAvg != 0.5 || ex2.RingShare != 0 {
		t.Errorf("EX2 %+v", ex2)
	}
	wantMarker := []Marker{{T: ms(4), VIP: "internet", Backend: "EX2", From: "up", To: "draining", Reason: "why draining"}}
	if !reflect.DeepEqual(s.Markers, wantMarker) {
		t.Errorf("markers %+v", s.Markers)
	}

	// Without window: the default (an hour) covers every sample.
	_, body = get(t, srv.URL+"/api/series")
	s = Series{}
	json.Unmarshal([]byte(body), &s)
	if s.Window != 3600 || s.From != ms(0) || backendOf(t, s, "internet", "EX1").Sessions != 12 {
		t.Errorf("default window: %s", body)
	}
	for _, bad := range []string{"0", "-5", "abc", "1.5"} {
		if resp, body := get(t, srv.URL+"/api/series?window="+bad); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "window") {
			t.Errorf("window=%s: %s %s", bad, resp.Status, body)
		}
	}
}

func TestStatusEndpointPassesTheDocumentThrough(t *testing.T) {
	srv, _ := newServer(t, func() ([]byte, error) { return []byte(statusDoc), nil })
	resp, body := get(t, srv.URL+"/api/status")
	if resp.StatusCode != 200 || body != statusDoc || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s %q", resp.Status, body)
	}
	failing, _ := newServer(t, func() ([]byte, error) { return nil, errors.New("maps gone") })
	resp, body = get(t, failing.URL+"/api/status")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "maps gone") {
		t.Errorf("failing status: %s %q", resp.Status, body)
	}
}

func TestPageAndAssets(t *testing.T) {
	srv, _ := newServer(t, func() ([]byte, error) { return []byte(statusDoc), nil })
	for path, want := range map[string][2]string{
		"/":                 {"text/html", `<script src="/static/app.js"`},
		"/static/app.js":    {"text/javascript", "/api/series?window="},
		"/static/style.css": {"text/css", ".state-draining"},
	} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), want[0]) || !strings.Contains(body, want[1]) {
			t.Errorf("%s: %s %s, body lacks %q", path, resp.Status, resp.Header.Get("Content-Type"), want[1])
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	// Nothing outside the page is loaded: no CDN, works offline.
	for _, path := range []string{"/", "/static/app.js", "/static/style.css"} {
		if _, body := get(t, srv.URL+path); strings.Contains(body, "http://") && !strings.Contains(body, "http://www.w3.org/2000/svg") || strings.Contains(body, "https://") {
			t.Errorf("%s refers to another site", path)
		}
	}
	if resp, _ := get(t, srv.URL+"/nothing"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/nothing: %s", resp.Status)
	}
}

func TestReadOnly(t *testing.T) {
	srv, rec := newServer(t, func() ([]byte, error) { return []byte(statusDoc), nil })
	rec.Add(sample(0, internet(be{"EX1", "up", 0, 1})))
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		for _, path := range []string{"/", "/api/status", "/api/series", "/api/drain"} {
			req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(`{"backend":"EX1","drain":true}`))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %s, Allow %q", method, path, resp.Status, resp.Header.Get("Allow"))
			}
		}
	}
	resp, err := http.Head(srv.URL + "/api/series")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("HEAD /api/series: %s", resp.Status)
	}
}
