#!/bin/bash
# bench/slurm3.sh - bench row (i): three Slurm hosts (a head and two network namespaces) and a JobManager on them.
#
# Usage: slurm3.sh /path/to/sage
#
# Run by sage-bench (bench/slurm3.c), never by hand in normal use. Builds the cluster as
# tests/integration/test_cluster.sh part 2 does, on its own subnet, names, ports and directories (that test
# may run at the same time, on 10.213.77.0/24):
#   host 1: the head (`sage cluster start --head`) on bridge sgbbr<pid>, 10.213.78.1, offering i_src=1;
#   host 2: namespace sgb<pid>a, 10.213.78.11, a worker (`start --worker`, entered with nsenter + unshare
#           --uts) named sgbw1, offering i_map=1;
#   host 3: namespace sgb<pid>b, 10.213.78.12, worker sgbw2, offering i_sink=1;
#   a JobManager on Slurm (data plane tcp) on 10.213.78.1.
# Prints one line "READY jm=IP:PORT home=DIR ns1=PATH ns2=PATH ip1=IP ip2=IP ip3=IP" on stdout once every node is
# idle and the JobManager answers, then waits for its stdin to close (sage-bench closes it when done, or dies),
# then stops everything it started: the JobManager, slurmctld/slurmd/munged of its own state dir (by pid), the
# namespaces, the bridge, its temporary directory; also on a failure or a signal. Then prints "DOWN".
# When it cannot run it prints "SKIP <reason>" and exits 77; on a failure "FAIL <reason>" and exits 1.
# Progress and daemon logs go to stderr.
set -u

SAGE=${1:?usage: slurm3.sh /path/to/sage}
NET=10.213.78
IP1=$NET.1
IP2=$NET.11
IP3=$NET.12

say() { echo "$*" >&2; }
skip() {
    echo "SKIP $*"
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "not root (the Slurm daemons and network namespaces need root)"
for p in slurmctld slurmd munged srun sinfo scontrol jq ip nsenter unshare; do
    command -v "$p" >/dev/null 2>&1 || skip "$p not installed (scripts/deps.sh installs it)"
done
[ -x "$SAGE" ] || skip "$SAGE not built"
ip -4 addr show 2>/dev/null | grep -q "inet $NET\." && skip "$NET.0/24 is in use on this host"

T=$(mktemp -d /tmp/sage-bench-slurm3.XXXXXX) || exit 1
chmod 0755 "$T"
H=$T/cluster
JMH=$T/jm
NS1=sgb$$a
NS2=sgb$$b
BR=sgbbr$$
VH=sgb$$h
VP=sgb$$p
NET_UP=0
JP=

# A pid runs if it exists and is not a zombie.
running() {
    [ -r "/proc/$1/stat" ] || return 1
    state=$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)
    [ "$state" != Z ] && [ "$state" != X ]
}

# Pids of Slurm/munge daemons whose command line names a file under $T (only this run's cluster does).
daemons_in_t() {
    for f in /proc/[0-9]*/cmdline; do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        case $(cat "/proc/$pid/comm" 2>/dev/null) in
        slurmctld | slurmd | slurmstepd | munged) ;;
        *) continue ;;
        esac
        tr '\0' ' ' <"$f" 2>/dev/null | grep -q "$T/" && echo "$pid"
    done
}

