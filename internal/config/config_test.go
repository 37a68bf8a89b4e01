package config

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.txt from the current messages")

// examplePath is the annotated example shipped at the top of the module.
const examplePath = "../../lb.toml"

func TestExampleLoads(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil {
		t.Fatalf("Load(%s): %v", examplePath, err)
	}
	if c.Path != examplePath || c.LB.Interface != "eth0" || c.LB.WebListen != "127.0.0.1:9426" || !c.LB.SorryServer {
		t.Errorf("[lb] = %+v (path %q)", c.LB, c.Path)
	}
	if len(c.Backends) != 3 || len(c.VIPs) != 2 {
		t.Fatalf("got %d backends, %d VIPs; want 3, 2", len(c.Backends), len(c.VIPs))
	}
	internet, ok := c.VIP("internet")
	if !ok {
		t.Fatal(`no vip "internet"`)
	}
	if internet.Health.MailFrom != "probe@outside.example" || internet.Health.HELO != "dsrlb.example.net" ||
		internet.Health.Interval != 5*time.Second {
		t.Errorf("internet health = %+v: want [vip.health] mail_from over [health]", internet.Health)
	}
	relay, _ := c.VIP("internal-relay")
	if relay.Health.MailFrom != "healthcheck@example.org" {
		t.Errorf("relay mail_from = %q, want the [health] one", relay.Health.MailFrom)
	}
	want := []VIPBackend{{"EX1", 100, 1}, {"EX2", 100, 1}, {"EX3", 100, 2}}
	if !reflect.DeepEqual(relay.Backends, want) || !reflect.DeepEqual(relay.Ports, []uint16{25, 587}) {
		t.Errorf("relay = %+v, want backends %v ports [25 587]", relay, want)
	}
	ex3, _ := c.Backend("EX3")
	if ex3.Address != netip.MustParseAddr("192.0.2.13") || ex3.Line == 0 {
		t.Errorf("EX3 = %+v", ex3)
	}
	if ws := Lint(c); len(ws) != 0 {
		t.Errorf("the example draws warnings: %v", ws)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("min.toml", []byte(`
[lb]
interface = "eth1"
[[backend]]
name = "a"
address = "2001:db8::1"
[[vip]]
name = "v"
address = "2001:db8::25"
backends = [{ name = "a" }]
`))
	if err != nil {
		t.Fatal(err)
	}
	wantLB := LB{Interface: "eth1", XDPMode: XDPAuto, ManageVIPAddresses: true, HashSeed: 3735928559,
		RingSize: 65537, FlowTableSize: 1048576, PinPath: "/sys/fs/bpf/dsrlb", StateDir: "/var/lib/dsrlb",
		APISocket: "/run/dsrlb/dsrlb.sock", MetricsListen: "127.0.0.1:9425"}
	if c.LB != wantLB {
		t.Errorf("LB = %+v\nwant %+v", c.LB, wantLB)
	}
	wantHealth := Health{Interval: 5 * time.Second, Timeout: 3 * time.Second, Rise: 2, Fall: 2,
		HELO: "dsrlb.localdomain", MailFrom: "healthcheck@example.org", StartTLS: StartTLSOff,
		TarpitThreshold: 8 * time.Second, VIPPath: true}
	if c.Health != wantHealth || c.VIPs[0].Health != wantHealth {
		t.Errorf("health = %+v / vip %+v\nwant %+v", c.Health, c.VIPs[0].Health, wantHealth)
	}
	v := c.VIPs[0]
	if !reflect.DeepEqual(v.Ports, []uint16{25}) || v.Persistence != PersistNone ||
		v.Backends[0] != (VIPBackend{"a", 100, 1}) || c.Backends[0].OS != OSWindows {
		t.Errorf("vip = %+v, backend = %+v", v, c.Backends[0])
	}
	if v.Line != 7 || c.Backends[0].Line != 4 {
		t.Errorf("lines: vip %d backend %d, want 7 and 4", v.Line, c.Backends[0].Line)
	}
}

// TestVIPHealthOverridesEveryKey sets every [health] key in a [vip.health]
// and checks each one reaches the VIP's profile and none leaks to [health].
func TestVIPHealthOverridesEveryKey(t *testing.T) {
	c, err := Parse("o.toml", []byte(`
[lb]
interface = "eth0"
[[backend]]
name = "a"
address = "192.0.2.1"
[[vip]]
name = "v"
address = "192.0.2.25"
backends = [{ name = "a" }]
[vip.health]
interval = "7s"
timeout = "6s"
rise = 3
fall = 4
helo = "probe.example.net"
mail_from = "p@outside.example"
rcpt_to = "postmaster@example.org"
starttls = "require"
tarpit_threshold = "20s"
vip_path = false
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Health{Interval: 7 * time.Second, Timeout: 6 * time.Second, Rise: 3, Fall: 4, HELO: "probe.example.net",
		MailFrom: "p@outside.example", RcptTo: "postmaster@example.org", StartTLS: StartTLSRequire,
		TarpitThreshold: 20 * time.Second}
	if c.VIPs[0].Health != want {
		t.Errorf("vip health = %+v\nwant %+v", c.VIPs[0].Health, want)
	}
	if c.Health != DefaultHealth() {
		t.Errorf("[health] changed by a [vip.health]: %+v", c.Health)
	}
}

func TestErrorListFields(t *testing.T) {
	_, err := Load("testdata/errors/undefined-backend.toml")
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("err = %v, want an ErrorList of one", err)
	}
	want := FieldError{File: "testdata/errors/undefined-backend.toml", Line: 15,
		Field: "vip[0].backends[2].name", Msg: `vip "internet": backend "EX9" is not defined`}
	if list[0] != want {
		t.Errorf("got %#v\nwant %#v", list[0], want)
	}
	if got := list[0].Error(); got != `testdata/errors/undefined-backend.toml:15: vip "internet": backend "EX9" is not defined` {
		t.Errorf("Error() = %q", got)
	}
}

func TestLoadUnreadable(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.toml"))
	var list ErrorList
	if err == nil || errors.As(err, &list) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want a plain not-exist error", err)
	}
}

// TestGolden loads every fixture: each one under testdata/errors must fail,
// each one under testdata/lints must load and draw warnings, and all the
// messages must be those of testdata/golden.txt (go test -update rewrites it).
func TestGolden(t *testing.T) {
	var out strings.Builder
	for _, dir := range []string{"errors", "lints"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.toml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no fixtures in testdata/%s: %v", dir, err)
		}
		for _, f := range files {
			fmt.Fprintf(&out, "== %s\n", f)
			c, err := Load(f)
			var list ErrorList
			switch {
			case dir == "errors" && !errors.As(err, &list):
				t.Errorf("%s: err = %v, want an ErrorList", f, err)
			case dir == "errors":
				fmt.Fprintln(&out, list.Error())
			case err != nil:
				t.Errorf("%s: %v", f, err)
			default:
				ws := Lint(c)
				if len(ws) == 0 {
					t.Errorf("%s: no warnings", f)
				}
				for _, w := range ws {
					fmt.Fprintln(&out, w)
				}
			}
		}
	}
	golden := filepath.Join("testdata", "golden.txt")
	if *update {
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != string(want) {
		t.Errorf("messages differ from %s (run go test -update and review the diff):\n%s", golden, diffLines(string(want), got))
	}
}

// diffLines lists the lines of want and got that differ, by position.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}

// TestAllErrorsCollected checks that one file with many faults reports each.
func TestAllErrorsCollected(t *testing.T) {
	_, err := Load("testdata/errors/many-errors.toml")
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("err = %v", err)
	}
	fields := map[string]bool{}
	for i, e := range list {
		fields[e.Field] = true
		if i > 0 && e.Line < list[i-1].Line {
			t.Errorf("not in line order: %v after %v", e, list[i-1])
		}
	}
	for _, f := range []string{"lb.interface", "lb.ring_size", "health.rise", "health.fall", "backend[1].address",
		"vip[0].backends[1].name", "vip[0].backends[1].weight"} {
		if !fields[f] {
			t.Errorf("no error for %s in:\n%v", f, list)
		}
	}
}

func TestKeyLines(t *testing.T) {
	src := `# comment [not = "a table"]
[lb]
interface = "eth0" # [x]
"quoted.key" = 'it"s'
a.b = 1
[[vip]]
name = """multi
line = "not a key"
"""
ports = [
  25, # c
  587,
]
backends = [{ name = "EX1", weight = 100 },
  { name = "EX2", priority = 2 }]
[vip.health]
mail_from = 'p@x.example'
[[vip]]
name = "second"
backends = [
  { name = "EX3" },
]
`
	if _, err := toml.Decode(src, new(map[string]any)); err != nil {
		t.Fatalf("test input is not TOML: %v", err)
	}
	want := map[string]int{
		"lb": 2, "lb.interface": 3, "lb.quoted.key": 4, "lb.a": 5, "lb.a.b": 5,
		"vip": 6, "vip[0]": 6, "vip[0].name": 7, "vip[0].ports": 10, "vip[0].ports[0]": 11, "vip[0].ports[1]": 12,
		"vip[0].backends": 14, "vip[0].backends[0]": 14, "vip[0].backends[0].name": 14, "vip[0].backends[0].weight": 14,
		"vip[0].backends[1]": 15, "vip[0].backends[1].name": 15, "vip[0].backends[1].priority": 15,
		"vip[0].health": 16, "vip[0].health.mail_from": 17,
		"vip[1]": 18, "vip[1].name": 19, "vip[1].backends": 20, "vip[1].backends[0]": 21, "vip[1].backends[0].name": 21,
	}
	if got := keyLines(src); !reflect.DeepEqual(got, want) {
		t.Errorf("keyLines:\n got %v\nwant %v", got, want)
	}
}

// TestKeyLinesCoverMetaData checks, on the example and every fixture, that
// each key the toml package reports has a line, once indices are removed.
func TestKeyLinesCoverMetaData(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/*.toml")
	files = append(files, examplePath)
	index := regexp.MustCompile(`\[\d+\]`)
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		md, err := toml.Decode(string(data), new(map[string]any))
		if err != nil {
			continue // the syntax fixture
		}
		found := map[string]bool{}
		for path := range keyLines(string(data)) {
			found[index.ReplaceAllString(path, "")] = true
		}
		for _, k := range md.Keys() {
			checked++
			if !found[strings.Join(k, ".")] {
				t.Errorf("%s: key %s has no line", f, k)
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d keys checked", checked)
	}
}

func TestNearest(t *testing.T) {
	keys := []string{"interface", "xdp_mode", "weight", "name", "os"}
	for in, want := range map[string]string{"interfce": "interface", "wieght": "weight", "nmae": "name",
		"Interface": "interface", "XDP_MODE": "xdp_mode", "ox": "os", "a": "", "completely": ""} {
		if got := nearest(in, keys); got != want {
			t.Errorf("nearest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsPrime(t *testing.T) {
	var primes []uint32
	for n := uint32(0); n < 30; n++ {
		if IsPrime(n) {
			primes = append(primes, n)
		}
	}
	if want := []uint32{2, 3, 5, 7, 11, 13, 17, 19, 23, 29}; !reflect.DeepEqual(primes, want) {
		t.Errorf("primes below 30 = %v", primes)
	}
	if !IsPrime(65537) || !IsPrime(MaxRingSize) || IsPrime(65536) || IsPrime(1048575) {
		t.Error("isPrime is wrong around the ring sizes")
	}
}

func TestMailboxAndHostChecks(t *testing.T) {
	good := []string{"healthcheck@example.org", "a.b+c@mx-1.example.net", "x@y"}
	bad := []string{"", "@example.org", "a@", "a b@example.org", "<a@example.org>", `"a"@example.org`,
		"a'b@example.org", "a@exa mple.org", "a@example.org\r\nRCPT", "a@-x.org", "a;b@example.org"}
	for _, s := range good {
		if err := CheckMailbox(s); err != nil {
			t.Errorf("CheckMailbox(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if CheckMailbox(s) == nil {
			t.Errorf("CheckMailbox(%q) accepted", s)
		}
	}
	for s, ok := range map[string]bool{"eth0": true, "enp0s31f6": true, "br-lan.10": true, "": false,
		"sixteen-chars-xx": false, "eth0;x": false, "..": false, "eth 0": false} {
		if (checkIfname(s) == nil) != ok {
			t.Errorf("checkIfname(%q) ok = %v", s, !ok)
		}
	}
	for s, ok := range map[string]bool{"127.0.0.1:9425": true, "[::1]:9425": true, ":9425": true,
		"localhost:80": true, "9425": false, "127.0.0.1:http": false, "127.0.0.1:0": false, "a b:1": false} {
		if (checkListen(s) == nil) != ok {
			t.Errorf("checkListen(%q) ok = %v", s, !ok)
		}
	}
}
