package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsrlb/dsrlb/internal/lab"
	"github.com/dsrlb/dsrlb/internal/labnode"
	"github.com/dsrlb/dsrlb/internal/webview"
)

// webAddr is web_listen inside the LB namespace.
const webAddr = "127.0.0.1:9426"

// webClient is an HTTP client whose connections are dialled inside the LB
// namespace (net/http dials from threads of its own).
func (e *env) webClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, err
			}
			return e.lab.LB.DialTCP(ap, 2*time.Second)
		}}}
}

// series fetches /api/series from the daemon's web view.
func (e *env) series(c *http.Client) (webview.Series, error) {
	var s webview.Series
	resp, err := c.Get("http://" + webAddr + "/api/series?window=3600")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("/api/series: %s: %s", resp.Status, b)
	}
	return s, json.Unmarshal(b, &s)
}

// sendFor sends mail from every client to both IPv4 VIPs for d, at a
// rate that rises and falls, and returns the first failure.
func (e *env) sendFor(d time.Duration) error {
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	errs := make(chan error, len(e.lab.Clients))
	for ci, c := range e.lab.Clients {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				for range 1 + (i+2*ci)%4 {
					vip, from := labnode.InternetAddr, "sender@outside.example"
					if i%3 == 2 {
						vip, from = labnode.RelayAddr, "app@"+lab.DefaultInternalDomain
					}
					if err := lab.SendMail(c, netip.AddrPortFrom(vip, 25), from, "postmaster@example.net"); err != nil {
						errs <- fmt.Errorf("%s: %w", c.Name, err)
						return
					}
				}
				time.Sleep(150 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// chromium runs headless Chromium inside the LB namespace and returns its
// standard output.
func chromium(t *testing.T, e *env, args ...string) string {
	t.Helper()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}
	cmd := e.lab.LB.Command("chromium", append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

var (
	vipSectionRE = regexp.MustCompile(`(?s)<section class="vip" data-vip="([^"]+)">(.*?)</section>`)
	seriesPathRE = regexp.MustCompile(`<path class="series" data-backend="([^"]+)" data-points="(\d+)" d="([^"]*)"`)
	rowRE        = regexp.MustCompile(`(?s)<tr data-backend="([^"]+)" data-state="([^"]+)">(.*?)</tr>`)
	markerRE     = regexp.MustCompile(`<g class="marker state-([a-z]+)" data-backend="([^"]+)" data-to="([a-z]+)">`)
)

// TestWebView: the daemon's web view, opened in headless Chromium inside
// the LB namespace after real mail and an admin drain, draws a series per
// backend, shows EX2 draining in its table and as a marker, and makes a
// sensible screenshot (docs/web-view.png with DSRLB_UPDATE_SCREENSHOT=1).
func TestWebView(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Fatalf("this test needs headless Chromium (apt-get install chromium): %v", err)
	}
	update := os.Getenv("DSRLB_UPDATE_SCREENSHOT") == "1"
	before, after := 5*time.Second, 4*time.Second
	if update { // a longer run draws a more telling picture
		before, after = 40*time.Second, 25*time.Second
	}
	e := newEnv(t, envOptions{})
	e.node.Opts.Web = webAddr
	if err := e.node.WriteConfig(""); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.waitAllUp()
	client := e.webClient()

	if err := e.sendFor(before); err != nil {
		t.Fatal(err)
	}
	if out, err := e.node.Run("drain", "EX2", "--vip", labnode.InternetVIP); err != nil {
		t.Fatalf("drain: %v\n%s", err, out)
	}
	e.waitFor("EX2 draining", 5*time.Second, hasState(labnode.InternetVIP, "EX2", "draining", "admin drain"))
	if err := e.sendFor(after); err != nil {
		t.Fatal(err)
	}

	// The series API: every backend of the internet VIP has rates and
	// sessions, EX2 has a marker, and no new session reached EX2 after it.
	var s webview.Series
	var problem string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		var err error
		if s, err = e.series(client); err != nil {
			problem = err.Error()
			continue
		}
		if problem = seriesProblem(s); problem == "" {
			break
		}
	}
	if problem != "" {
		t.Fatalf("series: %s\n%+v", problem, s)
	}

	dom := chromium(t, e, "--dump-dom", "http://"+webAddr+"/")
	checkDOM(t, dom)

	shotDir := os.Getenv("DSRLB_ARTIFACTS")
	if shotDir == "" {
		shotDir = t.TempDir()
	}
	shot := filepath.Join(shotDir, "web-view.png")
	chromium(t, e, "--screenshot="+shot, "--window-size=1280,900", "--hide-scrollbars", "http://"+webAddr+"/")
	checkScreenshot(t, shot)
	t.Logf("screenshot: %s", shot)
	if update {
		b, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("../../docs/web-view.png", b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("updated docs/web-view.png")
	}
}

// seriesProblem says what the series lacks ("" when nothing).
func seriesProblem(s webview.Series) string {
	var internet *webview.VIPSeries
	for i := range s.VIPs {
		if s.VIPs[i].Name == labnode.InternetVIP {
			internet = &s.VIPs[i]
		}
	}
	if internet == nil {
		return "no internet VIP"
	}
	var marker *webview.Marker
	for i, m := range s.Markers {
		if m.VIP == labnode.InternetVIP && m.Backend == "EX2" && m.To == "draining" {
			marker = &s.Markers[i]
		}
	}
	if marker == nil {
		return "no EX2 draining marker"
	}
	if len(internet.Backends) != 3 {
		return fmt.Sprintf("%d backends, want 3", len(internet.Backends))
	}
	for _, b := range internet.Backends {
		if len(b.Points) < 2 || b.Sessions == 0 || b.Share <= 0 {
			return fmt.Sprintf("%s: %d points, %d sessions, share %v", b.Name, len(b.Points), b.Sessions, b.Share)
		}
		if b.Name == "EX2" {
			if b.State != "draining" || b.RingShare != 0 {
				return fmt.Sprintf("EX2 state %s ring share %v", b.State, b.RingShare)
			}
			for _, p := range b.Points {
				if p.T > marker.T && p.Rate != 0 {
					return fmt.Sprintf("EX2 got %v new sessions/s at %d, after its drain marker at %d", p.Rate, p.T, marker.T)
				}
			}
		}
	}
	return ""
}

// checkDOM checks the page Chromium rendered.
func checkDOM(t *testing.T, dom string) {
	t.Helper()
	sections := map[string]string{}
	for _, m := range vipSectionRE.FindAllStringSubmatch(dom, -1) {
		sections[m[1]] = m[2]
	}
	sec, ok := sections[labnode.InternetVIP]
	if !ok || sections[labnode.RelayVIP] == "" {
		t.Fatalf("the page has no section for both VIPs (has %d):\n%s", len(sections), dom)
	}
	paths := map[string]string{}
	for _, m := range seriesPathRE.FindAllStringSubmatch(sec, -1) {
		paths[m[1]] = m[3]
		if m[2] == "0" || m[2] == "1" {
			t.Errorf("series %s has %s points", m[1], m[2])
		}
	}
	for _, b := range []string{"EX1", "EX2", "EX3"} {
		d, ok := paths[b]
		if !ok || !strings.HasPrefix(d, "M") || !strings.Contains(d, "L") {
			t.Errorf("no series line drawn for %s (d=%q)", b, d)
		}
	}
	rows := map[string][2]string{}
	for _, m := range rowRE.FindAllStringSubmatch(sec, -1) {
		rows[m[1]] = [2]string{m[2], m[3]}
	}
	if r := rows["EX2"]; r[0] != "draining" || !strings.Contains(r[1], `class="state state-draining">draining<`) || !strings.Contains(r[1], "admin drain") {
		t.Errorf("table row of EX2 does not show it draining: %q", r)
	}
	if r := rows["EX1"]; r[0] != "up" || !strings.Contains(r[1], "250 ") {
		t.Errorf("table row of EX1: %q", r)
	}
	found := false
	for _, m := range markerRE.FindAllStringSubmatch(sec, -1) {
		found = found || (m[1] == "draining" && m[2] == "EX2" && m[3] == "draining")
	}
	if !found {
		t.Errorf("no draining marker for EX2 on the chart")
	}
	if strings.Contains(dom, "Cannot refresh") && !strings.Contains(dom, `class="error" hidden`) {
		t.Errorf("the page shows a refresh error")
	}
}

// checkScreenshot checks the PNG is the window's size and not blank.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if b := img.Bounds(); b != image.Rect(0, 0, 1280, 900) {
		t.Errorf("screenshot is %v, want 1280x900", b)
	}
	colours := map[[3]uint32]bool{}
	for y := 0; y < 900; y += 3 {
		for x := 0; x < 1280; x += 3 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, b >> 8}] = true
		}
	}
	if len(colours) < 20 {
		t.Errorf("screenshot has %d colours: blank?", len(colours))
	}
}
