package loopback

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dsrlb/dsrlb/internal/config"
)

// sandboxSeq makes network namespace names unique within this test process.
var sandboxSeq atomic.Int32

// sandbox is a private network namespace plus a private mount namespace with
// tmpfs over every directory the Linux scripts write to, so a script runs for
// real with its real paths and leaves the host untouched. Sysctls under
// net.ipv4.conf are per network namespace.
type sandbox struct {
	t   *testing.T
	pid int // a process inside both namespaces, for nsenter
}

// scriptDirs are the directories the Linux scripts write to.
var scriptDirs = []string{"/etc/sysctl.d", "/etc/systemd/network", "/etc/network", "/var/lib"}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	for _, d := range scriptDirs {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("mount point %s is missing on this host (%v): the sandbox mounts a tmpfs over it", d, err)
		}
	}
	ns := fmt.Sprintf("dlb%d-%d", os.Getpid(), sandboxSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	mounts := ""
	for _, d := range scriptDirs {
		mounts += "mount -t tmpfs dsrlb-test " + d + " && "
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
		"sh", "-c", mounts+"echo $$ && exec sleep 120")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the sandbox: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the sandbox did not start: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid != cmd.Process.Pid {
		t.Fatalf("sandbox pid %q, started %d: %v", line, cmd.Process.Pid, err)
	}
	return &sandbox{t: t, pid: pid}
}

// sh runs a shell command line inside the sandbox and returns its output and
// exit code.
func (s *sandbox) sh(cmdline string) (string, int) {
	s.t.Helper()
	out, err := exec.Command("nsenter", "--target", strconv.Itoa(s.pid), "--mount", "--net",
		"sh", "-c", cmdline).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		s.t.Fatalf("nsenter: %v", err)
		return "", -1
	}
}

// must runs cmdline and fails the test unless it exits 0.
func (s *sandbox) must(cmdline string) string {
	s.t.Helper()
	out, code := s.sh(cmdline)
	if code != 0 {
		s.t.Fatalf("%s: exit %d\n%s", cmdline, code, out)
	}
	return out
}

// sysctls returns the three sysctls the scripts manage, as read inside the sandbox.
func (s *sandbox) sysctls() map[string]string {
	s.t.Helper()
	got := map[string]string{}
	for _, k := range []string{"arp_ignore", "arp_announce", "rp_filter"} {
		got["net.ipv4.conf.all."+k] = strings.TrimSpace(s.must("cat /proc/sys/net/ipv4/conf/all/" + k))
	}
	return got
}

// loAddrs returns the addresses on lo as ADDR/LEN.
func (s *sandbox) loAddrs() []string {
	s.t.Helper()
	return strings.Fields(s.must(`ip -o addr show dev lo | awk '{ print $4 }'`))
}

func (s *sandbox) exists(path string) bool {
	_, code := s.sh("test -e " + path)
	return code == 0
}

// runScript runs a script in the sandbox and checks that it passed its own
// verification (done is its last line), that the sysctls are sysctls and that
// each VIP of srv is on lo onLo times.
func (s *sandbox) runScript(label, cmdline, done string, sysctls map[string]string, srv Server, onLo int) {
	s.t.Helper()
	out := s.must(cmdline)
	if !strings.Contains(out, done) || strings.Contains(out, "FAIL") {
		s.t.Fatalf("%s:\n%s", label, out)
	}
	if got := s.sysctls(); fmt.Sprint(got) != fmt.Sprint(sysctls) {
		s.t.Errorf("%s: sysctls %v, want %v", label, got, sysctls)
	}
	lo := s.loAddrs()
	for _, p := range uniqueVIPAddrs(srv) {
		if n := count(lo, p); n != onLo {
			s.t.Errorf("%s: %s is on lo %d times, want %d (lo: %v)", label, p, n, onLo, lo)
		}
	}
}

