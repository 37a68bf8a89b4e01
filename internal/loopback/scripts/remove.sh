# ---- Rollback (static text from dsrlb) ----
# Safe to run again: each step only undoes what is still there.
step "Remove the VIPs from lo"
# First, so that this server stops accepting balanced traffic before anything else changes.
for vip in $VIPS; do
    if has_vip "$vip"; then
        ip addr del "$vip" dev lo
        say "    removed $vip"
    else
        say "    $vip is not on lo"
    fi
done

step "Restore the ARP and rp_filter sysctls"
restored=""
if [ -f "$SYSCTL_SAVED" ] || [ -f "$SYSCTL_CONF" ]; then
    for kv in $SYSCTLS; do
        key=${kv%%=*}
        value=""
        if [ -f "$SYSCTL_SAVED" ]; then
            value=$(awk -F= -v k="$key" '$1 == k && $2 ~ /^[0-9]+$/ { print $2; exit }' "$SYSCTL_SAVED")
        fi
        if [ -z "$value" ]; then
            value=0
            say "    $key: no saved value, using the kernel default 0"
        fi
        set_sysctl "$key" "$value"
        say "    $key = $value"
        restored="$restored $key=$value"
    done
else
    say "    not applied by dsrlb (no $SYSCTL_CONF, no $SYSCTL_SAVED): left as they are"
fi

step "Remove the files dsrlb wrote"
for f in "$SYSCTL_CONF" "$NETWORKD_FILE" "$NETWORKD_DIR"/*.network.d/"$NETWORKD_DROPIN" "$IFUPDOWN_FILE" "$SYSCTL_SAVED"; do
    if [ -f "$f" ]; then
        rm -f "$f"
        say "    removed $f"
        case $f in
        */*.network.d/*) rmdir "${f%/*}" 2> /dev/null || true ;;
        esac
    fi
done
rmdir "$STATE_DIR" 2> /dev/null || true

step "Verify"
for vip in $VIPS; do
    if has_vip "$vip"; then found=present; else found=absent; fi
    check "VIP $vip on lo" absent "$found"
done
for kv in $restored; do
    check "${kv%%=*} restored" "${kv#*=}" "$(get_sysctl "${kv%%=*}")"
done
for f in "$SYSCTL_CONF" "$NETWORKD_FILE" "$IFUPDOWN_FILE" "$SYSCTL_SAVED" "$STATE_DIR"; do
    check "$f" absent "$(exists "$f")"
done
for f in "$NETWORKD_DIR"/*.network.d/"$NETWORKD_DROPIN"; do
    if [ -e "$f" ]; then check "$f" absent present; fi
done
if [ "$FAILURES" -gt 0 ]; then
    say "dsrlb: $FAILURES check(s) FAILED"
    exit 1
fi
say "dsrlb: rollback complete on $SERVER_NAME."
