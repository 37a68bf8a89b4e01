// Package config reads, defaults and validates dsrlb's lb.toml.
//
// Every error it returns names the file, the line and the field at fault,
// for example `lb.toml:23: vip "internet": backend "EX9" is not defined`.
package config

import (
	"fmt"
	"net/netip"
	"time"
)

// Config is a parsed, defaulted and validated lb.toml.
type Config struct {
	// Path is the file the config was read from ("" when parsed from memory).
	Path     string
	LB       LB
	Health   Health
	Backends []Backend
	VIPs     []VIP
	// BGP is the [bgp] table; nil when the node announces nothing.
	BGP *BGP
}

// XDPMode selects how the XDP program is attached.
type XDPMode string

// XDP attach modes.
const (
	XDPAuto    XDPMode = "auto"
	XDPNative  XDPMode = "native"
	XDPGeneric XDPMode = "generic"
)

// LB is the [lb] table: the balancer node itself.
type LB struct {
	Interface          string
	XDPMode            XDPMode
	ManageVIPAddresses bool
	HashSeed           uint32
	RingSize           uint32
	FlowTableSize      uint32
	PinPath            string
	StateDir           string
	APISocket          string
	MetricsListen      string
	WebListen          string
	SorryServer        bool
}

// StartTLS says whether a probe negotiates TLS.
type StartTLS string

// STARTTLS policies for the deep probe.
const (
	StartTLSOff     StartTLS = "off"
	StartTLSTry     StartTLS = "try"
	StartTLSRequire StartTLS = "require"
)

// Health is a deep-SMTP probe profile: [health] or a VIP's [vip.health]
// merged over it.
type Health struct {
	Interval        time.Duration
	Timeout         time.Duration
	Rise            int
	Fall            int
	HELO            string
	MailFrom        string
	RcptTo          string
	StartTLS        StartTLS
	TarpitThreshold time.Duration
	VIPPath         bool
}

// OS is a real server's operating system, for backend-script.
type OS string

// Real-server operating systems.
const (
	OSWindows OS = "windows"
	OSLinux   OS = "linux"
)

// Backend is one [[backend]]: a real server.
type Backend struct {
	Name    string
	Address netip.Addr
	OS      OS
	// Line is the line of lb.toml where the backend is declared.
	Line int
}

// Persistence selects what the flow hash covers.
type Persistence string

// Persistence modes.
const (
	PersistNone     Persistence = "none"
	PersistSourceIP Persistence = "source-ip"
)

// VIPBackend is one entry of a VIP's backends list.
type VIPBackend struct {
	Name     string
	Weight   uint32
	Priority uint32
}

// VIP is one [[vip]]: a virtual service.
type VIP struct {
	Name        string
	Address     netip.Addr
	Ports       []uint16
	Persistence Persistence
	Backends    []VIPBackend
	// Health is the effective probe profile: [health] with [vip.health] merged over it.
	Health Health
	// BGPCommunities are added to the VIP's route when it is announced
	// over BGP (bgp_communities); empty: none.
	BGPCommunities []BGPCommunity
	// BGPMED is the MED of the VIP's route (bgp_med); nil: none is sent.
	BGPMED *uint32
	// Line is the line of lb.toml where the VIP is declared.
	Line int
}

// BGP is the [bgp] table: the node announces each VIP that has a usable
// backend to its peers through BIRD, which runs beside dsrlb (DESIGN
// section 11).
type BGP struct {
	// LocalAS is the node's autonomous system number.
	LocalAS uint32
	// RouterID is the node's BGP router id (an IPv4 address, unique per node).
	RouterID netip.Addr
	// HoldTime is the BGP hold time offered to the peers: how long a router
	// keeps sending to a node that stopped answering.
	HoldTime time.Duration
	// Peers are the routers ([[bgp.peer]]).
	Peers []BGPPeer
	// BirdSocket is the path of BIRD's control socket.
	BirdSocket string
	// BirdConfig is the file dsrlb writes and BIRD's own config includes.
	BirdConfig string
	// Line is the line of the [bgp] header.
	Line int
}

// BGPPeer is one [[bgp.peer]]: a router the node announces the VIPs to.
type BGPPeer struct {
	Address netip.Addr
	AS      uint32
	// Password is the TCP MD5 password of the session ("" for none).
	Password string
	// Line is the line of lb.toml where the peer is declared.
	Line int
}

// BGPCommunity is a standard BGP community "a:b" (RFC 1997, 16 bits each)
// or a large community "a:b:c" (RFC 8092, 32 bits each).
type BGPCommunity struct {
	Large bool
	// Global is a, Local1 is b, Local2 is c (0 for a standard community).
	Global, Local1, Local2 uint32
}

// String returns "a:b" or "a:b:c".
func (c BGPCommunity) String() string {
	if c.Large {
		return fmt.Sprintf("%d:%d:%d", c.Global, c.Local1, c.Local2)
	}
	return fmt.Sprintf("%d:%d", c.Global, c.Local1)
}

// Backend returns the backend named name, or false.
func (c *Config) Backend(name string) (Backend, bool) {
	for _, b := range c.Backends {
		if b.Name == name {
			return b, true
		}
	}
	return Backend{}, false
}

// VIP returns the VIP named name, or false.
func (c *Config) VIP(name string) (VIP, bool) {
	for _, v := range c.VIPs {
		if v.Name == name {
			return v, true
		}
	}
	return VIP{}, false
}
