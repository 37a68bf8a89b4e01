# ---- Helpers shared by setup and remove (static text from dsrlb) ----
STATE_DIR=/var/lib/dsrlb-realserver
SYSCTL_SAVED=$STATE_DIR/sysctl.saved
SYSCTL_CONF=/etc/sysctl.d/90-dsrlb-realserver.conf
NETWORKD_DIR=/etc/systemd/network
NETWORKD_FILE=$NETWORKD_DIR/05-dsrlb-lo.network
NETWORKD_DROPIN=90-dsrlb-realserver.conf
IFUPDOWN_FILE=/etc/network/interfaces.d/dsrlb-realserver
# The sysctls dsrlb sets, with their values. The kernel uses the larger of "all"
# and the interface's own value, so setting "all" covers every interface.
#  arp_ignore=1:   answer ARP only for addresses on the interface the request came in on
#                  (the VIPs are on lo, so no NIC answers ARP for them);
#  arp_announce=2: never use a VIP as the source of this server's own ARP requests;
#  rp_filter=2:    loose reverse-path filter, so replies to clients are not dropped
#                  on servers with more than one NIC.
SYSCTLS='net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.all.rp_filter=2'
FAILURES=0

say() { printf '%s\n' "$*"; }
step() { printf '==> %s\n' "$*"; }
die() {
    printf 'dsrlb: FAILED: %s\n' "$*" >&2
    printf 'dsrlb: the steps after this one were not run. Fix the cause and run the script again (it is safe to re-run).\n' >&2
    exit 1
}
# check WHAT WANT FOUND: one PASS or FAIL line.
check() {
    if [ "$2" = "$3" ]; then
        say "PASS  $1 (found: $3)"
    else
        say "FAIL  $1 (found: $3, want: $2)"
        FAILURES=$((FAILURES + 1))
    fi
}
sysctl_path() { printf '/proc/sys/%s' "$(printf '%s' "$1" | tr . /)"; }
get_sysctl() { cat "$(sysctl_path "$1")"; }
set_sysctl() { printf '%s\n' "$2" > "$(sysctl_path "$1")"; }
# write_file PATH: stdin to PATH, atomically.
write_file() {
    mkdir -p "${1%/*}"
    cat > "$1.dsrlb-tmp"
    mv -f "$1.dsrlb-tmp" "$1"
}
exists() { if [ -e "$1" ]; then echo present; else echo absent; fi; }
# has_vip ADDR/LEN: is exactly this address and prefix on lo?
has_vip() { ip -o addr show dev lo | awk '{ print $4 }' | grep -Fqx "$1"; }
# vip_elsewhere ADDR/LEN: the interfaces other than lo that have the address.
vip_elsewhere() {
    ip -o addr show | awk -v a="${1%/*}" '$2 != "lo" { split($4, p, "/"); if (p[1] == a) print $2 }' | tr '\n' ' ' | sed 's/ $//'
}
# lo_network_file: a .network file (other than dsrlb's) that already configures lo, if any.
lo_network_file() {
    for dir in /etc/systemd/network /run/systemd/network /usr/local/lib/systemd/network /usr/lib/systemd/network /lib/systemd/network; do
        for f in "$dir"/*.network; do
            [ -f "$f" ] || continue
            [ "$f" != "$NETWORKD_FILE" ] || continue
            if grep -Eq '^[[:space:]]*Name[[:space:]]*=[[:space:]]*lo[[:space:]]*$' "$f"; then
                printf '%s' "$f"
                return 0
            fi
        done
    done
}
# persist_mode: how this server configures its network at boot.
persist_mode() {
    if command -v systemctl > /dev/null 2>&1 && systemctl is-active --quiet systemd-networkd.service 2> /dev/null; then
        echo networkd
    elif [ -f /etc/network/interfaces ]; then
        echo ifupdown
    else
        echo none
    fi
}

[ "$(id -u)" = 0 ] || die "run this script as root"
command -v ip > /dev/null 2>&1 || die "the ip command (iproute2) is not installed"
