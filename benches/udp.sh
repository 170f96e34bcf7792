#!/usr/bin/env bash
# Downloads on real processes: `chatctl fetch --udp` against
# `chatctl serve`, compared with `--tcp`, as ratios measured in one run.
#
#   1. loopback, 1 GiB (BENCH_BIG): UDP (fast mode) vs TCP goodput, and fast
#      mode held to 1452-byte datagrams (`serve --max-datagram 1452`)
#   4. (real processes) classic go-back-N (`fetch --udp --classic`) on the
#      same paths, BENCH_CLASSIC bytes: the fast mode's speed-up
#   2. 2% random loss both ways (nftables `numgen random mod 100 < 2 drop` on
#      the input hook in a private network namespace from `unshare -n`), BENCH_LOSSY bytes:
#      UDP vs TCP, and each as a share of its own loss-free rate there;
#      BENCH_LOSSY_RUNS runs each (default 3, median shown: single runs vary)
#   5. CPU seconds per GB and peak RSS of server and client, from
#      /usr/bin/time -v, for every run
# Scenarios 3 and 4 through the impairment relay are `cargo bench --bench rdt`.
#
# Usage: benches/udp.sh            (builds the release binary first)
#        CHATCTL=path/to/chatctl benches/udp.sh
# Env:   BENCH_BIG (default 1073741824), BENCH_LOSSY (default 268435456),
#        BENCH_CLASSIC (default 67108864),
#        BENCH_TIMEOUT seconds per download (default 120), BENCH_TMP (default /dev/shm),
#        BENCH_CC (the server's `--cc`, e.g. cubic or bbr; default: the server's default).
# Files live on tmpfs so the disk is not what is measured. Needs bash, python3,
# GNU time; scenario 2 needs root (or user namespaces), unshare, ip and nft,
# and is skipped with a message otherwise. Not part of `cargo test`.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
BIG=${BENCH_BIG:-1073741824}
LOSSY=${BENCH_LOSSY:-268435456}
CLASSIC=${BENCH_CLASSIC:-67108864}
TMO=${BENCH_TIMEOUT:-120}
export BENCH_CC=${BENCH_CC:-}

