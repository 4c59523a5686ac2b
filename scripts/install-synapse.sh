#!/usr/bin/env bash
# Installs Synapse from PyPI into a cached virtualenv (idempotent).
# Prints the venv path on stdout. Override the location with SWITCHBOARD_SYNAPSE_VENV.
set -euo pipefail
CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
VENV="${SWITCHBOARD_SYNAPSE_VENV:-$CACHE/synapse-venv}"
VERSION="${SWITCHBOARD_SYNAPSE_VERSION:-1.163.*}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import synapse' 2>/dev/null; then
  echo "$VENV"; exit 0
fi
mkdir -p "$(dirname "$VENV")"
LOCK="$VENV.lock"
exec 9>"$LOCK"
flock 9
if ! { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import synapse' 2>/dev/null; }; then
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "matrix-synapse==$VERSION" >&2
fi
echo "$VENV"
