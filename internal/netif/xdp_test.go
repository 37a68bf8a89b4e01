package netif

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"

	"github.com/dsrlb/dsrlb/internal/config"
	"github.com/dsrlb/dsrlb/internal/lab"
)

// pinnedLinkID returns the id of the link pinned at pin and its program id.
func pinnedLinkID(t *testing.T, pin string) (link.ID, uint32) {
	t.Helper()
	lk, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		t.Fatalf("load pinned link: %v", err)
	}
	defer lk.Close()
	info, err := lk.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.ID, uint32(info.Program)
}

func TestXDP(t *testing.T) {
	lb := newLab(t, lab.Options{Clients: 1, Backends: 1}) // native-ready: xdp_pass sink on the bridge port
	prog1, id1 := loadProgram(t)
	prog2, id2 := loadProgram(t)
	if id1 == id2 {
		t.Fatalf("two loads gave the same program id %d", id1)
	}
	var eth0 Link
	in(t, lb.LB, func() {
		var err error
		eth0, err = LookupLink("eth0")
		if err != nil {
			t.Fatal(err)
		}
	})
	if eth0.Index != lb.LB.IfIndex || eth0.MAC.String() != lb.LB.MAC.String() || eth0.Name != "eth0" {
		t.Fatalf("LookupLink = %+v, want index %d MAC %s", eth0, lb.LB.IfIndex, lb.LB.MAC)
	}

	t.Run("NativeReuseDetach", func(t *testing.T) {
		pin := testPin(t)
		log, logs := newLog()
		in(t, lb.LB, func() {
			mustAttach(t, Attachment{Mode: ModeNative}, eth0, prog1, config.XDPNative, pin, log)
			wantXDP(t, eth0.Index, nl.XDP_ATTACHED_DRV, id1)
			linkBefore, progBefore := pinnedLinkID(t, pin)
			if progBefore != uint32(id1) {
				t.Fatalf("pinned link runs prog %d, want %d", progBefore, id1)
			}

			// A second dsrlb: same link, new program, mode kept even if the
			// config now says generic.
			mustAttach(t, Attachment{Mode: ModeNative, Reused: true}, eth0, prog2, config.XDPGeneric, pin, log)
			linkAfter, progAfter := pinnedLinkID(t, pin)
			if linkAfter != linkBefore || progAfter != uint32(id2) {
				t.Fatalf("after reuse: link %d prog %d, want link %d prog %d", linkAfter, progAfter, linkBefore, id2)
			}
			wantXDP(t, eth0.Index, nl.XDP_ATTACHED_DRV, id2)
			if !logs.contains("keeping the running XDP link", "running_mode=native", "configured_mode=generic") {
				t.Fatalf("no warning about the kept mode in log:\n%s", logs)
			}

			if err := DetachXDP(pin); err != nil {
				t.Fatal(err)
			}
			wantXDP(t, eth0.Index, 0, 0)
			wantNoPin(t, pin, "pin still there after DetachXDP")
			if err := DetachXDP(pin); err != nil {
				t.Fatalf("DetachXDP with nothing pinned: %v", err)
			}
		})
	})

	t.Run("Generic", func(t *testing.T) {
		pin := testPin(t)
		in(t, lb.LB, func() {
			mustAttach(t, Attachment{Mode: ModeGeneric}, eth0, prog1, config.XDPGeneric, pin, nil)
			wantXDP(t, eth0.Index, nl.XDP_ATTACHED_SKB, id1)
			// Reuse reports the mode the link runs in.
			mustAttach(t, Attachment{Mode: ModeGeneric, Reused: true}, eth0, prog2, config.XDPAuto, pin, nil)
		})
	})

	t.Run("AutoNative", func(t *testing.T) {
		pin := testPin(t)
		log, logs := newLog()
		in(t, lb.LB, func() {
			mustAttach(t, Attachment{Mode: ModeNative}, eth0, prog1, config.XDPAuto, pin, log)
			wantXDP(t, eth0.Index, nl.XDP_ATTACHED_DRV, id1)
		})
		if logs.contains("falling back") {
			t.Fatalf("fallback logged although native worked:\n%s", logs)
		}
	})

	t.Run("AutoFallsBackToGeneric", func(t *testing.T) {
		pin := testPin(t)
		log, logs := newLog()
		in(t, lb.LB, func() {
			bridge := addBridge(t, "br-auto")
			// Native alone fails on a bridge: no driver support, nothing pinned.
			_, err := AttachXDP(bridge, prog1, config.XDPNative, pin, log)
			if err == nil || !stringsContain(err.Error(), "br-auto", "native") {
				t.Fatalf("native on bridge: err = %v, want a native-mode failure naming br-auto", err)
			}
			t.Logf("native on a bridge: %v", err)
			wantNoPin(t, pin, "pin left after a failed attach")
			mustAttach(t, Attachment{Mode: ModeGeneric}, bridge, prog1, config.XDPAuto, pin, log)
			wantXDP(t, bridge.Index, nl.XDP_ATTACHED_SKB, id1)
		})
		if !logs.contains("falling back to generic", "interface=br-auto", "error=") {
			t.Fatalf("no fallback line with the native error in log:\n%s", logs)
		}
		t.Logf("log:\n%s", logs)
	})

	t.Run("ForeignNetlinkProgram", func(t *testing.T) {
		pin := testPin(t)
		log, logs := newLog()
		in(t, lb.LB, func() {
			nlk, err := netlink.LinkByIndex(eth0.Index)
			if err != nil {
				t.Fatal(err)
			}
			if err := netlink.LinkSetXdpFdWithFlags(nlk, prog2.FD(), nl.XDP_FLAGS_SKB_MODE); err != nil {
				t.Fatalf("attach foreign program: %v", err)
			}
			defer func() {
				if err := netlink.LinkSetXdpFdWithFlags(nlk, -1, nl.XDP_FLAGS_SKB_MODE); err != nil {
					t.Errorf("remove foreign program: %v", err)
				}
			}()
			for _, mode := range []config.XDPMode{config.XDPNative, config.XDPGeneric, config.XDPAuto} {
				_, err := AttachXDP(eth0, prog1, mode, pin, log)
				var fe *ForeignXDPError
				if !errors.As(err, &fe) {
					t.Fatalf("%s: err = %v, want ForeignXDPError", mode, err)
				}
				want := fmt.Sprintf("interface eth0 already has an XDP program (id %d) not attached by dsrlb: remove it with `ip link set dev eth0 xdp off`", id2)
				if err.Error() != want || fe.ProgID != uint32(id2) || fe.LinkID != 0 {
					t.Fatalf("%s: err = %q (%+v), want %q", mode, err, fe, want)
				}
			}
			wantNoPin(t, pin, "pin created despite the foreign program")
			wantXDP(t, eth0.Index, nl.XDP_ATTACHED_SKB, id2)
		})
		if logs.contains("falling back") {
			t.Fatalf("auto fell back although a foreign program is attached:\n%s", logs)
		}
	})

	t.Run("ForeignBPFLink", func(t *testing.T) {
		pin := testPin(t)
		in(t, lb.LB, func() {
			other, err := link.AttachXDP(link.XDPOptions{Program: prog2, Interface: eth0.Index, Flags: link.XDPGenericMode})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			info, err := other.Info()
			if err != nil {
				t.Fatal(err)
			}
			_, err = AttachXDP(eth0, prog1, config.XDPAuto, pin, nil)
			var fe *ForeignXDPError
			if !errors.As(err, &fe) || fe.LinkID != uint32(info.ID) || fe.ProgID != uint32(id2) ||
				!stringsContain(err.Error(), fmt.Sprintf("bpf_link %d", info.ID), pin) {
				t.Fatalf("err = %v (%+v), want ForeignXDPError naming link %d and the pin", err, fe, info.ID)
			}
		})
	})

	t.Run("PinnedInOtherNamespace", func(t *testing.T) {
		pin := testPin(t)
		client := lb.Clients[0]
		if client.IfIndex != eth0.Index {
			t.Fatalf("test needs equal interface indexes: client eth0 %d, lb eth0 %d", client.IfIndex, eth0.Index)
		}
		in(t, client, func() {
			ceth, err := LookupLink("eth0")
			if err != nil {
				t.Fatal(err)
			}
			mustAttach(t, Attachment{Mode: ModeGeneric}, ceth, prog1, config.XDPGeneric, pin, nil)
		})
		in(t, lb.LB, func() {
			_, err := AttachXDP(eth0, prog2, config.XDPGeneric, pin, nil)
			if err == nil || !strings.Contains(err.Error(), "another network namespace") {
				t.Fatalf("err = %v, want one about another namespace", err)
			}
			wantXDP(t, eth0.Index, 0, 0)
		})
		in(t, client, func() { wantXDP(t, client.IfIndex, nl.XDP_ATTACHED_SKB, id1) })
	})

	t.Run("PinnedElsewhereThenStale", func(t *testing.T) {
		pin := testPin(t)
		log, logs := newLog()
		in(t, lb.LB, func() {
			bridge := addBridge(t, "br-pin")
			if _, err := AttachXDP(bridge, prog1, config.XDPGeneric, pin, log); err != nil {
				t.Fatal(err)
			}
			oldLink, _ := pinnedLinkID(t, pin)
			_, err := AttachXDP(eth0, prog2, config.XDPGeneric, pin, log)
			if err == nil || !stringsContain(err.Error(), "br-pin", "eth0", "dsrlb detach") {
				t.Fatalf("attach with the pin on another interface: err = %v, want one naming br-pin and eth0", err)
			}
			wantXDP(t, eth0.Index, 0, 0)
			// The interface goes away: the pinned link is defunct and is
			// replaced by a fresh one on eth0.
			if err := netlink.LinkDel(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Index: bridge.Index}}); err != nil {
				t.Fatal(err)
			}
			mustAttach(t, Attachment{Mode: ModeGeneric}, eth0, prog2, config.XDPGeneric, pin, log)
			newLink, prog := pinnedLinkID(t, pin)
			if newLink == oldLink || prog != uint32(id2) {
				t.Fatalf("pin holds link %d prog %d, want a new link (not %d) with prog %d", newLink, prog, oldLink, id2)
			}
			wantXDP(t, eth0.Index, nl.XDP_ATTACHED_SKB, id2)
		})
		if !logs.contains("detached", "replacing it") {
			t.Fatalf("no log line about the stale pin:\n%s", logs)
		}
	})
}

