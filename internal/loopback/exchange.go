package loopback

import (
	"fmt"
	"net/netip"
	"strings"
)

// exchangeBinding returns an Exchange receive-connector binding, "IP:port"
// or "[IPv6]:port".
func exchangeBinding(a netip.Addr, port uint16) string {
	return netip.AddrPortFrom(a, port).String()
}

// exchangeBindings returns the quoted, comma-separated bindings of v.
func exchangeBindings(v ServedVIP) string {
	out := make([]string, len(v.Ports))
	for i, p := range v.Ports {
		out[i] = psQuote(exchangeBinding(v.Address, p))
	}
	return strings.Join(out, ",")
}

// connectorName is the receive connector dsrlb suggests for v.
func connectorName(v ServedVIP) string { return "dsrlb " + v.Name }

const exchangeWhy = `Why: with DSR, Exchange sees each client's real IP address and the VIP as the
local address, so the VIP a connection came in on can choose the connector.
Bind one receive connector per VIP:
 - an internet VIP gets an anonymous connector WITHOUT relay rights;
 - a relay VIP gets a connector scoped by -RemoteIPRanges; only it may relay.
"Default Frontend" listens on 0.0.0.0:25 (and [::]:25), which also covers every
VIP: rebind it to the server's own address, so a connection to a VIP can only
reach the connector made for that VIP. A relay connector that can be reached
through the internet VIP is an open relay (the exact warning of the field
report behind dsrlb). Also make sure the relay VIP is not reachable from the
internet at all (firewall, no public DNS record).`

// exchangeSetup writes the commented-out receive-connector commands for s.
func exchangeSetup(b *strings.Builder, s Server) {
	b.WriteString("# ===========================================================================\n")
	b.WriteString("# Exchange receive connectors (--exchange). COMMENTED OUT ON PURPOSE: review\n")
	b.WriteString("# them, replace the placeholders, then run the lines you want in the Exchange\n")
	fmt.Fprintf(b, "# Management Shell. Server: %s.\n#\n", s.Name)
	writeComment(b, "# ", exchangeWhy)
	b.WriteString("#\n# Rule used to classify the VIPs (REVIEW IT): a VIP whose name contains \"relay\"\n")
	b.WriteString("# or \"internal\" (any case) is a relay VIP; every other VIP is an internet VIP.\n")
	for _, v := range s.VIPs {
		kind := "internet: anonymous, no relay"
		if IsRelayVIP(v.Name) {
			kind = "relay: scoped by RemoteIPRanges, may relay"
		}
		fmt.Fprintf(b, "#   %-20s %-28s -> %s\n", v.Name, v.Address, kind)
	}
	b.WriteString("#\n# 1. Rebind \"Default Frontend\" from 0.0.0.0:25 to this server's own address.\n")
	b.WriteString("#    (Exchange 2010: the connector is called \"Default <server>\".)\n")
	fmt.Fprintf(b, "# Set-ReceiveConnector -Identity %s -Bindings %s\n",
		psQuote(s.Name+`\Default Frontend `+s.Name), psQuote(exchangeBinding(s.Address, 25)))
	b.WriteString("#    Then list every connector still listening on all addresses and review it\n")
	b.WriteString("#    the same way (for example Client Frontend on 587):\n")
	fmt.Fprintf(b, "# Get-ReceiveConnector -Server %s | Where-Object { $_.Bindings -match '0\\.0\\.0\\.0|\\[::\\]' } | Format-Table Name,Bindings,RemoteIPRanges,PermissionGroups -AutoSize\n",
		psQuote(s.Name))
	step := 2
	for _, v := range s.VIPs {
		id := psQuote(s.Name + `\` + connectorName(v))
		b.WriteString("#\n")
		if IsRelayVIP(v.Name) {
			fmt.Fprintf(b, "# %d. VIP %s (%s): relay connector, only for the clients you list.\n", step, v.Name, v.Address)
			b.WriteString("#    Replace <RELAY-CLIENT-RANGES> with your relay clients, e.g. '10.1.2.0/24','10.1.3.15'.\n")
			fmt.Fprintf(b, "# New-ReceiveConnector -Server %s -Name %s -TransportRole FrontendTransport -Custom -Bindings %s -RemoteIPRanges '<RELAY-CLIENT-RANGES>' -PermissionGroups AnonymousUsers\n",
				psQuote(s.Name), psQuote(connectorName(v)), exchangeBindings(v))
			fmt.Fprintf(b, "# Get-ReceiveConnector -Identity %s | Add-ADPermission -User 'NT AUTHORITY\\ANONYMOUS LOGON' -ExtendedRights 'ms-Exch-SMTP-Accept-Any-Recipient'\n", id)
		} else {
			fmt.Fprintf(b, "# %d. VIP %s (%s): internet connector, anonymous, NO relay rights.\n", step, v.Name, v.Address)
			fmt.Fprintf(b, "# New-ReceiveConnector -Server %s -Name %s -TransportRole FrontendTransport -Custom -Bindings %s -RemoteIPRanges '0.0.0.0-255.255.255.255','::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' -PermissionGroups AnonymousUsers\n",
				psQuote(s.Name), psQuote(connectorName(v)), exchangeBindings(v))
			b.WriteString("#    Check that it grants no relay right (this must print nothing):\n")
			fmt.Fprintf(b, "# Get-ADPermission -Identity %s | Where-Object { $_.ExtendedRights -like '*ms-Exch-SMTP-Accept-Any-Recipient*' }\n", id)
		}
		step++
	}
	b.WriteString("#\n# Finally, from outside, check that the internet VIP does not relay:\n")
	for _, v := range s.VIPs {
		if !IsRelayVIP(v.Name) {
			fmt.Fprintf(b, "#   dsrlb relay-test %s --from someone@example.org --to someone@example.net\n",
				exchangeBinding(v.Address, v.Ports[0]))
		}
	}
	b.WriteString("# ===========================================================================\n")
}

// exchangeRemove writes the commented-out commands that undo exchangeSetup.
func exchangeRemove(b *strings.Builder, s Server) {
	b.WriteString("# ===========================================================================\n")
	b.WriteString("# Exchange receive connectors (--exchange). COMMENTED OUT ON PURPOSE. If you\n")
	b.WriteString("# created the connectors the setup script suggested, run these in the Exchange\n")
	b.WriteString("# Management Shell BEFORE this script: once the VIPs are gone, their connectors\n")
	b.WriteString("# cannot receive anything, and Default Frontend must listen on all addresses again.\n")
	for _, v := range s.VIPs {
		fmt.Fprintf(b, "# Remove-ReceiveConnector -Identity %s -Confirm:$false\n", psQuote(s.Name+`\`+connectorName(v)))
	}
	fmt.Fprintf(b, "# Set-ReceiveConnector -Identity %s -Bindings '0.0.0.0:25','[::]:25'\n",
		psQuote(s.Name+`\Default Frontend `+s.Name))
	b.WriteString("# ===========================================================================\n")
}
