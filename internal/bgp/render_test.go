package bgp

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsrlb/dsrlb/internal/config"
)

func med(v uint32) *uint32 { return &v }

// testConfig is a [bgp] table with an IPv4 and an IPv6 peer, and VIPs of
// both families, one with communities and MED, two sharing an address.
func testConfig(dir string) (config.BGP, []config.VIP) {
	b := config.BGP{LocalAS: 65001, RouterID: netip.MustParseAddr("10.99.0.2"), HoldTime: 3 * time.Second,
		BirdSocket: filepath.Join(dir, "bird.ctl"), BirdConfig: filepath.Join(dir, "dsrlb.conf"),
		Peers: []config.BGPPeer{
			{Address: netip.MustParseAddr("10.99.0.1"), AS: 65000, Password: "s3cret ~!"},
			{Address: netip.MustParseAddr("2001:db8:99::1"), AS: 65000},
		}}
	vips := []config.VIP{
		{Name: "internet", Address: netip.MustParseAddr("198.51.100.25"), BGPMED: med(10),
			BGPCommunities: []config.BGPCommunity{{Global: 65000, Local1: 100}, {Large: true, Global: 4200000000, Local1: 1, Local2: 7}}},
		{Name: "submission", Address: netip.MustParseAddr("198.51.100.25"), BGPMED: med(10),
			BGPCommunities: []config.BGPCommunity{{Global: 65000, Local1: 100}, {Large: true, Global: 4200000000, Local1: 1, Local2: 7}}},
		{Name: "relay", Address: netip.MustParseAddr("198.51.100.26")},
		{Name: "internet6", Address: netip.MustParseAddr("2001:db8:25::25"), BGPCommunities: []config.BGPCommunity{{Global: 1, Local1: 2}}},
	}
	return b, vips
}

// birdParses runs BIRD's own parser (bird -p) on a bird.conf including text.
func birdParses(t *testing.T, text string) {
	t.Helper()
	dir := t.TempDir()
	inc := filepath.Join(dir, "dsrlb.conf")
	if err := os.WriteFile(inc, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	main, err := NodeConfig(netip.MustParseAddr("10.99.0.2"), inc)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bird", "-p", "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("bird -p refused the config: %v\n%s\n--- include:\n%s", err, out, text)
	}
}

func TestRenderParsesAndSaysWhatItShould(t *testing.T) {
	b, vips := testConfig(t.TempDir())
	text, err := Render(b, vips, []string{"internet", "internet6"})
	if err != nil {
		t.Fatal(err)
	}
	birdParses(t, text)
	for _, want := range []string{
		announcedTag + " internet internet6\n",
		"\troute 198.51.100.25/32 blackhole;\t# internet submission\n",
		"\troute 2001:db8:25::25/128 blackhole;\t# internet6\n",
		"\tif net = 198.51.100.25/32 then {\n\t\tbgp_community.add((65000, 100));\n\t\tbgp_large_community.add((4200000000, 1, 7));\n\t\tbgp_med = 10;\n\t}\n",
		"\tif net = 2001:db8:25::25/128 then {\n\t\tbgp_community.add((1, 2));\n\t}\n",
		"protocol bgp dsrlb_peer_10_99_0_1 {\n\trouter id 10.99.0.2;\n\tlocal as 65001;\n\tneighbor 10.99.0.1 as 65000;\n\thold time 3;\n\tkeepalive time 1;\n",
		"\tpassword \"s3cret ~!\";\n\tipv4 {\n\t\ttable dsrlb4;\n\t\timport none;\n\t\texport filter dsrlb_export4;\n\t\tnext hop self;\n",
		"protocol bgp dsrlb_peer_2001_db8_99__1 {\n",
		"\tipv6 {\n\t\ttable dsrlb6;\n\t\timport none;\n\t\texport filter dsrlb_export6;\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered config lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "route 198.51.100.26/32") {
		t.Errorf("relay is announced though not asked for:\n%s", text)
	}
	if strings.Count(text, "198.51.100.25/32 blackhole") != 1 {
		t.Errorf("shared address announced more than once:\n%s", text)
	}
	// The peer without a password has no password line.
	_, v6peer, _ := strings.Cut(text, "protocol bgp dsrlb_peer_2001_db8_99__1")
	if strings.Contains(v6peer, "password") {
		t.Errorf("IPv6 peer got a password:\n%s", v6peer)
	}
	if names, ok := announcedIn(text); !ok || strings.Join(names, ",") != "internet,internet6" {
		t.Errorf("announcedIn = %v, %v", names, ok)
	}

	none, err := Render(b, vips, nil)
	if err != nil {
		t.Fatal(err)
	}
	birdParses(t, none)
	if strings.Contains(none, "blackhole") || !strings.Contains(none, "protocol bgp dsrlb_peer_10_99_0_1") {
		t.Errorf("withdraw-all config still announces or lost a session:\n%s", none)
	}
	if again, _ := Render(b, vips, []string{"internet6", "internet"}); again != text {
		t.Error("Render depends on the order of the names")
	}
}

