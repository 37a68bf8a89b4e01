# ---- Rollback (static text from dsrlb) ----
# Safe to run again: each step only undoes what is still there.

Enter-Step "Find the loopback adapter '$AdapterName'"
$loop = Get-DsrlbLoopback
if ($null -eq $loop) {
    Write-Host "    no adapter named '$AdapterName' (already removed?)"
}

Enter-Step 'Remove the VIPs from the loopback adapter'
# First, so that this server stops accepting balanced traffic before anything else changes.
foreach ($v in $Vips) {
    $mine = @()
    if ($null -ne $loop) {
        $mine = @(Get-NetIPAddress -IPAddress $v.Address -ErrorAction SilentlyContinue | Where-Object { $_.InterfaceIndex -eq $loop.ifIndex })
    }
    if ($mine.Count -eq 0) {
        Write-Host "    $($v.Address) is not on '$AdapterName'"
    } elseif (Confirm-Change "adapter '$AdapterName'" "remove $($v.Address)") {
        Remove-NetIPAddress -InterfaceIndex $loop.ifIndex -IPAddress $v.Address -Confirm:$false
        Write-Host "    removed $($v.Address)"
    }
}

Enter-Step "Remove the firewall rules of group '$FirewallGroup'"
$rules = @(Get-NetFirewallRule -Group $FirewallGroup -ErrorAction SilentlyContinue)
if ($rules.Count -eq 0) { Write-Host '    none left' }
foreach ($r in $rules) {
    if (Confirm-Change "firewall rule $($r.Name)" 'remove') {
        Remove-NetFirewallRule -Name $r.Name
        Write-Host "    removed $($r.Name)"
    }
}

Enter-Step "Restore weak host receive on the NIC that owns $ServerAddress"
# Only settings dsrlb changed (it saved the value it found in $StateKey) are put back.
$own = @(Get-NetIPAddress -IPAddress $ServerAddress -ErrorAction SilentlyContinue)
if ($own.Count -eq 0) {
    Write-Warning "no interface has ${ServerAddress}: the NIC's saved settings in $StateKey were not restored"
} else {
    Restore-IPInterfaceValues 'Nic' ([int]$own[0].InterfaceIndex)
}

if ($null -ne $loop) {
    Enter-Step "Restore the settings of '$AdapterName'"
    Restore-IPInterfaceValues 'Loopback' ([int]$loop.ifIndex)
    $savedDns = Get-Saved 'Loopback.RegisterThisConnectionsAddress'
    if ($null -ne $savedDns) {
        if (Confirm-Change "adapter '$AdapterName'" "restore DNS registration to $savedDns") {
            Set-DnsClient -InterfaceIndex $loop.ifIndex -RegisterThisConnectionsAddress ([bool]::Parse($savedDns))
        }
        Remove-Saved 'Loopback.RegisterThisConnectionsAddress'
    }

    $created = Get-Saved 'Adapter.CreatedGuid'
    $ours = ($null -ne $created) -and ($created -eq [string]$loop.InterfaceGuid)
    if ($RemoveAdapter -and $ours) {
        Enter-Step "Uninstall '$AdapterName' (dsrlb installed it)"
        if (Confirm-Change "adapter '$AdapterName'" 'uninstall the device') {
            Add-DsrlbSetupApi
            [Dsrlb.LoopbackInstaller]::Remove([string]$loop.PnPDeviceID)
            Remove-Saved 'Adapter.CreatedGuid'
            $loop = $null
        }
    } else {
        if ($RemoveAdapter) {
            Write-Warning "'$AdapterName' was not installed by dsrlb: it stays"
        }
        $originalName = Get-Saved 'Adapter.OriginalName'
        if ($null -ne $originalName) {
            Enter-Step "Give the adapter back its name '$originalName'"
            if (Confirm-Change "adapter '$AdapterName'" "rename to '$originalName'") {
                Rename-NetAdapter -Name $AdapterName -NewName $originalName
            }
            Remove-Saved 'Adapter.OriginalName'
        }
    }
}

if ((Test-Path -Path $StateKey) -and @((Get-Item -Path $StateKey).Property).Count -eq 0) {
    if (Confirm-Change $StateKey 'remove (nothing left to restore)') { Remove-Item -Path $StateKey }
}

Enter-Step 'Verify'
if ($WhatIfPreference) {
    Write-Host 'What if: nothing was changed, so there is nothing to verify.'
    exit 0
}
foreach ($v in $Vips) {
    $where = @(Get-NetIPAddress -IPAddress $v.Address -ErrorAction SilentlyContinue | ForEach-Object { $_.InterfaceAlias })
    Write-Check ($where.Count -eq 0) "VIP $($v.Address) is gone from this server" $(if ($where.Count -eq 0) { 'absent' } else { $where -join ', ' })
}
$left = @(Get-NetFirewallRule -Group $FirewallGroup -ErrorAction SilentlyContinue | ForEach-Object { $_.Name })
Write-Check ($left.Count -eq 0) "no firewall rule in group '$FirewallGroup'" $(if ($left.Count -eq 0) { 'none' } else { $left -join ', ' })
$pending = @()
if (Test-Path -Path $StateKey) {
    $pending = @((Get-Item -Path $StateKey).Property | Where-Object { $_ -ne 'Adapter.CreatedGuid' })
}
Write-Check ($pending.Count -eq 0) 'every saved setting was restored' $(if ($pending.Count -eq 0) { 'none pending' } else { $pending -join ', ' })
if ($own.Count -gt 0) {
    foreach ($ipif in @(Get-NetIPInterface -InterfaceIndex $own[0].InterfaceIndex)) {
        Write-Host "INFO  NIC '$($ipif.InterfaceAlias)' $($ipif.AddressFamily) weak host receive is $($ipif.WeakHostReceive), send is $($ipif.WeakHostSend)"
    }
}
if ($RemoveAdapter) {
    $still = Get-NetAdapter -Name $AdapterName -ErrorAction SilentlyContinue
    $created = Get-Saved 'Adapter.CreatedGuid'
    Write-Check (($null -eq $still) -or ($null -eq $created)) "adapter '$AdapterName' uninstalled (when dsrlb installed it)" $(if ($null -eq $still) { 'absent' } else { 'present' })
}
if ($Failures -gt 0) {
    Write-Host "dsrlb: $Failures check(s) FAILED" -ForegroundColor Red
    exit 1
}
Write-Host "dsrlb: rollback complete on $ServerName." -ForegroundColor Green
exit 0
