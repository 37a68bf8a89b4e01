# ---- Helpers shared by setup and remove (static text from dsrlb) ----
# Where the script remembers what it found before its first change, so that the
# rollback puts back exactly that (and not a guess).
$StateKey = 'HKLM:\SOFTWARE\dsrlb'
$LoopbackDescription = 'Microsoft KM-TEST Loopback Adapter*'
$Cmdlet = $PSCmdlet
$Step = 'start'
$Failures = 0

# Any error ends the script here, naming the step it happened in.
trap {
    Write-Host ''
    Write-Host "dsrlb: FAILED during step '$script:Step': $($_.Exception.Message)" -ForegroundColor Red
    Write-Host 'dsrlb: the steps after this one were not run. Fix the cause and run the script again (it is safe to re-run).' -ForegroundColor Red
    exit 1
}

function Enter-Step([string]$Text) {
    $script:Step = $Text
    Write-Host "==> $Text"
}

# Confirm-Change asks -WhatIf/-Confirm whether to make a change; under -WhatIf it only prints it.
function Confirm-Change([string]$Target, [string]$Action) {
    return $script:Cmdlet.ShouldProcess($Target, $Action)
}

function Write-Check([bool]$Ok, [string]$What, [string]$Found) {
    if ($Ok) {
        Write-Host "PASS  $What (found: $Found)" -ForegroundColor Green
    } else {
        Write-Host "FAIL  $What (found: $Found)" -ForegroundColor Red
        $script:Failures++
    }
}

function Get-Saved([string]$Key) {
    $item = Get-ItemProperty -Path $StateKey -Name $Key -ErrorAction SilentlyContinue
    if ($null -eq $item) { return $null }
    return [string]$item.$Key
}

function Set-Saved([string]$Key, [string]$Value) {
    if (Confirm-Change "$StateKey\$Key" "remember '$Value'") {
        if (-not (Test-Path -Path $StateKey)) { New-Item -Path $StateKey -Force | Out-Null }
        New-ItemProperty -Path $StateKey -Name $Key -Value $Value -PropertyType String -Force | Out-Null
    }
}

function Remove-Saved([string]$Key) {
    if ($null -eq (Get-Saved $Key)) { return }
    if (Confirm-Change "$StateKey\$Key" 'forget saved value') {
        Remove-ItemProperty -Path $StateKey -Name $Key
    }
}

# Save-Original keeps the value found before dsrlb's FIRST change: a re-run must
# not overwrite it with the value dsrlb itself set.
function Save-Original([string]$Key, [string]$Value) {
    if ($null -eq (Get-Saved $Key)) { Set-Saved $Key $Value }
}

# Get-DsrlbLoopback returns the adapter named $AdapterName (renamed by an earlier run), or $null.
function Get-DsrlbLoopback {
    $named = @(Get-NetAdapter -Name $AdapterName -ErrorAction SilentlyContinue)
    if ($named.Count -eq 0) { return $null }
    if ($named[0].InterfaceDescription -notlike $LoopbackDescription) {
        throw "an adapter named '$AdapterName' exists but it is '$($named[0].InterfaceDescription)', not a KM-TEST loopback adapter: rename it and run again"
    }
    return $named[0]
}

# Set-IPInterfaceValue sets one Set-NetIPInterface setting for one address family,
# after remembering the value it replaces.
function Set-IPInterfaceValue([string]$Role, [int]$Index, [string]$Family, [string]$Setting, [string]$Value) {
    $ipif = Get-NetIPInterface -InterfaceIndex $Index -AddressFamily $Family
    $current = [string]$ipif.$Setting
    Save-Original "$Role.$Family.$Setting" $current
    if ($current -eq $Value) {
        Write-Host "    $Role $Family $Setting is already $Value"
        return
    }
    if (Confirm-Change "$Role interface $Index ($Family)" "set $Setting from $current to $Value") {
        $params = @{ InterfaceIndex = $Index; AddressFamily = $Family; $Setting = $Value }
        Set-NetIPInterface @params
        Write-Host "    $Role $Family $Setting changed from $current to $Value"
    }
}

# Restore-IPInterfaceValues puts back every setting Set-IPInterfaceValue saved for
# $Role; a setting with no saved value was never changed by dsrlb and is left alone.
function Restore-IPInterfaceValues([string]$Role, [int]$Index) {
    foreach ($family in 'IPv4', 'IPv6') {
        foreach ($setting in 'Dhcp', 'InterfaceMetric', 'AutomaticMetric', 'WeakHostSend', 'WeakHostReceive') {
            $key = "$Role.$family.$setting"
            $saved = Get-Saved $key
            if ($null -eq $saved) { continue }
            if ($setting -eq 'InterfaceMetric' -and (Get-Saved "$Role.$family.AutomaticMetric") -eq 'Enabled') {
                # Re-enabling AutomaticMetric (next) chooses the metric again.
                Remove-Saved $key
                continue
            }
            $current = [string](Get-NetIPInterface -InterfaceIndex $Index -AddressFamily $family).$setting
            if ($current -ne $saved) {
                if (Confirm-Change "$Role interface $Index ($family)" "restore $setting from $current to $saved") {
                    $params = @{ InterfaceIndex = $Index; AddressFamily = $family; $setting = $saved }
                    Set-NetIPInterface @params
                    Write-Host "    $Role $family $setting restored to $saved"
                }
            } else {
                Write-Host "    $Role $family $setting is already $saved"
            }
            Remove-Saved $key
        }
    }
}

# Add-DsrlbSetupApi compiles the SetupAPI calls that devcon.exe makes, so the
# loopback adapter can be installed (and removed) without downloading anything.
function Add-DsrlbSetupApi {
    if ($null -eq ('Dsrlb.LoopbackInstaller' -as [type])) {
        Add-Type -TypeDefinition $SetupApiSource -Language CSharp
    }
}

