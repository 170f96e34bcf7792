#!/usr/bin/env bash
# A long lossy path: two network namespaces joined by a user-space WAN
# emulator (WANEM, default ../shared/tools/wanem.py beside the project: a TUN
# device in each namespace, MTU 1500, every packet a wire packet), 200 Mbit/s
# each way with per-packet random loss each way, at each round-trip time of
# BENCH_RTTS. On it, alternating in one run: `chatctl fetch --udp` (fast
# mode), `chatctl fetch --tcp` with the server's namespace set to Linux TCP
# bbr and then cubic, and optionally quinn's perf tool with bbr and cubic
# (see run_quic: its first download, without the QUIC handshake). At the
# RTTs of BENCH_LOAD_RTTS each run also repeats the fast and TCP bbr
# downloads with a busy loop pinned to one core (the loaded machine).
# Prints the goodput of a BENCH_SIZE download including the join (medians of
# BENCH_RUNS, every run listed), the limit (1 - loss) x rate, what the busy
# core costs each, and then two fairness runs on the same path without
# random loss: a fast download beside a TCP cubic download (TCP's share of
# the bytes while both run) and two fast downloads (each's share).
#
# Usage: benches/wan.sh            (builds the release binary first; needs root)
# Env:   WANEM the emulator (skipped with a message when absent),
#        BENCH_RTTS milliseconds (default "20 50"), BENCH_RATE Mbit/s (200),
#        BENCH_LOSS percent each way (1), BENCH_SIZE bytes (134217728),
#        BENCH_RUNS (3), BENCH_TIMEOUT seconds per download (30; a download
#        still running then is stopped and shown as "<R": R is the rate of
#        the wire bytes it received until then), BENCH_FAIR_RTTS (default
#        "20"; empty skips the fairness runs), BENCH_SERVE_ARGS extra
#        arguments for `serve`, BENCH_KEEP=1 keeps the work directory,
#        QUINN_PERF quinn's perf binary (github:quinn-rs/quinn, `cargo build
#        --release -p perf`; its columns show "-" when unset),
#        BENCH_QUIC_WINDOWS its window flags (default 64M stream, connection
#        and send windows, as the fast mode's), BENCH_LOAD_RTTS (default
#        "20"; empty skips the loaded runs), BENCH_LOAD_CPU the busy core
#        (1), CHATCTL a prebuilt binary, BENCH_COLUMNS the columns to run
#        (default "fast tcp-bbr tcp-cubic quinn-bbr quinn-cubic"),
#        BENCH_SEED the emulator's loss seed (default: a random one, printed).
# After each run one line on stderr: the server's summary and the UDP
# receive-buffer drops (Udp RcvbufErrors) in the client's namespace.
# Not part of `cargo test`.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
WANEM=${WANEM:-$here/../shared/tools/wanem.py}
SIZE=${BENCH_SIZE:-134217728}
RUNS=${BENCH_RUNS:-3}
TMO=${BENCH_TIMEOUT:-30}
LOSS=${BENCH_LOSS:-1}
RATE=${BENCH_RATE:-200}
RTTS=${BENCH_RTTS:-20 50}
FAIR_RTTS=${BENCH_FAIR_RTTS-20}
LOAD_RTTS=${BENCH_LOAD_RTTS-20}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
QUINN_PERF=${QUINN_PERF:-}
COLUMNS_WANTED=${BENCH_COLUMNS:-fast tcp-bbr tcp-cubic quinn-bbr quinn-cubic}
# The emulator's loss pattern is the same for the same seed: with one fixed
# seed the first download on each path always loses the same early packet
# (at 1% loss, with seed 1, its download request: a 200 ms TCP timeout for
# the first column alone). A seed per run of the script, printed.
SEED=${BENCH_SEED:-$((RANDOM + 1))}
QUIC_WINDOWS=${BENCH_QUIC_WINDOWS:---stream-receive-window 64M --receive-window 64M --send-window 64M}

