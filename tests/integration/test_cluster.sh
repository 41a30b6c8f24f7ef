#!/bin/sh
# tests/integration/test_cluster.sh - `sage cluster` against real Slurm daemons (ctest label "cluster").
#
# Usage: test_cluster.sh /path/to/sage
#
# Part 1 (single host): start --head with simulated resources, status --json, srun jobs (one asking
# for a GPU), a second start refused, stop, no daemon left.
# Part 2 (multi-host): two network namespaces on a private bridge (10.213.77.0/24, used only here),
# a worker in each (start --worker, entered with nsenter + unshare --uts; the second one also with
# its own file system view, as on a separate host), status shows 3 nodes with their resources,
# srun -w <worker> runs there, the second worker is stopped on its own "host" and leaves the
# cluster, the head's stop stops the rest, namespaces deleted (also on failure).
#
# Needs root, Slurm 22.05 (slurmctld, slurmd, srun, sinfo, scontrol), munged and jq; part 2 also
# ip (iproute2), nsenter and unshare. When it cannot run it prints "skipped: <reason>" and exits 77
# (ctest's SKIP_RETURN_CODE), so a skip never counts as a pass.
set -u

SAGE=${1:?usage: test_cluster.sh /path/to/sage}
case $SAGE in /*) ;; *) SAGE=$(pwd)/$SAGE ;; esac

skip() {
    echo "skipped: $*"
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "not root (the Slurm daemons run as root)"
for p in slurmctld slurmd munged srun sinfo scontrol squeue jq; do
    command -v "$p" >/dev/null 2>&1 || skip "$p not installed (scripts/deps.sh installs it)"
done

T=$(mktemp -d /tmp/sage-cluster-test.XXXXXX) || exit 1
chmod 0755 "$T"
H1=$T/single
H2=$T/multi
NS1=sgt$$a
NS2=sgt$$b
BR=sgtbr$$
VH=sgt$$h
VP=sgt$$p
NET_UP=0

# Pids of Slurm/munge daemons whose command line names a file under $1 (only this test's clusters do).
daemons_in() {
    for f in /proc/[0-9]*/cmdline; do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        case $(cat "/proc/$pid/comm" 2>/dev/null) in
        slurmctld | slurmd | slurmstepd | munged) ;;
        *) continue ;;
        esac
        tr '\0' ' ' <"$f" 2>/dev/null | grep -q "$1/" && echo "$pid"
    done
}

# Kills (by pid) any daemon still running from our state dirs.
kill_leftovers() {
    for pid in $(daemons_in "$T"); do
        running "$pid" || continue
        echo "cleanup: killing leftover pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
        kill -9 "$pid" 2>/dev/null
    done
}

