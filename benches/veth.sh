#!/usr/bin/env bash
# A real network path with a real MTU. Two network
# namespaces joined by a veth pair (addresses from the benchmarking range
# 198.18.0.0/15), and on it, alternating in one run, `chatctl fetch --udp`
# (fast mode), `chatctl fetch --tcp`, and a QUIC peer (quinn's perf tool,
# encrypted, memory to memory). Prints goodput, the ratios fast/TCP and
# fast/QUIC, CPU seconds per GB on each side and peak RSS.
#
# Scenarios (BENCH_SCENARIOS, space-separated, default all four):
#   clean1500  veth at MTU 1500, no loss (fast mode runs at 1452-byte datagrams)
#   loss1500   the same with BENCH_LOSS % random loss each way (default 2):
#              nftables `numgen random mod 100 < 2 drop` on the input hook of
#              each namespace. veth hands GSO super-packets through whole, so
#              a drop takes a whole super-packet (TCP's and QUIC's alike).
#   clean9000  veth at MTU 9000 (jumbo)
#   loopback   both peers on 127.0.0.1 inside one namespace
#   loaded1500 (not in the default list) clean1500 twice per run: fast, TCP
#              and QUIC as they are ("idle1500"), then fast and TCP with a
#              busy loop pinned to CPU BENCH_LOAD_CPU (default 1;
#              "loaded1500"); a table of what the busy core costs each follows.
# Optional: BENCH_RATE (e.g. 1gbit) shapes both veth ends with tbf.
#
# Usage: benches/veth.sh            (builds the release binary first; needs root)
#        CHATCTL=path/to/chatctl QUINN_PERF=path/to/quinn-perf benches/veth.sh
# Env:   BENCH_SIZE bytes per transfer (default 268435456), BENCH_RUNS runs of
#        each line (default 3; the median is shown, every run listed),
#        BENCH_TIMEOUT seconds per download (default 120), BENCH_TMP (default /dev/shm),
#        QUINN_PERF: quinn's perf binary (github:quinn-rs/quinn, `cargo build
#        --release -p perf`); the QUIC column is skipped when it is unset.
#        QUIC runs BENCH_QUIC_SECONDS (default 6) of back-to-back BENCH_SIZE
#        downloads; its goodput is the mean over the completed ones and its
#        CPU per GB counts completed bytes only (a slight overestimate).
#        BENCH_KEEP=1 keeps the work directory (logs, fetch JSON, GNU time output).
#        BENCH_TRACE=1: `serve --trace` (the fast sender's JSON events) and
#        `fetch -v` for each chatctl run, kept as LABEL.udp.trace.N and
#        LABEL.MODE.cerr.N (use with BENCH_KEEP=1; tracing costs CPU itself).
#        BENCH_SERVE_ARGS: extra arguments for `serve` (e.g. "--cc cubic").
#        BENCH_HOG=CPU: a busy loop pinned to that CPU (taskset -c) for the whole
#        run, so "under load" is one controlled competitor.
# Drop counters: after each run one line on stderr with the server's summary
# (lost packets, RTOs, datagram size) and the drops the kernel counted during
# it: UDP receive-buffer overflows in each namespace (Udp RcvbufErrors),
# send-buffer errors, and softnet backlog drops (/proc/net/softnet_stat,
# machine-wide), and the CPU time all CPUs spent in softirq during the run
# (machine-wide too: TCP's protocol work is done there, and GNU time charges
# it to whichever process it interrupted); a table of the drop sums per line
# follows the results.
# Files live on tmpfs so the disk is not what is measured. Not part of `cargo test`.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${BENCH_SIZE:-268435456}
RUNS=${BENCH_RUNS:-3}
TMO=${BENCH_TIMEOUT:-120}
LOSS=${BENCH_LOSS:-2}
RATE=${BENCH_RATE:-}
SCENARIOS=${BENCH_SCENARIOS:-clean1500 loss1500 clean9000 loopback}
QUINN_PERF=${QUINN_PERF:-}

for t in ip nft python3 /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "veth.sh needs $t" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "veth.sh needs root (network namespaces)" >&2; exit 1; }
# shellcheck source=benches/common.sh
source "$here/benches/common.sh"

