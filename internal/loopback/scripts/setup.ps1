# ---- Setup (static text from dsrlb) ----
$Families = @($Vips | ForEach-Object { $_.Family } | Sort-Object -Unique)

Enter-Step "Find the NIC that owns this server's own address $ServerAddress"
# Only the server named in lb.toml may get these VIPs: stop here on any other machine.
$own = @(Get-NetIPAddress -IPAddress $ServerAddress -ErrorAction SilentlyContinue)
if ($own.Count -eq 0) {
    throw "no interface has the address $ServerAddress that lb.toml gives backend '$ServerName': is this the right server?"
}
$NicIndex = [int]$own[0].InterfaceIndex
Write-Host "    $ServerAddress is on '$($own[0].InterfaceAlias)' (interface $NicIndex)"

Enter-Step 'Enable weak host receive on that NIC'
# Balanced packets arrive on this NIC addressed to a VIP that lives on the loopback
# adapter. Windows (strong host model) drops a packet whose destination address is
# not on the interface it arrived on, unless that interface has weak host receive.
foreach ($family in $Families) {
    Set-IPInterfaceValue 'Nic' $NicIndex $family 'WeakHostReceive' 'Enabled'
}

Enter-Step 'Find or install the Microsoft KM-TEST Loopback Adapter'
# The VIPs go on a loopback adapter because it is not on any wire: it never answers
# ARP (or neighbour discovery) for them. If this server answered ARP for a VIP, the
# router would send the VIP's traffic here directly and bypass the balancer.
$loop = Get-DsrlbLoopback
if ($null -eq $loop) {
    $found = @(Get-NetAdapter -InterfaceDescription $LoopbackDescription -ErrorAction SilentlyContinue)
    if ($found.Count -gt 1) {
        throw "found $($found.Count) KM-TEST loopback adapters ($(($found | ForEach-Object { $_.Name }) -join ', ')): rename the one dsrlb should use to '$AdapterName' and run again"
    }
    if ($found.Count -eq 1) {
        $loop = $found[0]
        Write-Host "    using the existing loopback adapter '$($loop.Name)'"
        Save-Original 'Adapter.OriginalName' $loop.Name
    } else {
        $inf = Join-Path $env:windir 'inf\netloop.inf'
        if (-not (Test-Path -Path $inf)) { throw "$inf not found: this Windows has no loopback adapter driver" }
        if (Confirm-Change 'Microsoft KM-TEST Loopback Adapter' "install from $inf (hardware ID *MSLOOP)") {
            $devcon = Get-Command -Name 'devcon.exe' -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
            if ($null -ne $devcon) {
                Write-Host "    installing with $($devcon.Source)"
                & $devcon.Source install $inf '*MSLOOP' | Write-Host
                if ($LASTEXITCODE -ne 0) { throw "devcon.exe install $inf *MSLOOP failed with exit code $LASTEXITCODE" }
            } else {
                # Windows has no in-box command for this; make the calls devcon makes.
                Write-Host '    devcon.exe not found: installing through SetupAPI, as devcon does'
                Add-DsrlbSetupApi
                if ([Dsrlb.LoopbackInstaller]::Install($inf, '*MSLOOP')) {
                    Write-Warning 'Windows asks for a reboot to finish installing the loopback adapter'
                }
            }
            for ($i = 0; $i -lt 30 -and $null -eq $loop; $i++) {
                $loop = Get-NetAdapter -InterfaceDescription $LoopbackDescription -ErrorAction SilentlyContinue | Select-Object -First 1
                if ($null -eq $loop) { Start-Sleep -Seconds 1 }
            }
            if ($null -eq $loop) { throw 'the loopback adapter was installed but did not appear within 30 seconds: look in Device Manager' }
            # Mark it as dsrlb's own, so that the rollback may uninstall it (and only it).
            Set-Saved 'Adapter.CreatedGuid' ([string]$loop.InterfaceGuid)
            Write-Host "    installed '$($loop.Name)'"
        }
    }
}
if ($null -eq $loop) {
    Write-Host 'What if: the remaining steps configure the new loopback adapter; the preview stops here.'
    exit 0
}
$LoopIndex = [int]$loop.ifIndex

Enter-Step "Name the adapter '$AdapterName'"
# The name is how this script (and its rollback) finds the adapter again.
if ($loop.Name -ne $AdapterName) {
    if (Confirm-Change "adapter '$($loop.Name)'" "rename to '$AdapterName'") {
        Rename-NetAdapter -Name $loop.Name -NewName $AdapterName
    }
} else {
    Write-Host "    already named '$AdapterName'"
}

Enter-Step 'Turn off DHCP on the loopback adapter'
# The VIPs are static addresses; New-NetIPAddress refuses to add one to an
# interface that still has DHCP enabled.
foreach ($family in $Families) {
    Set-IPInterfaceValue 'Loopback' $LoopIndex $family 'Dhcp' 'Disabled'
}

