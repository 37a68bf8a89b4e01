package loopback

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsrlb/dsrlb/internal/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the generators")

func generate(t *testing.T, c scriptCase) string {
	t.Helper()
	out, err := Generate(c.server, c.os, c.opts)
	if err != nil {
		t.Fatalf("Generate(%s): %v", c.golden, err)
	}
	return out
}

func TestGolden(t *testing.T) {
	for _, c := range scriptCases() {
		t.Run(c.golden, func(t *testing.T) {
			got := generate(t, c)
			path := filepath.Join("testdata", c.golden)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/loopback -run TestGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the generator's output; if the change is intended, run go test ./internal/loopback -run TestGolden -update and review the diff", path)
			}
		})
	}
}

// eachScript runs f in a subtest for every case on target, with its script.
func eachScript(t *testing.T, target config.OS, f func(t *testing.T, c scriptCase, script string)) {
	for _, c := range scriptCases() {
		if c.os == target {
			t.Run(c.golden, func(t *testing.T) { f(t, c, generate(t, c)) })
		}
	}
}

func TestWindowsScriptContent(t *testing.T) {
	eachScript(t, config.OSWindows, func(t *testing.T, c scriptCase, got string) {
		for _, want := range []string{
			"[CmdletBinding(SupportsShouldProcess)]",
			"$ErrorActionPreference = 'Stop'",
			"Set-StrictMode -Version",
			"#Requires -RunAsAdministrator",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("script lacks %q", want)
			}
		}
		for _, v := range c.server.VIPs {
			line := "Address = '" + v.Address.String() + "'; PrefixLength = " + map[bool]string{true: "32", false: "128"}[v.Address.Is4()]
			if !strings.Contains(got, line) {
				t.Errorf("script does not place VIP %s as a host address (%q)", v.Name, line)
			}
		}
		if c.opts.Remove {
			if !strings.Contains(got, "[switch]$RemoveAdapter") || strings.Contains(got, "New-NetIPAddress") {
				t.Error("rollback script must take -RemoveAdapter and add no address")
			}
		} else {
			for _, want := range []string{"-SkipAsSource $true", "'WeakHostReceive' 'Enabled'", "'WeakHostSend' 'Enabled'",
				"'InterfaceMetric' '254'", "-RegisterThisConnectionsAddress $false", "devcon.exe",
				"SetupDiCallClassInstaller(DIF_REGISTERDEVICE", "UpdateDriverForPlugAndPlayDevices", "netloop.inf"} {
				if !strings.Contains(got, want) {
					t.Errorf("setup script lacks %q", want)
				}
			}
		}
		checkExchange(t, got, c)
	})
}

// checkExchange checks that the Exchange commands are present only with
// --exchange, are all commented out, and give relay rights only to relay VIPs.
func checkExchange(t *testing.T, script string, c scriptCase) {
	t.Helper()
	relayGrants := 0
	for i, line := range strings.Split(script, "\n") {
		if !strings.Contains(line, "ReceiveConnector") && !strings.Contains(line, "ADPermission") {
			continue
		}
		if !c.opts.Exchange {
			t.Errorf("line %d: Exchange command without --exchange: %s", i+1, line)
		}
		if !strings.HasPrefix(line, "# ") {
			t.Errorf("line %d: Exchange command is not commented out: %s", i+1, line)
		}
		if strings.Contains(line, "Add-ADPermission") {
			relayGrants++
			granted := false
			for _, v := range c.server.VIPs {
				if strings.Contains(line, `\dsrlb `+v.Name+"'") {
					granted = true
					if !IsRelayVIP(v.Name) {
						t.Errorf("line %d: relay right for internet VIP %s: %s", i+1, v.Name, line)
					}
				}
			}
			if !granted {
				t.Errorf("line %d: relay right for no known VIP: %s", i+1, line)
			}
		}
	}
	if c.opts.Exchange && !c.opts.Remove {
		wantGrants := 0
		for _, v := range c.server.VIPs {
			if IsRelayVIP(v.Name) {
				wantGrants++
			}
			binding := netip.AddrPortFrom(v.Address, v.Ports[0]).String()
			if !strings.Contains(script, "-Bindings '"+binding+"'") {
				t.Errorf("no connector bound to %s", binding)
			}
		}
		if relayGrants != wantGrants {
			t.Errorf("%d relay grants, want one per relay VIP (%d)", relayGrants, wantGrants)
		}
		rebind := "-Bindings '" + c.server.Address.String() + ":25'"
		if !strings.Contains(script, rebind) {
			t.Errorf("Default Frontend is not rebound to the server's own address (%s)", rebind)
		}
	}
}

