#!/usr/bin/env bash
# bench/cluster.sh: draining 6 queues on a 3-primary Redis Cluster against the
# same on one Redis, and what each costs Redis in CPU per process (issue 11).
#
#   bench/cluster.sh [--n N] [--runs R] [--workers W] [--concurrency C] [--light L]
#                    [--instructions]
#
#   --n N          processes per queue (default 10000; 6 queues)
#   --runs R       runs of each deployment, alternated; medians reported (default 5)
#   --workers W    lash-worker processes, each working all 6 queues (default 3)
#   --concurrency C  slots per worker (default 64)
#   --light L      processes of the light run (default 3000; 0: none)
#   --instructions count each server's instructions instead of its CPU time:
#                  every redis-server runs under valgrind's callgrind (about 50x
#                  slower: use a small --n and --light), zeroed before a drain
#                  and dumped after it. Unlike CPU time, the count does not grow
#                  when the servers, the workers and the bench share the cores.
#
# Both deployments run on this machine's loopback with persistence off and no
# replicas (replication would add the same cost to both): one redis-server, and
# three cluster-enabled ones joined with redis-cli --cluster create. The queues
# are q0..q5 on both; on the Cluster they spread over the three primaries by
# slot. Each run submits 6 x N noop processes (lashctl submit-bulk), starts the
# workers (built-in noop) and times the drain from their start to the last
# completion; Redis CPU is utime+stime of each redis-server (/proc/PID/stat)
# over the drain, divided by the processes of the queues that server owns.
# On a 2-core machine shared with other jobs, 3 primaries cannot run faster
# than one Redis: the point is that the cost per process per primary does not
# grow. The light run is a lightly loaded queue of the first primary: L
# processes, each submitted by a call of its own (FCALL lash_submit through one
# redis-cli), run by one worker at concurrency 1, so each one costs a poke and a
# 'finished' message of its own: what that costs the two other primaries is
# what the scripts' messages cost a Cluster's bus.
# Builds nothing: run it after cmake --build build.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${LASH_BUILD_DIR:-$root/build}/bin
n=10000 runs=5 workers=3 conc=64 light=3000 instr=0
while [ $# -gt 0 ]; do
    case $1 in
    --n) n=$2; shift ;;
    --runs) runs=$2; shift ;;
    --workers) workers=$2; shift ;;
    --concurrency) conc=$2; shift ;;
    --light) light=$2; shift ;;
    --instructions) instr=1 ;;
    -h | --help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cluster.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
needs="redis-server redis-cli python3"
[ "$instr" = 1 ] && needs="$needs valgrind callgrind_control"
for p in $needs; do
    command -v "$p" >/dev/null || { echo "cluster.sh: $p is not installed" >&2; exit 2; }
done
if [ ! -x "$bin/lash-worker" ] || [ ! -x "$bin/lashctl" ]; then
    echo "cluster.sh: build first" >&2
    exit 2
fi

