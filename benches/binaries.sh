# Sourced by benches/veth.sh and benches/wan.sh (not run on its own): the
# binaries a benchmark measures. Sets CHATCTL (given, else a release build of
# this checkout, found through cargo metadata) and checks QUINN_PERF (quinn's
# perf tool: optional, its columns print '-' without it). Needs `here` (the
# checkout) and QUINN_PERF set (possibly empty) by the caller.
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
