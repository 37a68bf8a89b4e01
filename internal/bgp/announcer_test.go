package bgp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var nsSeq atomic.Int32

// netnsPair makes two namespaces joined by a veth (eth0 on both sides):
// the router at 10.99.0.1 / 2001:db8:99::1, the node at .2 / ::2. It
// returns their /run/netns paths.
func netnsPair(t *testing.T) (router, node string) {
	t.Helper()
	base := fmt.Sprintf("dbg%d-%d", os.Getpid(), nsSeq.Add(1))
	r, n := base+"r", base+"n"
	for _, ns := range []string{r, n} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", r, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", n)
	for i, ns := range []string{r, n} {
		run(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("10.99.0.%d/24", i+1), "dev", "eth0")
		run(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("2001:db8:99::%d/64", i+1), "dev", "eth0", "nodad")
		run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	}
	return "/run/netns/" + r, "/run/netns/" + n
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startBIRD runs `bird -f` in the namespace at nsPath with conf, and kills
// it (by its PID) at cleanup. It returns the control socket.
func startBIRD(t *testing.T, nsPath, dir, conf string) string {
	t.Helper()
	confPath, sock := filepath.Join(dir, "bird.conf"), filepath.Join(dir, "bird.ctl")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nsenter", "--net="+nsPath, "--", "bird", "-f", "-c", confPath, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	log, err := os.Create(filepath.Join(dir, "bird.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("%s:\n%s", log.Name(), out)
		}
	})
	waitFor(t, 5*time.Second, "BIRD's socket "+sock, func() bool {
		return exec.Command("birdc", "-s", sock, "show", "status").Run() == nil
	})
	return sock
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// routerConf is the far side: it imports whatever the node announces.
const routerConf = `router id 10.99.0.1;
log stderr all;
protocol device { scan time 1; }
protocol bgp n4 {
	local 10.99.0.1 as 65000;
	neighbor 10.99.0.2 as 65001;
	hold time 3;
	password "s3cret ~!";
	connect retry time 1;
	error wait time 1, 5;
	ipv4 { import all; export none; };
}
protocol bgp n6 {
	local 2001:db8:99::1 as 65000;
	neighbor 2001:db8:99::2 as 65001;
	hold time 3;
	connect retry time 1;
	error wait time 1, 5;
	ipv6 { import all; export none; };
}
`

// birdcLogger writes a birdc wrapper that logs each call to log.
func birdcLogger(t *testing.T, dir string) (wrapper, log string) {
	wrapper, log = filepath.Join(dir, "birdc-wrapper"), filepath.Join(dir, "birdc.log")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\nexec birdc \"$@\"\n", log)
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return wrapper, log
}

func count(t *testing.T, log, what string) int {
	b, _ := os.ReadFile(log)
	return strings.Count(string(b), what)
}