func count(list []string, x string) int {
	n := 0
	for _, v := range list {
		if v == x {
			n++
		}
	}
	return n
}

// linuxRun is one real run of the setup and remove scripts.
type linuxRun struct {
	name        string
	server      Server
	networkd    bool   // systemctl reports systemd-networkd active
	loNetwork   string // an existing .network file for lo, to get a drop-in
	bootFile    string // where the VIPs for the next boot must be written
	dropSaved   bool   // delete the saved sysctls before remove: kernel defaults
	wantBootCfg func(s Server) []string
}

func TestLinuxScriptsForReal(t *testing.T) {
	ifupdownLines := func(s Server) []string {
		var l []string
		for _, p := range uniqueVIPAddrs(s) {
			l = append(l, "    address "+p)
		}
		return l
	}
	networkdLines := func(s Server) []string {
		var l []string
		for _, p := range uniqueVIPAddrs(s) {
			l = append(l, "Address="+p)
		}
		return l
	}
	for _, r := range []linuxRun{
		{name: "ifupdown", server: oneVIP(), bootFile: "/etc/network/interfaces.d/dsrlb-realserver", wantBootCfg: ifupdownLines},
		{name: "networkd-ipv6", server: ipv6VIP(), networkd: true, bootFile: "/etc/systemd/network/05-dsrlb-lo.network", wantBootCfg: networkdLines},
		{name: "networkd-dropin", server: twoVIPs(), networkd: true, loNetwork: "/etc/systemd/network/10-lo.network",
			bootFile: "/etc/systemd/network/10-lo.network.d/90-dsrlb-realserver.conf", wantBootCfg: networkdLines},
		{name: "no-saved-values", server: oneVIP(), dropSaved: true, bootFile: "/etc/network/interfaces.d/dsrlb-realserver", wantBootCfg: ifupdownLines},
	} {
		t.Run(r.name, func(t *testing.T) { runLinuxScripts(t, r) })
	}
}

