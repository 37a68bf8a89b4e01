package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"time"

	"github.com/BurntSushi/toml"
)

// Defaults of lb.toml (DESIGN section 7; the example lb.toml documents them).
const (
	DefaultHashSeed        = 3735928559
	DefaultRingSize        = 65537
	DefaultFlowTableSize   = 1048576
	DefaultPinPath         = "/sys/fs/bpf/dsrlb"
	DefaultStateDir        = "/var/lib/dsrlb"
	DefaultAPISocket       = "/run/dsrlb/dsrlb.sock"
	DefaultMetricsListen   = "127.0.0.1:9425"
	DefaultHELO            = "dsrlb.localdomain"
	DefaultMailFrom        = "healthcheck@example.org"
	DefaultInterval        = 5 * time.Second
	DefaultTimeout         = 3 * time.Second
	DefaultRise            = 2
	DefaultFall            = 2
	DefaultTarpitThreshold = 8 * time.Second
	DefaultWeight          = 100
	DefaultPriority        = 1
	DefaultPort            = 25
	// maxRiseFall bounds rise and fall.
	maxRiseFall = 100
)

// Load reads, defaults and validates the lb.toml at path. A file that
// cannot be read gives a plain error; a file with problems gives an
// ErrorList naming every problem with its line.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes, defaults and validates an lb.toml held in data; name is
// the file name used in messages and stored as Config.Path. On any problem
// it returns an ErrorList (sorted by line) and no Config.
func Parse(name string, data []byte) (*Config, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, syntaxError(name, err)
	}
	d := &decoder{file: name, lines: keyLines(string(data))}
	c := d.config(raw)
	d.validate(c)
	if len(d.errs) > 0 {
		d.errs.sortByLine()
		return nil, d.errs
	}
	c.Path = name
	return c, nil
}

// syntaxError turns a toml error into an ErrorList with the error's line.
func syntaxError(name string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return ErrorList{{File: name, Line: pe.Position.Line, Msg: "TOML syntax: " + pe.Message}}
	}
	return ErrorList{{File: name, Msg: "TOML: " + err.Error()}}
}

// config decodes the whole document.
func (d *decoder) config(raw map[string]any) *Config {
	root := &table{d: d, m: raw, prefix: "top level: "}
	root.known("lb", "health", "backend", "vip", "bgp")
	c := &Config{LB: d.lb(root.sub("lb", "[lb] ", ""))}
	c.Health = DefaultHealth()
	d.health(root.sub("health", "[health] ", ""), &c.Health, true)
	for i, t := range root.list("backend", "an array of tables: write [[backend]]") {
		c.Backends = append(c.Backends, d.backend(t, i))
	}
	for i, t := range root.list("vip", "an array of tables: write [[vip]]") {
		c.VIPs = append(c.VIPs, d.vip(t, i, c.Health))
	}
	if root.has("bgp") {
		if t := root.sub("bgp", "[bgp] ", ""); !t.invalid {
			c.BGP = d.bgp(t)
		}
	}
	return c
}

// lb decodes the [lb] table.
func (d *decoder) lb(t *table) LB {
	t.known("interface", "xdp_mode", "manage_vip_addresses", "hash_seed", "ring_size", "flow_table_size",
		"pin_path", "state_dir", "api_socket", "metrics_listen", "web_listen", "sorry_server")
	lb := LB{
		XDPMode:            XDPAuto,
		ManageVIPAddresses: true,
		HashSeed:           DefaultHashSeed,
		RingSize:           DefaultRingSize,
		FlowTableSize:      DefaultFlowTableSize,
		PinPath:            DefaultPinPath,
		StateDir:           DefaultStateDir,
		APISocket:          DefaultAPISocket,
		MetricsListen:      DefaultMetricsListen,
	}
	if !t.has("interface") && !t.invalid {
		t.errorf("", "interface is required: the network interface that carries the VIPs, for example \"eth0\"")
	}
	t.checked("interface", &lb.Interface, checkIfname)
	enum(t, "xdp_mode", &lb.XDPMode, XDPAuto, XDPNative, XDPGeneric)
	t.boolean("manage_vip_addresses", &lb.ManageVIPAddresses)
	t.uint32Key("hash_seed", &lb.HashSeed, 0, math.MaxUint32)
	if t.uint32Key("ring_size", &lb.RingSize, MinRingSize, MaxRingSize) && !IsPrime(lb.RingSize) {
		t.bad("ring_size", "%d is not a prime number (Maglev needs a prime table size, for example 65537)", lb.RingSize)
	}
	t.uint32Key("flow_table_size", &lb.FlowTableSize, 1, MaxFlowTableSize)
	t.checked("pin_path", &lb.PinPath, checkAbsPath)
	t.checked("state_dir", &lb.StateDir, checkAbsPath)
	if t.checked("api_socket", &lb.APISocket, checkAbsPath) && len(lb.APISocket) > maxSocketPath {
		t.bad("api_socket", "is longer than the %d bytes a unix socket path may have", maxSocketPath)
	}
	t.checked("metrics_listen", &lb.MetricsListen, checkListen)
	if t.checked("web_listen", &lb.WebListen, checkListen) && lb.WebListen != "" && lb.WebListen == lb.MetricsListen {
		t.bad("web_listen", "%q is also metrics_listen: give them different ports", lb.WebListen)
	}
	t.boolean("sorry_server", &lb.SorryServer)
	return lb
}

// DefaultHealth is the probe profile used when [health] sets nothing.
func DefaultHealth() Health {
	return Health{
		Interval:        DefaultInterval,
		Timeout:         DefaultTimeout,
		Rise:            DefaultRise,
		Fall:            DefaultFall,
		HELO:            DefaultHELO,
		MailFrom:        DefaultMailFrom,
		StartTLS:        StartTLSOff,
		TarpitThreshold: DefaultTarpitThreshold,
		VIPPath:         true,
	}
}

