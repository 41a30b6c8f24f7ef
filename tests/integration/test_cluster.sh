#!/bin/sh
# tests/integration/test_cluster.sh - `sage cluster` against real Slurm daemons (ctest label "cluster").
#
# Usage: test_cluster.sh /path/to/sage [/path/to/test_jobmanager /path/to/examples/parallelism
#          /path/to/examples/wordcount /path/to/examples/resources /path/to/tutorials/cluster_wordcount
#          /path/to/tutorials/cluster_monitor]
#
# Part 1 (single host): start --head with simulated resources, status --json, srun jobs (one asking
# for a GPU), a second start refused, stop, no daemon left.
# Part 2 (multi-host): two network namespaces on a private bridge (10.213.77.0/24, used only here),
# a worker in each (start --worker, entered with nsenter + unshare --uts; the second one also with
# its own file system view, as on a separate host), status shows 3 nodes with their resources,
# srun -w <worker> runs there, the second worker is stopped on its own "host" and leaves the
# cluster, the head's stop stops the rest, namespaces deleted (also on failure).
# SAGE jobs on the cluster (when test_jobmanager and the parallelism example are given): a JobManager
# with {"slurm": {"conf": ...}} runs pipelines as srun steps of one Slurm allocation per job; in part 1
# the example's table equals embedded mode's, the placement pipeline runs with its GPU tasks, a job
# canceled while running releases its allocation; in part 2 (JobManager on the bridge address) the
# GPU operator runs on the GPU workers only (job status names each task's node), and after sgw2 left,
# the same job (2 GPUs, 1 left in the cluster) is refused before anything starts.
# Also in part 2 (with the wordcount example and the tutorial programs): a word count whose 8 instances reserve a
# CPU each runs spread over the head, sgw1 and sgw2 (key_by, then a custom partitioner), equal to the embedded
# count; then sgw1's slurmd is stopped while cluster_monitor has a task on sgw1 (the job goes on: Slurm keeps
# the step), every process left on sgw1 is killed (the host is lost), the job fails (the reason the JobManager
# gives is checked and printed), and a new job still runs.
# Part 3: every command of docs/tutorials/distributed-pipeline.md, with its text (see "Part 3" below).
#
# Needs root, Slurm 22.05 (slurmctld, slurmd, srun, sinfo, scontrol), munged and jq; part 2 also
# ip (iproute2), nsenter and unshare. When it cannot run it prints "skipped: <reason>" and exits 77
# (ctest's SKIP_RETURN_CODE), so a skip never counts as a pass.
set -u

