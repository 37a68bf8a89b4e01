package netif

import (
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dsrlb/dsrlb/internal/lab"
)

// addrEntry returns l's netlink entry for a, failing if there is not exactly one.
func addrEntry(t *testing.T, l Link, a netip.Addr) netlink.Addr {
	t.Helper()
	entries, err := addrsOf(l, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("%s: %d entries, want 1: %v", a, len(entries), entries)
	}
	return entries[0]
}

func TestAddresses(t *testing.T) {
	lb := newLab(t, lab.Options{Clients: 1, Backends: 1, GenericXDP: true})
	in(t, lb.LB, func() {
		eth0, err := LookupLink("eth0")
		if err != nil {
			t.Fatal(err)
		}
		for _, vip := range []netip.Addr{netip.MustParseAddr("198.51.100.25"), netip.MustParseAddr("2001:db8:7725::25")} {
			has, err := HasAddress(eth0, vip)
			if err != nil || has {
				t.Fatalf("%s before: has %v, err %v", vip, has, err)
			}
			added, err := AddAddress(eth0, vip)
			if err != nil || !added {
				t.Fatalf("%s: first add: added %v, err %v", vip, added, err)
			}
			e := addrEntry(t, eth0, vip)
			if ones, bits := e.Mask.Size(); ones != vip.BitLen() || bits != vip.BitLen() {
				t.Fatalf("%s added as /%d, want /%d", vip, ones, vip.BitLen())
			}
			if vip.Is6() && e.Flags&unix.IFA_F_NODAD == 0 {
				t.Fatalf("%s added without nodad (flags %#x)", vip, e.Flags)
			}
			if has, err := HasAddress(eth0, vip); err != nil || !has {
				t.Fatalf("%s after add: has %v, err %v", vip, has, err)
			}
			added, err = AddAddress(eth0, vip)
			if err != nil || added {
				t.Fatalf("%s: second add: added %v, err %v, want not added", vip, added, err)
			}
			// The VIP is a host-length address: never the probe source.
			src, err := SourceAddress(eth0, vip)
			if err != nil {
				t.Fatal(err)
			}
			want := lb.LB.Addr4
			if vip.Is6() {
				want = lb.LB.Addr6
			}
			if src != want {
				t.Fatalf("SourceAddress(%s) = %s, want %s", vip, src, want)
			}
			if err := RemoveAddress(eth0, vip); err != nil {
				t.Fatal(err)
			}
			if has, err := HasAddress(eth0, vip); err != nil || has {
				t.Fatalf("%s after remove: has %v, err %v", vip, has, err)
			}
			if err := RemoveAddress(eth0, vip); err != nil {
				t.Fatalf("%s: removing an absent address: %v", vip, err)
			}
		}

		// The host's own addresses (/24, /64): present, so not added, and
		// RemoveAddress leaves them alone.
		for _, own := range []netip.Addr{lb.LB.Addr4, lb.LB.Addr6} {
			added, err := AddAddress(eth0, own)
			if err != nil || added {
				t.Fatalf("%s (the host's own): added %v, err %v", own, added, err)
			}
			if err := RemoveAddress(eth0, own); err != nil {
				t.Fatal(err)
			}
			e := addrEntry(t, eth0, own)
			if ones, _ := e.Mask.Size(); ones == own.BitLen() {
				t.Fatalf("%s: unexpected host-length entry", own)
			}
		}

		if _, err := AddAddress(eth0, netip.Addr{}); err == nil {
			t.Fatal("AddAddress accepted an invalid address")
		}
	})
}