// health decodes a probe profile table over h. The relation between
// timeout and interval is checked for the [health] table (top), and for a
// [vip.health] only when it sets one of them, so a bad [health] is
// reported once.
func (d *decoder) health(t *table, h *Health, top bool) {
	t.known("interval", "timeout", "rise", "fall", "helo", "mail_from", "rcpt_to", "starttls",
		"tarpit_threshold", "vip_path")
	t.duration("interval", &h.Interval)
	t.duration("timeout", &h.Timeout)
	if v, ok := t.integer("rise", 1, maxRiseFall); ok {
		h.Rise = int(v)
	}
	if v, ok := t.integer("fall", 1, maxRiseFall); ok {
		h.Fall = int(v)
	}
	t.checked("helo", &h.HELO, CheckHostname)
	t.checked("mail_from", &h.MailFrom, CheckMailbox)
	t.checked("rcpt_to", &h.RcptTo, func(s string) error {
		if s == "" {
			return nil
		}
		return CheckMailbox(s)
	})
	enum(t, "starttls", &h.StartTLS, StartTLSOff, StartTLSTry, StartTLSRequire)
	t.duration("tarpit_threshold", &h.TarpitThreshold)
	t.boolean("vip_path", &h.VIPPath)
	if h.Timeout >= h.Interval && (top || t.has("timeout") || t.has("interval")) {
		key := "timeout"
		if !t.has(key) {
			key = "interval"
		}
		t.errorf(key, "%stimeout %s must be shorter than %sinterval %s", t.keys, h.Timeout, t.keys, h.Interval)
	}
}

// backend decodes the i-th [[backend]]; t is nil when it was not a table.
func (d *decoder) backend(t *table, i int) Backend {
	b := Backend{OS: OSWindows}
	if t == nil {
		return b
	}
	b.Line = d.line(t.path)
	t.prefix = fmt.Sprintf("backend #%d: ", i+1)
	t.known("name", "address", "os")
	b.Name = t.name("", "backend")
	b.Address = t.addr()
	enum(t, "os", &b.OS, OSWindows, OSLinux)
	return b
}

// addr decodes the required "address" key of a backend or VIP.
func (t *table) addr() (a netip.Addr) {
	var s string
	if !t.has("address") {
		t.errorf("", "address is required")
	}
	t.checked("address", &s, func(s string) (err error) {
		a, err = parseAddr(s)
		return err
	})
	return a
}

// vip decodes the i-th [[vip]] with global as its base probe profile.
func (d *decoder) vip(t *table, i int, global Health) VIP {
	v := VIP{Ports: []uint16{DefaultPort}, Persistence: PersistNone, Health: global}
	if t == nil {
		return v
	}
	v.Line = d.line(t.path)
	t.prefix = fmt.Sprintf("vip #%d: ", i+1)
	t.known("name", "address", "ports", "persistence", "backends", "health", "bgp_communities", "bgp_med")
	v.Name = t.name("", "vip")
	v.Address = t.addr()
	if t.has("ports") {
		v.Ports = d.ports(t)
	}
	enum(t, "persistence", &v.Persistence, PersistNone, PersistSourceIP)
	entries := t.list("backends", `an array like [{ name = "EX1" }]`)
	if arr, isArr := t.m["backends"].([]any); !t.has("backends") || isArr && len(arr) == 0 {
		t.errorf("backends", "has no backends: list them, for example backends = [{ name = \"EX1\" }, { name = \"EX2\" }]")
	}
	for j, e := range entries {
		v.Backends = append(v.Backends, d.vipBackend(t, e, j))
	}
	d.vipBGP(t, &v)
	h := t.sub("health", t.prefix, "health.")
	d.health(h, &v.Health, false)
	return v
}

// ports decodes a VIP's ports: 1..65535, at least one, no repeats.
func (d *decoder) ports(t *table) []uint16 {
	raw, ok := get[[]any](t, "ports", "an array of port numbers like [25, 587]")
	if !ok {
		return nil
	}
	if len(raw) == 0 {
		t.bad("ports", "is empty: list at least one port")
	}
	var ports []uint16
	for i, p := range raw {
		path := fmt.Sprintf("%s[%d]", t.keyPath("ports"), i)
		n, ok := p.(int64)
		switch {
		case !ok:
			d.add(path, fmt.Sprintf("%sports: %v is not a port number", t.prefix, p))
		case n < 1 || n > 65535:
			d.add(path, fmt.Sprintf("%sports: %d is out of range 1..65535", t.prefix, n))
		case contains16(ports, uint16(n)):
			d.add(path, fmt.Sprintf("%sports: %d is listed twice", t.prefix, n))
		default:
			ports = append(ports, uint16(n))
		}
	}
	return ports
}

func contains16(list []uint16, v uint16) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// vipBackend decodes entry j of a VIP's backends list; e is nil when it
// was not a table.
func (d *decoder) vipBackend(vt, e *table, j int) VIPBackend {
	b := VIPBackend{Weight: DefaultWeight, Priority: DefaultPriority}
	if e == nil {
		return b
	}
	e.prefix = fmt.Sprintf("%sbackends[%d]: ", vt.prefix, j)
	e.known("name", "weight", "priority")
	b.Name = e.name(vt.prefix, "backend")
	e.uint32Key("weight", &b.Weight, 1, MaxWeight)
	e.uint32Key("priority", &b.Priority, 1, MaxPriority)
	return b
}
