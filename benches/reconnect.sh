#!/usr/bin/env bash
# How long `say --reconnect` takes to be back in the room
# after a restarted `chatctl serve` listens again (from the moment the new
# server accepts connections to say's "back" event on stderr), over RUNS
# restarts (default 10), with an outage of OUTAGE seconds (default 1) and
# the default backoff (100 ms doubling to --reconnect-max, 30 s, jittered),
# or RECONNECT_MAX if set. Prints each run, the median and the load average.
#
# Usage: benches/reconnect.sh        (CHATCTL=path/to/chatctl to pick the binary)
# Needs bash 5 (EPOCHREALTIME) and python3 (a free port, the arithmetic). Not part of `cargo test`.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-10}
OUTAGE=${OUTAGE:-1}
if [[ -z "${CHATCTL:-}" ]]; then
    (cd "$here" && cargo build --release --quiet)
    CHATCTL="$here/target/release/chatctl"
fi
tmp=$(mktemp -d)
serve_pid=""
say_pid=""
cleanup() {
    [[ -n "$say_pid" ]] && kill "$say_pid" 2>/dev/null || true
    [[ -n "$serve_pid" ]] && kill "$serve_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

now() { echo "$EPOCHREALTIME"; }   # bash 5: no process started, so the clock adds nothing
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
listening() { (exec 4<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
start_serve() {
    "$CHATCTL" serve --listen "$addr" --ports 0 >/dev/null 2>&1 &
    serve_pid=$!
    until listening; do sleep 0.005; done
}
max_args=()
[[ -n "${RECONNECT_MAX:-}" ]] && max_args=(--reconnect-max "$RECONNECT_MAX")

start_serve
mkfifo "$tmp/in"
XDG_RUNTIME_DIR="$tmp" "$CHATCTL" -s "$addr" -n bench --json -q say --reconnect "${max_args[@]}" \
    <"$tmp/in" >/dev/null 2>"$tmp/err" &
say_pid=$!
exec 3>"$tmp/in"
echo "hello" >&3
times=()
for i in $(seq "$RUNS"); do
    before=$(grep -c '"event":"back"' "$tmp/err" || true)
    kill -TERM "$serve_pid"
    wait "$serve_pid" || true
    sleep "$OUTAGE"
    start_serve
    t0=$(now)
    until [[ $(grep -c '"event":"back"' "$tmp/err" || true) -gt $before ]]; do sleep 0.002; done
    t1=$(now)
    ms=$(python3 -c "print(round(($t1 - $t0) * 1000))")
    echo "run $i: back ${ms} ms after the server listened"
    times+=("$ms")
    echo "line $i" >&3
done
exec 3>&-
median=$(printf '%s\n' "${times[@]}" | sort -n | python3 -c 'import sys; v=[int(l) for l in sys.stdin]; v.sort(); n=len(v); print(v[n//2] if n%2 else (v[n//2-1]+v[n//2])/2)')
echo "median over $RUNS restarts (outage ${OUTAGE}s, --reconnect-max ${RECONNECT_MAX:-30s}): ${median} ms; $(uptime | sed 's/.*load/load/')"
