#!/usr/bin/env bash
# Makes the web chat tests' browser side ready (idempotent, flock-protected):
#   - Chromium at /usr/bin/chromium (or $SWITCHBOARD_CHROMIUM): installed with apt-get when
#     missing and we are root;
#   - playwright-core in tests/node_modules: `npm ci` when node_modules is missing or older than
#     tests/package-lock.json (a stamp holds the lock's checksum).
# Playwright never downloads a browser here (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1); it drives the
# system Chromium. Prints the Chromium path on stdout; progress goes to stderr.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
CHROMIUM="${SWITCHBOARD_CHROMIUM:-/usr/bin/chromium}"
mkdir -p "$CACHE"
exec 8>"$CACHE/browser.lock"
flock 8

log() { echo "ensure-browser: $*" >&2; }

if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing chromium with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
  else
    log "no Chromium at $CHROMIUM and cannot apt-get install it (not root); set SWITCHBOARD_CHROMIUM"
    exit 1
  fi
fi

command -v node >/dev/null || { log "node is not installed (Node 20 or later is needed)"; exit 1; }
command -v npm >/dev/null || { log "npm is not installed"; exit 1; }

TESTS="$ROOT/tests"
STAMP="$TESTS/node_modules/.switchboard-stamp"
if [ -f "$TESTS/package-lock.json" ]; then
  WANT="$(sha256sum "$TESTS/package-lock.json" "$TESTS/package.json" | sha256sum | cut -d' ' -f1)"
else
  WANT="$(sha256sum "$TESTS/package.json" | sha256sum | cut -d' ' -f1)"
fi
if [ ! -f "$TESTS/node_modules/playwright-core/package.json" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
  if [ -f "$TESTS/package-lock.json" ]; then
    log "npm ci in tests/"
    (cd "$TESTS" && npm ci --no-audit --no-fund --loglevel=error) >&2
  else
    log "npm install in tests/ (no package-lock.json)"
    (cd "$TESTS" && npm install --no-audit --no-fund --loglevel=error) >&2
  fi
  echo "$WANT" >"$STAMP"
fi
echo "$CHROMIUM"
