package config

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

const bgpBase = `
[lb]
interface = "eth0"
hash_seed = 42
[[backend]]
name = "a"
address = "192.0.2.1"
[[backend]]
name = "b"
address = "2001:db8::1"
[[backend]]
name = "a2"
address = "192.0.2.2"
[[backend]]
name = "b2"
address = "2001:db8::2"
[[vip]]
name = "v4"
address = "198.51.100.25"
backends = [{ name = "a" }, { name = "a2" }]
bgp_communities = ["65000:100", "0:65535", "4200000000:1:4294967295"]
bgp_med = 10
[[vip]]
name = "v6"
address = "2001:db8::25"
backends = [{ name = "b" }, { name = "b2" }]
`

func TestBGPParsed(t *testing.T) {
	c, err := Parse("bgp.toml", []byte(bgpBase+`
[bgp]
local_as = 4200000001
router_id = "10.77.0.2"
hold_time = "3s"
bird_socket = "/run/dsrlb/bird.ctl"
bird_config = "/etc/bird/conf.d/dsrlb.conf"

[[bgp.peer]]
address = "10.77.0.1"
as = 65000
password = "s3cret!"

[[bgp.peer]]
address = "2001:db8::ff"
as = 65000
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &BGP{LocalAS: 4200000001, RouterID: netip.MustParseAddr("10.77.0.2"), HoldTime: 3 * time.Second,
		BirdSocket: "/run/dsrlb/bird.ctl", BirdConfig: "/etc/bird/conf.d/dsrlb.conf", Line: 28,
		Peers: []BGPPeer{
			{Address: netip.MustParseAddr("10.77.0.1"), AS: 65000, Password: "s3cret!", Line: 35},
			{Address: netip.MustParseAddr("2001:db8::ff"), AS: 65000, Line: 40},
		}}
	if !reflect.DeepEqual(c.BGP, want) {
		t.Errorf("BGP = %+v\nwant %+v", c.BGP, want)
	}
	v4 := c.VIPs[0]
	wantComm := []BGPCommunity{{Global: 65000, Local1: 100}, {Global: 0, Local1: 65535},
		{Large: true, Global: 4200000000, Local1: 1, Local2: 4294967295}}
	if !reflect.DeepEqual(v4.BGPCommunities, wantComm) || v4.BGPMED == nil || *v4.BGPMED != 10 {
		t.Errorf("v4 communities %v med %v", v4.BGPCommunities, v4.BGPMED)
	}
	if c.VIPs[1].BGPCommunities != nil || c.VIPs[1].BGPMED != nil {
		t.Errorf("v6 got BGP attributes it did not ask for: %+v", c.VIPs[1])
	}
	var got []string
	for _, cm := range v4.BGPCommunities {
		got = append(got, cm.String())
	}
	if want := []string{"65000:100", "0:65535", "4200000000:1:4294967295"}; !reflect.DeepEqual(got, want) {
		t.Errorf("String() = %v, want %v", got, want)
	}
	if ws := Lint(c); len(ws) != 0 {
		t.Errorf("warnings for a sound [bgp]: %v", ws)
	}
}

func TestBGPDefaults(t *testing.T) {
	c, err := Parse("bgp.toml", []byte(bgpBase+`
[bgp]
local_as = 65001
router_id = "10.77.0.2"
[[bgp.peer]]
address = "10.77.0.1"
as = 65000
`))
	if err != nil {
		t.Fatal(err)
	}
	b := c.BGP
	if b.HoldTime != DefaultHoldTime || b.BirdSocket != DefaultBirdSocket || b.BirdConfig != DefaultBirdConfig || b.Peers[0].Password != "" {
		t.Errorf("defaults: %+v", b)
	}
	// The IPv6 VIP has no IPv6 peer: warned, and only that.
	ws := Lint(c)
	if len(ws) != 1 || ws[0].Line != 23 {
		t.Errorf("warnings = %v, want one about v6 (line 23)", ws)
	}
	noBGP, err := Parse("none.toml", []byte(`
[lb]
interface = "eth0"
[[backend]]
name = "a"
address = "192.0.2.1"
[[vip]]
name = "v"
address = "198.51.100.25"
backends = [{ name = "a" }]
`))
	if err != nil || noBGP.BGP != nil {
		t.Fatalf("no [bgp]: BGP = %+v, err %v", noBGP.BGP, err)
	}
}

func TestParseCommunity(t *testing.T) {
	good := map[string]BGPCommunity{
		"0:0":               {},
		"65535:65535":       {Global: 65535, Local1: 65535},
		"1:2:3":             {Large: true, Global: 1, Local1: 2, Local2: 3},
		"4294967295:0:7":    {Large: true, Global: 4294967295, Local2: 7},
		"65000:100":         {Global: 65000, Local1: 100},
		"00065000:00000100": {Global: 65000, Local1: 100},
	}
	for s, want := range good {
		if got, err := parseCommunity(s); err != nil || got != want {
			t.Errorf("parseCommunity(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
	for _, s := range []string{"", ":", "1", "1:", ":1", "65536:0", "0:65536", "1:2:3:4", "+1:2", "1:-2", "1 :2",
		"1:2:4294967296", "0x10:1", "(1,2)", "1:2;", "1:2\n"} {
		if c, err := parseCommunity(s); err == nil {
			t.Errorf("parseCommunity(%q) accepted: %+v", s, c)
		}
	}
}

func TestBGPPasswordAndPathChecks(t *testing.T) {
	for s, ok := range map[string]bool{"s3cret": true, "with space ok": true, "~!@#$%^&*()": true, "": false,
		`quote"`: false, `back\slash`: false, "new\nline": false, "tab\t": false, "é": false,
		string(make([]byte, 81)): false} {
		if (checkBGPPassword(s) == nil) != ok {
			t.Errorf("checkBGPPassword(%q) ok = %v", s, !ok)
		}
	}
	for s, ok := range map[string]bool{"/etc/bird/dsrlb.conf": true, "etc/bird": false, `/etc/"x`: false,
		`/etc/\x`: false, "/etc//bird": false} {
		if (checkBirdPath(s) == nil) != ok {
			t.Errorf("checkBirdPath(%q) ok = %v", s, !ok)
		}
	}
}
