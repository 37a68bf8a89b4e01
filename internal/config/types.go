// Package config reads, defaults and validates dsrlb's lb.toml.
//
// Every error it returns names the file, the line and the field at fault,
// for example `lb.toml:23: vip "internet": backend "EX9" is not defined`.
package config

import (
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
	// Line is the line of lb.toml where the VIP is declared.
	Line int
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