func TestLinuxScriptContent(t *testing.T) {
	eachScript(t, config.OSLinux, func(t *testing.T, c scriptCase, got string) {
		if !strings.HasPrefix(got, "#!/bin/sh\n") || !strings.Contains(got, "\nset -eu\n") {
			t.Error("script must start with #!/bin/sh and set -eu")
		}
		var vips []string
		for _, v := range c.server.VIPs {
			vips = append(vips, netip.PrefixFrom(v.Address, v.Address.BitLen()).String())
		}
		if want := "\nVIPS='" + strings.Join(vips, " ") + "'\n"; !strings.Contains(got, want) {
			t.Errorf("script lacks %q", want)
		}
	})
}

func TestRelayVIPRule(t *testing.T) {
	for name, want := range map[string]bool{
		"internet": false, "smtp-in": false, "mx": false,
		"internal-relay": true, "Relay": true, "INTERNAL": true, "apps-relay.v6": true,
	} {
		if got := IsRelayVIP(name); got != want {
			t.Errorf("IsRelayVIP(%q) = %v, want %v", name, got, want)
		}
	}
}

// hostile values: quotes, command separators, substitutions, backticks,
// newlines, spaces, and names that look like options.
var hostileNames = []string{
	"EX1'; Remove-Item C:\\ -Recurse; '",
	`EX1"`,
	"EX1;reboot",
	"$(Stop-Computer)",
	"EX1$(id)",
	"`whoami`",
	"EX1`nStop-Computer",
	"EX1\nStop-Computer",
	"EX1\r\n#",
	"EX 1",
	"EX1|sh",
	"EX1&",
	"-rf",
	".hidden",
	"",
	strings.Repeat("a", 64),
}

func TestRejectsHostileNames(t *testing.T) {
	for _, bad := range hostileNames {
		asServer := oneVIP()
		asServer.Name = bad
		asVIP := oneVIP()
		asVIP.VIPs[0].Name = bad
		for _, s := range []Server{asServer, asVIP} {
			for _, target := range []config.OS{config.OSWindows, config.OSLinux} {
				if out, err := Generate(s, target, Options{}); err == nil {
					t.Errorf("Generate accepted name %q for %s:\n%.200s", bad, target, out)
				}
			}
		}
		c := &config.Config{
			Backends: []config.Backend{{Name: bad, Address: netip.MustParseAddr("192.0.2.11"), OS: config.OSLinux}},
			VIPs: []config.VIP{{Name: "internet", Address: netip.MustParseAddr("198.51.100.25"), Ports: []uint16{25},
				Backends: []config.VIPBackend{{Name: bad}}}},
		}
		if _, err := FromConfig(c, bad); err == nil {
			t.Errorf("FromConfig accepted backend name %q", bad)
		}
	}
	if err := checkName(strings.Repeat("a", 63)); err != nil {
		t.Errorf("a 63-character name must be accepted: %v", err)
	}
}

