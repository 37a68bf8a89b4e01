package loopback

import (
	"net/netip"

	"github.com/dsrlb/dsrlb/internal/config"
)

// scriptCase is one representative script: a server, an OS and options.
type scriptCase struct {
	golden string // file name under testdata/
	server Server
	os     config.OS
	opts   Options
}

func oneVIP() Server {
	return Server{Name: "EX1", Address: netip.MustParseAddr("192.0.2.11"), VIPs: []ServedVIP{
		{Name: "internet", Address: netip.MustParseAddr("198.51.100.25"), Ports: []uint16{25}},
	}}
}

func twoVIPs() Server {
	return Server{Name: "EX1", Address: netip.MustParseAddr("192.0.2.11"), VIPs: []ServedVIP{
		{Name: "internet", Address: netip.MustParseAddr("198.51.100.25"), Ports: []uint16{25}},
		{Name: "internal-relay", Address: netip.MustParseAddr("192.0.2.25"), Ports: []uint16{25, 587}},
	}}
}

func ipv6VIP() Server {
	return Server{Name: "mx2.example", Address: netip.MustParseAddr("192.0.2.12"), VIPs: []ServedVIP{
		{Name: "internet", Address: netip.MustParseAddr("198.51.100.25"), Ports: []uint16{25}},
		{Name: "internet6", Address: netip.MustParseAddr("2001:db8:25::25"), Ports: []uint16{25}},
	}}
}

// scriptCases are the golden variants: every server on both OSes, setup and
// remove, with --exchange for the two-VIP Windows server.
func scriptCases() []scriptCase {
	var out []scriptCase
	for _, srv := range []struct {
		name     string
		s        Server
		exchange bool
	}{
		{"one-vip", oneVIP(), false},
		{"two-vips-exchange", twoVIPs(), true},
		{"ipv6-vip", ipv6VIP(), false},
	} {
		for _, os := range []config.OS{config.OSWindows, config.OSLinux} {
			for _, remove := range []bool{false, true} {
				mode := "setup"
				if remove {
					mode = "remove"
				}
				ext := ".ps1"
				if os == config.OSLinux {
					ext = ".sh"
				}
				out = append(out, scriptCase{
					golden: srv.name + "-" + string(os) + "-" + mode + ext + ".golden",
					server: srv.s,
					os:     os,
					opts:   Options{Remove: remove, Exchange: srv.exchange && os == config.OSWindows},
				})
			}
		}
	}
	return out
}
