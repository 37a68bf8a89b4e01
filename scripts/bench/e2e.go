package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/dsrlb/dsrlb/internal/lab"
	"github.com/dsrlb/dsrlb/internal/maps"
	"golang.org/x/sys/unix"
)

// Scenario names of the end-to-end runs.
const (
	scDirect   = "a" // direct to one backend
	scDsrlb    = "b" // through dsrlb's VIP
	scHAProxy  = "c" // through HAProxy mode tcp on the VIP
	scSpread   = "s" // the client spreads sessions over the backends itself
	e2eSender  = "bench@example.com"
	e2eRcpt    = "sink@example.org"
	e2eBackend = 3
)

// e2eVIP is the VIP of the end-to-end lab (on-link routes on the clients).
var e2eVIP = netip.MustParseAddr("198.51.100.25")

// E2ERun is one timed smtp-source run.
type E2ERun struct {
	Scenario string
	Sessions int
	Wall     time.Duration
	// LBCPU is the balancer-side CPU time: the XDP program's run time
	// (kernel.bpf_stats) for b, HAProxy's user+system time for c.
	LBCPU time.Duration
	// Delivered counts the messages each backend's Postfix discarded
	// (delivered) during the run, in backend order.
	Delivered []int
}

// Rate is the run's sessions per second.
func (r E2ERun) Rate() float64 { return float64(r.Sessions) / r.Wall.Seconds() }

// E2EResult are all end-to-end runs in the order they ran.
type E2EResult struct {
	Runs     []E2ERun
	Parallel int
	Postfix  string // what ran on the backends
	HAProxy  string // haproxy -v's first line
}

// e2eOrder is the interleaving of round i.
func e2eOrder(i int) []string {
	if i%2 == 1 {
		return []string{scSpread, scHAProxy, scDsrlb, scDirect}
	}
	return []string{scDirect, scDsrlb, scHAProxy, scSpread}
}

// runE2E builds a lab (1 client, 3 Postfix backends, the balancer) and
// runs the four scenarios interleaved for p.Rounds rounds.
func runE2E(p Params, logf func(string, ...any)) (*E2EResult, error) {
	for _, tool := range []string{"postfix", "smtp-source", "haproxy"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found: apt-get install postfix haproxy", tool)
		}
	}
	l, err := lab.New(lab.Options{Prefix: "dbe", Clients: 1, Backends: e2eBackend, VIPs: []netip.Addr{e2eVIP}})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	e := &e2e{p: p, lab: l, client: l.Clients[0], logf: logf}
	defer e.close()
	if err := e.setup(); err != nil {
		return nil, err
	}
	res := &E2EResult{Parallel: p.Parallel, Postfix: e.postfixVersion, HAProxy: e.haproxyVersion}
	for round := range p.Rounds {
		for _, sc := range e2eOrder(round) {
			logf("e2e: round %d/%d scenario %s (%d sessions)", round+1, p.Rounds, sc, p.Sessions)
			r, err := e.run(sc)
			if err != nil {
				return nil, err
			}
			res.Runs = append(res.Runs, r)
		}
	}
	return res, nil
}

// e2e is the running end-to-end lab.
type e2e struct {
	p              Params
	lab            *lab.Lab
	client         *lab.Host
	logf           func(string, ...any)
	dir            string
	postfixDirs    []string
	haproxy        *exec.Cmd
	haproxyOut     *bytes.Buffer
	haproxyDone    chan struct{}
	dp             *maps.Dataplane
	stats          interface{ Close() error }
	postfixVersion string
	haproxyVersion string
}