// TestAnnouncerWithRealBIRD: a node's BIRD, driven by the Announcer,
// announces to a router's BIRD exactly the VIPs it is told, with their
// communities and MED, over an IPv4 (MD5) and an IPv6 session; reapplying
// the same set does not reconfigure; changing it keeps the sessions up; a
// new Announcer learns what the file announces.
func TestAnnouncerWithRealBIRD(t *testing.T) {
	rns, nns := netnsPair(t)
	rdir, ndir := t.TempDir(), t.TempDir()
	rsock := startBIRD(t, rns, rdir, routerConf)
	b, vips := testConfig(ndir)
	if err := os.WriteFile(b.BirdConfig, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	mainConf, err := NodeConfig(b.RouterID, b.BirdConfig)
	if err != nil {
		t.Fatal(err)
	}
	b.BirdSocket = startBIRD(t, nns, t.TempDir(), mainConf)
	wrapper, log := birdcLogger(t, t.TempDir())
	a := New(b, vips, Options{Birdc: wrapper})
	if len(a.Current()) != 0 {
		t.Fatalf("Current of an empty file = %v", a.Current())
	}

	if err := a.Set([]string{"internet", "internet6"}); err != nil {
		t.Fatal(err)
	}
	routerHas := func(prefix string) bool {
		out, _ := exec.Command("birdc", "-s", rsock, "show", "route", "for", prefix, "all").CombinedOutput()
		return strings.Contains(string(out), prefix)
	}
	waitFor(t, 15*time.Second, "the router to learn both VIPs", func() bool {
		return routerHas("198.51.100.25/32") && routerHas("2001:db8:25::25/128")
	})
	out := run(t, "birdc", "-s", rsock, "show", "route", "for", "198.51.100.25/32", "all")
	for _, want := range []string{"BGP.med: 10", "(65000,100)", "(4200000000, 1, 7)", "BGP.as_path: 65001", "via 10.99.0.2"} {
		if !strings.Contains(out, want) {
			t.Errorf("router's route lacks %q:\n%s", want, out)
		}
	}
	if routerHas("198.51.100.26/32") {
		t.Error("router learned relay, which is not announced")
	}
	var peers []PeerStatus
	waitFor(t, 10*time.Second, "both sessions Established", func() bool {
		peers, err = a.Peers(context.Background())
		return err == nil && peers[0].State == "Established" && peers[1].State == "Established"
	})
	if peers[0].Address.String() != "10.99.0.1" || peers[0].AS != 65000 || peers[1].Protocol != "dsrlb_peer_2001_db8_99__1" {
		t.Errorf("peers = %+v", peers)
	}
	if got := a.Announced(); len(got) != 2 || got[0].String() != "198.51.100.25/32" {
		t.Errorf("Announced = %v", got)
	}

	// The same set again: no reconfiguration.
	configures := count(t, log, "configure")
	if err := a.Set([]string{"internet6", "internet"}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, log, "configure"); n != configures {
		t.Fatalf("an unchanged set ran birdc configure again (%d -> %d)", configures, n)
	}

	// Another set: the router follows, the sessions stay up.
	since := sessionSince(t, rsock, "n4")
	if err := a.Set([]string{"relay"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the router to swap internet for relay", func() bool {
		return !routerHas("198.51.100.25/32") && routerHas("198.51.100.26/32") && !routerHas("2001:db8:25::25/128")
	})
	if s := sessionSince(t, rsock, "n4"); s != since {
		t.Errorf("the session restarted on a route change (since %s -> %s)", since, s)
	}
	if again := New(b, vips, Options{}); strings.Join(again.Current(), ",") != "relay" {
		t.Errorf("a new Announcer reads %v from the file, want [relay]", again.Current())
	}

	if err := a.WithdrawAll(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the router to lose every route", func() bool { return !routerHas("198.51.100.26/32") })
	if len(a.Current()) != 0 || len(a.Announced()) != 0 {
		t.Errorf("after WithdrawAll: current %v announced %v", a.Current(), a.Announced())
	}
}

// sessionSince returns the Since column of a protocol of the BIRD at sock.
func sessionSince(t *testing.T, sock, proto string) string {
	for _, l := range strings.Split(run(t, "birdc", "-s", sock, "show", "protocols", proto), "\n") {
		if f := strings.Fields(l); len(f) >= 5 && f[0] == proto {
			return f[4]
		}
	}
	t.Fatalf("no protocol %s", proto)
	return ""
}

// TestAnnouncerBirdDown: without BIRD the file is written all the same
// (BIRD reads it when it starts) and the error says BIRD did not answer;
// the next Set tries again.
func TestAnnouncerBirdDown(t *testing.T) {
	dir := t.TempDir()
	b, vips := testConfig(dir)
	wrapper, log := birdcLogger(t, dir)
	a := New(b, vips, Options{Birdc: wrapper})
	err := a.Set([]string{"relay"})
	if !errors.Is(err, ErrBirdUnreachable) {
		t.Fatalf("err = %v, want ErrBirdUnreachable", err)
	}
	text, _ := os.ReadFile(b.BirdConfig)
	if !strings.Contains(string(text), "route 198.51.100.26/32 blackhole") {
		t.Fatalf("file not written:\n%s", text)
	}
	if fi, err := os.Stat(b.BirdConfig); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, %v", fi.Mode(), err)
	}
	a.Set([]string{"relay"})
	if n := count(t, log, "configure"); n != 2 {
		t.Errorf("birdc configure ran %d times, want 2 (a failed set is retried)", n)
	}
}

// TestAnnouncerPutsBackRefusedFile: when BIRD refuses the new file, the
// previous one is put back, so the file on disk is always one BIRD loads.
func TestAnnouncerPutsBackRefusedFile(t *testing.T) {
	dir := t.TempDir()
	b, vips := testConfig(dir)
	good := "# announced vips: relay\nok\n"
	if err := os.WriteFile(b.BirdConfig, []byte(good), 0o640); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "birdc-refuses")
	script := "#!/bin/sh\necho '0001 BIRD 2.0.12 ready.'\necho '0002-Reading configuration from /etc/bird/bird.conf'\n" +
		"echo '8002 " + b.BirdConfig + ":3:1 syntax error'\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	a := New(b, vips, Options{Birdc: fake})
	err := a.Set([]string{"internet"})
	if !errors.Is(err, ErrBirdConfig) || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("err = %v, want ErrBirdConfig with BIRD's message", err)
	}
	if text, _ := os.ReadFile(b.BirdConfig); string(text) != good {
		t.Fatalf("file not put back:\n%s", text)
	}
	if strings.Join(a.Current(), ",") != "relay" {
		t.Errorf("Current = %v, want the put-back file's [relay]", a.Current())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

// TestAnnouncerRefusedFirstFileAnnouncesNothing: when BIRD refuses the very
// first file (none to put back), Current must not claim its VIPs.
func TestAnnouncerRefusedFirstFileAnnouncesNothing(t *testing.T) {
	dir := t.TempDir()
	b, vips := testConfig(dir)
	fake := filepath.Join(dir, "birdc-refuses")
	script := "#!/bin/sh\necho '0001 BIRD 2.0.12 ready.'\necho '8002 " + b.BirdConfig + ":3:1 syntax error'\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	a := New(b, vips, Options{Birdc: fake})
	if err := a.Set([]string{"internet"}); !errors.Is(err, ErrBirdConfig) {
		t.Fatalf("err = %v, want ErrBirdConfig", err)
	}
	if cur := a.Current(); len(cur) != 0 {
		t.Fatalf("Current = %v after BIRD refused the first file, want nothing", cur)
	}
}