if [[ ! -f $WANEM ]]; then
    echo "wan.sh skipped: no WAN emulator at $WANEM (set WANEM to wanem.py)" >&2
    exit 0
fi
for t in ip nft python3 sysctl taskset timeout; do
    command -v "$t" >/dev/null || { echo "wan.sh needs $t" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "wan.sh needs root (network namespaces, TUN)" >&2; exit 1; }
# shellcheck source=benches/common.sh
source "$here/benches/common.sh"

NS_S=chw-s-$$
NS_C=chw-c-$$
SRV=198.18.0.1
CLI=198.18.0.2
WORK=$(mktemp -d "${BENCH_TMP:-/dev/shm}/chatctl-wan.XXXXXX")
EMU=
PIDS=()
path_down() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    PIDS=()
    if [[ -n $EMU ]]; then
        kill "$EMU" 2>/dev/null || true
        wait "$EMU" 2>/dev/null || true
        EMU=
    fi
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns del "$NS_C" 2>/dev/null || true
}
cleanup() {
    hog_down
    path_down
    [[ -n $ALLOWED ]] && sysctl -qw net.ipv4.tcp_allowed_congestion_control="$ALLOWED"
    [[ -n ${BENCH_KEEP:-} ]] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
# Both TCP algorithms allowed for the run (a machine-wide setting; put back on exit).
ALLOWED=$(sysctl -n net.ipv4.tcp_allowed_congestion_control)
trap cleanup EXIT
sysctl -qw net.ipv4.tcp_allowed_congestion_control="reno cubic bbr"
mkdir -p "$WORK/files" "$WORK/out"
head -c "$SIZE" /dev/urandom >"$WORK/files/f.bin"
: >"$WORK/results"

# path_up RTT_MS LOSS: fresh namespaces joined by the emulator.
path_up() {
    local rtt=$1 loss=$2
    path_down
    ip netns add "$NS_S"
    ip netns add "$NS_C"
    ip -n "$NS_S" link set lo up
    ip -n "$NS_C" link set lo up
    python3 "$WANEM" "$NS_S" "$SRV" "$NS_C" "$CLI" --delay-ms "$(python3 -c "print($rtt / 2)")" \
        --rate-mbit "$RATE" --loss "$loss" --seed "$SEED" >"$WORK/wanem.$rtt.$loss" 2>&1 &
    EMU=$!
    wait_line "$WORK/wanem.$rtt.$loss" ready >/dev/null ||
        { echo "the emulator did not start: $(cat "$WORK/wanem.$rtt.$loss")" >&2; exit 1; }
    # Bytes received per (protocol, local port) in the client's namespace.
    ip netns exec "$NS_C" nft -f - <<'EOF'
table inet w {
    set f { type inet_proto . inet_service; flags dynamic; counter; }
    chain in {
        type filter hook input priority 0; policy accept;
        update @f { meta l4proto . th dport }
    }
}
EOF
}


tcp_cc() { ip netns exec "$NS_S" sysctl -qw net.ipv4.tcp_congestion_control="$1"; }

rcvbuf_errors() { udp_counters "$1" RcvbufErrors; }
rx_bytes() { ip netns exec "$NS_C" cat /sys/class/net/wanB/statistics/rx_bytes; }

# serve_up LOG: a server in NS_S; its address in LISTEN, its PID in SERVE.
serve_up() {
    local log=$1
    ip netns exec "$NS_S" "$CHATCTL" serve --listen "$SRV:0" --ports 0 \
        --files "$WORK/files" ${BENCH_SERVE_ARGS:-} 2>"$log.err" &
    SERVE=$!
    PIDS+=("$SERVE")
    LISTEN=$(wait_line "$log.err" 'listening on [^ ]*' | cut -d' ' -f3) ||
        { echo "serve did not start: $(cat "$log.err")" >&2; exit 1; }
}
serve_down() {
    kill "$SERVE" 2>/dev/null || true
    wait "$SERVE" 2>/dev/null || true
}

# wanted COLUMN: whether BENCH_COLUMNS asks for that column.
wanted() {
    [[ " $COLUMNS_WANTED " == *" $1 "* ]]
}

# run_chatctl LABEL COLUMN MODE(udp|tcp): one download; a line in results.
run_chatctl() {
    local label=$1 col=$2 mode=$3
    local log="$WORK/$label.$col"
    serve_up "$log"
    local r0 b0 t0 t1 ok=1
    r0=$(rcvbuf_errors "$NS_C")
    b0=$(rx_bytes)
    rm -f "$WORK/out/f.bin"
    t0=$(date +%s.%N)
    if ! timeout "$TMO" ip netns exec "$NS_C" "$CHATCTL" --server "$LISTEN" --name "b$RANDOM" --json \
        --timeout 30s fetch "--$mode" f.bin -o "$WORK/out/f.bin" >"$log.json" 2>"$log.cerr"; then
        ok=0
    fi
    t1=$(date +%s.%N)
    serve_down
    local rate rb
    rb=$(($(rcvbuf_errors "$NS_C") - r0))
    if [[ $ok == 1 ]] && cmp -s "$WORK/files/f.bin" "$WORK/out/f.bin"; then
        rate=$(python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print("%.2f" % (r["size"] / r["seconds"] / 1e6))' "$log.json")
    else
        # Not done in time (or failed): the wire bytes received until then, marked "<".
        rate="<$(python3 -c 'import sys; b, t0, t1 = map(float, sys.argv[1:]); print(f"{b / (t1 - t0) / 1e6:.2f}")' "$(($(rx_bytes) - b0))" "$t0" "$t1")"
        echo "  $label $col: not done in ${TMO}s: $(tail -1 "$log.cerr")" >&2
    fi
    local summary
    summary=$(grep -o 'lost_packets=[0-9]* rtos=[0-9]* datagram=[0-9]*' "$log.err" | tail -1 || true)
    echo "  $label $col: $rate MB/s ${summary:+$summary }rcvbuf drops (client) $rb" >&2
    echo "$label $col $rate $rb" >>"$WORK/results"
}

# run_quic LABEL CC: quinn's perf client asks for one BENCH_SIZE download
# (it would go on asking: it is stopped once the first is done). Its rate is
# the first request's size over its download time (request sent to last
# byte: the QUIC handshake before it is not counted, which favours quinn by
# one RTT). Both sides get windows as large as the fast mode's
# (BENCH_QUIC_WINDOWS): quinn's defaults (a 1.25 MB stream window) hold it
# below the path's rate at 50 ms.
run_quic() {
    local label=$1 cc=$2
    [[ -n $QUINN_PERF ]] || return 0
    local log="$WORK/$label.quinn-$cc"
    local win
    read -r -a win <<<"$QUIC_WINDOWS"
    ip netns exec "$NS_S" "$QUINN_PERF" server --listen "$SRV:4433" --congestion "$cc" "${win[@]}" \
        >"$log.sout" 2>&1 &
    local spid=$!
    PIDS+=("$spid")
    sleep 0.5
    local b0 t0 t1 done=0
    b0=$(rx_bytes)
    t0=$(date +%s.%N)
    timeout "$TMO" ip netns exec "$NS_C" "$QUINN_PERF" client "$SRV:4433" --congestion "$cc" "${win[@]}" \
        --download-size "$SIZE" --upload-size 0 --duration "$((TMO + 5))" >"$log.out" 2>&1 &
    local cpid=$!
    # Until the first table that counts a finished request is out, to its P0 row.
    while kill -0 "$cpid" 2>/dev/null; do
        if grep -A12 -E 'RPS: [0-9.]+ \([1-9][0-9]* requests' "$log.out" | grep -q 'P0 '; then
            done=1
            break
        fi
        sleep 0.2
    done
    t1=$(date +%s.%N)
    kill "$cpid" 2>/dev/null || true
    wait "$cpid" 2>/dev/null || true
    kill -INT "$spid" 2>/dev/null || true
    sleep 0.3
    kill -KILL "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    local rate
    if [[ $done == 1 ]]; then
        # The P0 download throughput of that table: its slowest request, the
        # first (with start-up; at these rates the only one).
        rate=$(python3 -c '
import re, sys
t = open(sys.argv[1]).read()
m = re.search(r"RPS: [0-9.]+ \(([1-9]\d*) requests.*?^ P0\s*│[^\n]*│\s*([0-9.]+) Mb/s[ \t]*$", t, re.S | re.M)
print("%.2f" % (float(m.group(2)) / 8))' "$log.out")
    else
        rate="<$(python3 -c 'import sys; b, t0, t1 = map(float, sys.argv[1:]); print(f"{b / (t1 - t0) / 1e6:.2f}")' "$(($(rx_bytes) - b0))" "$t0" "$t1")"
        echo "  $label quinn-$cc: not done in ${TMO}s: $(tail -1 "$log.out")" >&2
    fi
    echo "  $label quinn-$cc: $rate MB/s" >&2
    echo "$label quinn-$cc $rate nan" >>"$WORK/results"
}

# fair LABEL A B: two downloads started together (A, B each udp or tcp);
# each one's share of the bytes received while both run.
fair() {
    local label=$1 a=$2 b=$3
    local log="$WORK/fair.${label// /_}"
    serve_up "$log"
    mkdir -p "$WORK/out/1" "$WORK/out/2"
    rm -f "$WORK/out/1/f.bin" "$WORK/out/2/f.bin"
    ip netns exec "$NS_C" nft flush set inet w f
    local i=0 m pids=()
    for m in "$a" "$b"; do
        i=$((i + 1))
        (
            timeout "$TMO" ip netns exec "$NS_C" "$CHATCTL" --server "$LISTEN" --name "f$i$RANDOM" --json \
                --timeout 30s fetch "--$m" f.bin -o "$WORK/out/$i/f.bin" >"$log.$i.json" 2>"$log.$i.cerr" || true
            date +%s.%N >"$log.$i.end"
        ) &
        pids+=($!)
    done
    date +%s.%N >"$log.start"
    : >"$log.samples"
    while [[ ! -f $log.1.end || ! -f $log.2.end ]]; do
        echo "$(date +%s.%N) $(ip netns exec "$NS_C" nft -j list set inet w f)" >>"$log.samples"
        sleep 0.1
    done
    wait "${pids[@]}" 2>/dev/null || true
    serve_down
    python3 - "$log" "$label" >>"$WORK/fairness" <<'EOF'
import json, sys
log, label = sys.argv[1:]
end = min(float(open(f"{log}.{i}.end").read()) for i in (1, 2))
samples = []
for line in open(log + ".samples"):
    t, j = line.split(" ", 1)
    flows = {}
    for o in json.loads(j)["nftables"]:
        for e in o.get("set", {}).get("elem", []):
            e = e["elem"]
            key = tuple(e["val"]["concat"])
            flows[key] = e["counter"]["bytes"]
    samples.append((float(t), flows))
last = [s for s in samples if s[0] <= end][-1][1]
# The two download flows are the two biggest; chat connections are small.
top = sorted(last.items(), key=lambda kv: -kv[1])[:2]
total = sum(b for _, b in top) or 1
name = {6: "tcp", 17: "udp", "tcp": "tcp", "udp": "udp"}
shares = ", ".join(f"{name.get(k[0], k[0])}:{k[1]} {b / total:.0%}" for k, b in top)
print(f"{label}: {shares} of {total / 1e6:.0f} MB in the {end - samples[0][0]:.1f} s both ran")
EOF
    tail -1 "$WORK/fairness" >&2
}

: >"$WORK/fairness"
for rtt in $RTTS; do
    label="${rtt}ms"
    echo "$label: WAN RTT $rtt ms, $RATE Mbit/s, $LOSS% loss each way (seed $SEED), $SIZE bytes, $RUNS runs" >&2
    path_up "$rtt" "$LOSS"
    for _ in $(seq "$RUNS"); do
        if wanted fast; then run_chatctl "$label" fast udp; fi
        if wanted tcp-bbr; then tcp_cc bbr; run_chatctl "$label" tcp-bbr tcp; fi
        if wanted tcp-cubic; then tcp_cc cubic; run_chatctl "$label" tcp-cubic tcp; fi
        if wanted quinn-bbr; then run_quic "$label" bbr; fi
        if wanted quinn-cubic; then run_quic "$label" cubic; fi
        if [[ " $LOAD_RTTS " == *" $rtt "* ]]; then
            hog_up "$LOAD_CPU"
            if wanted fast; then run_chatctl "$label+load" fast udp; fi
            if wanted tcp-bbr; then tcp_cc bbr; run_chatctl "$label+load" tcp-bbr tcp; fi
            hog_down
        fi
    done
done
for rtt in $FAIR_RTTS; do
    echo "fairness: WAN RTT $rtt ms, $RATE Mbit/s, no random loss" >&2
    path_up "$rtt" 0
    tcp_cc cubic
    fair "${rtt}ms fast+tcp-cubic" udp tcp
    fair "${rtt}ms fast+fast" udp udp
done
path_down

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); emulator loss seed $SEED"
python3 - "$WORK/results" "$RATE" "$LOSS" <<'EOF'
import sys
res = {}
for l in open(sys.argv[1]):
    label, col, rate, rb = l.split()
    res.setdefault(label, {}).setdefault(col, []).append((rate, rb))
limit = (1 - float(sys.argv[3]) / 100) * float(sys.argv[2]) / 8
def med(runs):
    # A run not done in time ("<R") counts as its partial rate, and marks the median.
    v = sorted((float(r.lstrip("<")), r.startswith("<")) for r, _ in runs)
    x, partial = v[len(v) // 2]
    return x, partial
def cell(runs):
    if not runs:
        return "-"
    x, partial = med(runs)
    return "-" if x != x else ("<" if partial else "") + f"{x:.1f}"
print("| RTT | fast UDP | Linux TCP bbr | TCP cubic | quinn bbr | quinn cubic | limit (1-p)×rate |")
print("|---|---|---|---|---|---|---|")
for label, cols in res.items():
    if label.endswith("+load"):
        continue
    f = med(cols["fast"])[0] if "fast" in cols else float("nan")
    best = max([med(cols[c])[0] for c in ("tcp-bbr", "tcp-cubic", "quinn-bbr", "quinn-cubic") if c in cols] or [float("nan")])
    against = f"{f / best:.2f}× best" if best == best else "no other column"
    fast = f"{cell(cols.get('fast'))} MB/s ({f / limit:.0%}, {against})"
    print(f"| {label} | {fast} | " + " | ".join(cell(cols.get(c)) for c in ("tcp-bbr", "tcp-cubic", "quinn-bbr", "quinn-cubic")) + f" | {limit:.1f} |")
print()
loaded = [l for l in res if l.endswith("+load")]
if loaded:
    print()
    print("| RTT, one core busy | fast idle → loaded | cost | TCP bbr idle → loaded | cost |")
    print("|---|---|---|---|---|")
    for l in loaded:
        idle, load = res.get(l[: -len("+load")], {}), res[l]
        row = []
        for c in ("fast", "tcp-bbr"):
            if c in idle and c in load:
                a, b = med(idle[c])[0], med(load[c])[0]
                row += [f"{cell(idle[c])} → {cell(load[c])} MB/s", f"{1 - b / a:.0%}"]
            else:
                row += ["-", "-"]
        print(f"| {l[: -len('+load')]} | " + " | ".join(row) + " |")
print()
for label, cols in res.items():
    for col, runs in cols.items():
        v = sorted(runs, key=lambda r: float(r[0].lstrip("<")))
        print(f"{label} {col}, each run (min, median, max): " + ", ".join(r for r, _ in v) + " MB/s; rcvbuf drops (client): " + ", ".join(rb for _, rb in runs))
EOF
echo
cat "$WORK/fairness"