Enter-Step 'Set the loopback interface metric to 254'
# The highest usable metric: the loopback never wins a route choice over the real NIC.
foreach ($family in $Families) {
    Save-Original "Loopback.$family.AutomaticMetric" ([string](Get-NetIPInterface -InterfaceIndex $LoopIndex -AddressFamily $family).AutomaticMetric)
    Set-IPInterfaceValue 'Loopback' $LoopIndex $family 'InterfaceMetric' '254'
}

Enter-Step 'Turn off DNS registration for the loopback adapter'
# Otherwise every real server registers the shared VIP under its own name in DNS,
# and clients that look up this server may be sent to the VIP (or another server).
$dns = Get-DnsClient -InterfaceIndex $LoopIndex
Save-Original 'Loopback.RegisterThisConnectionsAddress' ([string]$dns.RegisterThisConnectionsAddress)
if ($dns.RegisterThisConnectionsAddress) {
    if (Confirm-Change "adapter '$AdapterName'" 'turn off DNS registration') {
        Set-DnsClient -InterfaceIndex $LoopIndex -RegisterThisConnectionsAddress $false
    }
} else {
    Write-Host '    DNS registration is already off'
}

Enter-Step 'Enable weak host receive and send on the loopback adapter'
# Receive: accept packets for the VIP that arrive through the NIC. Send: let the
# reply, whose source is the VIP, leave through the NIC straight to the client
# (DSR: the reply does not go back through the balancer).
foreach ($family in $Families) {
    Set-IPInterfaceValue 'Loopback' $LoopIndex $family 'WeakHostReceive' 'Enabled'
    Set-IPInterfaceValue 'Loopback' $LoopIndex $family 'WeakHostSend' 'Enabled'
}

Enter-Step 'Add the VIPs to the loopback adapter'
# /32 (IPv4) or /128 (IPv6): the VIP alone, no subnet route. SkipAsSource: Windows
# never picks a VIP as the source of connections this server opens (outbound mail
# must leave from the server's own address, not from the shared VIP).
foreach ($v in $Vips) {
    $have = @(Get-NetIPAddress -IPAddress $v.Address -ErrorAction SilentlyContinue)
    $elsewhere = @($have | Where-Object { $_.InterfaceIndex -ne $LoopIndex })
    if ($elsewhere.Count -gt 0) {
        throw "VIP $($v.Address) is also on '$($elsewhere[0].InterfaceAlias)': remove it there first (a VIP on a real NIC answers ARP and takes the balancer's traffic)"
    }
    $mine = @($have | Where-Object { $_.InterfaceIndex -eq $LoopIndex })
    if ($mine.Count -eq 0) {
        if (Confirm-Change "adapter '$AdapterName'" "add $($v.Address)/$($v.PrefixLength) with SkipAsSource") {
            New-NetIPAddress -InterfaceIndex $LoopIndex -AddressFamily $v.Family -IPAddress $v.Address -PrefixLength $v.PrefixLength -SkipAsSource $true | Out-Null
            Write-Host "    added $($v.Address)/$($v.PrefixLength)"
        }
    } elseif ($mine[0].PrefixLength -ne $v.PrefixLength -or -not $mine[0].SkipAsSource) {
        if (Confirm-Change "adapter '$AdapterName'" "set $($v.Address) to /$($v.PrefixLength) with SkipAsSource") {
            Set-NetIPAddress -InterfaceIndex $LoopIndex -IPAddress $v.Address -PrefixLength $v.PrefixLength -SkipAsSource $true
            Write-Host "    corrected $($v.Address)/$($v.PrefixLength)"
        }
    } else {
        Write-Host "    $($v.Address)/$($v.PrefixLength) is already there"
    }
}

Enter-Step 'Allow the VIP ports through Windows Firewall'
# One inbound rule per VIP, for its own address and ports only, in the group
# "$FirewallGroup" (so a re-run updates it and the rollback finds it).
$wanted = @()
foreach ($v in $Vips) {
    $rule = "dsrlb-vip-$($v.Name)"
    $wanted += $rule
    $ports = @($v.Ports | ForEach-Object { [string]$_ })
    $what = "allow TCP $($ports -join ',') to $($v.Address)"
    if ($null -eq (Get-NetFirewallRule -Name $rule -ErrorAction SilentlyContinue)) {
        if (Confirm-Change "firewall rule $rule" $what) {
            New-NetFirewallRule -Name $rule -DisplayName "dsrlb VIP $($v.Name)" -Group $FirewallGroup -Description "SMTP to VIP $($v.Name) balanced by dsrlb (DSR)" -Direction Inbound -Action Allow -Protocol TCP -LocalAddress $v.Address -LocalPort $ports -Profile Any | Out-Null
            Write-Host "    created $rule ($what)"
        }
    } elseif (Confirm-Change "firewall rule $rule" "update to $what") {
        Set-NetFirewallRule -Name $rule -Enabled True -Direction Inbound -Action Allow -Protocol TCP -LocalAddress $v.Address -LocalPort $ports -Profile Any
        Write-Host "    $rule is in place ($what)"
    }
}
foreach ($stale in @(Get-NetFirewallRule -Group $FirewallGroup -ErrorAction SilentlyContinue | Where-Object { $wanted -notcontains $_.Name })) {
    if (Confirm-Change "firewall rule $($stale.Name)" 'remove (its VIP is no longer served by this server)') {
        Remove-NetFirewallRule -Name $stale.Name
    }
}