if [[ ${1:-} != --inside ]]; then
    if [[ -z ${CHATCTL:-} ]]; then
        (cd "$here" && cargo build --release --quiet --bin chatctl)
        CHATCTL=$(cd "$here" && cargo metadata --format-version 1 --no-deps |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/chatctl
    fi
    export CHATCTL
    WORK=$(mktemp -d "${BENCH_TMP:-/dev/shm}/chatctl-bench.XXXXXX")
    export WORK
    trap 'rm -rf "$WORK"' EXIT
    mkdir -p "$WORK/files" "$WORK/out"
    head -c "$BIG" /dev/urandom >"$WORK/files/big.bin"
    head -c "$LOSSY" /dev/urandom >"$WORK/files/lossy.bin"
    head -c "$CLASSIC" /dev/urandom >"$WORK/files/classic.bin"
fi

# run_one LABEL FILE MODE -> appends "LABEL MODE bytes seconds srv_cpu srv_rss cli_cpu cli_rss" to $WORK/results
run_one() {
    local label=$1 file=$2 mode=$3
    local log="$WORK/serve.$label.$mode"
    local flags=("--$mode")
    [[ $mode == classic ]] && flags=(--udp --classic)
    local cc=()
    [[ -n $BENCH_CC ]] && cc=(--cc "$BENCH_CC")
    # udp1452: fast mode held to 1452-byte datagrams, as on a 1500-byte-MTU
    # path (GSO/GRO and batched I/O carry the per-datagram cost).
    [[ $mode == udp1452 ]] && flags=(--udp) && cc+=(--max-datagram 1452)
    /usr/bin/time -v -o "$log.time" "$CHATCTL" serve --listen 127.0.0.1:0 --ports 0 --files "$WORK/files" "${cc[@]}" \
        2>"$log.err" &
    local tpid=$!
    local addr=""
    for _ in $(seq 100); do
        addr=$(grep -o 'listening on [^ ]*' "$log.err" 2>/dev/null | head -1 | cut -d' ' -f3 || true)
        [[ -n $addr ]] && break
        sleep 0.1
    done
    [[ -n $addr ]] || { echo "serve did not start: $(cat "$log.err")" >&2; kill "$tpid"; return 1; }
    rm -f "$WORK/out/$file"
    local ok=1
    if ! timeout "$TMO" /usr/bin/time -v -o "$log.ctime" "$CHATCTL" --server "$addr" --name "b$RANDOM" --json \
        --timeout 30s fetch "${flags[@]}" "$file" -o "$WORK/out/$file" >"$log.json" 2>"$log.cerr"; then
        echo "  $label $mode: download failed or timed out after ${TMO}s: $(tail -2 "$log.cerr")" >&2
        ok=0
    fi
    # Stop the server itself (GNU time then reports it).
    pkill -TERM -P "$tpid" -x chatctl || true
    wait "$tpid" || true
    if [[ $ok == 1 ]] && ! cmp -s "$WORK/files/$file" "$WORK/out/$file"; then
        echo "  $label $mode: downloaded file differs from the original" >&2
        ok=0
    fi
    python3 - "$label" "$mode" "$log" "$ok" >>"$WORK/results" <<'EOF'
import json, re, sys
label, mode, log, ok = sys.argv[1:]
def rusage(path):
    t = open(path).read()
    f = lambda k: float(re.search(re.escape(k) + r": ([0-9.]+)", t).group(1))
    return f("User time (seconds)") + f("System time (seconds)"), f("Maximum resident set size (kbytes)") / 1024
scpu, srss = rusage(log + ".time")
ccpu, crss = rusage(log + ".ctime")
if ok == "1":
    r = json.loads(open(log + ".json").read().splitlines()[-1])
    size, secs = r["size"], r["seconds"]
else:
    size, secs = 0, float("nan")
print(label, mode, size, secs, scpu, srss, ccpu, crss)
EOF
}

if [[ ${1:-} == --inside ]]; then
    # In a fresh network namespace: loss-free first, then 2% loss both ways.
    ip link set lo up
    run_one ns-clean lossy.bin tcp
    run_one ns-clean lossy.bin udp
    run_one ns-clean classic.bin classic
    nft add table inet chatctl_bench
    # On the input hook: every loopback packet passes it once, whichever its
    # direction. (On the output hook a drop makes sendto() fail with EPERM,
    # which no real network does.)
    nft add chain inet chatctl_bench in '{ type filter hook input priority 0; policy accept; }'
    nft add rule inet chatctl_bench in numgen random mod 100 '<' 2 drop
    # Random loss makes single runs vary widely (TCP above all): repeat.
    for _ in $(seq "${BENCH_LOSSY_RUNS:-3}"); do
        run_one ns-loss2 lossy.bin tcp
        run_one ns-loss2 lossy.bin udp
    done
    run_one ns-loss2 classic.bin classic
    nft delete table inet chatctl_bench
    exit 0
fi

: >"$WORK/results"
echo "1. loopback, $BIG bytes" >&2
run_one loopback big.bin tcp
run_one loopback big.bin udp
run_one loopback big.bin udp1452
run_one loopback classic.bin classic

echo "2. 2% loss both ways in a private network namespace, $LOSSY bytes" >&2
if ! command -v nft >/dev/null || ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then
    echo "  skipped: needs nft, ip and unshare" >&2
elif ! unshare -n sh -c 'ip link set lo up && nft add table inet chatctl_probe' 2>/dev/null; then
    echo "  skipped: cannot create a network namespace with nftables here (needs root or user namespaces)" >&2
else
    unshare -n "$0" --inside
fi

python3 - "$WORK/results" <<'EOF'
import math, sys
rows = [l.split() for l in open(sys.argv[1])]
res = {}
for r in rows:
    res.setdefault((r[0], r[1]), []).append(dict(zip("size secs scpu srss ccpu crss".split(), map(float, r[2:]))))
def rates(label, mode):
    return sorted(r["size"] / r["secs"] / 1e6 if r["size"] and r["secs"] > 0 else float("nan") for r in res.get((label, mode), []))
def gp(label, mode):
    """Median goodput in MB/s over the runs of this line."""
    v = rates(label, mode)
    return v[len(v) // 2] if v else float("nan")
print("| scenario | TCP MB/s | fast UDP MB/s | classic UDP MB/s | fast/TCP | fast/classic |")
print("|---|---|---|---|---|---|")
for label in ("loopback", "ns-clean", "ns-loss2"):
    if (label, "tcp") in res:
        t, u, c = gp(label, "tcp"), gp(label, "udp"), gp(label, "classic")
        print(f"| {label} | {t:.1f} | {u:.1f} | {c:.1f} | {u/t:.2f}x | {u/c:.1f}x |")
if ("loopback", "udp1452") in res:
    u = gp("loopback", "udp1452")
    print(f"loopback, fast UDP with 1452-byte datagrams (--max-datagram 1452): {u:.1f} MB/s, {u/gp('loopback', 'tcp'):.2f}x TCP")
if ("ns-loss2", "tcp") in res:
    for m in ("tcp", "udp"):
        print(f"2% loss, {m.upper()}, each run: " + ", ".join(f"{x:.1f}" for x in rates("ns-loss2", m)) + " MB/s (the table shows the median)")
    for m in ("tcp", "udp", "classic"):
        print(f"2% loss, {m.upper()}: {gp('ns-loss2', m) / gp('ns-clean', m):.0%} of its loss-free rate")
print()
print("| run | server CPU s/GB | server peak RSS MiB | client CPU s/GB | client peak RSS MiB |")
print("|---|---|---|---|---|")
for (label, mode), runs in res.items():
    r = {k: sum(x[k] for x in runs) / len(runs) for k in ("size", "scpu", "ccpu")} | {k: max(x[k] for x in runs) for k in ("srss", "crss")}
    gb = r["size"] / 1e9
    per = lambda c: f"{c / gb:.2f}" if gb > 0 else "n/a"
    print(f"| {label} {mode} {r['size']/2**20:.0f} MiB | {per(r['scpu'])} | {r['srss']:.0f} | {per(r['ccpu'])} | {r['crss']:.0f} |")
EOF