func TestRejectsBadAddresses(t *testing.T) {
	bad := []netip.Addr{
		{},
		netip.MustParseAddr("fe80::1%eth0;reboot"),
		netip.MustParseAddr("2001:db8::1%$(id)"),
		netip.MustParseAddr("::ffff:192.0.2.25"),
		netip.MustParseAddr("0.0.0.0"),
		netip.MustParseAddr("::"),
		netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("::1"),
		netip.MustParseAddr("224.0.0.25"),
		netip.MustParseAddr("169.254.0.25"),
	}
	for _, a := range bad {
		asServer := oneVIP()
		asServer.Address = a
		asVIP := oneVIP()
		asVIP.VIPs[0].Address = a
		for _, s := range []Server{asServer, asVIP} {
			if _, err := Generate(s, config.OSWindows, Options{}); err == nil {
				t.Errorf("Generate accepted address %q", a.String())
			}
		}
	}
}

func TestRejectsBadServers(t *testing.T) {
	noVIPs := oneVIP()
	noVIPs.VIPs = nil
	noPorts := oneVIP()
	noPorts.VIPs[0].Ports = nil
	portZero := oneVIP()
	portZero.VIPs[0].Ports = []uint16{0}
	twice := twoVIPs()
	twice.VIPs[1].Name = twice.VIPs[0].Name
	ownAddr := oneVIP()
	ownAddr.VIPs[0].Address = ownAddr.Address
	for name, s := range map[string]Server{"no VIPs": noVIPs, "no ports": noPorts, "port 0": portZero,
		"VIP twice": twice, "VIP is own address": ownAddr} {
		if _, err := Generate(s, config.OSLinux, Options{}); err == nil {
			t.Errorf("%s: Generate accepted it", name)
		}
	}
	if _, err := Generate(oneVIP(), config.OS("plan9"), Options{}); err == nil {
		t.Error("Generate accepted an unknown OS")
	}
	if _, err := Generate(oneVIP(), config.OSLinux, Options{Exchange: true}); err == nil {
		t.Error("Generate accepted --exchange for Linux")
	}
}

func labConfig() *config.Config {
	ip := netip.MustParseAddr
	return &config.Config{
		Backends: []config.Backend{
			{Name: "EX1", Address: ip("192.0.2.11"), OS: config.OSWindows},
			{Name: "EX2", Address: ip("192.0.2.12"), OS: config.OSWindows},
			{Name: "EX3", Address: ip("192.0.2.13"), OS: config.OSLinux},
		},
		VIPs: []config.VIP{
			{Name: "internet", Address: ip("198.51.100.25"), Ports: []uint16{25},
				Backends: []config.VIPBackend{{Name: "EX1"}, {Name: "EX2"}}},
			{Name: "internal-relay", Address: ip("192.0.2.25"), Ports: []uint16{25, 587},
				Backends: []config.VIPBackend{{Name: "EX1"}, {Name: "EX2"}}},
		},
	}
}

func TestFromConfig(t *testing.T) {
	c := labConfig()
	s, err := FromConfig(c, "EX2")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "EX2" || s.Address != c.Backends[1].Address || len(s.VIPs) != len(c.VIPs) {
		t.Fatalf("FromConfig(EX2) = %+v", s)
	}
	for i, v := range s.VIPs {
		cv := c.VIPs[i]
		if v.Name != cv.Name || v.Address != cv.Address || !slices.Equal(v.Ports, cv.Ports) {
			t.Errorf("VIP %d = %+v, want %s %s %v", i, v, cv.Name, cv.Address, cv.Ports)
		}
	}
	// The server's ports are its own copy.
	s.VIPs[1].Ports[0] = 2525
	if c.VIPs[1].Ports[0] == 2525 {
		t.Error("FromConfig shares the config's ports slice")
	}

	_, err = FromConfig(c, "EX9")
	var unknown *UnknownBackendError
	if !errors.As(err, &unknown) {
		t.Fatalf("FromConfig(EX9) error = %v, want UnknownBackendError", err)
	}
	for _, want := range []string{`"EX9"`, "EX1, EX2, EX3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := FromConfig(c, "EX3"); err == nil || !strings.Contains(err.Error(), "not listed by any VIP") {
		t.Errorf("FromConfig(EX3) = %v, want 'not listed by any VIP'", err)
	}
	if _, err := FromConfig(nil, "EX1"); err == nil {
		t.Error("FromConfig(nil) succeeded")
	}
}
