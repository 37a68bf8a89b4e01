# ---- Setup (static text from dsrlb) ----
step "Check that this is $SERVER_NAME ($SERVER_ADDRESS)"
# Only the server named in lb.toml may get these VIPs: stop here on any other machine.
if ! ip -o addr show | awk -v a="$SERVER_ADDRESS" '{ split($4, p, "/"); if (p[1] == a) found = 1 } END { exit !found }'; then
    die "no interface has $SERVER_ADDRESS, the address lb.toml gives backend $SERVER_NAME: is this the right server?"
fi

step "Save the current ARP and rp_filter sysctls to $SYSCTL_SAVED"
# Only on the first run: a re-run must not save the values dsrlb itself set.
if [ -f "$SYSCTL_SAVED" ]; then
    say "    kept the values saved by an earlier run"
else
    for kv in $SYSCTLS; do
        printf '%s=%s\n' "${kv%%=*}" "$(get_sysctl "${kv%%=*}")"
    done | write_file "$SYSCTL_SAVED"
    say "    saved: $(tr '\n' ' ' < "$SYSCTL_SAVED")"
fi

step "Stop this server from answering ARP for the VIPs"
# Done BEFORE the VIPs are added: a moment with the VIP on lo and the default
# sysctls is a moment in which this server answers ARP for the VIP and the
# router may send the VIP's traffic here, bypassing the balancer.
for kv in $SYSCTLS; do
    set_sysctl "${kv%%=*}" "${kv#*=}"
    say "    ${kv%%=*} = ${kv#*=}"
done
{
    say "# Written by dsrlb backend-script for $SERVER_NAME (DSR real server)."
    say "# Remove with: dsrlb backend-script $SERVER_NAME --os linux --remove"
    for kv in $SYSCTLS; do
        say "${kv%%=*} = ${kv#*=}"
    done
} | write_file "$SYSCTL_CONF"
say "    persisted in $SYSCTL_CONF"

step "Add the VIPs to lo"
# /32 (IPv4) or /128 (IPv6): the VIP alone. lo never answers ARP or neighbour
# discovery on the wire, and with the sysctls above no NIC answers for it either.
for vip in $VIPS; do
    elsewhere=$(vip_elsewhere "$vip")
    [ -z "$elsewhere" ] || die "VIP ${vip%/*} is also on $elsewhere: remove it there first (a VIP on a real NIC answers ARP and takes the balancer's traffic)"
    if has_vip "$vip"; then
        say "    $vip is already on lo"
    else
        ip addr add "$vip" dev lo
        say "    added $vip to lo"
    fi
done

step "Keep the VIPs on lo after a reboot"
mode=$(persist_mode)
case $mode in
networkd)
    other=$(lo_network_file)
    if [ -n "$other" ]; then
        # networkd uses only the first .network file that matches lo: extend that one.
        target=$NETWORKD_DIR/${other##*/}.d/$NETWORKD_DROPIN
        header=""
    else
        target=$NETWORKD_FILE
        header="[Match]
Name=lo

"
    fi
    {
        say "# Written by dsrlb backend-script for $SERVER_NAME: the DSR VIPs on lo."
        printf '%s' "$header"
        say "[Network]"
        for vip in $VIPS; do
            say "Address=$vip"
        done
    } | write_file "$target"
    say "    systemd-networkd: wrote $target"
    ;;
ifupdown)
    target=$IFUPDOWN_FILE
    {
        say "# Written by dsrlb backend-script for $SERVER_NAME: the DSR VIPs on lo."
        for vip in $VIPS; do
            case $vip in
            *:*) say "iface lo inet6 static" ;;
            *) say "iface lo inet static" ;;
            esac
            say "    address $vip"
        done
    } | write_file "$target"
    say "    ifupdown: wrote $target"
    if ! grep -Eq '^[[:space:]]*source(-directory)?[[:space:]]+/etc/network/interfaces\.d' /etc/network/interfaces; then
        say "WARN  /etc/network/interfaces does not source /etc/network/interfaces.d: add 'source /etc/network/interfaces.d/*' to it"
    fi
    ;;
*)
    target=""
    say "WARN  neither systemd-networkd nor ifupdown is in use: add these addresses to lo in this server's network configuration, or they are gone after a reboot: $VIPS"
    ;;
esac

step "Verify"
for kv in $SYSCTLS; do
    check "${kv%%=*}" "${kv#*=}" "$(get_sysctl "${kv%%=*}")"
done
for vip in $VIPS; do
    if has_vip "$vip"; then found=present; else found=absent; fi
    check "VIP $vip on lo" present "$found"
    elsewhere=$(vip_elsewhere "$vip")
    check "VIP ${vip%/*} on no other interface" none "${elsewhere:-none}"
done
check "saved sysctls $SYSCTL_SAVED" present "$(exists "$SYSCTL_SAVED")"
check "sysctl file $SYSCTL_CONF" present "$(exists "$SYSCTL_CONF")"
if [ -n "$target" ]; then
    check "boot config $target" present "$(exists "$target")"
fi
if [ "$FAILURES" -gt 0 ]; then
    say "dsrlb: $FAILURES check(s) FAILED: this server would black-hole balanced mail. Fix them and run the script again."
    exit 1
fi
say "dsrlb: all checks passed: $SERVER_NAME is ready to take balanced traffic for its VIPs."