// writeScripts writes the setup and remove scripts for srv and a fake
// systemctl that reports networkd as active or not, and returns their paths.
func writeScripts(t *testing.T, srv Server, networkd bool) (setup, remove, bin string) {
	t.Helper()
	dir := t.TempDir()
	bin = filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	state := 3
	if networkd {
		state = 0
	}
	fake := fmt.Sprintf("#!/bin/sh\n[ \"$*\" = 'is-active --quiet systemd-networkd.service' ] && exit %d\nexit 1\n", state)
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path *string
		o    Options
	}{{&setup, Options{}}, {&remove, Options{Remove: true}}} {
		script, err := Generate(srv, config.OSLinux, f.o)
		if err != nil {
			t.Fatal(err)
		}
		*f.path = filepath.Join(dir, fmt.Sprintf("script-%v.sh", f.o.Remove))
		if err := os.WriteFile(*f.path, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return setup, remove, bin
}

// prepareServer brings lo up, gives the server its own address on a veth
// NIC, and sets non-default sysctls so that restoring them can be told apart
// from resetting them.
func prepareServer(sb *sandbox, srv Server) {
	sb.must("ip link set lo up && ip link add d0 type veth peer name d0p && ip link set d0 up && ip link set d0p up && ip addr add " +
		srv.Address.String() + "/24 dev d0")
	sb.must("echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter && echo 1 > /proc/sys/net/ipv4/conf/all/arp_announce")
}

func runLinuxScripts(t *testing.T, r linuxRun) {
	sb := newSandbox(t)
	setup, remove, bin := writeScripts(t, r.server, r.networkd)
	prepareServer(sb, r.server)
	if !r.networkd {
		sb.must("printf 'auto lo\\niface lo inet loopback\\nsource /etc/network/interfaces.d/*\\n' > /etc/network/interfaces")
	}
	if r.loNetwork != "" {
		sb.must("printf '[Match]\\nName=lo\\n' > " + r.loNetwork)
	}
	run := "PATH=" + bin + ":$PATH sh "
	original := sb.sysctls()
	want := map[string]string{"net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2", "net.ipv4.conf.all.rp_filter": "2"}
	savedWant := ""
	for _, k := range []string{"net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce", "net.ipv4.conf.all.rp_filter"} {
		savedWant += k + "=" + original[k] + "\n"
	}

	for pass := 1; pass <= 2; pass++ {
		sb.runScript(fmt.Sprintf("setup pass %d", pass), run+setup, "all checks passed", want, r.server, 1)
		if got := sb.must("cat /var/lib/dsrlb-realserver/sysctl.saved"); got != savedWant {
			t.Errorf("setup pass %d: saved sysctls\n%s\nwant the values found before the first run\n%s", pass, got, savedWant)
		}
		conf := sb.must("cat /etc/sysctl.d/90-dsrlb-realserver.conf")
		for k, v := range want {
			if !strings.Contains(conf, "\n"+k+" = "+v+"\n") {
				t.Errorf("setup pass %d: sysctl file lacks %s = %s:\n%s", pass, k, v, conf)
			}
		}
		boot := sb.must("cat " + r.bootFile)
		for _, l := range r.wantBootCfg(r.server) {
			if !strings.Contains(boot, "\n"+l+"\n") {
				t.Errorf("setup pass %d: %s lacks %q:\n%s", pass, r.bootFile, l, boot)
			}
		}
	}
	if r.loNetwork != "" && sb.exists("/etc/systemd/network/05-dsrlb-lo.network") {
		t.Error("wrote its own .network file although one already matches lo")
	}

	restoredWant := original
	if r.dropSaved {
		sb.must("rm /var/lib/dsrlb-realserver/sysctl.saved")
		restoredWant = map[string]string{"net.ipv4.conf.all.arp_ignore": "0", "net.ipv4.conf.all.arp_announce": "0", "net.ipv4.conf.all.rp_filter": "0"}
	}
	for pass := 1; pass <= 2; pass++ {
		sb.runScript(fmt.Sprintf("remove pass %d", pass), run+remove, "rollback complete", restoredWant, r.server, 0)
		for _, f := range []string{"/etc/sysctl.d/90-dsrlb-realserver.conf", "/var/lib/dsrlb-realserver", r.bootFile} {
			if sb.exists(f) {
				t.Errorf("remove pass %d: %s is still there", pass, f)
			}
		}
	}
	if r.loNetwork != "" && !sb.exists(r.loNetwork) {
		t.Errorf("remove deleted %s, which it did not write", r.loNetwork)
	}
}

// TestLinuxSetupRefuses checks that the setup script stops, with a non-zero
// exit and a reason, on the wrong server and when a VIP is on a real NIC.
func TestLinuxSetupRefuses(t *testing.T) {
	sb := newSandbox(t)
	srv := oneVIP()
	setup, _, bin := writeScripts(t, srv, false)
	sb.must("ip link set lo up")
	out, code := sb.sh("PATH=" + bin + ":$PATH sh " + setup)
	if code == 0 || !strings.Contains(out, "is this the right server?") {
		t.Errorf("setup on a server without %s: exit %d\n%s", srv.Address, code, out)
	}
	prepareServer(sb, srv)
	sb.must("ip addr add " + srv.VIPs[0].Address.String() + "/32 dev d0")
	out, code = sb.sh("PATH=" + bin + ":$PATH sh " + setup)
	if code == 0 || !strings.Contains(out, "is also on d0") {
		t.Errorf("setup with the VIP on d0: exit %d\n%s", code, out)
	}
	if lo := sb.loAddrs(); count(lo, netipPrefix(srv.VIPs[0])) != 0 {
		t.Errorf("setup added the VIP to lo although it refused: %v", lo)
	}
}

func netipPrefix(v ServedVIP) string { return uniqueVIPAddrs(Server{VIPs: []ServedVIP{v}})[0] }