func (e *e2e) setup() error {
	var err error
	if e.dir, err = os.MkdirTemp("/dev/shm", "dsrlb-bench-"); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	// Postfix daemons (user postfix) must reach their directories below.
	if err := os.Chmod(e.dir, 0o755); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	if out, err := e.lab.LB.Command("ip", "addr", "add", e2eVIP.String()+"/32", "dev", e.lab.LB.IfName).CombinedOutput(); err != nil {
		return fmt.Errorf("e2e: add VIP to %s: %v: %s", e.lab.LB.Name, err, out)
	}
	for _, b := range e.lab.Backends {
		if err := e.startPostfix(b); err != nil {
			return err
		}
	}
	if out, err := exec.Command("postconf", "-d", "-h", "mail_version").Output(); err == nil {
		e.postfixVersion = "Postfix " + strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("haproxy", "-v").Output(); err == nil {
		e.haproxyVersion = firstLine(string(out))
	}
	if err := e.startHAProxy(); err != nil {
		return err
	}
	if e.dp, err = maps.Load(maps.Options{RingSize: 65537, FlowTableSize: 1 << 16}); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	var reals []realSpec
	for _, b := range e.lab.Backends {
		reals = append(reals, realSpec{MAC: b.MAC, Addr: b.Addr4})
	}
	if _, err := configureOneVIP(e.dp, e2eVIP, e.lab.LB.MAC, reals); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	if e.stats, err = ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err != nil {
		return fmt.Errorf("e2e: enable BPF run-time stats: %w", err)
	}
	// Warm up every path once (and check that each works) before timing.
	for _, sc := range []string{scDirect, scSpread, scHAProxy, scDsrlb} {
		if _, err := e.runSized(sc, 3*e2eBackend, 3); err != nil {
			return fmt.Errorf("e2e: warm-up: %w", err)
		}
	}
	return nil
}

func (e *e2e) close() {
	if e.haproxy != nil {
		stopProcess(e.haproxy, e.haproxyDone)
	}
	if e.stats != nil {
		e.stats.Close()
	}
	if e.dp != nil {
		e.dp.Close()
	}
	for i, dir := range e.postfixDirs {
		stopPostfix(e.lab.Backends[i], dir)
	}
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// run times one scenario with p.Sessions sessions.
func (e *e2e) run(sc string) (E2ERun, error) {
	return e.runSized(sc, e.p.Sessions, e.p.Parallel)
}

func (e *e2e) runSized(sc string, sessions, parallel int) (E2ERun, error) {
	r := E2ERun{Scenario: sc, Sessions: sessions}
	before, err := e.delivered()
	if err != nil {
		return r, err
	}
	var cpu func() (time.Duration, error)
	switch sc {
	case scDsrlb:
		var lk link.Link
		err := e.lab.LB.Do(func() error {
			var err error
			lk, err = link.AttachXDP(link.XDPOptions{Program: e.dp.Program(), Interface: e.lab.LB.IfIndex, Flags: link.XDPDriverMode})
			return err
		})
		if err != nil {
			return r, fmt.Errorf("e2e: attach dsrlb to %s:%s: %w", e.lab.LB.Name, e.lab.LB.IfName, err)
		}
		defer lk.Close()
		cpu = progRunTime(e.dp.Program())
	case scHAProxy:
		cpu = processCPU(e.haproxy.Process.Pid)
	}
	var cpu0 time.Duration
	if cpu != nil {
		if cpu0, err = cpu(); err != nil {
			return r, err
		}
	}
	var targets []string
	switch sc {
	case scDirect:
		targets = []string{e.lab.Backends[0].Addr4.String()}
	case scSpread:
		for _, b := range e.lab.Backends {
			targets = append(targets, b.Addr4.String())
		}
	default:
		targets = []string{e2eVIP.String()}
	}
	start := time.Now()
	if err := e.smtpSource(targets, sessions, parallel); err != nil {
		if sc == scHAProxy {
			err = fmt.Errorf("%w (haproxy said: %s)", err, tail(e.haproxyOut.String(), 500))
		}
		return r, fmt.Errorf("e2e: scenario %s: %w", sc, err)
	}
	r.Wall = time.Since(start)
	if cpu != nil {
		cpu1, err := cpu()
		if err != nil {
			return r, err
		}
		r.LBCPU = cpu1 - cpu0
	}
	// Deliveries finish after the sessions end; wait for them (untimed).
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, err := e.delivered()
		if err != nil {
			return r, err
		}
		r.Delivered = make([]int, len(after))
		total := 0
		for i := range after {
			r.Delivered[i] = after[i] - before[i]
			total += r.Delivered[i]
		}
		if total >= sessions || time.Now().After(deadline) {
			return r, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// smtpSource runs one smtp-source per target in the client, splitting the
// sessions and the parallelism evenly, each session carrying one message.
func (e *e2e) smtpSource(targets []string, sessions, parallel int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := len(targets)
	errs := make(chan error, n)
	for i, t := range targets {
		m := sessions / n
		if i < sessions%n {
			m++
		}
		cmd := e.client.Command("smtp-source", "-s", strconv.Itoa(max(1, parallel/n)), "-m", strconv.Itoa(m),
			"-f", e2eSender, "-t", e2eRcpt, "-M", "client.example.com", t+":25")
		cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
		go func() {
			out, err := cmd.CombinedOutput()
			if err != nil {
				err = fmt.Errorf("smtp-source to %s: %w: %s", t, err, bytes.TrimSpace(out))
			}
			errs <- err
		}()
	}
	var all []error
	for range n {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// delivered counts each backend's delivered (discarded) messages so far.
func (e *e2e) delivered() ([]int, error) {
	var out []int
	for _, dir := range e.postfixDirs {
		b, err := os.ReadFile(filepath.Join(dir, "maillog"))
		if err != nil {
			return nil, fmt.Errorf("e2e: read Postfix log: %w", err)
		}
		out = append(out, bytes.Count(b, []byte("status=sent")))
	}
	return out, nil
}

// postfixMain is main.cf of a backend instance: smtpd on the backend's
// address and the VIP, every recipient of example.org accepted and
// delivered to the discard transport, no DNS, the queue on tmpfs.
const postfixMain = `compatibility_level = 3.6
config_directory = {{dir}}/etc
queue_directory = {{dir}}/queue
data_directory = {{dir}}/data
maillog_file = {{dir}}/maillog
maillog_file_prefixes = {{dir}}
myhostname = {{host}}.example.org
mydestination = example.org
inet_interfaces = {{addrs}}
inet_protocols = ipv4
mynetworks = 10.77.0.0/24
local_recipient_maps =
local_transport = discard:
default_transport = discard:
alias_maps =
alias_database =
smtpd_peername_lookup = no
disable_dns_lookups = yes
smtp_dns_support_level = disabled
smtpd_client_connection_count_limit = 0
default_process_limit = 200
`

// postfixMaster is master.cf: the daemons a discard-only instance needs,
// none chrooted.
const postfixMaster = `25        inet  n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000 0 flush
proxymap  unix  - - n - - proxymap
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`

// startPostfix starts a Postfix instance of its own (config, queue and data
// directories under e.dir) inside backend b.
func (e *e2e) startPostfix(b *lab.Host) error {
	dir := filepath.Join(e.dir, b.Role)
	for _, sub := range []string{"etc", "queue", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("e2e: %w", err)
		}
	}
	if err := chownToPostfix(filepath.Join(dir, "data")); err != nil {
		return err
	}
	mainCf := strings.NewReplacer("{{dir}}", dir, "{{host}}", b.Role,
		"{{addrs}}", b.Addr4.String()+", "+e2eVIP.String()).Replace(postfixMain)
	if err := os.WriteFile(filepath.Join(dir, "etc", "main.cf"), []byte(mainCf), 0o644); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "master.cf"), []byte(postfixMaster), 0o644); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	e.postfixDirs = append(e.postfixDirs, dir)
	if out, err := b.Command("postfix", "-c", filepath.Join(dir, "etc"), "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
		return fmt.Errorf("e2e: postfix start in %s: %v: %s%s", b.Name, err, out, tail(string(log), 1000))
	}
	return nil
}

// stopPostfix stops the instance in dir and, if its master is still there
// after a few seconds, kills it by the PID it recorded.
func stopPostfix(b *lab.Host, dir string) {
	b.Command("postfix", "-c", filepath.Join(dir, "etc"), "stop").Run()
	raw, err := os.ReadFile(filepath.Join(dir, "queue", "pid", "master.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return
	}
	for range 50 {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// chownToPostfix gives dir to the postfix user (data_directory must be).
func chownToPostfix(dir string) error {
	out, err := exec.Command("chown", "postfix", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("e2e: chown postfix %s: %v: %s", dir, err, out)
	}
	return nil
}

// haproxyConfig balances VIP:25 round-robin over the backends in mode tcp.
const haproxyConfig = `global
    maxconn 2000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend smtp
    bind {{vip}}:25
    default_backend postfix
backend postfix
    balance roundrobin
{{servers}}`

// startHAProxy runs HAProxy in the foreground inside the balancer.
func (e *e2e) startHAProxy() error {
	var servers strings.Builder
	for _, b := range e.lab.Backends {
		fmt.Fprintf(&servers, "    server %s %s:25\n", b.Role, b.Addr4)
	}
	cfg := strings.NewReplacer("{{vip}}", e2eVIP.String(), "{{servers}}", servers.String()).Replace(haproxyConfig)
	path := filepath.Join(e.dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("e2e: %w", err)
	}
	cmd := e.lab.LB.Command("haproxy", "-db", "-f", path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	e.haproxyOut = &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("e2e: start haproxy in %s: %w", e.lab.LB.Name, err)
	}
	e.haproxy, e.haproxyDone = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(e.haproxyDone) }()
	select {
	case <-e.haproxyDone:
		return fmt.Errorf("e2e: haproxy exited: %s", out.String())
	case <-time.After(500 * time.Millisecond):
		return nil
	}
}

// stopProcess ends a process this program started (done closes when its
// Wait returns): SIGTERM, then SIGKILL.
func stopProcess(cmd *exec.Cmd, done <-chan struct{}) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// progRunTime reads the program's cumulative run time (kernel.bpf_stats).
func progRunTime(p *ebpf.Program) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		st, err := p.Stats()
		if err != nil {
			return 0, fmt.Errorf("e2e: program stats: %w", err)
		}
		return st.Runtime, nil
	}
}

// processCPU reads a process's user+system CPU time from /proc/PID/stat.
func processCPU(pid int) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("e2e: %w", err)
		}
		return parseProcStatCPU(string(raw))
	}
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times on Linux.
const clockTicks = 100

// parseProcStatCPU returns utime+stime of a /proc/PID/stat line.
func parseProcStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/PID/stat %q: no ')'", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/PID/stat %q: too few fields", stat)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/PID/stat %q: bad utime/stime", stat)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}
