# Shared by the scripts of freeha's service-script library
# (freeha-service-scripts(7)); sourced by each of them, never run.
#
# FreeHA's conventions: arguments are the whole interface (an admin never
# edits a script), exit 0 means good, non-zero bad: 1 for a failure, 2 for
# wrong arguments. One line of output per action; monitors are silent
# while all is well, so that a monitor run every few seconds does not fill
# the journal.

# The tools live in the sbin directories, which a user's PATH may lack.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin
export PATH
set -f  # no script expands file names; unquoted words are split, never globbed
me=${0##*/}

say() { printf '%s: %s\n' "$me" "$*"; }
fail() { printf '%s: %s\n' "$me" "$*" >&2; exit 1; }

# usage_error MESSAGE: a bad argument: the message, the usage line, exit 2.
usage_error() {
    printf '%s: %s\nUsage: %s %s\n' "$me" "$1" "$me" "$usage" >&2
    exit 2
}

# check_help "$@": -h/--help print the usage line and exit 0.
check_help() {
    case "${1:-}" in
    -h|--help) printf 'Usage: %s %s\n' "$me" "$usage"; exit 0 ;;
    esac
}

# need TOOL PACKAGE: fail clearly when a tool this script runs is missing.
need() {
    command -v "$1" >/dev/null 2>&1 || fail "$1 not found: install the $2 package"
}

# is_number TEXT: decimal digits only.
is_number() {
    case "$1" in
    ''|*[!0-9]*) return 1 ;;
    esac
}

# is_dotted_quad TEXT: four numbers from 0 to 255 (ip(8) would also take
# shorthands such as 10.1).
is_dotted_quad() {
    case "$1" in
    ''|*[!0-9.]*|.*|*.|*..*) return 1 ;;
    esac
    old_ifs=$IFS
    IFS=.
    set -- $1
    IFS=$old_ifs
    [ $# -eq 4 ] && [ "$1" -le 255 ] && [ "$2" -le 255 ] && [ "$3" -le 255 ] && [ "$4" -le 255 ]
}

# address_family ADDRESS [ARGUMENT]: checks an IP address (ip(8) parses it)
# and sets family (4 or 6), host_prefix (32 or 128) and holders, this host's
# "ip -o addr" lines for the address; ARGUMENT names it in the error.
address_family() {
    need ip iproute2
    case "$1" in
    *:*) family=6 host_prefix=128 ;;
    *) family=4 host_prefix=32
       is_dotted_quad "$1" || usage_error "'${2:-$1}' is not an IPv4 or IPv6 address" ;;
    esac
    holders=$(ip -"$family" -o addr show to "$1/$host_prefix" 2>/dev/null) ||
        usage_error "'${2:-$1}' is not an IPv$family address"
}

# --- floating addresses (vip.*) ---
# Few processes: the scripts run on every takeover and monitor round, often
# on a busy machine, so the state is read with one ip(8) call per question
# and parsed by the shell.

