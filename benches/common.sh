# Sourced by benches/veth.sh and benches/wan.sh (not run on its own): what
# both need. The binaries they measure: sets CHATCTL (given, else a release
# build of this checkout, found through cargo metadata) and checks QUINN_PERF
# (quinn's perf tool: optional, its columns print '-' without it); needs
# `here` (the checkout) and QUINN_PERF set (possibly empty) by the caller.
# Then the helpers wait_line, udp_counters, hog_up and hog_down.
if [[ -z ${CHATCTL:-} ]]; then
    (cd "$here" && cargo build --release --quiet --bin chatctl)
    CHATCTL=$(cd "$here" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/chatctl
fi
if [[ -n $QUINN_PERF && ! -x $QUINN_PERF ]]; then
    echo "QUINN_PERF=$QUINN_PERF is not executable" >&2
    exit 1
fi
if [[ -z $QUINN_PERF ]]; then
    echo "QUIC skipped: set QUINN_PERF to quinn's perf binary" >&2
fi

# wait_line FILE PATTERN: the first match of PATTERN in FILE within 10 s.
wait_line() {
    local m=""
    for _ in $(seq 100); do
        m=$(grep -o "$2" "$1" 2>/dev/null | head -1 || true)
        [[ -n $m ]] && { echo "$m"; return 0; }
        sleep 0.1
    done
    return 1
}

# udp_counters NS FIELD...: those counters of the Udp line of NS's
# /proc/net/snmp (it is per namespace), space-separated, e.g. RcvbufErrors.
udp_counters() {
    local ns=$1
    shift
    ip netns exec "$ns" awk -v want="$*" '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1; next }
        n = split(want, f, " "); out = ""; for (i = 1; i <= n; i++) out = out (i > 1 ? " " : "") $c[f[i]]; print out }' /proc/net/snmp
}

# hog_up CPU / hog_down: a busy loop pinned to CPU (one core of the machine
# busy: the scheduler moves everything else off it), and its end. One at a
# time; the caller's cleanup calls hog_down.
LOADHOG=
hog_up() {
    taskset -c "$1" sh -c 'while :; do :; done' &
    LOADHOG=$!
}
hog_down() {
    [[ -n $LOADHOG ]] && kill "$LOADHOG" 2>/dev/null || true
    [[ -n $LOADHOG ]] && wait "$LOADHOG" 2>/dev/null || true
    LOADHOG=
}