cleanup() {
    rc=$?
    trap - EXIT INT TERM HUP
    unset SLURM_CONF
    for h in "$H2" "$H1"; do
        [ -d "$h/cluster" ] && "$SAGE" cluster stop --home "$h" >/dev/null 2>&1
    done
    kill_leftovers
    if [ "$NET_UP" -eq 1 ]; then
        ip netns del "$NS1" 2>/dev/null
        ip netns del "$NS2" 2>/dev/null
        ip link del "${VH}1" 2>/dev/null
        ip link del "${VH}2" 2>/dev/null
        ip link del "$BR" 2>/dev/null
    fi
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
    echo "FAIL: $*"
    for log in "$T"/*/cluster/*.log; do
        [ -f "$log" ] || continue
        echo "--- last lines of $log"
        tail -n 15 "$log"
    done
    exit 1
}
ok() { echo "ok: $*"; }

# A pid runs if it exists and is not a zombie.
running() {
    [ -r "/proc/$1/stat" ] || return 1
    state=$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)
    [ "$state" != Z ] && [ "$state" != X ]
}

# Two free TCP ports N, N+1 (slurmctld, slurmd).
free_ports() {
    i=0
    while [ $i -lt 50 ]; do
        p=$((20000 + ($$ * 7 + i * 131) % 20000))
        if ! command -v ss >/dev/null 2>&1 ||
            [ -z "$(ss -Htln "( sport = :$p or sport = :$((p + 1)) )" 2>/dev/null)" ]; then
            echo $p
            return
        fi
        i=$((i + 1))
    done
    echo 26817
}

# Checks that a stopped cluster left nothing: the pids it had are gone and no process names its dir.
check_stopped() {
    dir=$1
    pids=$2
    for pid in $pids; do
        running "$pid" && fail "pid $pid of $dir still runs after stop: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
    done
    for pid in $(daemons_in "$dir"); do
        running "$pid" && fail "a daemon still runs from $dir: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
    done
    ls "$dir"/*.pid >/dev/null 2>&1 && fail "pid files left in $dir: $(ls "$dir"/*.pid)"
    return 0
}

jqcheck() { # jqcheck FILE EXPR WHAT
    jq -e "$2" "$1" >/dev/null || {
        cat "$1"
        fail "$3"
    }
}

# ------------------------------------------------------------------------------------------------
echo "== part 1: single host"
P1=$(free_ports)
"$SAGE" cluster start --head --home "$H1" --port "$P1" --cpus 4 --gpus 2 --resources ssd=2 >"$T/start1.out" 2>&1 || {
    cat "$T/start1.out"
    fail "sage cluster start --head"
}
cat "$T/start1.out"
grep -q -- "sage cluster start --worker --head-address=" "$T/start1.out" || fail "start --head printed no join command"
ok "head started on port $P1"

"$SAGE" cluster start --head --home "$H1" --port "$P1" >"$T/again.out" 2>&1
rc=$?
if [ $rc -ne 1 ] || ! grep -q "already running" "$T/again.out"; then
    cat "$T/again.out"
    fail "a second start on the same state dir should fail with 'already running' (exit $rc)"
fi
ok "second start refused: $(cat "$T/again.out")"

"$SAGE" cluster status --json --home "$H1" >"$T/status1.json" || fail "status --json"
jqcheck "$T/status1.json" '.nodes | length == 1' "status should show one node"
jqcheck "$T/status1.json" '.nodes[0] | .state == "idle" and .cpus.total == 4 and .gpus.total == 2
    and .resources.ssd.total == 2 and (.gres | test("gpu:2")) and (.gres | test("ssd:2"))' \
    "node should be idle with 4 cpus, gpu:2, ssd:2"
ok "status --json: one node, idle, 4 cpus, gpu:2, ssd:2"
"$SAGE" cluster status --home "$H1" || fail "status (table)"

export SLURM_CONF="$H1/cluster/slurm.conf"
out=$(timeout 60 srun -N1 hostname 2>"$T/srun.err") || {
    cat "$T/srun.err"
    fail "srun hostname"
}
[ "$out" = "$(hostname)" ] || fail "srun hostname printed '$out', expected '$(hostname)'"
ok "srun hostname -> $out"
out=$(timeout 60 srun --gpus=1 sh -c 'echo "gpus_on_node=${SLURM_GPUS_ON_NODE:-} job_gpus=${SLURM_JOB_GPUS:-}"' 2>"$T/srun.err") || {
    cat "$T/srun.err"
    fail "srun --gpus=1"
}
echo "$out" | grep -q "gpus_on_node=1" || fail "srun --gpus=1 printed '$out'"
ok "srun --gpus=1 -> $out"

# While a job holds 2 CPUs, a GPU and an ssd, status shows them allocated.
timeout 60 srun --gpus=1 -c 2 --gres=ssd:1 sleep 5 >/dev/null 2>"$T/srun.err" &
job=$!
seen=0
i=0
while [ $i -lt 100 ]; do
    "$SAGE" cluster status --json --home "$H1" >"$T/status1b.json" 2>/dev/null &&
        jq -e '.nodes[0] | .cpus.allocated == 2 and .gpus.allocated == 1 and .resources.ssd.allocated == 1' \
            "$T/status1b.json" >/dev/null && {
        seen=1
        break
    }
    sleep 0.1
    i=$((i + 1))
done
wait $job || {
    cat "$T/srun.err"
    fail "srun --gpus=1 -c 2 --gres=ssd:1 sleep 5"
}
[ $seen -eq 1 ] || {
    cat "$T/status1b.json"
    fail "status never showed 2 cpus, 1 gpu, 1 ssd allocated while the job ran"
}
ok "status showed the running job's allocation: 2 cpus, 1 gpu, 1 ssd"
unset SLURM_CONF

pids1=$(cat "$H1"/cluster/*.pid)
"$SAGE" cluster stop --home "$H1" || fail "sage cluster stop"
check_stopped "$H1/cluster" "$pids1"
ok "stopped; no slurmctld/slurmd/munged left (pids $(printf "%s " $pids1))"
echo "== part 1 passed"

# ------------------------------------------------------------------------------------------------
echo "== part 2: multi-host (two network namespaces)"
for p in ip nsenter unshare; do
    command -v "$p" >/dev/null 2>&1 || skip "part 2 (multi-host): $p not installed (part 1 passed)"
done
ip -4 addr show 2>/dev/null | grep -q "10\.213\.77\." && skip "part 2 (multi-host): 10.213.77.0/24 is in use here (part 1 passed)"
NET_UP=1
(
    ip link add "$BR" type bridge &&
        ip addr add 10.213.77.1/24 dev "$BR" &&
        ip link set "$BR" up &&
        for i in 1 2; do
            eval ns=\$NS$i
            ip netns add "$ns" &&
                ip link add "$VH$i" type veth peer name "$VP$i" &&
                ip link set "$VP$i" netns "$ns" &&
                ip link set "$VH$i" master "$BR" &&
                ip link set "$VH$i" up &&
                ip -n "$ns" addr add "10.213.77.1$i/24" dev "$VP$i" &&
                ip -n "$ns" link set "$VP$i" up &&
                ip -n "$ns" link set lo up || exit 1
        done
) || skip "part 2 (multi-host): cannot create network namespaces here (part 1 passed)"
ok "namespaces $NS1 (10.213.77.11) and $NS2 (10.213.77.12) on bridge $BR (10.213.77.1)"

P2=$(free_ports)
"$SAGE" cluster start --head --home "$H2" --port "$P2" --address 10.213.77.1 --cpus 2 --memory 2GB \
    --resources ssd=0 >"$T/start2.out" 2>&1 || {
    cat "$T/start2.out"
    fail "start --head --address 10.213.77.1"
}
join=$(grep -o -- "--head-address=[^ ]*" "$T/start2.out")
[ "$join" = "--head-address=10.213.77.1:$P2" ] || fail "join command names '$join'"
ok "head started at 10.213.77.1:$P2"

# The worker command run "on another host": in a namespace, with its own host name (unshare --uts),
# as DESIGN.md measured. sgw1 shares the head's file system (the state dir is the same directory, as
# on a shared home): it uses the head's munged. sgw2 gets its own view of the state dir path (a
# tmpfs over $H2 in a private mount namespace, as on a separate host): it holds only a copy of the
# munge key, runs its own munged and gets slurm.conf and gres.conf from slurmctld (configless).
start_worker_shared() { # NS NAME ARGS...
    ns=$1
    name=$2
    shift 2
    nsenter --net="/run/netns/$ns" unshare --uts sh -c 'hostname "$1" && shift && exec "$@"' sh "$name" \
        "$SAGE" cluster start --worker "$join" --home "$H2" --name "$name" "$@"
}
start_worker_own_fs() { # NS NAME ARGS...
    ns=$1
    name=$2
    shift 2
    nsenter --net="/run/netns/$ns" unshare --mount --propagation private --uts sh -c '
        hostname "$1" && mount -t tmpfs sage-test "$2" && mkdir -p "$2/cluster" &&
        install -m 0400 "$3" "$2/cluster/munge.key" && shift 3 && exec "$@"' sh "$name" "$H2" "$T/munge.key.copy" \
        "$SAGE" cluster start --worker "$join" --home "$H2" --name "$name" "$@"
}
start_worker_shared "$NS1" sgw1 --cpus 3 --gpus 1 >"$T/w1.out" 2>&1 || {
    cat "$T/w1.out"
    fail "start --worker in $NS1"
}
cat "$T/w1.out"
cp "$H2/cluster/munge.key" "$T/munge.key.copy" # "copy the key to the worker"
start_worker_own_fs "$NS2" sgw2 --cpus 5 --gpus 2 --resources ssd=1 >"$T/w2.out" 2>&1 || {
    cat "$T/w2.out"
    fail "start --worker in $NS2 (own file system)"
}
cat "$T/w2.out"
# sgw2's daemons (seen from here: their pid files are in its own file system).
w2_pids=
for pid in $(daemons_in "$H2/cluster"); do
    [ "$(readlink "/proc/$pid/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] && w2_pids="$w2_pids $pid"
done
[ "$(for pid in $w2_pids; do cat "/proc/$pid/comm"; done | sort | tr '\n' ' ')" = "munged slurmd " ] ||
    fail "sgw2 should run its own munged and slurmd (found pids:$w2_pids)"
w2_slurmd=$(for pid in $w2_pids; do [ "$(cat "/proc/$pid/comm")" = slurmd ] && echo "$pid"; done)
ok "workers joined: sgw1 (shared file system) and sgw2 (own file system, own munged pids$w2_pids)"

"$SAGE" cluster status --json --home "$H2" >"$T/status2.json" || fail "status --json (3 nodes)"
"$SAGE" cluster status --home "$H2"
jqcheck "$T/status2.json" '.nodes | length == 3' "status should show 3 nodes"
jqcheck "$T/status2.json" '[.nodes[] | select(.state != "idle")] | length == 0' "all 3 nodes should be idle"
jqcheck "$T/status2.json" '.nodes[] | select(.address == "10.213.77.1") | .cpus.total == 2 and .gpus.total == 0
    and .memory_mb.total == 1907' "head node: 2 cpus, 0 gpus, 1907 MB"
jqcheck "$T/status2.json" '.nodes[] | select(.name == "sgw1") | .cpus.total == 3 and .gpus.total == 1
    and .address == "10.213.77.11"' "sgw1: 3 cpus, 1 gpu at 10.213.77.11"
jqcheck "$T/status2.json" '.nodes[] | select(.name == "sgw2") | .cpus.total == 5 and .gpus.total == 2
    and .resources.ssd.total == 1 and .address == "10.213.77.12"' "sgw2: 5 cpus, 2 gpus, ssd 1 at 10.213.77.12"
ok "status: 3 nodes, idle, head 2 cpus/1907 MB, sgw1 3 cpus/1 gpu, sgw2 5 cpus/2 gpus/1 ssd"

export SLURM_CONF="$H2/cluster/slurm.conf"
out=$(timeout 60 srun -w sgw1 hostname 2>"$T/srun.err") || {
    cat "$T/srun.err"
    fail "srun -w sgw1 hostname"
}
[ "$out" = sgw1 ] || fail "srun -w sgw1 hostname printed '$out'"
ok "srun -w sgw1 hostname -> $out"
out=$(timeout 60 srun -w sgw2 --gpus=2 --gres=ssd:1 sh -c 'echo "$(hostname) gpus_on_node=$SLURM_GPUS_ON_NODE"' 2>"$T/srun.err") || {
    cat "$T/srun.err"
    fail "srun -w sgw2 --gpus=2"
}
[ "$out" = "sgw2 gpus_on_node=2" ] || fail "srun -w sgw2 --gpus=2 printed '$out'"
ok "srun -w sgw2 --gpus=2 --gres=ssd:1 -> $out"
unset SLURM_CONF

# sgw2 is stopped "on its host"; its node leaves the cluster.
nsenter --mount="/proc/$w2_slurmd/ns/mnt" --net="/run/netns/$NS2" "$SAGE" cluster stop --home "$H2" >"$T/stop2.out" 2>&1 || {
    cat "$T/stop2.out"
    fail "sage cluster stop on sgw2"
}
cat "$T/stop2.out"
grep -q "stopped slurmd of node sgw2" "$T/stop2.out" && grep -q "stopped munged" "$T/stop2.out" ||
    fail "stop on sgw2 should stop its slurmd and munged"
"$SAGE" cluster status --json --home "$H2" >"$T/status3.json" || fail "status --json after sgw2 stopped"
jqcheck "$T/status3.json" '[.nodes[].name] | length == 2 and (map(select(. == "sgw2")) | length == 0)
    and (map(select(. == "sgw1")) | length == 1)' "after its stop, sgw2 should be out of the cluster (2 nodes left)"
ok "sgw2 stopped on its own host: its slurmd and munged exited, its node left the cluster"

# The head's stop also stops sgw1 (its slurmd is in the namespace, its pid file in the shared dir).
pids2=$(cat "$H2"/cluster/*.pid)
"$SAGE" cluster stop --home "$H2" || fail "sage cluster stop (head and the namespace worker sgw1)"
check_stopped "$H2/cluster" "$pids2 $w2_pids"
ok "stopped; no slurmctld/slurmd/munged left, in the namespaces or not (pids $(printf "%s " $pids2 $w2_pids))"
echo "== part 2 passed"
echo "test_cluster: both parts ran and passed (single host; multi-host: head + 2 namespace workers, one with its own file system)"
