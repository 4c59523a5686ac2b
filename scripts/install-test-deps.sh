#!/usr/bin/env bash
# Installs everything the test suite needs besides Rust itself (idempotent; quick when all is
# there). Non-interactive; as root on a bare Debian machine it apt-get installs what is missing.
#   - Synapse in a cached virtualenv            (scripts/install-synapse.sh)
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

log "Synapse: $(bash "$ROOT/scripts/install-synapse.sh")"
log "Chromium: $(bash "$ROOT/scripts/ensure-browser.sh")"

if [ -n "${SWITCHBOARD_TEST_POSTGRES:-}" ]; then
  log "PostgreSQL: $SWITCHBOARD_TEST_POSTGRES (SWITCHBOARD_TEST_POSTGRES)"
elif (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  log "PostgreSQL: 127.0.0.1:5432"
else
  log "PostgreSQL: $(bash "$ROOT/scripts/ensure-postgres.sh")"
fi