NS_S=chb-s-$$
NS_C=chb-c-$$
WORK=$(mktemp -d "${BENCH_TMP:-/dev/shm}/chatctl-veth.XXXXXX")
cleanup() {
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns del "$NS_C" 2>/dev/null || true
    [[ -n ${BENCH_KEEP:-} ]] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
HOG=
if [[ -n ${BENCH_HOG:-} ]]; then
    taskset -c "$BENCH_HOG" sh -c 'while :; do :; done' &
    HOG=$!
    echo "CPU hog on CPU $BENCH_HOG (pid $HOG)" >&2
fi
cleanup_hog() {
    [[ -n $HOG ]] && kill "$HOG" 2>/dev/null || true
    hog_down
    cleanup
}
trap cleanup_hog EXIT
mkdir -p "$WORK/files" "$WORK/out"
head -c "$SIZE" /dev/urandom >"$WORK/files/f.bin"
: >"$WORK/results"

SRV=198.18.0.1
CLI=198.18.0.2

# path_up MTU LOSS: fresh namespaces joined by a veth pair.
path_up() {
    local mtu=$1 loss=$2
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns del "$NS_C" 2>/dev/null || true
    ip netns add "$NS_S"
    ip netns add "$NS_C"
    ip link add "vs$$" netns "$NS_S" type veth peer name "vc$$" netns "$NS_C"
    ip -n "$NS_S" addr add "$SRV/30" dev "vs$$"
    ip -n "$NS_C" addr add "$CLI/30" dev "vc$$"
    for ns in "$NS_S" "$NS_C"; do
        local dev=vs$$
        [[ $ns == "$NS_C" ]] && dev=vc$$
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "$dev" mtu "$mtu" up
        if [[ -n $RATE ]]; then
            ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "$RATE" burst 256kb latency 50ms
        fi
        if [[ $loss != 0 ]]; then
            ip netns exec "$ns" nft add table inet chb
            ip netns exec "$ns" nft add chain inet chb in '{ type filter hook input priority 0; policy accept; }'
            ip netns exec "$ns" nft add rule inet chb in iifname "$dev" numgen random mod 100 '<' "$loss" drop
        fi
    done
}

# rusage FILE: "cpu_seconds peak_rss_mib" from GNU time -v.
rusage() {
    python3 - "$1" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
f = lambda k: float(re.search(re.escape(k) + r": ([0-9.]+)", t).group(1))
print(f("User time (seconds)") + f("System time (seconds)"), f("Maximum resident set size (kbytes)") / 1024)
EOF
}

# drops NS: "udp_rcvbuf_errors udp_sndbuf_errors" in NS (/proc/net/snmp is per namespace).
drops() { udp_counters "$1" RcvbufErrors SndbufErrors; }
# softnet_drops: packets dropped by a full per-CPU backlog, summed over CPUs (machine-wide).
softnet_drops() {
    local n=0 x
    while read -r _ x _; do n=$((n + 16#$x)); done </proc/net/softnet_stat
    echo "$n"
}
# softirq_ticks: CPU time spent in softirq so far, all CPUs (/proc/stat, USER_HZ ticks).
softirq_ticks() {
    awk '/^cpu / { print $8 }' /proc/stat
}
RUN_N=0

# run_chatctl LABEL MODE(udp|tcp) SRV_NS CLI_NS SRV_ADDR
run_chatctl() {
    local label=$1 mode=$2 sns=$3 cns=$4 addr=$5
    local log="$WORK/$label.$mode"
    RUN_N=$((RUN_N + 1))
    local trace=() verbose=()
    if [[ -n ${BENCH_TRACE:-} ]]; then
        trace=(--trace "$log.trace.$RUN_N")
        verbose=(-v)
    fi
    local d0s d0c n0
    read -r -a d0s < <(drops "$sns")
    read -r -a d0c < <(drops "$cns")
    n0=$(softnet_drops)
    local si0
    si0=$(softirq_ticks)
    ip netns exec "$sns" /usr/bin/time -v -o "$log.time" "$CHATCTL" serve --listen "$addr:0" --ports 0 \
        --files "$WORK/files" "${trace[@]}" ${BENCH_SERVE_ARGS:-} 2>"$log.err" &
    local tpid=$!
    local listen
    listen=$(wait_line "$log.err" 'listening on [^ ]*' | cut -d' ' -f3) ||
        { echo "serve did not start: $(cat "$log.err")" >&2; kill "$tpid"; return 1; }
    rm -f "$WORK/out/f.bin"
    local ok=1
    if ! timeout "$TMO" ip netns exec "$cns" /usr/bin/time -v -o "$log.ctime" "$CHATCTL" --server "$listen" \
        --name "b$RANDOM" --json "${verbose[@]}" --timeout 30s fetch "--$mode" f.bin -o "$WORK/out/f.bin" >"$log.json" 2>"$log.cerr"; then
        echo "  $label $mode: download failed or timed out after ${TMO}s: $(tail -2 "$log.cerr")" >&2
        ok=0
    fi
    pkill -TERM -P "$tpid" || true # the server: the only child of its GNU time
    wait "$tpid" || true
    if [[ $ok == 1 ]] && ! cmp -s "$WORK/files/f.bin" "$WORK/out/f.bin"; then
        echo "  $label $mode: downloaded file differs from the original" >&2
        ok=0
    fi
    local size=0 secs=nan
    if [[ $ok == 1 ]]; then
        read -r size secs < <(python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print(r["size"], r["seconds"])' "$log.json")
    fi
    local d1s d1c n1
    read -r -a d1s < <(drops "$sns")
    read -r -a d1c < <(drops "$cns")
    n1=$(softnet_drops)
    local si
    si=$(python3 -c 'import os, sys; print("%.2f" % ((int(sys.argv[2]) - int(sys.argv[1])) / os.sysconf("SC_CLK_TCK")))' "$si0" "$(softirq_ticks)")
    local rs=$((d1s[0] - d0s[0])) rc=$((d1c[0] - d0c[0])) ss=$((d1s[1] - d0s[1] + d1c[1] - d0c[1])) sn=$((n1 - n0))
    [[ $sns == "$cns" ]] && rc=0 # one namespace: its counter is the server's too
    local summary
    summary=$(grep -o 'lost_packets=[0-9]* rtos=[0-9]* datagram=[0-9]*' "$log.err" | tail -1 || true)
    echo "  $label $mode: $(python3 -c 'import sys; s, t = sys.argv[1:]; print(f"{int(s) / float(t) / 1e6:.0f} MB/s" if int(s) else "failed")' "$size" "$secs")" \
        "${summary:+$summary }rcvbuf drops server/client $rs/$rc, sndbuf errors $ss, softnet drops $sn, softirq ${si}s (all CPUs)" >&2
    [[ -n ${BENCH_TRACE:-} ]] && cp "$log.cerr" "$log.cerr.$RUN_N"
    echo "$label $mode $size $secs $(rusage "$log.time") $(rusage "$log.ctime") $rs $rc $ss $sn" >>"$WORK/results"
}

# run_quic LABEL SRV_NS CLI_NS SRV_ADDR MTU: quinn's perf client downloads
# BENCH_SIZE bytes per request, one request at a time, for a few seconds.
run_quic() {
    local label=$1 sns=$2 cns=$3 addr=$4 mtu=$5
    [[ -n $QUINN_PERF ]] || return 0
    local log="$WORK/$label.quic" payload=$((mtu - 28))
    ((payload > 65000)) && payload=65000
    ip netns exec "$sns" /usr/bin/time -v -o "$log.time" "$QUINN_PERF" server --listen "$addr:4433" \
        --max-udp-payload-size "$payload" >"$log.sout" 2>&1 &
    local tpid=$!
    sleep 0.5
    local secs=${BENCH_QUIC_SECONDS:-6}
    timeout "$TMO" ip netns exec "$cns" /usr/bin/time -v -o "$log.ctime" "$QUINN_PERF" client "$addr:4433" \
        --download-size "$SIZE" --upload-size 0 --duration "$secs" --max-udp-payload-size "$payload" \
        >"$log.out" 2>&1 || echo "  $label quic: client failed: $(tail -2 "$log.out")" >&2
    pkill -INT -P "$tpid" || true
    sleep 0.3
    pkill -KILL -P "$tpid" || true
    wait "$tpid" || true
    # Completed requests and their mean download throughput (the last table printed).
    python3 - "$label" "$log" "$SIZE" "$(rusage "$log.time")" "$(rusage "$log.ctime")" >>"$WORK/results" <<'EOF'
import re, sys
label, log, size, srv, cli = sys.argv[1:]
t = open(log + ".out").read()
n = [int(x) for x in re.findall(r"RPS: [0-9.]+ \((\d+) requests", t)]
avg = re.findall(r"AVG\s*│.*│\s*([0-9.]+) Mb/s\s*$", t, re.M)
if n and n[-1] > 0 and avg:
    total = n[-1] * int(size)
    secs = total / (float(avg[-1]) * 1e6 / 8)
else:
    total, secs = 0, float("nan")
print(label, "quic", total, secs, srv, cli, "nan nan nan nan")
EOF
}

# scenario LABEL MTU LOSS
scenario() {
    local label=$1 mtu=$2 loss=$3
    echo "$label: veth MTU $mtu, ${loss}% loss each way${RATE:+, tbf $RATE}, $SIZE bytes, $RUNS runs" >&2
    path_up "$mtu" "$loss"
    for _ in $(seq "$RUNS"); do
        run_chatctl "$label" udp "$NS_S" "$NS_C" "$SRV"
        run_chatctl "$label" tcp "$NS_S" "$NS_C" "$SRV"
        run_quic "$label" "$NS_S" "$NS_C" "$SRV" "$mtu"
    done
}


for s in $SCENARIOS; do
    case $s in
        loaded1500)
            echo "loaded1500: veth MTU 1500, clean, $SIZE bytes, $RUNS runs, idle and with CPU ${BENCH_LOAD_CPU:-1} busy" >&2
            path_up 1500 0
            for _ in $(seq "$RUNS"); do
                run_chatctl idle1500 udp "$NS_S" "$NS_C" "$SRV"
                run_chatctl idle1500 tcp "$NS_S" "$NS_C" "$SRV"
                run_quic idle1500 "$NS_S" "$NS_C" "$SRV" 1500
                hog_up "${BENCH_LOAD_CPU:-1}"
                run_chatctl loaded1500 udp "$NS_S" "$NS_C" "$SRV"
                run_chatctl loaded1500 tcp "$NS_S" "$NS_C" "$SRV"
                hog_down
            done
            ;;
        clean1500) scenario clean1500 1500 0 ;;
        loss1500) scenario loss1500 1500 "$LOSS" ;;
        clean9000) scenario clean9000 9000 0 ;;
        loopback)
            echo "loopback: both peers on 127.0.0.1 in one namespace, $SIZE bytes, $RUNS runs" >&2
            path_up 1500 0
            for _ in $(seq "$RUNS"); do
                run_chatctl loopback udp "$NS_S" "$NS_S" 127.0.0.1
                run_chatctl loopback tcp "$NS_S" "$NS_S" 127.0.0.1
                run_quic loopback "$NS_S" "$NS_S" 127.0.0.1 65536
            done
            ;;
        *) echo "unknown scenario $s" >&2; exit 1 ;;
    esac