func TestRenderRefusesInjection(t *testing.T) {
	b, vips := testConfig(t.TempDir())
	bad := []struct {
		name string
		edit func(*config.BGP, []config.VIP)
	}{
		{"password quote", func(b *config.BGP, _ []config.VIP) {
			b.Peers[0].Password = `x"; }; protocol bgp evil { neighbor 192.0.2.66 as 666; ipv4 { export all; }; }; #`
		}},
		{"password backslash", func(b *config.BGP, _ []config.VIP) { b.Peers[0].Password = `x\` }},
		{"password newline", func(b *config.BGP, _ []config.VIP) { b.Peers[0].Password = "x\ninclude \"/etc/shadow\";" }},
		{"router id v6", func(b *config.BGP, _ []config.VIP) { b.RouterID = netip.MustParseAddr("2001:db8::1") }},
		{"zero AS", func(b *config.BGP, _ []config.VIP) { b.LocalAS = 0 }},
		{"peer AS 0", func(b *config.BGP, _ []config.VIP) { b.Peers[1].AS = 0 }},
		{"hold time", func(b *config.BGP, _ []config.VIP) { b.HoldTime = 1500 * time.Millisecond }},
		{"peer zone", func(b *config.BGP, _ []config.VIP) { b.Peers[1].Address = netip.MustParseAddr("fe80::1%eth0") }},
		{"peer twice", func(b *config.BGP, _ []config.VIP) { b.Peers[1] = b.Peers[0] }},
		{"vip name newline", func(_ *config.BGP, v []config.VIP) {
			// The name goes into comments; a newline would end the comment.
			v[2].Name = "relay\nprotocol bgp evil { neighbor 192.0.2.66 as 666; ipv4 { export all; }; }"
		}},
		{"vip name space", func(_ *config.BGP, v []config.VIP) { v[2].Name = "relay extra" }},
		{"community 16 bits", func(_ *config.BGP, v []config.VIP) {
			v[2].BGPCommunities = []config.BGPCommunity{{Global: 70000, Local1: 1}}
		}},
	}
	for _, c := range bad {
		b2, v2 := b, append([]config.VIP(nil), vips...)
		b2.Peers = append([]config.BGPPeer(nil), b.Peers...)
		c.edit(&b2, v2)
		if text, err := Render(b2, v2, []string{"internet"}); err == nil {
			t.Errorf("%s: rendered:\n%s", c.name, text)
		}
	}
	if _, err := Render(b, vips, []string{"nosuch"}); err == nil {
		t.Error("announcing an unknown VIP was accepted")
	}
	for _, inc := range []string{"relative.conf", `/etc/bird/x";`, "/etc/bird/\n"} {
		if _, err := NodeConfig(b.RouterID, inc); err == nil {
			t.Errorf("NodeConfig accepted include %q", inc)
		}
	}
}

func TestProtocolNameStable(t *testing.T) {
	for in, want := range map[string]string{"10.77.0.1": "dsrlb_peer_10_77_0_1", "2001:db8::1": "dsrlb_peer_2001_db8__1",
		"2001:DB8:0:0::a": "dsrlb_peer_2001_db8__a"} {
		if got := ProtocolName(netip.MustParseAddr(in)); got != want {
			t.Errorf("ProtocolName(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestRoutesGroupsByAddress(t *testing.T) {
	_, vips := testConfig("/x")
	rs := Routes(vips)
	if len(rs) != 3 {
		t.Fatalf("routes = %+v", rs)
	}
	if rs[0].Prefix.String() != "198.51.100.25/32" || strings.Join(rs[0].VIPs, ",") != "internet,submission" ||
		rs[2].Prefix.String() != "2001:db8:25::25/128" {
		t.Errorf("routes = %+v", rs)
	}
}

func TestParseProtocols(t *testing.T) {
	out := "0001 BIRD 2.0.12 ready.\n" +
		"2002-Name       Proto      Table      State  Since         Info\n" +
		"1002-device1    Device     ---        up     23:01:56.140  \n" +
		"1006-\n" +
		"1002-dsrlb_peer_10_77_0_1 BGP        ---        up     23:02:00.000  Established   \n" +
		"1006-  BGP state:          Established\n" +
		"       Neighbor address: 10.77.0.1\n" +
		"1002-dsrlb_peer_10_77_0_9 BGP        ---        start  23:01:56.140  Active        Socket: Connection refused\n" +
		"1006-  BGP state:          Active\n" +
		"         Neighbor address: 10.77.0.9\n" +
		"         Last error:       Socket: Connection refused\n" +
		"1002-dsrlb_peer_10_77_0_8 BGP        ---        down   23:01:56.140  \n" +
		"0000 \n"
	p := parseProtocols(parseReply(out))
	if g := p["dsrlb_peer_10_77_0_1"]; g.bgpState != "Established" || g.state != "up" {
		t.Errorf("established peer = %+v", g)
	}
	if g := p["dsrlb_peer_10_77_0_9"]; g.bgpState != "Active" || g.lastError != "Socket: Connection refused" || g.info != "Active Socket: Connection refused" {
		t.Errorf("active peer = %+v", g)
	}
	if g, ok := p["dsrlb_peer_10_77_0_8"]; !ok || g.state != "down" || g.bgpState != "" {
		t.Errorf("down peer = %+v (%v)", g, ok)
	}
	if len(p) != 4 {
		t.Errorf("protocols = %v", p)
	}
}