Enter-Step 'Verify'
if ($WhatIfPreference) {
    Write-Host 'What if: nothing was changed, so there is nothing to verify.'
    exit 0
}
$loop = Get-NetAdapter -Name $AdapterName -ErrorAction SilentlyContinue
if ($null -eq $loop) {
    Write-Check $false "loopback adapter '$AdapterName' exists" 'no such adapter'
    exit 1
}
Write-Check ($loop.InterfaceDescription -like $LoopbackDescription) "adapter '$AdapterName' is a KM-TEST loopback adapter" $loop.InterfaceDescription
Write-Check ($loop.Status -eq 'Up') "adapter '$AdapterName' is up" $loop.Status
$dns = Get-DnsClient -InterfaceIndex $LoopIndex
Write-Check (-not $dns.RegisterThisConnectionsAddress) 'loopback DNS registration is off' $dns.RegisterThisConnectionsAddress
foreach ($family in $Families) {
    $ipif = Get-NetIPInterface -InterfaceIndex $LoopIndex -AddressFamily $family
    Write-Check ($ipif.WeakHostReceive -eq 'Enabled') "loopback $family weak host receive" $ipif.WeakHostReceive
    Write-Check ($ipif.WeakHostSend -eq 'Enabled') "loopback $family weak host send" $ipif.WeakHostSend
    Write-Check ($ipif.InterfaceMetric -eq 254) "loopback $family interface metric 254" $ipif.InterfaceMetric
    Write-Check ($ipif.Dhcp -eq 'Disabled') "loopback $family DHCP off" $ipif.Dhcp
    $nic = Get-NetIPInterface -InterfaceIndex $NicIndex -AddressFamily $family
    Write-Check ($nic.WeakHostReceive -eq 'Enabled') "NIC '$($nic.InterfaceAlias)' $family weak host receive" $nic.WeakHostReceive
}
foreach ($v in $Vips) {
    $have = @(Get-NetIPAddress -IPAddress $v.Address -ErrorAction SilentlyContinue)
    $mine = @($have | Where-Object { $_.InterfaceIndex -eq $LoopIndex })
    $others = @($have | Where-Object { $_.InterfaceIndex -ne $LoopIndex } | ForEach-Object { $_.InterfaceAlias })
    if ($mine.Count -eq 0) {
        Write-Check $false "VIP $($v.Address) on '$AdapterName'" 'absent'
    } else {
        $a = $mine[0]
        Write-Check ($a.PrefixLength -eq $v.PrefixLength) "VIP $($v.Address) is /$($v.PrefixLength)" "/$($a.PrefixLength)"
        Write-Check ([bool]$a.SkipAsSource) "VIP $($v.Address) SkipAsSource" $a.SkipAsSource
        Write-Check ($a.AddressState -eq 'Preferred') "VIP $($v.Address) is usable" $a.AddressState
    }
    Write-Check ($others.Count -eq 0) "VIP $($v.Address) is on no other interface" $(if ($others.Count -eq 0) { 'none' } else { $others -join ', ' })
    $rule = Get-NetFirewallRule -Name "dsrlb-vip-$($v.Name)" -ErrorAction SilentlyContinue
    if ($null -eq $rule) {
        Write-Check $false "firewall rule dsrlb-vip-$($v.Name)" 'absent'
    } else {
        $ports = @($v.Ports | ForEach-Object { [string]$_ }) -join ','
        $af = $rule | Get-NetFirewallAddressFilter
        $pf = $rule | Get-NetFirewallPortFilter
        $found = "$($rule.Enabled) $($rule.Direction) $($rule.Action) $($pf.Protocol) $(@($af.LocalAddress) -join ',') port $(@($pf.LocalPort) -join ',')"
        $ok = ([string]$rule.Enabled -eq 'True') -and ([string]$rule.Direction -eq 'Inbound') -and ([string]$rule.Action -eq 'Allow') -and ($pf.Protocol -eq 'TCP') -and ((@($af.LocalAddress) -join ',') -eq $v.Address) -and ((@($pf.LocalPort) -join ',') -eq $ports)
        Write-Check $ok "firewall rule dsrlb-vip-$($v.Name) allows TCP $ports to $($v.Address)" $found
    }
}
if ($Failures -gt 0) {
    Write-Host "dsrlb: $Failures check(s) FAILED: this server would black-hole balanced mail. Fix them and run the script again." -ForegroundColor Red
    exit 1
}
Write-Host "dsrlb: all checks passed: $ServerName is ready to take balanced traffic for its VIPs." -ForegroundColor Green
exit 0