// TestAttachModeFallback covers the auto fallback with injected errors.
func TestAttachModeFallback(t *testing.T) {
	nativeErr := errors.New("injected native failure")
	var tried []link.XDPAttachFlags
	var fellBack error
	attach := func(f link.XDPAttachFlags) (link.Link, error) {
		tried = append(tried, f)
		if f == link.XDPDriverMode {
			return nil, nativeErr
		}
		return nil, nil
	}
	_, mode, err := attachMode(config.XDPAuto, attach, func(e error) { fellBack = e })
	if err != nil || mode != ModeGeneric || fellBack != nativeErr ||
		len(tried) != 2 || tried[0] != link.XDPDriverMode || tried[1] != link.XDPGenericMode {
		t.Fatalf("auto: mode %q err %v fallback %v tried %v", mode, err, fellBack, tried)
	}

	tried, fellBack = nil, nil
	foreign := &ForeignXDPError{Interface: "eth9", ProgID: 7}
	_, _, err = attachMode(config.XDPAuto, func(f link.XDPAttachFlags) (link.Link, error) {
		tried = append(tried, f)
		return nil, foreign
	}, func(e error) { fellBack = e })
	if !errors.Is(err, foreign) || fellBack != nil || len(tried) != 1 {
		t.Fatalf("auto with a foreign program: err %v fallback %v tried %v", err, fellBack, tried)
	}

	if _, _, err := attachMode("fast", attach, func(error) {}); err == nil {
		t.Fatal("unknown mode accepted")
	}
}