cleanup() {
    rc=$?
    trap - EXIT INT TERM HUP PIPE
    if [ -n "$JP" ]; then
        pid=$(cat "$JMH/jobmanager.pid" 2>/dev/null)
        timeout 40 "$SAGE" jobmanager stop --host "$IP1" --port "$JP" --home "$JMH" >/dev/null 2>&1
        if [ -n "$pid" ] && running "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$JMH"; then
            say "slurm3: killing JobManager pid $pid"
            kill -9 "$pid" 2>/dev/null
        fi
    fi
    [ -d "$H/cluster" ] && timeout 60 "$SAGE" cluster stop --home "$H" >/dev/null 2>&1
    for pid in $(daemons_in_t); do
        running "$pid" || continue
        say "slurm3: killing leftover pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
        kill -9 "$pid" 2>/dev/null
    done
    if [ "$NET_UP" -eq 1 ]; then
        for ns in "$NS1" "$NS2"; do # anything still in a "host" (a task of a killed job) dies with it
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
            ip netns del "$ns" 2>/dev/null
        done
        ip link del "${VH}1" 2>/dev/null
        ip link del "${VH}2" 2>/dev/null
        ip link del "$BR" 2>/dev/null
    fi
    rm -rf "$T"
    [ "$rc" -eq 0 ] && echo "DOWN"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

fail() {
    echo "FAIL $*"
    for log in "$H"/cluster/*.log "$JMH/jobmanager.log"; do
        [ -f "$log" ] || continue
        say "--- last lines of $log"
        tail -n 15 "$log" >&2
    done
    exit 1
}

# Two free TCP ports N, N+1 (slurmctld, slurmd), below the ephemeral range; another range than test_cluster's
# formula, so the two rarely pick the same pair (a clash is retried anyway).
free_ports() {
    i=0
    while [ $i -lt 50 ]; do
        p=$((20001 + ($$ * 13 + i * 173) % 11998))
        [ -z "$(ss -Htan "( sport = :$p or sport = :$((p + 1)) )" 2>/dev/null)" ] && echo $p && return
        i=$((i + 1))
    done
    echo 27817
}
free_port() {
    i=0
    while [ $i -lt 50 ]; do
        p=$((50000 + ($$ * 17 + i * 139) % 9000))
        [ -z "$(ss -Htln "( sport = :$p )" 2>/dev/null)" ] && echo $p && return
        i=$((i + 1))
    done
    echo 58123
}

# Waits until COMMAND succeeds, polling every 0.1 s for at most TENTHS/10 s.
wait_for() { # TENTHS COMMAND...
    n=$1
    shift
    i=0
    until "$@"; do
        [ $i -lt "$n" ] || return 1
        sleep 0.1
        i=$((i + 1))
    done
}

NET_UP=1
(
    ip link add "$BR" type bridge &&
        ip addr add "$IP1/24" dev "$BR" &&
        ip link set "$BR" up &&
        for i in 1 2; do
            eval ns=\$NS$i
            ip netns add "$ns" &&
                ip link add "$VH$i" type veth peer name "$VP$i" &&
                ip link set "$VP$i" netns "$ns" &&
                ip link set "$VH$i" master "$BR" &&
                ip link set "$VH$i" up &&
                ip -n "$ns" addr add "$NET.1$i/24" dev "$VP$i" &&
                ip -n "$ns" link set "$VP$i" up &&
                ip -n "$ns" link set lo up || exit 1
        done
) || skip "cannot create network namespaces and a bridge here"
say "slurm3: namespaces $NS1 ($IP2) and $NS2 ($IP3) on bridge $BR ($IP1)"

tries=0
P=$(free_ports)
until "$SAGE" cluster start --head --home "$H" --port "$P" --address "$IP1" --cpus 2 --memory 2GB \
    --resources i_src=1,i_map=0,i_sink=0 >"$T/head.out" 2>&1; do
    tries=$((tries + 1))
    if grep -q "is in use on this host" "$T/head.out" && [ $tries -lt 5 ]; then
        P=$((20001 + (P - 20001 + 1994) % 11998))
        continue
    fi
    cat "$T/head.out" >&2
    fail "sage cluster start --head"
done
join=$(grep -o -- "--head-address=[^ ]*" "$T/head.out")
say "slurm3: head at $IP1:$P"

# A worker "on another host": its namespace, its own host name; it shares the head's file system (as on a shared
# home), so sage-bench, which the JobManager starts there, is at the same path.
start_worker() { # NS NAME ARGS...
    ns=$1
    name=$2
    shift 2
    nsenter --net="/run/netns/$ns" unshare --uts sh -c 'hostname "$1" && shift && exec "$@"' sh "$name" \
        "$SAGE" cluster start --worker "$join" --home "$H" --name "$name" "$@"
}
start_worker "$NS1" sgbw1 --cpus 2 --memory 1GB --resources i_map=1 >"$T/w1.out" 2>&1 ||
    { cat "$T/w1.out" >&2 && fail "start --worker in $NS1"; }
start_worker "$NS2" sgbw2 --cpus 2 --memory 1GB --resources i_sink=1 >"$T/w2.out" 2>&1 ||
    { cat "$T/w2.out" >&2 && fail "start --worker in $NS2"; }

three_idle() {
    "$SAGE" cluster status --json --home "$H" >"$T/status.json" 2>/dev/null &&
        jq -e '(.nodes | length == 3) and ([.nodes[] | select(.state != "idle")] | length == 0)' "$T/status.json" \
            >/dev/null
}
wait_for 300 three_idle || {
    cat "$T/status.json" >&2
    fail "the three nodes never became idle"
}
say "slurm3: 3 nodes idle: $(jq -r '[.nodes[] | "\(.name) \(.address) \(.gres)"] | join("; ")' "$T/status.json")"

JP=$(free_port)
tries=0
until "$SAGE" jobmanager start --host "$IP1" --port "$JP" --home "$JMH" \
    --config "{\"slurm\": {\"conf\": \"$H/cluster/slurm.conf\"}, \"data_plane\": \"tcp\"}" >"$T/jm.out" 2>&1; do
    tries=$((tries + 1))
    if grep -q "already in use" "$T/jm.out" && [ $tries -lt 5 ]; then
        JP=$((50000 + (JP - 50000 + 997) % 9000))
        continue
    fi
    cat "$T/jm.out" >&2
    JP_FAILED=$JP
    JP=
    [ -f "$JMH/jobmanager.pid" ] && JP=$JP_FAILED # stop it in cleanup if it half-started
    fail "sage jobmanager start on Slurm"
done
say "slurm3: JobManager on Slurm at $IP1:$JP"

echo "READY jm=$IP1:$JP home=$JMH ns1=/run/netns/$NS1 ns2=/run/netns/$NS2 ip1=$IP1 ip2=$IP2 ip3=$IP3"
# Held up until sage-bench closes our stdin (when it is done, or when it dies); at most 30 minutes.
read -r -t 1800 _ || true
exit 0
