package loopback

import (
	_ "embed" // the static parts of the scripts
	"fmt"
	"strings"

	"github.com/dsrlb/dsrlb/internal/config"
)

// The static parts of the PowerShell scripts; windowsScript puts the
// validated values in front of them.
var (
	//go:embed scripts/common.ps1
	psCommon string
	//go:embed scripts/setup.ps1
	psSetup string
	//go:embed scripts/remove.ps1
	psRemove string
)

// psQuote returns s as a PowerShell single-quoted string. Validate already
// rules out quotes; doubling them here is a second line of defence.
func psQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// windowsScript returns the PowerShell setup or rollback script for s.
func windowsScript(s Server, o Options) string {
	var b strings.Builder
	b.WriteString("<#\n.SYNOPSIS\n")
	what, generatedBy := titleLines(s, config.OSWindows, o)
	b.WriteString("    " + what + "\n.DESCRIPTION\n    " + generatedBy + "\n")
	b.WriteString("    Review it, then run it in an elevated PowerShell on this server. It is safe\n")
	b.WriteString("    to run again, stops at the first error, and -WhatIf shows what it would change.\n\n")
	writeComment(&b, "    ", dsrWhy)
	fmt.Fprintf(&b, "\n    VIPs served by %s:\n", s.Name)
	vipSummary(&b, s, "    ")
	if o.Remove {
		b.WriteString("\n    -RemoveAdapter also uninstalls the loopback adapter, if dsrlb installed it.\n")
	}
	b.WriteString("#>\n#Requires -Version 5.1\n#Requires -RunAsAdministrator\n")
	b.WriteString("[CmdletBinding(SupportsShouldProcess)]\n")
	if o.Remove {
		b.WriteString("param(\n    # Also uninstall the loopback adapter, if dsrlb installed it.\n    [switch]$RemoveAdapter\n)\n\n")
	} else {
		b.WriteString("param()\n\n")
	}
	b.WriteString("Set-StrictMode -Version 3.0\n")
	b.WriteString("# Stop at the first error: a half-configured real server black-holes mail.\n")
	b.WriteString("$ErrorActionPreference = 'Stop'\n\n")

	b.WriteString("# ---- Values from lb.toml (validated by dsrlb: names ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$, addresses parsed) ----\n")
	fmt.Fprintf(&b, "$ServerName = %s\n", psQuote(s.Name))
	fmt.Fprintf(&b, "$ServerAddress = %s\n", psQuote(s.Address.String()))
	fmt.Fprintf(&b, "$AdapterName = %s\n", psQuote(AdapterName))
	fmt.Fprintf(&b, "$FirewallGroup = %s\n", psQuote("dsrlb"))
	b.WriteString("$Vips = @(\n")
	for _, v := range s.VIPs {
		family := "IPv4"
		if v.Address.Is6() {
			family = "IPv6"
		}
		ports := make([]string, len(v.Ports))
		for i, p := range v.Ports {
			ports[i] = fmt.Sprint(p)
		}
		fmt.Fprintf(&b, "    [pscustomobject]@{ Name = %s; Address = %s; PrefixLength = %d; Family = %s; Ports = @(%s) }\n",
			psQuote(v.Name), psQuote(v.Address.String()), prefixLen(v.Address), psQuote(family), strings.Join(ports, ", "))
	}
	b.WriteString(")\n\n")
	b.WriteString(psCommon)
	b.WriteString("\n")
	if o.Remove {
		if o.Exchange {
			exchangeRemove(&b, s)
			b.WriteString("\n")
		}
		b.WriteString(psRemove)
	} else {
		b.WriteString(psSetup)
		if o.Exchange {
			b.WriteString("\n")
			exchangeSetup(&b, s)
		}
	}
	return b.String()
}