// wantNoPin fails, saying what, if pin exists.
func wantNoPin(t *testing.T, pin, what string) {
	t.Helper()
	if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: %v", what, err)
	}
}

// mustAttach runs AttachXDP and fails unless it returns want.
func mustAttach(t *testing.T, want Attachment, l Link, prog *ebpf.Program, mode config.XDPMode, pin string, log *slog.Logger) {
	t.Helper()
	att, err := AttachXDP(l, prog, mode, pin, log)
	if err != nil {
		t.Fatalf("AttachXDP(%s, %s): %v", l.Name, mode, err)
	}
	if att != want {
		t.Fatalf("AttachXDP(%s, %s) = %+v, want %+v", l.Name, mode, att, want)
	}
}

// wantXDP fails unless netlink shows prog attached to index in mode (an
// IFLA_XDP_ATTACHED value; 0, 0 for nothing attached).
func wantXDP(t *testing.T, index int, mode uint32, prog ebpf.ProgramID) {
	t.Helper()
	if gotMode, gotProg := xdpState(t, index); gotMode != mode || gotProg != uint32(prog) {
		t.Fatalf("interface %d: XDP mode %d prog %d, want mode %d prog %d", index, gotMode, gotProg, mode, prog)
	}
}

// stringsContain reports whether s contains every part.
func stringsContain(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
