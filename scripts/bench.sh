#!/usr/bin/env bash
# The relay benchmark (bench/relay.rs): the bridge beside a plain Matrix client on the same real
# Synapse, in one run. Builds the bridge and the harness in release (`cargo bench`), prints a
# table and writes bench/results/latest.json. Takes about 6–8 minutes on 2 cores without the
# profiles, the receipts/events rounds and the growth rounds (about 10 minutes with them, on a quiet machine, 2026-12-06), most of it in
# Synapse; Synapse itself comes from the cached virtualenv (installed on first use).
#
#   scripts/bench.sh            full run
#   scripts/bench.sh --quick    small counts, a smoke run (writes bench/results/quick.json)
#   scripts/bench.sh --table bench/results/latest.json   print an earlier run's table again
#
# Environment (defaults in parentheses; see `Settings` in bench/relay.rs):
#   SWITCHBOARD_BENCH_LATENCY        messages per path for latency, one in flight (300)
#   SWITCHBOARD_BENCH_ROUNDS         latency rounds, interleaving the three paths (3)
#   SWITCHBOARD_BENCH_WARMUP         unmeasured messages per path first (20)
#   SWITCHBOARD_BENCH_THROUGHPUT     messages per path for throughput (960)
#   SWITCHBOARD_BENCH_THROUGHPUT_ROUNDS  (2)
#   SWITCHBOARD_BENCH_INDEX_AB_ROUNDS  bridge inbound rounds with and without the search index (2; 0: none)
#   SWITCHBOARD_BENCH_CONVERSATIONS  conversations sending in parallel (16)
#   SWITCHBOARD_BENCH_IDLE           conversations in the store for the idle RSS reading (10000)
#   SWITCHBOARD_BENCH_PORTALS        portals in the store for the start-time reading (100000)
#   SWITCHBOARD_BENCH_STARTS         timed starts with those portals; the median counts (3)
#   SWITCHBOARD_BENCH_STATUS_AB_ROUNDS  bridge outbound rounds with delivery_status receipts and
#                                    events, the bridge restarted between them (2; 0: none)
#   SWITCHBOARD_BENCH_PROFILE        1: one more burst per path with py-spy sampling Synapse,
#                                    written to bench/results/synapse-profile-<path>.txt with the
#                                    requests Synapse answered per message and the pauses between
#                                    two sends in one room by the path's sender (1; 0: none); they
#                                    go beside SWITCHBOARD_BENCH_OUT, so an A/B run written into
#                                    bench/results replaces the committed ones. py-spy is
#                                    pip-installed into the Synapse venv on first use; needs ptrace
#                                    (root or CAP_SYS_PTRACE)
#   SWITCHBOARD_BENCH_KEEP_PROFILES  set: keep py-spy's collapsed stacks beside those files
#                                    (synapse-profile-<path>.raw) for a closer look
#   SWITCHBOARD_BENCH_GROWTH         stores for the growth rounds: sqlite,postgres (both; none: off)
#   SWITCHBOARD_BENCH_GROWTH_CONVERSATIONS  conversations seeded before the second set (100000)
#   SWITCHBOARD_BENCH_GROWTH_MESSAGES       messages over them, half each way (1000000)
#   SWITCHBOARD_BENCH_GROWTH_LATENCY        messages per path (inbound, outbound) for latency (100)
#   SWITCHBOARD_BENCH_GROWTH_THROUGHPUT     messages per path for throughput (480)
#                                    (each set of growth rounds also times the plain client, so
#                                    Synapse's own drift can be divided out: "×/direct")
#   SWITCHBOARD_BENCH_BRIDGE_LOG     the bridge's log filter (info); an analysis aid, e.g.
#                                    info,sqlx::query=debug logs every statement with its time
#   SWITCHBOARD_BENCH_BRIDGE_DB_DIR  put the bridge's SQLite file there (e.g. /dev/shm: fsync free)
#   SWITCHBOARD_BENCH_OUT            where to write the JSON (it names the bridge binary that ran:
#                                    settings.bridge_binary and its bridge_binary_sha256;
#                                    SWITCHBOARD_TEST_BINARY picks another)
#   SWITCHBOARD_CACHE, CARGO_TARGET_DIR  as for scripts/test.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export SWITCHBOARD_CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SWITCHBOARD_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
exec cargo bench --bench relay -- "$@"