done

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$WORK/results" <<'EOF'
import sys
res = {}
for l in open(sys.argv[1]):
    r = l.split()
    res.setdefault((r[0], r[1]), []).append(dict(zip("size secs scpu srss ccpu crss rbs rbc sbe snd".split(), map(float, r[2:]))))
def rates(label, mode):
    return sorted(r["size"] / r["secs"] / 1e6 if r["size"] and r["secs"] > 0 else float("nan") for r in res.get((label, mode), []))
def gp(label, mode):
    v = rates(label, mode)
    return v[len(v) // 2] if v else float("nan")
labels = list(dict.fromkeys(k[0] for k in res))
print("| path | fast UDP MB/s | TCP MB/s | QUIC MB/s | fast/TCP | fast/QUIC |")
print("|---|---|---|---|---|---|")
for label in labels:
    u, t, q = gp(label, "udp"), gp(label, "tcp"), gp(label, "quic")
    # A missing or failed column (QUIC without QUINN_PERF) shows as "-".
    mb = lambda x: "-" if x != x else f"{x:.0f}"
    ratio = lambda a, b: "-" if a != a or b != b or b == 0 else f"{a/b:.2f}x"
    print(f"| {label} | {mb(u)} | {mb(t)} | {mb(q)} | {ratio(u, t)} | {ratio(u, q)} |")
print()
for label in labels:
    for m in ("udp", "tcp", "quic"):
        if (label, m) in res:
            print(f"{label} {m}, each run: " + ", ".join(f"{x:.0f}" for x in rates(label, m)) + " MB/s")
if ("loaded1500", "udp") in res:
    print()
    print("| veth MTU 1500, one core busy | idle | loaded | cost |")
    print("|---|---|---|---|")
    for m, name in (("udp", "fast UDP"), ("tcp", "TCP")):
        a, b = gp("idle1500", m), gp("loaded1500", m)
        print(f"| {name} | {a:.0f} MB/s | {b:.0f} MB/s | {1 - b / a:.0%} |")
print()
print("| run | server CPU s/GB | client CPU s/GB | server peak RSS MiB | client peak RSS MiB |")
print("|---|---|---|---|---|")
for (label, mode), runs in res.items():
    gb = sum(x["size"] for x in runs) / 1e9
    per = lambda k: f"{sum(x[k] for x in runs) / gb:.2f}" if gb > 0 else "n/a"
    print(f"| {label} {mode} | {per('scpu')} | {per('ccpu')} | {max(x['srss'] for x in runs):.0f} | {max(x['crss'] for x in runs):.0f} |")
print()
print("| run | UDP rcvbuf drops server / client | sndbuf errors | softnet drops (machine-wide) |")
print("|---|---|---|---|")
for (label, mode), runs in res.items():
    if mode == "quic":
        continue
    tot = lambda k: int(sum(x.get(k, 0) for x in runs))
    print(f"| {label} {mode} | {tot('rbs')} / {tot('rbc')} | {tot('sbe')} | {tot('snd')} |")
EOF