SAGE=${1:?usage: test_cluster.sh /path/to/sage [test_jobmanager parallelism-example]}
case $SAGE in /*) ;; *) SAGE=$(pwd)/$SAGE ;; esac
# Optional: programs for the "SAGE jobs on the cluster" checks (run only when both are given).
JMTEST=${2:-}
PAREX=${3:-}
# Optional: the wordcount and resources examples and the tutorial programs cluster_wordcount and cluster_monitor
# (docs/tutorials/examples/): the wordcount/lost-node checks of part 2 and part 3 (the tutorial) need them.
WCEX=${4:-}
RESEX=${5:-}
CWC=${6:-}
CMON=${7:-}
# Optional: test_jm_restart, whose "words" pipeline (a keyed word count with fault tolerance) runs the checkpoint
# checks of part 2: a checkpoint_dir a node does not share, and a host lost mid-run.
JMRESTART=${8:-}
for v in JMTEST PAREX WCEX RESEX CWC CMON JMRESTART; do
    eval "x=\$$v"
    case $x in "" | /*) ;; *) eval "$v=\$(pwd)/\$x" ;; esac
done

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

JMS= # "host:port:home" of every JobManager this test started

# Stops a JobManager (bounded), and kills it by its pid if it did not stop.
jm_kill() { # HOST PORT HOME
    pid=$(cat "$3/jobmanager.pid" 2>/dev/null)
    timeout 40 "$SAGE" jobmanager stop --host "$1" --port "$2" --home "$3" >/dev/null 2>&1
    if [ -n "$pid" ] && running "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$3"; then
        echo "cleanup: killing JobManager pid $pid"
        kill -9 "$pid" 2>/dev/null
    fi
}

BG= # a background client of this test, if one runs

cleanup() {
    rc=$?
    trap - EXIT INT TERM HUP
    [ -n "$BG" ] && kill $BG 2>/dev/null
    for e in $JMS; do
        h=${e%%:*}
        rest=${e#*:}
        jm_kill "$h" "${rest%%:*}" "${rest#*:}"
    done
    unset SLURM_CONF
    for h in "$T/tutorial" "$H2" "$H1"; do
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
        # below the ephemeral range (32768 and up by default): a port no connection's local end can hold, in
        # this namespace or in the workers' (where a killed host's connections linger)
        p=$((20000 + ($$ * 7 + i * 131) % 12000))
        if ! command -v ss >/dev/null 2>&1 ||
            [ -z "$(ss -Htan "( sport = :$p or sport = :$((p + 1)) )" 2>/dev/null)" ]; then
            echo $p
            return
        fi
        i=$((i + 1))
    done
    echo 26817
}

# Starts a head on a free port pair; when another test took a port meanwhile (tests run in parallel and
# open connections), on the next pair. The port goes to HEAD_PORT.
head_start() { # OUT HOME ARGS...
    hs_out=$1
    hs_home=$2
    shift 2
    hs_tries=0
    HEAD_PORT=$(free_ports)
    until "$SAGE" cluster start --head --home "$hs_home" --port "$HEAD_PORT" "$@" >"$hs_out" 2>&1; do
        hs_tries=$((hs_tries + 1))
        if grep -q "is in use on this host" "$hs_out" && [ $hs_tries -lt 5 ]; then
            HEAD_PORT=$((20000 + (HEAD_PORT - 20000 + 1994) % 20000))
            continue
        fi
        return 1
    done
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

# A free TCP port for a JobManager.
free_port() {
    i=0
    while [ $i -lt 50 ]; do
        p=$((41000 + ($$ * 11 + i * 137) % 9000))
        if ! command -v ss >/dev/null 2>&1 || [ -z "$(ss -Htln "( sport = :$p )" 2>/dev/null)" ]; then
            echo $p
            return
        fi
        i=$((i + 1))
    done
    echo 47123
}

# Starts the JobManager; the port it listens on goes to JM_PORT (PORT, or another free one when another
# test took PORT between free_port and the start: tests run in parallel).
jm_start() { # HOST PORT HOME SLURM_CONF
    JM_PORT=$2
    tries=0
    until "$SAGE" jobmanager start --host "$1" --port "$JM_PORT" --home "$3" \
        --config "{\"slurm\": {\"conf\": \"$4\"}, \"data_plane\": \"tcp\"}" >"$T/jm.out" 2>&1; do
        tries=$((tries + 1))
        if grep -q "already in use" "$T/jm.out" && [ $tries -lt 5 ]; then
            JM_PORT=$((41000 + ($JM_PORT - 41000 + 997) % 9000))
            continue
        fi
        cat "$T/jm.out"
        [ -f "$3/jobmanager.log" ] && tail -n 20 "$3/jobmanager.log"
        fail "sage jobmanager start on Slurm ($4)"
    done
    JMS="$JMS $1:$JM_PORT:$3"
    ok "JobManager on Slurm at $1:$JM_PORT: $(grep -o 'on Slurm.*' "$3/jobmanager.log" | head -n 1)"
}

jm_stop() { # HOST PORT HOME
    pid=$(cat "$3/jobmanager.pid")
    timeout 40 "$SAGE" jobmanager stop --host "$1" --port "$2" --home "$3" >"$T/jmstop.out" 2>&1 || {
        cat "$T/jmstop.out"
        fail "sage jobmanager stop ($1:$2)"
    }
    running "$pid" && fail "JobManager pid $pid still runs after stop"
    JMS=$(echo "$JMS" | tr ' ' '\n' | grep -v "^$1:$2:" | tr '\n' ' ')
    ok "JobManager $1:$2 stopped"
}

jm_fail() { # HOME WHAT
    [ -f "$1/jobmanager.log" ] && tail -n 30 "$1/jobmanager.log"
    fail "$2"
}

# Waits (at most 30 s) until job ID of the JobManager is STATE; its status JSON is then in $T/st.json.
wait_state() { # HOST PORT HOME ID STATE
    i=0
    while [ $i -lt 300 ]; do
        SAGE_HOME=$3 "$SAGE" job status "$4" --json --host "$1" --port "$2" >"$T/st.json" 2>/dev/null &&
            [ "$(jq -r .state "$T/st.json")" = "$5" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    cat "$T/st.json"
    jm_fail "$3" "job $4 never became $5"
}

# Waits (at most TENTHS/10 s) until Slurm's queue holds no job in STATES (squeue -t; "": squeue's default,
# pending, running and completing).
queue_drain() { # SLURM_CONF STATES TENTHS
    i=0
    while [ $i -lt "$3" ] && [ -n "$(SLURM_CONF=$1 squeue -h ${2:+-t "$2"} -o %i 2>/dev/null)" ]; do
        sleep 0.1
        i=$((i + 1))
    done
}

# Nothing of ours is left in Slurm's queue (the allocations were released).
check_queue_empty() { # SLURM_CONF WHAT
    # the JobManager's scancel runs as the job ends (a command of its loop): slurmctld applies it within moments
    i=0
    while left=$(SLURM_CONF=$1 squeue -h -t PD,R,CF -o "%i %j %T" 2>&1) && [ -n "$left" ] && [ $i -lt 150 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ -z "$left" ] || fail "$2: Slurm still holds (15 s after): $left"
}

jqcheck() { # jqcheck FILE EXPR WHAT
    jq -e "$2" "$1" >/dev/null || {
        cat "$1"
        fail "$3"
    }
}

# ------------------------------------------------------------------------------------------------
echo "== part 1: single host"
head_start "$T/start1.out" "$H1" --cpus 4 --gpus 2 --resources ssd=2 || {
    cat "$T/start1.out"
    fail "sage cluster start --head"
}
P1=$HEAD_PORT
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

if [ -n "$JMTEST" ] && [ -n "$PAREX" ]; then
    echo "-- SAGE jobs on the single-host cluster"
    JM1=$T/jm1
    JP1=$(free_port)
    node1=$(jq -r '.nodes[0].name' "$T/status1.json")
    jm_start 127.0.0.1 "$JP1" "$JM1" "$H1/cluster/slurm.conf"
    JP1=$JM_PORT
    filter() { grep -E '^(Num|Dist)[A-Za-z]+ +[0-9]+ +[0-9]+ +[0-9]+$' | sort; }
    "$PAREX" 2>"$T/emb.err" | filter >"$T/emb.txt" || fail "the parallelism example (embedded)"
    SAGE_HOME=$JM1 timeout 120 "$PAREX" --jobmanager "127.0.0.1:$JP1" 2>"$T/par.err" | filter >"$T/par.txt"
    [ -s "$T/emb.txt" ] && [ "$(wc -l <"$T/emb.txt")" -ge 5 ] || fail "the embedded table is empty"
    cmp -s "$T/emb.txt" "$T/par.txt" || {
        diff "$T/emb.txt" "$T/par.txt"
        cat "$T/par.err"
        jm_fail "$JM1" "the example's table through the JobManager on Slurm differs from embedded mode's"
    }
    ok "parallelism example through the JobManager on Slurm: its table ($(wc -l <"$T/emb.txt") rows) equals embedded mode's"
    SAGE_HOME=$JM1 "$SAGE" job list --json --port "$JP1" >"$T/list.json" || fail "job list"
    pid1=$(jq 'if type == "array" then . else .jobs end | max_by(.job_id) | .job_id' "$T/list.json")
    SAGE_HOME=$JM1 "$SAGE" job status "$pid1" --json --port "$JP1" >"$T/st.json" || fail "job status $pid1"
    jqcheck "$T/st.json" ".state == \"finished\" and (.slurm_job | type) == \"number\" and
        ([.tasks[] | select(.host != \"$node1\" or .state != \"finished\" or .slurm_job == null)] | length == 0)" \
        "every task of the example's job should have finished on $node1 in a Slurm job"
    ok "job $pid1: $(jq '.tasks | length' "$T/st.json") tasks finished on $node1 as steps of Slurm job $(jq .slurm_job "$T/st.json")"

    # placement: two GPU instances (1 GPU each), CPU-reserving operators; the results are the same
    SAGE_HOME=$JM1 timeout 120 "$JMTEST" pipeline placement "127.0.0.1:$JP1" >"$T/pl.out" 2>&1 ||
        { cat "$T/pl.out"; jm_fail "$JM1" "the placement pipeline on Slurm"; }
    grep -q "^gpu\[0\] .* cuda=[01] gpus=[01]$" "$T/pl.out" && grep -q "^gpu\[1\] .* cuda=[01] gpus=[01]$" "$T/pl.out" ||
        { cat "$T/pl.out"; fail "the GPU instances should see their own GPU in CUDA_VISIBLE_DEVICES"; }
    plid=$(sed -n 's/^job \([0-9]*\) rc 0$/\1/p' "$T/pl.out")
    SAGE_HOME=$JM1 "$SAGE" job status "$plid" --json --port "$JP1" >"$T/st.json" || fail "job status $plid"
    jqcheck "$T/st.json" '[.tasks[] | select(.operator == "gpu")] | length == 2 and all(.gpus != "")' \
        "the GPU tasks should hold a GPU each"
    ok "placement pipeline on Slurm: $(grep -c '^gpu\[' "$T/pl.out") GPU instances with their GPU ($(grep '^gpu\[' "$T/pl.out" | tr '\n' ';'))"

    # a job canceled while it runs: its allocation is released, nothing is left
    SAGE_HOME=$JM1 timeout 120 "$JMTEST" pipeline forever "127.0.0.1:$JP1" >"$T/fe.out" 2>&1 &
    fe=$!
    fid=$((plid + 1))
    wait_state 127.0.0.1 "$JP1" "$JM1" "$fid" running
    # each task's "pid" is its worker's own (from its HELLO), "srun_pid" the srun step we started
    i=0
    until jq -e '[.tasks[] | select(.srun_pid == null or .pid == .srun_pid)] | length == 0' "$T/st.json" >/dev/null; do
        [ $i -lt 300 ] || fail "job $fid: every task should show its worker's pid beside its srun's: $(jq -c '[.tasks[] | {pid, srun_pid}]' "$T/st.json")"
        sleep 0.1
        i=$((i + 1))
        SAGE_HOME=$JM1 "$SAGE" job status "$fid" --json --port "$JP1" >"$T/st.json" 2>/dev/null
    done
    # the worker runs srun's copy of the program on its node (--bcast), unlinked once it started
    for p in $(jq -r '.tasks[] | "\(.pid):\(.srun_pid)"' "$T/st.json"); do
        case "$(readlink "/proc/${p%%:*}/exe")" in /tmp/sage-*-job"$fid"-*-task*" (deleted)") copied=1 ;; *) copied=0 ;; esac
        [ $copied = 1 ] && cmp -s "/proc/${p%%:*}/exe" "$JMTEST" && [ "$(cat "/proc/${p#*:}/comm")" = srun ] ||
            fail "job $fid: pid ${p%%:*} should be the worker running a copy of $JMTEST (is $(readlink "/proc/${p%%:*}/exe")), ${p#*:} its srun"
    done
    ok "job $fid: each task shows its worker's pid and its srun's ($(jq -r '[.tasks[] | "\(.pid)/\(.srun_pid)"] | join(" ")' "$T/st.json"))"
    sj=$(jq .slurm_job "$T/st.json")
    # A job on one node asks Slurm for what it holds there (this one reserves nothing: 1 CPU), so a second job
    # shares the node while it runs: the parallelism example runs to its end meanwhile, with its exact table.
    [ "$(SLURM_CONF=$H1/cluster/slurm.conf squeue -h -j "$sj" -o %C)" = 1 ] ||
        fail "job $fid's allocation should hold 1 CPU: $(SLURM_CONF=$H1/cluster/slurm.conf squeue -h -j "$sj" -o '%C %m %b')"
    SAGE_HOME=$JM1 timeout 60 "$PAREX" --jobmanager "127.0.0.1:$JP1" 2>"$T/par.err" | filter >"$T/par3.txt"
    cmp -s "$T/emb.txt" "$T/par3.txt" || {
        cat "$T/par.err"
        jm_fail "$JM1" "the parallelism example should run beside job $fid on the same node"
    }
    ok "two jobs share $node1: the parallelism example ran to its exact end beside job $fid (Slurm job $sj: $(SLURM_CONF=$H1/cluster/slurm.conf squeue -h -j "$sj" -o '%C CPU, %m memory'))"
    SAGE_HOME=$JM1 "$SAGE" job cancel "$fid" --port "$JP1" >/dev/null || jm_fail "$JM1" "job cancel $fid"
    wait $fe
    wait_state 127.0.0.1 "$JP1" "$JM1" "$fid" canceled
    i=0
    while [ $i -lt 100 ] && [ -n "$(SLURM_CONF=$H1/cluster/slurm.conf squeue -h -j "$sj" -t PD,R -o %i 2>/dev/null)" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    check_queue_empty "$H1/cluster/slurm.conf" "after job $fid was canceled"
    ok "job $fid canceled while running: state canceled, Slurm job $sj released"

    jm_stop 127.0.0.1 "$JP1" "$JM1"
    check_queue_empty "$H1/cluster/slurm.conf" "after the JobManager stopped"
fi

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

head_start "$T/start2.out" "$H2" --address 10.213.77.1 --cpus 2 --memory 2GB --resources ssd=0 || {
    cat "$T/start2.out"
    fail "start --head --address 10.213.77.1"
}
P2=$HEAD_PORT
join=$(grep -o -- "--head-address=[^ ]*" "$T/start2.out")
[ "$join" = "--head-address=10.213.77.1:$P2" ] || fail "join command names '$join'"
ok "head started at 10.213.77.1:$P2"

# A worker given a wrong port is told the head is unreachable there (not that its munge key is wrong).
nsenter --net="/run/netns/$NS1" "$SAGE" cluster start --worker --head-address=10.213.77.1:1 --home "$T/badworker" \
    --name sgbad >"$T/bad.out" 2>&1 && fail "a worker start with a wrong head port should fail"
grep -q "the head's controller at 10.213.77.1:1 is unreachable (Connection refused): check --head-address" "$T/bad.out" ||
    { cat "$T/bad.out"; fail "a wrong head port should be reported as unreachable"; }
ok "wrong head port: $(head -n 1 "$T/bad.out" | cut -c1-120)"

# The worker command run "on another host": in a namespace, with its own host name (unshare --uts),
# as docs/cluster.md describes. sgw1 shares the head's file system (the state dir is the same directory, as
# on a shared home): it uses the head's munged. sgw2 gets its own view of the state dir path (a
# tmpfs over $H2 in a private mount namespace, as on a separate host): it holds only a copy of the
# munge key, runs its own munged and gets slurm.conf and gres.conf from slurmctld (configless); nor does it
# see the directories of the test programs its jobs run (they are copied there by srun).
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
    # the directories of the programs jobs run there are hidden too (an empty tmpfs over each): srun copies
    # each C program to the node (--bcast); libsage.so stays visible, as a library installed on every node
    hide=
    for p in "$JMTEST" "$CWC"; do [ -n "$p" ] && hide="$hide $(dirname "$p")"; done
    nsenter --net="/run/netns/$ns" unshare --mount --propagation private --uts sh -c '
        hostname "$1" && mount -t tmpfs sage-test "$2" && mkdir -p "$2/cluster" &&
        install -m 0400 "$3" "$2/cluster/munge.key" &&
        for d in $4; do mount -t tmpfs sage-test-programs "$d" || exit 1; done && shift 4 && exec "$@"' \
        sh "$name" "$H2" "$T/munge.key.copy" "$hide" "$SAGE" cluster start --worker "$join" --home "$H2" --name "$name" "$@"
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

JM2=$H2/jm2
if [ -n "$JMTEST" ] && [ -n "$PAREX" ]; then
    echo "-- SAGE jobs on the multi-host cluster"
    # The JobManager listens on the bridge: workers in the namespaces reach it there. Its state dir
    # ($H2/jm2: spec.json, token, results, logs) is under $H2, which sgw2 (own view of $H2) does not see: its
    # workers fetch their spec over their control connection, authenticate with their job's secret and send
    # what they collected back over it (no shared file system).
    JP2=$(free_port)
    jm_start 10.213.77.1 "$JP2" "$JM2" "$H2/cluster/slurm.conf"
    JP2=$JM_PORT
    # its log and `jobmanager status` say it runs on Slurm, with each node's custom resources
    grep -q "slurm launcher; nodes: the Slurm cluster's (listed below)" "$JM2/jobmanager.log" &&
        grep -q "on Slurm (SLURM_CONF=.*sgw2 (5 cpus, 2 gpus, [0-9.]*[MG]i*B, ssd=1)" "$JM2/jobmanager.log" ||
        jm_fail "$JM2" "the JobManager's log should say it runs on Slurm and list sgw2's ssd"
    SAGE_HOME=$JM2 "$SAGE" jobmanager status --host 10.213.77.1 --port "$JP2" >"$T/jms.txt" || fail "jobmanager status"
    cat "$T/jms.txt"
    grep -q "^launcher: slurm (SLURM_CONF=$H2/cluster/slurm.conf)$" "$T/jms.txt" &&
        grep -q "^node sgw2: 5 cpus, 2 gpus, [0-9]* MiB memory, ssd=1$" "$T/jms.txt" &&
        grep -q "^node sgw1: 3 cpus, 1 gpus, [0-9]* MiB memory$" "$T/jms.txt" ||
        fail "jobmanager status should name the Slurm launcher and list each node with its custom resources"
    jqcheck "$T/status2.json" '[.nodes[] | select(.gpus.total > 0) | .name] | sort == ["sgw1", "sgw2"]' \
        "only sgw1 and sgw2 should have GPUs"
    SAGE_HOME=$JM2 timeout 120 "$JMTEST" pipeline placement "10.213.77.1:$JP2" >"$T/pl2.out" 2>&1 ||
        { cat "$T/pl2.out"; jm_fail "$JM2" "the placement pipeline on the multi-host cluster"; }
    [ "$(grep -c '^gpu\[[01]\] .* cuda=0 gpus=0$' "$T/pl2.out")" -eq 2 ] ||
        { cat "$T/pl2.out"; fail "each GPU instance should get GPU 0 of its own node"; }
    id2=$(sed -n 's/^job \([0-9]*\) rc 0$/\1/p' "$T/pl2.out")
    SAGE_HOME=$JM2 "$SAGE" job status "$id2" --json --host 10.213.77.1 --port "$JP2" >"$T/st2.json" ||
        fail "job status $id2"
    jq -c '.tasks[] | {operator, instance, host, address, slurm_job, slurm_step, gpus, state}' "$T/st2.json"
    jqcheck "$T/st2.json" '[.tasks[] | select(.operator == "gpu") | .host] | length == 2 and
        all(. == "sgw1" or . == "sgw2")' "the GPU operator should run on the GPU workers only"
    jqcheck "$T/st2.json" '[.tasks[] | select(.state != "finished" or .slurm_job == null)] | length == 0' \
        "every task should have finished as a Slurm step"
    # the address each worker reached the JobManager from is its node's
    jqcheck "$T/st2.json" '[.tasks[] | select((.host == "sgw1" and .address != "10.213.77.11") or
        (.host == "sgw2" and .address != "10.213.77.12"))] | length == 0' \
        "workers on sgw1/sgw2 should have connected from 10.213.77.11/12"
    ok "GPU operator placed on the GPU workers: $(jq -r '[.tasks[] | "\(.operator)[\(.instance)]@\(.host)"] | join(" ")' "$T/st2.json")"
    check_queue_empty "$H2/cluster/slurm.conf" "after job $id2 ended"

    if [ -n "$WCEX" ] && [ -n "$CWC" ]; then
        # A key_by word count whose 8 instances reserve a CPU each (head 2, sgw1 3, sgw2 5 CPUs): its tasks
        # spread over the three nodes; the counts equal the embedded run's, exactly.
        awk 'BEGIN { srand(11); split("the a cat dog sat on mat run fast slow red blue green sage stream key", w, " ");
             for (i = 0; i < 3000; i++) { n = int(rand() * 9); line = "";
               for (j = 0; j < n; j++) line = line w[1 + int(rand() * 16)] (rand() < 0.1 ? "\t" : " ");
               print line } }' >"$T/words.txt"
        "$WCEX" "$T/words.txt" >"$T/wc-emb.txt" 2>&1 || fail "the wordcount example (embedded)"
        "$CWC" "$T/words.txt" >"$T/cwc-emb.txt" 2>&1 || fail "cluster_wordcount (embedded)"
        cmp -s "$T/wc-emb.txt" "$T/cwc-emb.txt" || fail "cluster_wordcount (embedded) differs from the wordcount example"
        [ "$(wc -l <"$T/wc-emb.txt")" -eq 16 ] || fail "the embedded word count should have 16 words"
        for mode in key_by custom; do
            flag=
            [ $mode = custom ] && flag=--custom
            SAGE_HOME=$JM2 timeout 120 "$CWC" --jobmanager "10.213.77.1:$JP2" $flag "$T/words.txt" \
                >"$T/cwc-$mode.txt" 2>"$T/cwc.err" || {
                cat "$T/cwc.err"
                jm_fail "$JM2" "cluster_wordcount ($mode) through the JobManager on the multi-host cluster"
            }
            cmp -s "$T/wc-emb.txt" "$T/cwc-$mode.txt" || {
                diff "$T/wc-emb.txt" "$T/cwc-$mode.txt"
                fail "cluster_wordcount ($mode) on the cluster differs from the embedded word count"
            }
            SAGE_HOME=$JM2 "$SAGE" job list --json --host 10.213.77.1 --port "$JP2" >"$T/list2.json" || fail "job list"
            wid=$(jq 'if type == "array" then . else .jobs end | max_by(.job_id) | .job_id' "$T/list2.json")
            SAGE_HOME=$JM2 "$SAGE" job status "$wid" --json --host 10.213.77.1 --port "$JP2" >"$T/st2.json" ||
                fail "job status $wid"
            jqcheck "$T/st2.json" '.state == "finished" and ([.tasks[].host] | unique | length == 3)' \
                "the word count's tasks should have run on all three nodes"
            ok "word count ($mode) through Slurm equals the embedded one ($(wc -l <"$T/wc-emb.txt") words, $(awk '{s += $2} END {print s}' "$T/wc-emb.txt") in all); job $wid on: $(jq -r '[.tasks[] | "\(.operator)[\(.instance)]@\(.host)"] | join(" ")' "$T/st2.json")"
        done
        check_queue_empty "$H2/cluster/slurm.conf" "after the word counts"
        # each worker unlinked the copy of its program srun made on its node (/tmp is every node's here)
        jmpid=$(sed -n 's/.*listening on .* (pid \([0-9]*\), .*/\1/p' "$JM2/jobmanager.log" | tail -n 1)
        [ -n "$jmpid" ] || jm_fail "$JM2" "the JobManager's log should give its pid"
        left=$(ls -d /tmp/sage-"$jmpid"-job* 2>/dev/null)
        [ -z "$left" ] || fail "copies of programs left on the nodes: $left"
        ok "programs copied to their nodes by srun (sgw2 sees neither the JobManager's home nor the programs' directories), none left behind"
    fi
    if [ -n "$JMRESTART" ]; then
        # Checkpoints need a checkpoint_dir every node shares. Under $H2, which sgw2 sees as its own tmpfs, the
        # words job's counters (they ask for the ssd only sgw2 has) cannot read back what the JobManager wrote
        # there: the job fails at once, without a restart, naming the directory and the node.
        printf 'a\nb\na\n' >"$T/small.txt"
        SAGE_HOME=$JM2 SAGE_TEST_WORDS=$T/small.txt SAGE_TEST_WORDS_RESOURCES='{"num_cpus": 1, "resources": {"ssd": 0.5}}' \
            timeout 120 "$JMRESTART" pipeline words "10.213.77.1:$JP2" \
            "{\"strategy\": \"checkpoint\", \"checkpoint_interval\": 1, \"max_recovery_attempts\": 3, \"checkpoint_dir\": \"$H2/ck-private\"}" \
            >"$T/ns.out" 2>"$T/ns.err"
        rc=$?
        cat "$T/ns.err"
        [ $rc -eq 1 ] && grep -q 'checkpoint_dir.* is not shared with node sgw2: .*(a configuration error: not retried)' "$T/ns.err" ||
            jm_fail "$JM2" "a checkpoint_dir sgw2 does not share should fail the job at once, without a restart (exit $rc)"
        ok "checkpoint_dir not shared with sgw2: $(grep -m1 -o 'is not shared with node sgw2: [^(]*' "$T/ns.err")"
        check_queue_empty "$H2/cluster/slurm.conf" "after the job with an unshared checkpoint_dir"
        # its steps were killed: Slurm completes them on sgw2 (stopped below, which needs the node unused)
        queue_drain "$H2/cluster/slurm.conf" "" 300
    fi
