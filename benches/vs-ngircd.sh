#!/usr/bin/env bash
# The room server against ngircd 26 (C, one epoll thread), the IRC server a
# user could pick instead, on the same workloads in one run: 10 users
# whispering round robin at 2,000/s and 8,000/s, and 100 users sending 300
# broadcasts/s. Both are driven by the load generator in benches/server.rs
# (SERVER_BENCH_ONLY=ngircd); it prints, per row, server CPU per delivered
# message (from the server's process CPU clock, the clients' own cost not
# counted), the ratio, p99 latency, context switches per message and RSS
# for both servers.
#
# A third column runs the same load against the floor (benches/floor.rs): a
# bare one-thread poll loop that does only the protocol's work with chatctl's
# codec (a read, the update's write, the answer's write). No server of this
# protocol can cost less; `floor/n` is how far below ngircd that floor lies.
#
# When ../shared/tools/chatbench.sh is beside the checkout, its independent
# load generator runs the same rows afterwards (CHATBENCH=0 to leave it out).
#
# The rows run three times, with the load generator and the servers placed
# by the scheduler, on one CPU, and on two (SERVER_BENCH_PLACEMENT free,
# shared, apart; PLACEMENTS picks): where the scheduler puts a server
# relative to the clients that wake it moves its CPU per message by up to
# 1.8×, so the pinned runs compare the two servers under the same placement.
#
# Usage: benches/vs-ngircd.sh          (SECS per row, default 5)
# Says it skipped, and exits 0, when ngircd is not installed
# (apt-get install ngircd).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v ngircd >/dev/null 2>&1 && [[ ! -x /usr/sbin/ngircd ]]; then
    echo "skipped: ngircd is not installed (apt-get install ngircd)"
    exit 0
fi
export PATH=$PATH:/usr/sbin
cd "$here"
for placement in ${PLACEMENTS:-free shared apart}; do
    SERVER_BENCH_PLACEMENT=$placement SERVER_BENCH_ONLY=ngircd SERVER_BENCH_SECS=${SECS:-5} \
        cargo bench --quiet --bench server
    echo
done
shared=$here/../shared/tools/chatbench.sh
if [[ ${CHATBENCH:-1} != 0 && -x $shared ]]; then
    echo
    echo "the same rows through ../shared/tools/chatbench.sh:"
    cargo build --release --quiet --bin chatctl
    CHATCTL=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/chatctl
    export CHATCTL
    SECS=${SECS:-5} "$shared" 2000 8000
    BCAST=1 USERS=100 SECS=${SECS:-5} "$shared" 300
fi