# vip_args ADDRESS/PREFIX DEVICE: checks both; sets addr, prefix, family,
# host_prefix, holders (see address_family) and dev. A device that does not
# exist is not an argument error (it may come later, e.g. a bond).
vip_args() {
    [ $# -ge 2 ] || usage_error "expected ADDRESS/PREFIX and DEVICE"
    case "$1" in
    */*) addr=${1%/*} prefix=${1##*/} ;;
    *) usage_error "'$1' has no prefix length: give ADDRESS/PREFIX, e.g. $1/24" ;;
    esac
    address_family "$addr" "$1"
    if ! is_number "$prefix" || [ "$prefix" -gt "$host_prefix" ]; then
        usage_error "'$1': the prefix length must be a number from 0 to $host_prefix"
    fi
    dev=$2
    case "$dev" in
    ''|-*|*/*|*' '*) usage_error "'$dev' is not a network device name" ;;
    esac
}

# vip_refresh: reads again where this host has the address.
vip_refresh() {
    holders=$(ip -"$family" -o addr show to "$addr/$host_prefix" 2>/dev/null) || holders=
}

# vip_where: from holders, sets current (the address as configured on dev,
# ADDRESS/PREFIX, or empty), current_line (its whole line, with flags such as
# dadfailed) and elsewhere (the other devices that have it).
vip_where() {
    current= current_line= elsewhere=
    old_ifs=$IFS
    IFS='
'
    for line in $holders; do
        IFS=' '
        set -- $line
        if [ "$2" = "$dev" ]; then
            current=$4 current_line=$line
        else
            elsewhere="$elsewhere $2"
        fi
    done
    IFS=$old_ifs
}

# link_read: sets flags to dev's flags as ",BROADCAST,MULTICAST,UP,LOWER_UP,",
# or empty when there is no such device.
link_read() {
    flags=$(ip -o link show dev "$dev" 2>/dev/null) || flags=
    [ -z "$flags" ] || { flags=${flags#*<}; flags=",${flags%%>*},"; }
}

# link_up: the device is up and has a carrier.
link_up() {
    case "$flags" in *,UP,*) ;; *) return 1 ;; esac
    case "$flags" in *,LOWER_UP,*) ;; *) return 1 ;; esac
}

# resolves_neighbours: ARP or neighbour discovery runs on the device (not on
# loopback, tunnels and other NOARP links, where there is nobody to tell).
resolves_neighbours() {
    case "$flags" in
    *,NOARP,*|*,LOOPBACK,*) return 1 ;;
    esac
}

# --- filesystems (fs.*) ---

# fs_source DEVICE: DEVICE as the mount table names it: UUID=, LABEL=,
# PARTUUID= and PARTLABEL= resolved, symbolic links (/dev/vg/lv) followed.
# Anything else (tmpfs, server:/export) is returned as given.
fs_source() {
    case "$1" in
    UUID=*|LABEL=*|PARTUUID=*|PARTLABEL=*)
        found=$(findfs "$1" 2>/dev/null) || return 1
        readlink -f "$found" ;;
    /*) readlink -f "$1" 2>/dev/null || echo "$1" ;;
    *) echo "$1" ;;
    esac
}

# mounted_source MOUNTPOINT: what is mounted on MOUNTPOINT (the topmost
# mount), resolved as fs_source does, or nothing.
mounted_source() {
    source=$(findmnt -n -o SOURCE --mountpoint "$1" 2>/dev/null | tail -n 1)
    [ -z "$source" ] || fs_source "$source"
}

# fs_args ARGS...: the argument forms of fs.stop and fs.monitor, MOUNTPOINT
# alone (as in FreeHA 1.0) or the whole fs.start line; sets device (empty
# when not given) and mountpoint.
fs_args() {
    case $# in
    1) device= mountpoint=$1 ;;
    2|3|4) device=$1 mountpoint=$2 ;;
    *) usage_error "expected 1 to 4 arguments, got $#" ;;
    esac
    case "$mountpoint" in
    /*) ;;
    *) usage_error "'$mountpoint' is not an absolute path (the mount point)" ;;
    esac
    [ -n "$device" ] || return 0
    case "$device" in -*|'') usage_error "'$device' is not a device" ;; esac
}

# --- systemd units (unit.*) ---

# unit_args [--user] UNIT...: sets scope (empty or --user) and leaves the
# units in unit_names.
unit_args() {
    scope=
    if [ "${1:-}" = --user ]; then
        scope=--user
        shift
        # Hooks run with a clean environment: find the user manager the usual way.
        XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/run/user/$(id -u)}
        export XDG_RUNTIME_DIR
    fi
    [ $# -ge 1 ] || usage_error "expected at least one UNIT"
    for u in "$@"; do
        case "$u" in
        ''|-*|*' '*|*/*) usage_error "'$u' is not a unit name" ;;
        esac
    done
    unit_names=$*
    need systemctl systemd
}