tmp=$(mktemp -d /tmp/lash-bench-cluster.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
free_base() { # a base port with base..base+3 and their bus ports free
    python3 - <<'PY'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    b = random.randint(20000, 45000)
    if all(free(b + i) and free(b + 10000 + i) for i in range(4)):
        print(b); break
PY
}
start_redis() { # port [args...]; prints nothing, records the pid
    local port=$1; shift
    mkdir -p "$tmp/n$port"
    local vg=()
    [ "$instr" = 1 ] && vg=(valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.%p")
    "${vg[@]}" redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp/n$port" --save '' \
        --appendonly no --logfile redis.log --daemonize no "$@" >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 600); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.05; done
    echo "redis-server on $port did not start" >&2; exit 1
}
# wait_done PORT TOTAL QUEUE...: returns once the queues' done sets hold TOTAL
# rows (--keep -1: nothing is trimmed). It asks every 50 ms over one connection
# per node, kept open and sent where MOVED says: a redis-cli per look (as a
# first version did) costs each server a connection's setup, which weighed on
# the Cluster's figures as much as a tenth of the work measured.
wait_done() {
    python3 - "$@" <<'PY'
import socket, sys, time
port, total, queues = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
conns, route = {}, {q: port for q in queues}
def ask(p, key):
    if p not in conns:
        conns[p] = socket.create_connection(("127.0.0.1", p)).makefile("rwb")
    f = conns[p]
    f.write(b"*2\r\n$5\r\nZCARD\r\n$%d\r\n%s\r\n" % (len(key), key.encode()))
    f.flush()
    return f.readline().decode().strip()
while True:
    done = 0
    for q in queues:
        r = ask(route[q], "lash:{%s}:done" % q)
        while r.startswith("-MOVED"):
            route[q] = int(r.split()[2].rsplit(":", 1)[1])
            r = ask(route[q], "lash:{%s}:done" % q)
        done += int(r[1:])
    if done >= total:
        break
    time.sleep(0.05)
PY
}

# The meter: meter_start PID before a drain, meter_read PID after it; the
# difference is the server's CPU time in ms, or (--instructions) its
# instructions (callgrind: zeroed at the start, dumped at the end).
meter_start() {
    if [ "$instr" = 1 ]; then
        callgrind_control -z "$1" >/dev/null
        echo 0
    else
        awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) * 1000 / hz}' "/proc/$1/stat"
    fi
}
meter_read() {
    if [ "$instr" = 1 ]; then
        callgrind_control -d "$1" >/dev/null
        # shellcheck disable=SC2012 # the newest dump of that pid
        awk '/^summary:/ {print $2}' "$(ls -t "$tmp/cg.$1".* | head -n 1)"
    else
        awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) * 1000 / hz}' "/proc/$1/stat"
    fi
}
pid_of_port() { redis-cli -p "$1" info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p' | tr -d '\r'; }
# meters_start: meter_start of each server in $ports (the caller's), kept in m0.
# meter_cell K OWNED: " port:metered:OWNED" for the K-th of $ports.
meters_start() {
    local k=0 p
    m0=()
    for p in "${ports[@]}"; do m0[k]=$(meter_start "$(pid_of_port "$p")"); k=$((k + 1)); done
}
meter_cell() {
    local p=${ports[$1]} m1
    m1=$(meter_read "$(pid_of_port "$p")")
    echo " $p:$(python3 -c "print(round($m1 - ${m0[$1]}))"):$2"
}

base=$(free_base)
single=$base
start_redis "$single"
for i in 1 2 3; do start_redis $((base + i)) --cluster-enabled yes --cluster-config-file nodes.conf; done
redis-cli --cluster create 127.0.0.1:$((base + 1)) 127.0.0.1:$((base + 2)) 127.0.0.1:$((base + 3)) \
    --cluster-yes >"$tmp/create.log" 2>&1
for i in 1 2 3; do
    until redis-cli -p $((base + i)) cluster info | grep -q cluster_state:ok; do sleep 0.1; done
done
for i in $(seq "$n"); do echo '{}'; done >"$tmp/jobs.jsonl"
queues=(q0 q1 q2 q3 q4 q5)

# One run on the deployment at port $1 (the seed), over the queues in $qs;
# prints "ms port:metered:procs ..." (metered: meter_read - meter_start).
run() {
    local seed=$1 url="redis://127.0.0.1:$1" q
    local queues=("${qs[@]}")
    for p in "${ports[@]}"; do redis-cli -p "$p" flushall >/dev/null; done
    for q in "${queues[@]}"; do
        "$bin/lashctl" --redis "$url" --queue "$q" submit-bulk noop <"$tmp/jobs.jsonl" >/dev/null
    done
    meters_start
    local args=(--redis "$url" --builtin noop --concurrency "$conc" --keep -1 --log-level error)
    for q in "${queues[@]}"; do args+=(--queue "$q"); done
    local wp=() t0 t1
    t0=$(date +%s%N)
    for _ in $(seq "$workers"); do
        "$bin/lash-worker" "${args[@]}" 2>>"$tmp/worker.log" &
        wp+=($!)
    done
    wait_done "$seed" $((n * ${#queues[@]})) "${queues[@]}"
    t1=$(date +%s%N)
    local out="$(((t1 - t0) / 1000000))" k p owned
    for k in "${!ports[@]}"; do
        p=${ports[$k]} owned=0
        for q in "${queues[@]}"; do
            if [ "${#ports[@]}" = 1 ] ||
                [ "$(redis-cli -p "$p" cluster countkeysinslot \
                    "$(redis-cli -p "$p" cluster keyslot "lash:{$q}")")" != 0 ]; then
                owned=$((owned + n))
            fi
        done
        out="$out$(meter_cell "$k" "$owned")"
    done
    kill -TERM "${wp[@]}"
    wait "${wp[@]}" 2>/dev/null || true
    echo "$out"
}

# The queues the first primary owns: "one" runs drain only those, so the other
# two primaries show what someone else's work costs them (the Cluster bus
# carried every classic PUBLISH of the scripts to every node; they now publish
# sharded).
own=()
mine=$(redis-cli -p $((base + 1)) cluster nodes | grep myself)
for q in "${queues[@]}"; do
    s=$(redis-cli -p $((base + 1)) cluster keyslot "lash:{$q}")
    python3 -c '
import sys
s = int(sys.argv[1])
for r in sys.argv[2].split()[8:]:
    a, _, b = r.partition("-")
    if int(a) <= s <= int(b or a):
        sys.exit(0)
sys.exit(1)' "$s" "$mine" && own+=("$q")
done

# The light run: one queue of the first primary, one call per submit and per
# completion; prints "ms port:metered:procs ..." like run.
light_run() {
    local q=${own[0]} port=$((base + 1)) k p
    local ports=($((base + 1)) $((base + 2)) $((base + 3)))
    for p in "${ports[@]}"; do redis-cli -p "$p" flushall >/dev/null; done
    "$bin/lashctl" --redis "redis://127.0.0.1:$port" functions >/dev/null
    meters_start
    "$bin/lash-worker" --redis "redis://127.0.0.1:$port" --builtin noop --concurrency 1 \
        --keep -1 --log-level error --queue "$q" 2>>"$tmp/worker.log" &
    local lw=$! t0 t1
    t0=$(date +%s%N)
    awk -v q="$q" -v n="$light" 'BEGIN { for (i = 1; i <= n; i++)
        printf "FCALL lash_submit 1 lash:{%s} l-%d noop {} 0\n", q, i }' |
        redis-cli -p "$port" >/dev/null
    wait_done "$port" "$light" "$q"
    t1=$(date +%s%N)
    local out="$(((t1 - t0) / 1000000))"
    for k in "${!ports[@]}"; do
        out="$out$(meter_cell "$k" "$([ "${ports[$k]}" = "$port" ] && echo "$light" || echo 0)")"
    done
    kill -TERM "$lw"
    wait "$lw" 2>/dev/null || true
    echo "$out"
}

# The idle run: what the three primaries cost with nothing to do (their crons,
# the Cluster bus's pings), over 3 s; prints "ms port:metered:0 ...". The other
# primaries' figures of one and light are also given beyond this.
idle_run() {
    local ports=($((base + 1)) $((base + 2)) $((base + 3))) k p t0 t1 out=""
    for p in "${ports[@]}"; do redis-cli -p "$p" flushall >/dev/null; done
    t0=$(date +%s%N)
    meters_start
    sleep 3
    for k in "${!ports[@]}"; do out="$out$(meter_cell "$k" 0)"; done
    t1=$(date +%s%N)
    echo "$(((t1 - t0) / 1000000))$out"
}

echo "6 queues x $n noop processes, $workers workers x $conc slots; $runs runs each, alternated"
echo "(one: only the ${#own[@]} queues of the first primary, ${own[*]})"
for _ in $(seq "$runs"); do
    qs=("${queues[@]}") ports=("$single")
    echo "single  $(run "$single")" | tee -a "$tmp/results"
    qs=("${queues[@]}") ports=($((base + 1)) $((base + 2)) $((base + 3)))
    echo "cluster $(run $((base + 1)))" | tee -a "$tmp/results"
    qs=("${own[@]}")
    echo "one     $(run $((base + 1)))" | tee -a "$tmp/results"
    [ "$light" -gt 0 ] && echo "light   $(light_run)" | tee -a "$tmp/results"
    echo "idle    $(idle_run)" | tee -a "$tmp/results"
done
python3 - "$tmp/results" "$n" "${#own[@]}" "$light" "$instr" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
# Per process: CPU ms -> us, or instructions -> thousands of instructions.
instr = sys.argv[5] == "1"
what, unit, scale = ("Redis instructions", "k", 1 / 1000) if instr else ("Redis CPU", "us", 1000)
# A primary's cost per ms with nothing to do (the idle runs).
idle_rate = statistics.median(int(c.split(":")[1]) / int(r[1])
                              for r in rows if r[0] == "idle" for c in r[2:])
for kind in ("single", "cluster", "one", "light"):
    rs = [r for r in rows if r[0] == kind]
    if not rs:
        continue
    n = int(sys.argv[2]) * (int(sys.argv[3]) if kind == "one" else 6)
    if kind == "light":
        n = int(sys.argv[4])
    ms = [int(r[1]) for r in rs]
    rate = [n / (m / 1000) for m in ms]
    per, idle, beyond = [], [], []  # per process: own; someone else's; that beyond idling
    for r in rs:
        for cell in r[2:]:
            port, cost, procs = cell.split(":")
            if int(procs):
                per.append(int(cost) * scale / int(procs))
            else:
                idle.append(int(cost) * scale / n)
                beyond.append((int(cost) - idle_rate * int(r[1])) * scale / n)
    line = (f"{kind:8s} drain {statistics.median(ms)} ms median (min {min(ms)}, max {max(ms)}), "
            f"{statistics.median(rate):.0f} processes/s; {what} per process per primary: "
            f"median {statistics.median(per):.1f} {unit} (min {min(per):.1f}, max {max(per):.1f})")
    if idle:
        line += (f"; a primary without these queues: {statistics.median(idle):.1f} {unit} per "
                 f"process of the others, {statistics.median(beyond):.1f} beyond what it "
                 f"costs idle")
    print(line)
per_s = idle_rate * 1000 * (scale if instr else 1)
print(f"idle     a primary with nothing to do: {per_s:.1f} "
      f"{'k instructions' if instr else 'ms of CPU'} per s")
PY
