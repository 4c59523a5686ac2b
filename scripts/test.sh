#!/usr/bin/env bash
# The test command: installs the test dependencies (scripts/install-test-deps.sh), then runs
# every test of the workspace, unit and integration (a real Synapse, PostgreSQL, headless
# Chromium), and exits with cargo's status.
#
# Environment:
#   SWITCHBOARD_CACHE         caches (default ~/.cache/switchboard): Synapse venv, build dir, …
#   CARGO_TARGET_DIR          build dir (default $SWITCHBOARD_CACHE/target, kept between runs)
#   SWITCHBOARD_TEST_THREADS  tests run in parallel per test binary (default 2)
#   SWITCHBOARD_TEST_POSTGRES URL of a PostgreSQL server to use instead of 127.0.0.1:5432
#   SWITCHBOARD_TEST_LOG      the bridge's log filter in tests (e.g. "debug")
#   SWITCHBOARD_TEST_KEEP=1   keep each test's bridge/Synapse temp dirs (configs, logs)
#   SWITCHBOARD_FUZZ_SECONDS  seconds per fuzz target after the tests (15 for the whole run, 0 for
#                             a selection; 0 skips)
# Arguments replace the default target selection (--workspace --lib --bins --tests), e.g.
#   scripts/test.sh --test relay            scripts/test.sh -p switchboard-webchat
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export SWITCHBOARD_CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
bash scripts/install-test-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SWITCHBOARD_CACHE/target}"
# Incremental compilation helps an edit-compile loop, not a test run: its caches grew to tens of
# gigabytes and filled the disk once. Each run also prunes what earlier runs left behind.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
bash scripts/prune-cache.sh "$CARGO_TARGET_DIR"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Backtraces for panics, not for every anyhow error a test returns.
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}"
echo "test.sh: cargo test (target dir $CARGO_TARGET_DIR, ${SWITCHBOARD_TEST_THREADS:-2} threads)" >&2
# Benchmarks are not tests: `cargo bench` (scripts/bench.sh) runs them.
# A selection of tests (arguments) fuzzes nothing unless SWITCHBOARD_FUZZ_SECONDS asks for it;
# the whole run (no arguments, as CI runs it) fuzzes every target for 15 s by default.
if [ "$#" -gt 0 ]; then fuzz_seconds="${SWITCHBOARD_FUZZ_SECONDS:-0}"; else fuzz_seconds="${SWITCHBOARD_FUZZ_SECONDS:-15}"; fi
[ "$#" -gt 0 ] || set -- --workspace --lib --bins --tests
# Run every test binary even when one fails, so a run reports everything.
set +e
cargo test --no-fail-fast "$@" -- --test-threads="${SWITCHBOARD_TEST_THREADS:-2}"
status=$?
[ "$fuzz_seconds" = 0 ] || bash scripts/fuzz.sh "$fuzz_seconds" || status=1  # every fuzz target briefly (fuzz/README.md); SWITCHBOARD_FUZZ_SECONDS=0 skips
set -e
exit "$status"
