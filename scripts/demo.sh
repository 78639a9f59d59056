#!/bin/sh
# A live 3-node freeha cluster on loopback (127.0.0.1-3): watch the election,
# kill -9 the active node, watch the takeover, restart it (no fail-back), then
# steer it over D-Bus with freehactl (each node serves org.freeha1 on a
# private bus of its own, as each machine would on its system bus).
# Run by hand, without systemd's delegated cgroup, each freehad is a child
# subreaper: the demo service that starthasrv detaches with setsid stays below
# it, and a fence kills every process below it (freeha-safety(7)); freehad
# logs which scope its fence uses.
set -eu
cd "$(dirname "$0")/.."
freehad="$PWD/build/src/daemon/freehad"
freehactl="$PWD/build/src/ctl/freehactl"
dir=$(mktemp -d /tmp/freeha-demo-run.XXXXXX)
cluster="demo$$"
pids=""
buses=""
cleanup() {
    for p in $pids $buses; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir" "/tmp/freeha-demo/$cluster"
}
trap cleanup EXIT INT TERM

start_node() {  # name index
    peers=""
    for j in 1 2 3; do [ "$j" = "$2" ] || peers="$peers 127.0.0.$j"; done
    cat > "$dir/$1.conf" <<CONF
[Cluster]
Name=$cluster
NodeName=$1
ExpectedNodes=3
[Heartbeat]
Channel=unicast 127.0.0.$2$peers
[Services]
HooksDirectory=$PWD/scripts/demo-hooks
[Status]
JSONFile=$dir/$1.json
CONF
    if [ ! -S "$dir/$1.bus" ]; then
        cat > "$dir/$1.bus.conf" <<BUS
<busconfig><type>system</type><listen>unix:path=$dir/$1.bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>
BUS
        dbus-daemon --config-file="$dir/$1.bus.conf" --nofork --nopidfile 2>/dev/null &
        buses="$buses $!"
        while [ ! -S "$dir/$1.bus" ]; do sleep 0.05; done
    fi
    DBUS_SYSTEM_BUS_ADDRESS="unix:path=$dir/$1.bus" "$freehad" --config "$dir/$1.conf" >"$dir/$1.log" 2>&1 &
    pids="$pids $!"
    eval "pid_$1=$!"
}

show() {  # seconds: print every node's view, FreeHA's "cute trick" done with the JSON status
    end=$(( $(date +%s) + $1 ))
    while [ "$(date +%s)" -lt "$end" ]; do
        python3 - "$dir" "${pid_alpha:-0}" "${pid_bravo:-0}" "${pid_charlie:-0}" <<'PY'
import json, os, sys, time
line = []
for n, pid in zip(("alpha", "bravo", "charlie"), sys.argv[2:]):
    try:
        if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z":
            raise ProcessLookupError
        s = json.load(open(f"{sys.argv[1]}/{n}.json"))
        line.append(f"{n}={s['state']:<8}")
    except Exception:
        line.append(f"{n}={'down':<8}")
try:
    active = json.load(open(f"{sys.argv[1]}/charlie.json"))["active_node"] or "none"
except Exception:
    active = "?"
print(time.strftime("%H:%M:%S"), "  ".join(line), f"  active (as charlie sees it): {active}")
PY
        sleep 0.5
    done
}

echo "== starting charlie, bravo, then alpha (3 nodes, quorum 2, default timings: 200ms heartbeats, 1s dead time)"
start_node charlie 3; start_node bravo 2; start_node alpha 1
show 4
echo "== the fence's reach, as alpha logged it:"
sed 's/^<[0-9]>//' "$dir/alpha.log" | grep -E 'a fence kills all of it|no complete fence' || true
echo "== kill -9 of alpha, the active node: bravo claims the services after the 1s dead time and"
echo "   starts them as soon as charlie backs the claim: charlie's promise to alpha, one dead time from"
echo "   alpha's last heartbeat, ran out at that moment, and a cut-off alpha would have stopped before it"
kill -9 "$pid_alpha"
show 6
echo "== alpha restarts: it does not take the services back"
start_node alpha 1
show 4
ctl() {  # node args...: freehactl against that node's bus
    node=$1; shift
    DBUS_SYSTEM_BUS_ADDRESS="unix:path=$dir/$node.bus" "$freehactl" "$@"
}
echo "== freehactl status on charlie:"
ctl charlie status
echo "== freehactl switchover charlie, run on bravo (the active node); it waits until charlie runs them:"
ctl bravo switchover charlie
show 2
echo "== busctl: the org.freeha1 object of charlie"
busctl --address="unix:path=$dir/charlie.bus" introspect org.freeha1 /org/freeha1 | grep -E 'property|method'
echo "== the demo service writes /tmp/freeha-demo/$cluster/NODE/alive on the active node:"
cat /tmp/freeha-demo/"$cluster"/*/alive 2>/dev/null || true
echo "== bravo's log:"
sed 's/^<[0-9]>//' "$dir/bravo.log" | grep -E 'state|taking over|timed out|joined' | head -20
