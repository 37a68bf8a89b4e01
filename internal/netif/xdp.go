package netif

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/dsrlb/dsrlb/internal/config"
)

// XDP attach modes as Attachment.Mode reports them.
const (
	ModeNative  = "native"
	ModeGeneric = "generic"
	ModeOffload = "offload"
	ModeUnknown = "unknown"
)

// Attachment says how the XDP program ended up attached.
type Attachment struct {
	// Mode is "native" (driver) or "generic" (skb); a reused link keeps the
	// mode it was attached in.
	Mode string
	// Reused is true when a pinned link from an earlier dsrlb was kept and
	// only its program replaced.
	Reused bool
}

// ForeignXDPError means the interface already runs an XDP program that dsrlb
// did not attach through its pin, so dsrlb cannot attach its own.
type ForeignXDPError struct {
	// Interface is the interface name.
	Interface string
	// ProgID is the attached program's id (0 when the kernel did not say).
	ProgID uint32
	// LinkID is the id of the bpf_link holding the program, 0 when it was
	// attached through netlink (ip link set ... xdp).
	LinkID uint32
	// Pin is the link pin dsrlb looked at.
	Pin string
}

// Error says what is attached and how to remove it.
func (e *ForeignXDPError) Error() string {
	if e.LinkID != 0 {
		return fmt.Sprintf("interface %s already has an XDP program (id %d) held by bpf_link %d, which is not dsrlb's pin %s "+
			"(another dsrlb with another pin_path, or another tool): remove that link's pin or stop its owner", e.Interface, e.ProgID, e.LinkID, e.Pin)
	}
	return fmt.Sprintf("interface %s already has an XDP program (id %d) not attached by dsrlb: remove it with `ip link set dev %s xdp off`",
		e.Interface, e.ProgID, e.Interface)
}

// AttachXDP attaches prog to l through a bpf_link pinned at linkPin.
//
// A link already pinned there (left running by an earlier dsrlb) is kept and
// its program replaced in place: the interface never runs without a program
// and flows and counters are kept. It must be attached to l. A pinned link
// whose interface has disappeared is replaced by a new one.
//
// Otherwise the program is attached in the given mode: native (driver),
// generic (skb), or auto (native, and generic when native fails, with a log
// line saying why), and the link is pinned. An XDP program attached by
// someone else is reported as a *ForeignXDPError.
//
// AttachXDP keeps no descriptor open: the pin holds the link.
func AttachXDP(l Link, prog *ebpf.Program, mode config.XDPMode, linkPin string, log *slog.Logger) (Attachment, error) {
	if prog == nil {
		return Attachment{}, fmt.Errorf("attach XDP to %s: no program", l.Name)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pinned, err := link.LoadPinnedLink(linkPin, nil)
	switch {
	case err == nil:
		att, reused, err := reusePinned(l, pinned, prog, mode, linkPin, log)
		if err != nil || reused {
			return att, err
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return Attachment{}, fmt.Errorf("load pinned XDP link %s: %w", linkPin, err)
	}
	return attachNew(l, prog, mode, linkPin, log)
}

// reusePinned replaces the program of the pinned link and closes it.
// reused is false (and err nil) when the link is defunct, its interface
// gone: the stale pin has been removed and a new link is wanted.
func reusePinned(l Link, pinned link.Link, prog *ebpf.Program, mode config.XDPMode, pin string, log *slog.Logger) (_ Attachment, reused bool, err error) {
	defer pinned.Close()
	info, err := pinned.Info()
	if err != nil {
		return Attachment{}, false, fmt.Errorf("pinned link %s: %w", pin, err)
	}
	xi := info.XDP()
	if info.Type != link.XDPType || xi == nil {
		return Attachment{}, false, fmt.Errorf("pinned link %s is not an XDP link (type %d): remove it", pin, info.Type)
	}
	switch {
	case xi.Ifindex == 0:
		log.Warn("pinned XDP link is detached (its interface is gone): replacing it", "pin", pin, "link_id", info.ID, "interface", l.Name)
		if err := pinned.Unpin(); err != nil {
			return Attachment{}, false, fmt.Errorf("remove stale XDP link pin %s: %w", pin, err)
		}
		return Attachment{}, false, nil
	case int(xi.Ifindex) != l.Index:
		return Attachment{}, false, fmt.Errorf("pinned XDP link %s (id %d) is attached to %s, not to %s (index %d): "+
			"run `dsrlb detach` with the old config first", pin, info.ID, describeIfindex(int(xi.Ifindex)), l.Name, l.Index)
	}
	// Interface indexes are per namespace: make sure the program the link
	// runs is the one this namespace's l runs.
	if nlk, err := netlinkLink(l); err != nil {
		return Attachment{}, false, err
	} else if x := nlk.Attrs().Xdp; x == nil || !x.Attached || x.ProgId != uint32(info.Program) {
		return Attachment{}, false, fmt.Errorf("pinned XDP link %s (id %d) is attached to interface index %d of another network namespace, not to %s: "+
			"run `dsrlb detach` there first", pin, info.ID, xi.Ifindex, l.Name)
	}
	if err := pinned.Update(prog); err != nil {
		return Attachment{}, false, fmt.Errorf("replace the program of pinned XDP link %s on %s: %w", pin, l.Name, err)
	}
	got, err := attachedMode(l)
	if err != nil {
		return Attachment{}, false, err
	}
	if want := string(mode); mode != config.XDPAuto && want != got {
		log.Warn("keeping the running XDP link in its mode: `dsrlb detach` and restart to change it (drops open flows)",
			"interface", l.Name, "running_mode", got, "configured_mode", want)
	}
	return Attachment{Mode: got, Reused: true}, true, nil
}

// attachNew attaches prog in mode and pins the link.
func attachNew(l Link, prog *ebpf.Program, mode config.XDPMode, pin string, log *slog.Logger) (Attachment, error) {
	if err := foreignXDP(l, pin); err != nil {
		return Attachment{}, err
	}
	attach := func(flags link.XDPAttachFlags) (link.Link, error) {
		lk, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: l.Index, Flags: flags})
		if err != nil {
			if ferr := foreignXDP(l, pin); ferr != nil {
				return nil, ferr
			}
			if flags == link.XDPDriverMode && errors.Is(err, unix.EOPNOTSUPP) {
				return nil, fmt.Errorf("attach XDP to %s in native mode: its driver has no native XDP support (use xdp_mode generic or auto): %w", l.Name, err)
			}
			return nil, fmt.Errorf("attach XDP to %s in %s mode: %w", l.Name, flagMode(flags), err)
		}
		return lk, nil
	}
	lk, got, err := attachMode(mode, attach, func(nativeErr error) {
		log.Warn("native XDP failed, falling back to generic XDP (slower; set xdp_mode to silence this)",
			"interface", l.Name, "error", nativeErr)
	})
	if err != nil {
		return Attachment{}, err
	}
	defer lk.Close()
	if err := os.MkdirAll(filepath.Dir(pin), 0o700); err != nil {
		return Attachment{}, fmt.Errorf("pin XDP link: %w", err)
	}
	if err := lk.Pin(pin); err != nil {
		return Attachment{}, fmt.Errorf("pin XDP link of %s at %s: %w", l.Name, pin, err)
	}
	return Attachment{Mode: got}, nil
}