fi

if [ -n "$JMTEST" ] && [ -n "$PAREX" ] && [ -n "$JMRESTART" ]; then
    # A host lost under a job with the checkpoint strategy: a keyed word count over a multi-megabyte file whose
    # two counters reserve 2 CPUs each (the head has 2, so the second one runs on sgw1). sgw1 is lost mid-run
    # (its slurmd and every process in its namespace killed): the job recovers from its last checkpoint, placed
    # again without sgw1 (its second counter on sgw2), and ends with the exact counts. Then sgw1 "reboots".
    awk 'BEGIN { srand(7); for (i = 0; i < 400000; i++) printf "w%05d\n", int(rand() * rand() * 5000) }' >"$T/big.txt"
    awk '{ c[$1]++ } END { for (w in c) print w, c[w] }' "$T/big.txt" | LC_ALL=C sort >"$T/big.expected"
    SAGE_HOME=$JM2 "$SAGE" job list --json --host 10.213.77.1 --port "$JP2" >"$T/list2.json" || fail "job list"
    oldw=$(jq 'if type == "array" then . else .jobs end | map(select(.name == "words")) | max_by(.job_id) |
        .job_id // 0' "$T/list2.json")
    SAGE_HOME=$JM2 SAGE_TEST_WORDS=$T/big.txt SAGE_TEST_WORDS_RESOURCES='{"num_cpus": 2}' timeout 240 \
        "$JMRESTART" pipeline words "10.213.77.1:$JP2" \
        "{\"strategy\": \"checkpoint\", \"checkpoint_interval\": 0.5, \"max_recovery_attempts\": 3, \"checkpoint_dir\": \"$T/ck\"}" \
        >"$T/words.out" 2>"$T/words.err" &
    wpid=$!
    BG=$wpid
    wid=
    i=0
    while [ $i -lt 600 ]; do
        SAGE_HOME=$JM2 "$SAGE" job list --json --host 10.213.77.1 --port "$JP2" >"$T/list2.json" 2>/dev/null &&
            wid=$(jq "if type == \"array\" then . else .jobs end | map(select(.name == \"words\" and .job_id > $oldw)) |
                max_by(.job_id) | .job_id // empty" "$T/list2.json")
        [ -n "$wid" ] && SAGE_HOME=$JM2 "$SAGE" job status "$wid" --json --host 10.213.77.1 --port "$JP2" \
            >"$T/stw.json" 2>/dev/null && jq -e '.state == "running" and .checkpoints.completed >= 1' "$T/stw.json" \
            >/dev/null && break
        sleep 0.1
        i=$((i + 1))
    done
    jq -e '.state == "running" and .checkpoints.completed >= 1' "$T/stw.json" >/dev/null 2>&1 || {
        cat "$T/words.err"
        jm_fail "$JM2" "the words job should run and commit a checkpoint"
    }
    jq -c '.tasks[] | {operator, instance, host, state}' "$T/stw.json"
    jqcheck "$T/stw.json" '[.tasks[] | select(.operator == "count" and .host == "sgw1")] | length == 1' \
        "a counter of the words job should run on sgw1"
    echo "words job $wid runs with $(jq .checkpoints.completed "$T/stw.json") checkpoints committed; sgw1 is lost now"
    kill -9 "$(cat "$H2/cluster/slurmd-sgw1.pid")"
    for p in $(ip netns pids "$NS1"); do kill -9 "$p" 2>/dev/null; done
    wait $wpid
    wrc=$?
    BG=
    SAGE_HOME=$JM2 "$SAGE" job status "$wid" --json --host 10.213.77.1 --port "$JP2" >"$T/stw.json" ||
        fail "job status $wid"
    jq -c '{state, restarts, last_failure, checkpoints}' "$T/stw.json"
    jq -c '.tasks[] | {operator, instance, host, slurm_job, state}' "$T/stw.json"
    grep "job $wid[ :]" "$JM2/jobmanager.log" | grep -E "avoided|placed again|recovery|allocation|failed" || true
    [ $wrc -eq 0 ] && cmp -s "$T/big.expected" "$T/words.out" || {
        cat "$T/words.err"
        diff "$T/big.expected" "$T/words.out" | head
        jm_fail "$JM2" "the words job should recover from sgw1's loss with the exact counts (exit $wrc)"
    }
    jqcheck "$T/stw.json" '.state == "finished" and .restarts >= 1 and .checkpoints.recoveries >= 1 and
        ([.tasks[] | select(.host == "sgw1")] | length == 0)' \
        "the words job should have finished after a recovery, with no task on sgw1"
    grep -q "job $wid \"words\": node sgw1 is avoided from now on" "$JM2/jobmanager.log" ||
        jm_fail "$JM2" "the JobManager should say it avoids sgw1 for job $wid"
    ok "sgw1 lost mid-run: job $wid recovered on $(jq -r '[.tasks[].host] | unique | join(",")' "$T/stw.json") from its checkpoint: $(wc -l <"$T/words.out") words, $(awk '{s += $2} END {print s}' "$T/words.out") in all, exact"
    # sgw1 "reboots": its worker starts again and its node serves again (Slurm ends what it still counted there).
    start_worker_shared "$NS1" sgw1 --cpus 3 --gpus 1 >"$T/w1b.out" 2>&1 || {
        cat "$T/w1b.out"
        fail "start --worker in $NS1 again, after sgw1 was lost"
    }
    # Slurm still counts the lost attempt's part on sgw1 (completing): as after any lost host, the
    # administrator clears the node (down, then resume) once it is back.
    SLURM_CONF=$H2/cluster/slurm.conf scontrol update nodename=sgw1 state=down reason="host lost, rebooted" &&
        SLURM_CONF=$H2/cluster/slurm.conf scontrol update nodename=sgw1 state=resume ||
        fail "scontrol update nodename=sgw1 state=down, then resume"
    i=0
    until SLURM_CONF=$H2/cluster/slurm.conf sinfo -h -n sgw1 -o %T 2>/dev/null | grep -qx idle; do
        [ $i -lt 300 ] || fail "sgw1 should be idle again once its worker restarted ($(SLURM_CONF=$H2/cluster/slurm.conf sinfo -h -n sgw1 -o %T))"
        sleep 0.1
        i=$((i + 1))
    done
    ok "sgw1 back after its loss: $(SLURM_CONF=$H2/cluster/slurm.conf sinfo -h -n sgw1 -o '%N %T')"
fi

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

if [ -n "$JMTEST" ] && [ -n "$PAREX" ]; then
    # Two GPU instances, 1 GPU left in the cluster (sgw1): refused at submit, nothing starts in Slurm.
    nalloc=$(grep -c "Slurm allocation .* requested" "$JM2/jobmanager.log")
    SAGE_HOME=$JM2 timeout 60 "$JMTEST" pipeline placement "10.213.77.1:$JP2" >"$T/inf.out" 2>&1
    rc=$?
    cat "$T/inf.out"
    [ $rc -ne 0 ] && grep -q 'gpu' "$T/inf.out" && ! grep -q '^job [1-9]' "$T/inf.out" ||
        jm_fail "$JM2" "a job needing more GPUs than the cluster has should be refused at submit (exit $rc)"
    [ "$(grep -c "Slurm allocation .* requested" "$JM2/jobmanager.log")" -eq "$nalloc" ] ||
        jm_fail "$JM2" "the refused job should not have asked Slurm for an allocation"
    check_queue_empty "$H2/cluster/slurm.conf" "after the refused job"
    ok "infeasible GPU job refused before anything started: $(grep -m1 -i 'gpu' "$T/inf.out")"

    if [ -n "$CMON" ]; then
        # A long-running job with a task on sgw1 (score: 3 instances of 1 CPU; the head has 2); then sgw1's
        # slurmd is stopped mid-run.
        SAGE_HOME=$JM2 timeout 120 "$CMON" --jobmanager "10.213.77.1:$JP2" >"$T/mon.out" 2>&1 &
        mon=$!
        BG=$mon
        i=0
        mid=
        while [ $i -lt 100 ] && [ -z "$mid" ]; do
            SAGE_HOME=$JM2 "$SAGE" job list --json --host 10.213.77.1 --port "$JP2" >"$T/list2.json" 2>/dev/null &&
                mid=$(jq 'if type == "array" then . else .jobs end | map(select(.name == "cluster_monitor")) |
                    max_by(.job_id) | .job_id // empty' "$T/list2.json")
            sleep 0.1
            i=$((i + 1))
        done
        [ -n "$mid" ] || fail "the cluster_monitor job never showed up"
        wait_state 10.213.77.1 "$JP2" "$JM2" "$mid" running
        sleep 1
        SAGE_HOME=$JM2 "$SAGE" job status "$mid" --json --host 10.213.77.1 --port "$JP2" >"$T/st2.json"
        jq -c '.tasks[] | {operator, instance, host, slurm_job, slurm_step, state}' "$T/st2.json"
        jqcheck "$T/st2.json" '[.tasks[] | select(.host == "sgw1")] | length >= 1' "a task of job $mid should run on sgw1"
        msj=$(jq .slurm_job "$T/st2.json")
        w1d=$(cat "$H2/cluster/slurmd-sgw1.pid")
        echo "stopping sgw1's slurmd (pid $w1d) while job $mid (Slurm job $msj) runs"
        kill -TERM "$w1d"
        sleep 3
        SAGE_HOME=$JM2 "$SAGE" job status "$mid" --json --host 10.213.77.1 --port "$JP2" >"$T/st2.json" 2>/dev/null
        running "$w1d" && fail "sgw1's slurmd (pid $w1d) still runs 3 s after SIGTERM"
        # Slurm keeps a step running when its slurmd stops (slurmstepd goes on), and the node stays
        # "allocated" until SlurmdTimeout (300 s): the SAGE job goes on, which is what we see here.
        echo "3 s after slurmd stopped: job $mid $(jq -r .state "$T/st2.json"); sgw1 still runs:" \
            "$(ip netns pids "$NS1" | while read -r p; do cat "/proc/$p/comm"; done | tr '\n' ' ')"
        # The host is lost: every process left in sgw1's namespace (its slurmstepd, the task) dies.
        for p in $(ip netns pids "$NS1"); do kill -9 "$p" 2>/dev/null; done
        i=0
        while [ $i -lt 300 ]; do
            SAGE_HOME=$JM2 "$SAGE" job status "$mid" --json --host 10.213.77.1 --port "$JP2" >"$T/st2.json" 2>/dev/null &&
                [ "$(jq -r .state "$T/st2.json")" != running ] && break
            sleep 0.1
            i=$((i + 1))
        done
        wait $mon
        mrc=$?
        BG=
        echo "job $mid after sgw1 was lost ($((i / 10)) s): $(jq -c '{state, error}' "$T/st2.json")"
        jq -c '.tasks[] | {operator, instance, host, state}' "$T/st2.json"
        echo "client (exit $mrc): $(cat "$T/mon.out")"
        # What the JobManager reports (see the note at the top): the first echo of the loss, a broken data
        # connection of a task on the head, not sgw1 or the Slurm allocation.
        jqcheck "$T/st2.json" '.state == "failed" and (.error | test("data connection broke|connection to a (consumer|producer) broke|sgw1|Slurm allocation"))
            and ([.tasks[] | select(.host == "sgw1" and .state == "finished")] | length == 0)' \
            "job $mid should have failed after sgw1 was lost"
        [ $mrc -eq 1 ] && grep -q "job $mid failed: " "$T/mon.out" || fail "the client should report job $mid failed (exit $mrc)"
        ok "sgw1 lost mid-run: job $mid failed: $(jq -r '.error' "$T/st2.json" | head -n 1)"
        # Slurm still counts sgw1 (allocated/completing) until SlurmdTimeout; an administrator marks it down.
        SLURM_CONF=$H2/cluster/slurm.conf scontrol update nodename=sgw1 state=down reason="host lost" ||
            fail "scontrol update nodename=sgw1 state=down"
        # The cluster and the JobManager still serve: a new job runs on the head and its table is exact.
        SAGE_HOME=$JM2 timeout 120 "$PAREX" --jobmanager "10.213.77.1:$JP2" 2>"$T/par.err" | filter >"$T/par2.txt"
        cmp -s "$T/emb.txt" "$T/par2.txt" || {
            diff "$T/emb.txt" "$T/par2.txt"
            cat "$T/par.err"
            jm_fail "$JM2" "a new job after sgw1 was lost should run, with the embedded table"
        }
        queue_drain "$H2/cluster/slurm.conf" PD,R,CF 100
        check_queue_empty "$H2/cluster/slurm.conf" "after the job that followed sgw1's loss"
        ok "after sgw1's loss the JobManager still runs jobs: the parallelism example's table equals embedded mode's"
    fi
    jm_stop 10.213.77.1 "$JP2" "$JM2"
fi

# The head's stop also stops sgw1 (its slurmd is in the namespace, its pid file in the shared dir).
pids2=$(cat "$H2"/cluster/*.pid)
"$SAGE" cluster stop --home "$H2" || fail "sage cluster stop (head and the namespace worker sgw1)"
check_stopped "$H2/cluster" "$pids2 $w2_pids"
ok "stopped; no slurmctld/slurmd/munged left, in the namespaces or not (pids $(printf "%s " $pids2 $w2_pids))"
echo "== part 2 passed"

# ------------------------------------------------------------------------------------------------
# Part 3: docs/tutorials/distributed-pipeline.md, command by command. Every `tut '...'` / `tut_on NS NAME '...'`
# below holds the exact text of one command of the tutorial (docs/tutorials/examples/check-distributed-commands.sh,
# ctest tutorial_distributed_commands, checks both ways). tut substitutes only ports and paths: 6817 -> a free
# Slurm port, 19001 -> a free JobManager port, /shared/sage -> this test's $H3, ./build/... -> the programs
# ctest passed, a leading `sage` -> the sage under test; then it runs the text with eval.
if [ -z "$JMTEST" ] || [ -z "$PAREX" ] || [ -z "$WCEX" ] || [ -z "$RESEX" ] || [ -z "$CWC" ] || [ -z "$CMON" ]; then
    echo "test_cluster: parts 1 and 2 passed; part 3 (the tutorial) needs every program (see tests/cluster.cmake)"
    exit 0
fi
echo "== part 3: docs/tutorials/distributed-pipeline.md"
H3=$T/tutorial
P3=$(free_ports)
JP3=$(free_port)
EXDIR=$(dirname "$WCEX")
TUTDIR=$(dirname "$CWC")
tut_subst() {
    printf '%s\n' "$1" | sed -e 's|^sage |"$SAGE" |' -e "s|/shared/sage|$H3|g" -e "s|6817|$P3|g" \
        -e "s|19001|$JP3|g" -e "s|\./build/examples/|$EXDIR/|g" -e "s|\./build/tutorials/|$TUTDIR/|g"
}
exec 3>&1 # tut and tut_on show each command here, not in the caller's redirection
tut() { # 'COMMAND' [redirections are the caller's]
    echo "+ $1" >&3
    eval "$(tut_subst "$1")"
}
tut_on() { # NS NAME 'COMMAND': on "another host" (the namespace, with its own host name)
    echo "+ [$2] $3" >&3
    nsenter --net="/run/netns/$1" unshare --uts sh -c 'hostname "$1" && eval "$2"' sh "$2" "$(tut_subst "$3")"
}
JMS="$JMS 10.213.77.1:$JP3:$H3" # stopped on every exit path (cleanup), as is the cluster in $H3
export SAGE

tut 'export SAGE_HOME=/shared/sage' || fail "export"
tut 'sage cluster start --head --address 10.213.77.1 --port 6817 --cpus 16 --memory 64GB' >"$T/t-head.out" 2>&1 ||
    { cat "$T/t-head.out"; fail "tutorial: start --head"; }
cat "$T/t-head.out"
tut_on "$NS1" gpu1 'sage cluster start --worker --head-address=10.213.77.1:6817 --name gpu1 --cpus 8 --gpus 2 --memory 16GB' \
    >"$T/t-w.out" 2>&1 || { cat "$T/t-w.out"; fail "tutorial: start --worker"; }
cat "$T/t-w.out"
tut 'sage cluster status' >"$T/t-status.out" 2>&1 || { cat "$T/t-status.out"; fail "tutorial: cluster status"; }
cat "$T/t-status.out"
grep -q "^gpu1 .* 0/8 .* 0/2 " "$T/t-status.out" && grep -q " 0/16 " "$T/t-status.out" ||
    fail "tutorial: status should show the head (16 CPUs) and gpu1 (8 CPUs, 2 GPUs)"
ok "tutorial cluster: head with 16 CPUs, worker gpu1 with 8 CPUs and 2 GPUs"

tut 'sage jobmanager start --host 10.213.77.1 --port 19001 --config '"'"'{"slurm": {"conf": "/shared/sage/cluster/slurm.conf"}, "data_plane": "tcp"}'"'"'' \
    >"$T/t-jm.out" 2>&1 || { cat "$T/t-jm.out"; jm_fail "$H3" "tutorial: jobmanager start"; }
cat "$T/t-jm.out"
grep "on Slurm" "$H3/jobmanager.log" | head -n 1
tut 'export SAGE_JOBMANAGER=10.213.77.1:19001' || fail "export"

# job 1: the parallelism validation pipeline; its table equals embedded mode's
tut './build/examples/parallelism --jobmanager 10.213.77.1:19001' >"$T/t-par.out" 2>&1 ||
    { cat "$T/t-par.out"; jm_fail "$H3" "tutorial: parallelism"; }
cat "$T/t-par.out"
filter <"$T/t-par.out" | cmp -s "$T/emb.txt" - || fail "tutorial: the parallelism table differs from embedded mode's"
ok "tutorial job 1: the parallelism table equals embedded mode's"

# job 2: the key_by word count example; its counts equal the embedded run's
tut 'printf '"'"'the cat sat on the mat\nthe dog sat on the log\n'"'"' >/shared/sage/words.txt' || fail "tutorial: words.txt"
tut './build/examples/wordcount --jobmanager 10.213.77.1:19001 /shared/sage/words.txt' >"$T/t-wc.out" 2>&1 ||
    { cat "$T/t-wc.out"; jm_fail "$H3" "tutorial: wordcount"; }
cat "$T/t-wc.out"
"$WCEX" "$H3/words.txt" | cmp -s - "$T/t-wc.out" || fail "tutorial: the word count differs from the embedded run's"
ok "tutorial job 2: the word count equals the embedded run's"

# job 3: per-operator resources; the GPU operator lands on gpu1
tut './build/examples/resources --jobmanager 10.213.77.1:19001' >"$T/t-res.out" 2>&1 ||
    { cat "$T/t-res.out"; jm_fail "$H3" "tutorial: resources"; }
cat "$T/t-res.out"
tut 'sage job status 3' >"$T/t-st3.out" 2>&1 || { cat "$T/t-st3.out"; fail "tutorial: job status 3"; }
cat "$T/t-st3.out"
"$SAGE" job status 3 --json >"$T/t-st3.json" || fail "job status 3 --json"
jqcheck "$T/t-st3.json" '.state == "finished" and
    ([.tasks[] | select(.operator == "gpu_inference") | .host] | . == ["gpu1", "gpu1"]) and
    ([.tasks[] | select(.operator == "heavy_compute") | .host] | length == 4 and all(. != "gpu1"))' \
    "tutorial: gpu_inference should run on gpu1, heavy_compute on the head"
tut 'sage job logs 3' >"$T/t-logs3.out" 2>&1 || { cat "$T/t-logs3.out"; fail "tutorial: job logs 3"; }
cat "$T/t-logs3.out"
[ "$(grep -c '^gpu_inference\[[01]\] gpu_inference\[[01]\]: node=gpu1 .* gpus=[01] ' "$T/t-logs3.out")" -eq 2 ] ||
    fail "tutorial: the logs should show both gpu_inference instances on gpu1 with a GPU"
ok "tutorial job 3: gpu_inference on gpu1, heavy_compute on the head"

# jobs 4 and 5: key_by and the custom partitioner; both equal the embedded run
tut './build/tutorials/cluster_wordcount --jobmanager 10.213.77.1:19001 /shared/sage/words.txt' \
    >"$T/t-cwc.out" 2>&1 || { cat "$T/t-cwc.out"; jm_fail "$H3" "tutorial: cluster_wordcount"; }
cat "$T/t-cwc.out"
cmp -s "$T/t-wc.out" "$T/t-cwc.out" || fail "tutorial: cluster_wordcount differs from the embedded word count"
tut './build/tutorials/cluster_wordcount --jobmanager 10.213.77.1:19001 --custom /shared/sage/words.txt' \
    >"$T/t-cwc.out" 2>&1 || { cat "$T/t-cwc.out"; jm_fail "$H3" "tutorial: cluster_wordcount --custom"; }
cat "$T/t-cwc.out"
cmp -s "$T/t-wc.out" "$T/t-cwc.out" || fail "tutorial: cluster_wordcount --custom differs from the embedded word count"
ok "tutorial jobs 4 and 5: key_by and the custom partitioner count exactly"

# job 6: metrics while it runs, then stopped
tut './build/tutorials/cluster_monitor --jobmanager 10.213.77.1:19001 &' >"$T/t-mon.out" 2>&1
BG=$!
wait_state 10.213.77.1 "$JP3" "$H3" 6 running
sleep 2 # a few metric reports (every 500 ms)
tut 'sage job list' >"$T/t-list.out" 2>&1 || { cat "$T/t-list.out"; fail "tutorial: job list"; }
cat "$T/t-list.out"
grep -q "^6 .*cluster_monitor .*running" "$T/t-list.out" || fail "tutorial: job list should show job 6 running"
tut 'sage job status 6' >"$T/t-st6.out" 2>&1 || { cat "$T/t-st6.out"; fail "tutorial: job status 6"; }
cat "$T/t-st6.out"
grep -q "P50 .*P99" "$T/t-st6.out" && [ "$(grep -c "^score .* running " "$T/t-st6.out")" -eq 3 ] ||
    fail "tutorial: job status 6 should show P50/P99 and 3 score instances running"
# job 7 shares the head with job 6 while it runs
tut './build/examples/parallelism --jobmanager 10.213.77.1:19001' >"$T/t-par7.out" 2>&1 ||
    { cat "$T/t-par7.out"; jm_fail "$H3" "tutorial: parallelism beside job 6"; }
filter <"$T/t-par7.out" | cmp -s "$T/emb.txt" - || fail "tutorial: job 7's table differs from embedded mode's"
tut 'sage cluster status' >"$T/t-status7.out" 2>&1 || { cat "$T/t-status7.out"; fail "tutorial: cluster status"; }
cat "$T/t-status7.out"
"$SAGE" cluster status --json --home "$H3" >"$T/t-status7.json" || fail "cluster status --json"
jqcheck "$T/t-status7.json" '[.nodes[] | select(.name != "gpu1") | .state] | length == 1 and (.[0] | test("mixed"))' \
    "tutorial: the head should be mixed while job 6 holds part of it"
SAGE_HOME=$H3 "$SAGE" job list --host 10.213.77.1 --port "$JP3" >"$T/t-list7.out" 2>&1
grep -q "^6 .*cluster_monitor .*running" "$T/t-list7.out" && grep -q "^7 .*parallelism_validation .*finished" "$T/t-list7.out" ||
    { cat "$T/t-list7.out"; fail "tutorial: job 7 should have finished while job 6 runs"; }
ok "tutorial job 7: ran to its exact end beside job 6 on the head ($(jq -r '[.nodes[] | select(.name != "gpu1") | "\(.name) \(.state), \(.cpus.allocated)/\(.cpus.total) cpus"] | join("")' "$T/t-status7.json"))"
tut 'sage job stop 6' || fail "tutorial: job stop 6"
tut 'wait' || fail "tutorial: cluster_monitor failed: $(cat "$T/t-mon.out")"
BG=
cat "$T/t-mon.out"
grep -q "^processing_time: count [1-9][0-9]* p50 [0-9]* ns p99 [0-9]* ns$" "$T/t-mon.out" && grep -q "^job stopped$" "$T/t-mon.out" ||
    fail "tutorial: cluster_monitor should print its processing_time histogram and 'job stopped'"
ok "tutorial job 6: metrics read while running and after the stop"

# job 8: a shared model service: one process, on gpu1 (the only GPUs), called by every classify instance
tut './build/tutorials/model_service --jobmanager 10.213.77.1:19001' >"$T/t-model.out" 2>&1 ||
    { cat "$T/t-model.out"; jm_fail "$H3" "tutorial: model_service"; }
cat "$T/t-model.out"
grep -q "^12 answers from 1 model process$" "$T/t-model.out" &&
    [ "$(grep -c " (model pid [0-9]* on gpu1, GPU [01])$" "$T/t-model.out")" -eq 12 ] ||
    fail "tutorial: the 12 answers should come from one model process on gpu1 with a GPU"
tut 'sage job status 8' >"$T/t-st8.out" 2>&1 || { cat "$T/t-st8.out"; fail "tutorial: job status 8"; }
cat "$T/t-st8.out"
"$SAGE" job status 8 --json >"$T/t-st8.json" || fail "job status 8 --json"
jqcheck "$T/t-st8.json" '.state == "finished" and ([.tasks[] | select(.operator == "service:model")] |
    length == 1 and .[0].host == "gpu1" and (.[0].gpus | test("^[01]$")))' \
    "tutorial: service:model should run once, on gpu1, with a GPU"
ok "tutorial job 8: one model process on gpu1 answered all 4 classify instances"

# troubleshooting
tut 'sage job logs 6' >"$T/t-logs6.out" 2>&1 || fail "tutorial: job logs 6"
tut 'ls /shared/sage/cluster/*.log' || fail "tutorial: ls logs"
tut 'SLURM_CONF=/shared/sage/cluster/slurm.conf squeue -o "%i %j %T %r %N"' || fail "tutorial: squeue"
tut 'SLURM_CONF=/shared/sage/cluster/slurm.conf sinfo -N -o "%N %T %E"' || fail "tutorial: sinfo"

tut 'sage jobmanager stop --host 10.213.77.1 --port 19001' || fail "tutorial: jobmanager stop"
JMS=$(echo "$JMS" | tr ' ' '\n' | grep -v "^10.213.77.1:$JP3:" | tr '\n' ' ')
pids3=$(cat "$H3"/cluster/*.pid)
tut 'sage cluster stop' || fail "tutorial: cluster stop"
check_stopped "$H3/cluster" "$pids3"
ok "tutorial: JobManager and cluster stopped, nothing left"
echo "== part 3 passed"
echo "test_cluster: all three parts ran and passed (single host; multi-host: head + 2 namespace workers, one with its own file system; the distributed tutorial)"