$SetupApiSource = @'
using System;
using System.ComponentModel;
using System.Runtime.InteropServices;
using System.Text;

namespace Dsrlb
{
    public static class LoopbackInstaller
    {
        // GUID_DEVCLASS_NET: the "Net" setup class that netloop.inf installs into.
        static readonly Guid NetClass = new Guid("4d36e972-e325-11ce-bfc1-08002be10318");
        const int DICD_GENERATE_ID = 0x1;
        const int SPDRP_HARDWAREID = 0x1;
        const int DIF_REMOVE = 0x5;
        const int DIF_REGISTERDEVICE = 0x19;
        const int INSTALLFLAG_FORCE = 0x1;
        static readonly IntPtr InvalidHandle = new IntPtr(-1);

        [StructLayout(LayoutKind.Sequential)]
        struct SP_DEVINFO_DATA
        {
            public int cbSize;
            public Guid ClassGuid;
            public int DevInst;
            public IntPtr Reserved;
        }

        [DllImport("setupapi.dll", SetLastError = true)]
        static extern IntPtr SetupDiCreateDeviceInfoList(ref Guid classGuid, IntPtr hwndParent);

        [DllImport("setupapi.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        static extern bool SetupDiCreateDeviceInfo(IntPtr set, string deviceName, ref Guid classGuid,
            string description, IntPtr hwndParent, int flags, ref SP_DEVINFO_DATA data);

        [DllImport("setupapi.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        static extern bool SetupDiSetDeviceRegistryProperty(IntPtr set, ref SP_DEVINFO_DATA data,
            int property, byte[] buffer, int size);

        [DllImport("setupapi.dll", SetLastError = true)]
        static extern bool SetupDiCallClassInstaller(int installFunction, IntPtr set, ref SP_DEVINFO_DATA data);

        [DllImport("setupapi.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        static extern bool SetupDiOpenDeviceInfo(IntPtr set, string instanceId, IntPtr hwndParent,
            int flags, ref SP_DEVINFO_DATA data);

        [DllImport("setupapi.dll", SetLastError = true)]
        static extern bool SetupDiDestroyDeviceInfoList(IntPtr set);

        [DllImport("newdev.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        static extern bool UpdateDriverForPlugAndPlayDevices(IntPtr hwndParent, string hardwareId,
            string infPath, int flags, out bool rebootRequired);

        static Exception Fail(string call)
        {
            int code = Marshal.GetLastWin32Error();
            return new InvalidOperationException(call + " failed: " + new Win32Exception(code).Message +
                " (0x" + code.ToString("X8") + ")");
        }

        static IntPtr NewSet()
        {
            Guid cls = NetClass;
            IntPtr set = SetupDiCreateDeviceInfoList(ref cls, IntPtr.Zero);
            if (set == InvalidHandle) throw Fail("SetupDiCreateDeviceInfoList");
            return set;
        }

        // Install does what "devcon install netloop.inf *MSLOOP" does: create a
        // root-enumerated Net device, give it the hardware ID, register it, and
        // install the driver from the INF. It returns whether Windows wants a reboot.
        public static bool Install(string infPath, string hardwareId)
        {
            IntPtr set = NewSet();
            try
            {
                Guid cls = NetClass;
                SP_DEVINFO_DATA data = new SP_DEVINFO_DATA();
                data.cbSize = Marshal.SizeOf(typeof(SP_DEVINFO_DATA));
                if (!SetupDiCreateDeviceInfo(set, "Net", ref cls, null, IntPtr.Zero, DICD_GENERATE_ID, ref data))
                    throw Fail("SetupDiCreateDeviceInfo");
                // SPDRP_HARDWAREID is a REG_MULTI_SZ: the ID, then two terminating NULs.
                byte[] ids = Encoding.Unicode.GetBytes(hardwareId + "\0\0");
                if (!SetupDiSetDeviceRegistryProperty(set, ref data, SPDRP_HARDWAREID, ids, ids.Length))
                    throw Fail("SetupDiSetDeviceRegistryProperty(SPDRP_HARDWAREID)");
                if (!SetupDiCallClassInstaller(DIF_REGISTERDEVICE, set, ref data))
                    throw Fail("SetupDiCallClassInstaller(DIF_REGISTERDEVICE)");
                bool reboot;
                if (!UpdateDriverForPlugAndPlayDevices(IntPtr.Zero, hardwareId, infPath, INSTALLFLAG_FORCE, out reboot))
                {
                    Exception e = Fail("UpdateDriverForPlugAndPlayDevices(" + infPath + ")");
                    // Do not leave a registered device without a driver behind.
                    SetupDiCallClassInstaller(DIF_REMOVE, set, ref data);
                    throw e;
                }
                return reboot;
            }
            finally
            {
                SetupDiDestroyDeviceInfoList(set);
            }
        }

        // Remove uninstalls the device with this instance ID ("devcon remove").
        public static void Remove(string instanceId)
        {
            IntPtr set = NewSet();
            try
            {
                SP_DEVINFO_DATA data = new SP_DEVINFO_DATA();
                data.cbSize = Marshal.SizeOf(typeof(SP_DEVINFO_DATA));
                if (!SetupDiOpenDeviceInfo(set, instanceId, IntPtr.Zero, 0, ref data))
                    throw Fail("SetupDiOpenDeviceInfo(" + instanceId + ")");
                if (!SetupDiCallClassInstaller(DIF_REMOVE, set, ref data))
                    throw Fail("SetupDiCallClassInstaller(DIF_REMOVE)");
            }
            finally
            {
                SetupDiDestroyDeviceInfoList(set);
            }
        }
    }
}
'@