// attachMode runs attach with the flags of mode; for auto it tries native
// first and, when that fails, calls fallback with the error and tries
// generic. A *ForeignXDPError is final: generic would fail the same way.
func attachMode(mode config.XDPMode, attach func(link.XDPAttachFlags) (link.Link, error), fallback func(error)) (link.Link, string, error) {
	switch mode {
	case config.XDPNative:
		lk, err := attach(link.XDPDriverMode)
		return lk, ModeNative, err
	case config.XDPGeneric:
		lk, err := attach(link.XDPGenericMode)
		return lk, ModeGeneric, err
	case config.XDPAuto, "":
		lk, err := attach(link.XDPDriverMode)
		if err == nil {
			return lk, ModeNative, nil
		}
		if _, foreign := errors.AsType[*ForeignXDPError](err); foreign {
			return nil, "", err
		}
		fallback(err)
		lk, gerr := attach(link.XDPGenericMode)
		if gerr != nil {
			return nil, "", errors.Join(err, gerr)
		}
		return lk, ModeGeneric, nil
	}
	return nil, "", fmt.Errorf("unknown XDP mode %q (want auto, native or generic)", mode)
}

// flagMode names an attach flag.
func flagMode(f link.XDPAttachFlags) string {
	if f == link.XDPDriverMode {
		return ModeNative
	}
	return ModeGeneric
}

// foreignXDP returns a *ForeignXDPError when l has an XDP program attached.
// Only called when dsrlb's pin holds nothing for l.
func foreignXDP(l Link, pin string) error {
	nlk, err := netlinkLink(l)
	if err != nil {
		return err
	}
	x := nlk.Attrs().Xdp
	if x == nil || !x.Attached {
		return nil
	}
	return &ForeignXDPError{Interface: l.Name, ProgID: x.ProgId, LinkID: xdpLinkHolding(x.ProgId), Pin: pin}
}

// xdpLinkHolding returns the id of an XDP bpf_link running program id, or 0.
func xdpLinkHolding(progID uint32) uint32 {
	if progID == 0 {
		return 0
	}
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err == nil && info.Type == link.XDPType && uint32(info.Program) == progID {
			return uint32(info.ID)
		}
	}
	return 0
}

// attachedMode reads from netlink the mode l's XDP program runs in.
func attachedMode(l Link) (string, error) {
	nlk, err := netlinkLink(l)
	if err != nil {
		return "", err
	}
	x := nlk.Attrs().Xdp
	if x == nil || !x.Attached {
		return "", fmt.Errorf("interface %s: no XDP program attached after replacing it", l.Name)
	}
	return attachModeName(x.AttachMode), nil
}

// attachModeName names an IFLA_XDP_ATTACHED value.
func attachModeName(m uint32) string {
	switch m {
	case nl.XDP_ATTACHED_DRV:
		return ModeNative
	case nl.XDP_ATTACHED_SKB:
		return ModeGeneric
	case nl.XDP_ATTACHED_HW:
		return ModeOffload
	}
	return ModeUnknown
}

// describeIfindex names an interface index for a message.
func describeIfindex(index int) string {
	if nlk, err := netlinkLink(Link{Index: index}); err == nil {
		return fmt.Sprintf("%s (index %d)", nlk.Attrs().Name, index)
	}
	return fmt.Sprintf("interface index %d (not in this namespace)", index)
}

// DetachXDP removes the XDP link pinned at linkPin, which detaches the
// program from its interface. Nothing pinned there is not an error.
func DetachXDP(linkPin string) error {
	lk, err := link.LoadPinnedLink(linkPin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pinned XDP link %s: %w", linkPin, err)
	}
	defer lk.Close()
	if err := lk.Unpin(); err != nil {
		return fmt.Errorf("remove XDP link pin %s: %w", linkPin, err)
	}
	// The pin was the last reference dsrlb kept; detach explicitly anyway
	// in case another process still holds a descriptor of the link.
	if err := lk.Detach(); err != nil && !errors.Is(err, link.ErrNotSupported) {
		return fmt.Errorf("detach XDP link %s: %w", linkPin, err)
	}
	return nil
}
