#!/usr/bin/env bash
# Fuzz every parser of outside input (the targets in fuzz/, cargo-fuzz + libFuzzer) for a while
# each, and fail if any target finds a crash, a broken invariant, a hang or a memory blow-up.
#
#   scripts/fuzz.sh                 every target, 20 s each (the test command runs 15 s each)
#   scripts/fuzz.sh 600             the longer run: 10 minutes per target
#   scripts/fuzz.sh 60 html_sanitize operator_message    some targets only
#
# Installs cargo-fuzz when missing (cached). This machine has only a stable toolchain: cargo-fuzz
# passes nightly-only flags (-Zsanitizer, sanitizer-coverage passes), which stable rustc accepts
# with RUSTC_BOOTSTRAP=1. The seed corpora in fuzz/corpus/<target>/ are read, never written:
# what the fuzzer learns goes to a working corpus in the cache, so each run starts where the
# last one stopped. A crash leaves its input in fuzz/artifacts/<target>/; the script prints the
# path and the command that replays it.
#
# Environment:
#   SWITCHBOARD_CACHE            caches (default ~/.cache/switchboard): cargo-fuzz, build, corpora
#   SWITCHBOARD_FUZZ_TARGET_DIR  the fuzz build's target dir (default $SWITCHBOARD_CACHE/fuzz-target)
#   SWITCHBOARD_FUZZ_SANITIZER   address (default) or none
#   SWITCHBOARD_FUZZ_JOBS        targets fuzzed at once (default: the number of cores)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECS="${1:-20}"
[ "$#" -gt 0 ] && shift
case "$SECS" in ''|*[!0-9]*) echo "fuzz.sh: seconds per target must be a number, not '$SECS'" >&2; exit 2 ;; esac

CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
TOOLS="$CACHE/cargo-tools"
TARGET_DIR="${SWITCHBOARD_FUZZ_TARGET_DIR:-$CACHE/fuzz-target}"
SANITIZER="${SWITCHBOARD_FUZZ_SANITIZER:-address}"
WORK="$CACHE/fuzz-corpus"
LOGS="$CACHE/fuzz-logs"
export PATH="$TOOLS/bin:$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The main workspace's target dir is not the fuzz build's (different flags would rebuild both).
unset CARGO_TARGET_DIR
export CARGO_INCREMENTAL=0
bash "$(dirname "${BASH_SOURCE[0]}")/prune-cache.sh" "$TARGET_DIR"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz into $TOOLS (once)" >&2
  cargo install cargo-fuzz --locked --root "$TOOLS"
fi

cd "$ROOT/fuzz"
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
# -O: release code as production runs it. cargo fuzz's default also turns on debug assertions in
# every dependency, and mail-parser 0.11 has a debug_assert! that malformed mail trips (a panic
# only in debug builds; the email channel also catches it and keeps the mail as unreadable).
opts=(-O --sanitizer "$SANITIZER" --target-dir "$TARGET_DIR")

started=$(date +%s)
echo "fuzz.sh: building ${#targets[@]} targets (sanitizer: $SANITIZER, target dir $TARGET_DIR)" >&2
if [ "$#" -gt 0 ]; then
  for t in "${targets[@]}"; do cargo fuzz build "${opts[@]}" "$t"; done
else
  cargo fuzz build "${opts[@]}"
fi
built=$(date +%s)

mkdir -p "$LOGS"
# One target per core at a time (libFuzzer itself runs one process per target).
JOBS="${SWITCHBOARD_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}"

run_target() {
  local t="$1" log="$LOGS/$1.log" status runs speed corpus
  local dict=()
  mkdir -p "$WORK/$t" "$ROOT/fuzz/artifacts/$t" "corpus/$t"
  [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
  set +e
  cargo fuzz run "${opts[@]}" "$t" "$WORK/$t" "corpus/$t" -- \
    -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$ROOT/fuzz/artifacts/$t/" "${dict[@]}" >"$log" 2>&1
  status=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(find "$WORK/$t" -type f | wc -l)
  if [ "$status" -ne 0 ]; then
    printf '%-24s FAILED  (exit %s, log %s)\n' "$t" "$status" "$log" >"$LOGS/$t.summary"
  else
    printf '%-24s ok  %10s runs  %7s exec/s  corpus %s\n' "$t" "${runs:-?}" "${speed:-?}" "$corpus" >"$LOGS/$t.summary"
  fi
  return "$status"
}

echo "fuzz.sh: fuzzing ${#targets[@]} targets for ${SECS}s each, $JOBS at a time" >&2
for t in "${targets[@]}"; do
  rm -f "$LOGS/$t.summary"
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run_target "$t" &
done
wait || true

failed=()
for t in "${targets[@]}"; do
  if [ ! -f "$LOGS/$t.summary" ] || grep -q FAILED "$LOGS/$t.summary"; then
    failed+=("$t")
    echo "fuzz.sh: $t FAILED; the end of its log ($LOGS/$t.log):" >&2
    grep -v '^#[0-9]' "$LOGS/$t.log" | tail -40 >&2
    reproducer=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$LOGS/$t.log" | tail -1)
    if [ -n "$reproducer" ]; then
      echo "fuzz.sh: reproducer: $reproducer" >&2
      echo "fuzz.sh: replay with: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $SANITIZER --target-dir $TARGET_DIR $t $reproducer)" >&2
    fi
  fi
done

ended=$(date +%s)
echo "fuzz.sh: build $((built - started)) s, fuzzing $((ended - built)) s (${SECS} s per target, $JOBS at a time)" >&2
for t in "${targets[@]}"; do [ -f "$LOGS/$t.summary" ] && sed 's/^/  /' "$LOGS/$t.summary" >&2; done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
