#!/usr/bin/env bash
# A local demo: Synapse + the bridge on SQLite + the web chat widget, all on 127.0.0.1.
#
#   scripts/demo.sh
#
# Installs Synapse into the cached virtualenv (scripts/install-synapse.sh), builds the bridge,
# and keeps everything in .demo/ in the repository (gitignored; delete it to start over):
#   .demo/synapse/            homeserver config, SQLite database, media, homeserver.log
#   .demo/config.yaml         the bridge's config (SQLite, web chat enabled)
#   .demo/registration.yaml   written by `switchboard generate-registration` on every run
#   .demo/operator-password   the operator's password, made on the first run and reused
#   .demo/bridge.log, .demo/synapse.out
# Synapse listens on 127.0.0.1:8008 and the bridge on 127.0.0.1:29340 when those ports are free
# (other free ports otherwise). Prints the homeserver URL, the operator login and the URL of the
# widget demo page, then runs in the foreground until Ctrl-C, which stops both.
#
# Environment: SWITCHBOARD_CACHE (caches, default ~/.cache/switchboard), CARGO_TARGET_DIR
# (default $SWITCHBOARD_CACHE/target), SWITCHBOARD_DEMO_RELEASE=1 for a release build,
# SWITCHBOARD_DEMO_LOG for the bridge's log filter (default info).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export SWITCHBOARD_CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SWITCHBOARD_CACHE/target}"
DEMO="$ROOT/.demo"
SYN="$DEMO/synapse"
log() { echo "demo: $*" >&2; }

VENV="$(bash "$ROOT/scripts/install-synapse.sh")"
PY="$VENV/bin/python"

# ---- build ----------------------------------------------------------------------------------
if [ "${SWITCHBOARD_DEMO_RELEASE:-0}" = 1 ]; then
  log "building switchboard (release)"
  cargo build --release --bin switchboard
  BIN="$CARGO_TARGET_DIR/release/switchboard"
else
  log "building switchboard (debug; SWITCHBOARD_DEMO_RELEASE=1 for release)"
  cargo build --bin switchboard
  BIN="$CARGO_TARGET_DIR/debug/switchboard"
fi
[ -x "$BIN" ] || { log "no binary at $BIN"; exit 1; }

# ---- ports ----------------------------------------------------------------------------------
pick_port() { # preferred port if free, else any free one
  "$PY" - "$1" <<'EOF'
import socket, sys
want = int(sys.argv[1])
s = socket.socket()
# Like the servers themselves: a port in TIME_WAIT after the last run is free for them.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", want))
except OSError:
    s.close(); s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}
HS_PORT="$(pick_port 8008)"
BRIDGE_PORT="$(pick_port 29340)"
[ "$HS_PORT" != "$BRIDGE_PORT" ] || BRIDGE_PORT="$(pick_port 0)"
METRICS_PORT="$(pick_port 9340)"
case "$METRICS_PORT" in "$HS_PORT"|"$BRIDGE_PORT") METRICS_PORT="$(pick_port 0)" ;; esac
WHISPER_PORT="$(pick_port 29345)"
case "$WHISPER_PORT" in "$HS_PORT"|"$BRIDGE_PORT"|"$METRICS_PORT") WHISPER_PORT="$(pick_port 0)" ;; esac
# Voice notes to text: a real Whisper model behind the OpenAI-compatible API (cached venv).
WHISPER_VENV="$(bash "$ROOT/scripts/install-whisper.sh")"
HS_URL="http://127.0.0.1:$HS_PORT"
BRIDGE_URL="http://127.0.0.1:$BRIDGE_PORT"

mkdir -p "$DEMO" "$SYN"

# ---- bridge config + registration -----------------------------------------------------------
"$PY" - "$DEMO/config.yaml" "$HS_URL" "$BRIDGE_PORT" "$DEMO" "${SWITCHBOARD_DEMO_LOG:-info}" "$METRICS_PORT" "$WHISPER_PORT" <<'EOF'
import shutil, sys, yaml
path, hs_url, port, demo, log_filter, metrics_port, whisper_port = sys.argv[1:]
base = f"http://127.0.0.1:{port}"
config = {
    "homeserver": {"url": hs_url, "domain": "localhost"},
    "appservice": {
        "listen": f"127.0.0.1:{port}",
        "url": base,
        "public_url": base,
        "id": "switchboard",
        "bot_localpart": "switchboard",
        "bot_displayname": "Switchboard",
        "ghost_prefix": "sb_",
        "registration": f"{demo}/registration.yaml",
    },
    "database": {"url": f"sqlite://{demo}/switchboard.db"},
    "bridge": {
        "attribution": "none",
        "operators": {"@operator:localhost": "admin"},
        "max_attempts": 8,
        "retry_base": "2s",
        "retry_max": "10m",
    },
    "channels": {
        "webchat": {
            "enabled": True,
            "site_name": "Switchboard Demo",
            "greeting": "Hi! How can we help?",
            "greetings": {"ru": "Здравствуйте! Чем помочь?"},
            "allowed_origins": [base],
            "max_upload_bytes": 10485760,
            "rate_limit_per_minute": 30,
            "rate_limit_burst": 10,
        }
    },
    "logging": {"filter": log_filter},
    # Prometheus metrics, on in the demo (off unless set): curl the URL the script prints.
    "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
    # Voice notes (the Whisper server this script starts) and images (Tesseract, when installed).
    "media": {
        "transcription": {
            "url": f"http://127.0.0.1:{whisper_port}/v1/audio/transcriptions",
            "language": "ru,uk,id,en",
        },
        "ocr": {"enabled": shutil.which("tesseract") is not None},
    },
}
with open(path, "w") as f:
    f.write("# Written by scripts/demo.sh on every run; edit the script, not this file.\n")
    yaml.safe_dump(config, f, sort_keys=False)
EOF

# The bridge reads SWITCHBOARD_<SECTION>__<KEY> as config overrides: keep ours out of its way.
bridge_env() { env $(env | sed -n 's/^\(SWITCHBOARD_[A-Za-z0-9_]*\)=.*/-u \1/p') "$@"; }

bridge_env "$BIN" generate-registration -c "$DEMO/config.yaml" -r "$DEMO/registration.yaml" >&2

# ---- Synapse config -------------------------------------------------------------------------
if [ ! -f "$SYN/homeserver.yaml" ]; then
  log "generating a Synapse config in $SYN"
  (cd "$SYN" && "$PY" -m synapse.app.homeserver --server-name localhost --config-path "$SYN/homeserver.yaml" \
    --data-directory "$SYN" --generate-config --report-stats=no >&2)
fi
"$PY" - "$SYN/homeserver.yaml" "$HS_PORT" "$SYN" "$DEMO/registration.yaml" <<'EOF'
import sys, yaml, secrets
path, port, syn, registration = sys.argv[1:]
with open(path) as f:
    c = yaml.safe_load(f)
generous = {"per_second": 1000, "burst_count": 10000}
c.update({
    "listeners": [{
        "port": int(port), "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
        "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}],
    }],
    "database": {"name": "sqlite3", "args": {"database": f"{syn}/homeserver.db"}},
    "media_store_path": f"{syn}/media_store",
    "trusted_key_servers": [],
    "suppress_key_server_warning": True,
    "report_stats": False,
    "enable_registration": False,
    "max_upload_size": "50M",
    "url_preview_enabled": False,
    "presence": {"enabled": True},
    "user_directory": {"enabled": True, "search_all_users": True},
    "app_service_config_files": [registration],
    "rc_message": generous,
    "rc_login": {"address": generous, "account": generous, "failed_attempts": generous},
    "rc_joins": {"local": generous, "remote": generous},
    "rc_invites": {"per_room": generous, "per_user": generous, "per_issuer": generous},
})
c.setdefault("registration_shared_secret", secrets.token_hex(32))
with open(path, "w") as f:
    yaml.safe_dump(c, f, sort_keys=False)
EOF

# ---- run ------------------------------------------------------------------------------------
SYN_PID=""
BRIDGE_PID=""
WHISPER_PID=""
cleanup() {
  trap - INT TERM EXIT
  log "stopping"
  for pid in $BRIDGE_PID $SYN_PID $WHISPER_PID; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do
    alive=0
    for pid in $BRIDGE_PID $SYN_PID $WHISPER_PID; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in $BRIDGE_PID $SYN_PID $WHISPER_PID; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_url() { # url what pid log
  local url="$1" what="$2" pid="$3" logfile="$4"
  for _ in $(seq 600); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$what exited during startup; the end of $logfile:"; tail -n 40 "$logfile" >&2; return 1
    fi
    if "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  log "$what did not answer $url within 60 s; the end of $logfile:"; tail -n 40 "$logfile" >&2; return 1
}

log "starting Synapse on $HS_URL"
(cd "$SYN" && exec "$PY" -m synapse.app.homeserver --config-path "$SYN/homeserver.yaml") >>"$DEMO/synapse.out" 2>&1 &
SYN_PID=$!
wait_url "$HS_URL/_matrix/client/versions" Synapse "$SYN_PID" "$SYN/homeserver.log"

if [ ! -s "$DEMO/operator-password" ]; then
  "$PY" -c 'import secrets; print(secrets.token_urlsafe(12))' >"$DEMO/operator-password"
fi
PASSWORD="$(cat "$DEMO/operator-password")"
if out="$("$VENV/bin/register_new_matrix_user" -u operator -p "$PASSWORD" -a -c "$SYN/homeserver.yaml" "$HS_URL" 2>&1)"; then
  log "registered @operator:localhost"
elif grep -qi "taken\|in use" <<<"$out"; then
  : # registered on an earlier run
else
  log "registering the operator failed: $out"; exit 1
fi

log "starting the Whisper server on 127.0.0.1:$WHISPER_PORT"
# In the idle CPU and I/O classes: on the machine it shares with the bridge and Synapse it uses
# only the CPU they leave (README, "Voice messages and images").
HF_HUB_OFFLINE=1 chrt -i 0 ionice -c 3 "$WHISPER_VENV/bin/python" "$ROOT/scripts/whisper-server.py" --model "$WHISPER_VENV/model" \
  --port "$WHISPER_PORT" >>"$DEMO/whisper.log" 2>&1 &
WHISPER_PID=$!
wait_url "http://127.0.0.1:$WHISPER_PORT/health" "the Whisper server" "$WHISPER_PID" "$DEMO/whisper.log"

log "starting the bridge on $BRIDGE_URL"
(cd "$DEMO" && exec env $(env | sed -n 's/^\(SWITCHBOARD_[A-Za-z0-9_]*\)=.*/-u \1/p') \
  "$BIN" run -c "$DEMO/config.yaml") >>"$DEMO/bridge.log" 2>&1 &
BRIDGE_PID=$!
wait_url "$BRIDGE_URL/_switchboard/health" "the bridge" "$BRIDGE_PID" "$DEMO/bridge.log"

cat <<EOF

  Switchboard demo is running.

  Homeserver:      $HS_URL   (server name: localhost)
  Operator login:  @operator:localhost
        password:  $PASSWORD
  Web chat demo:   $BRIDGE_URL/webchat/demo
  Metrics:         http://127.0.0.1:$METRICS_PORT/metrics

  Open the web chat page and write as a customer; log in as the operator with any Matrix client
  pointed at the homeserver, accept the invite to the new room and answer there.
  Logs: $DEMO/bridge.log, $SYN/homeserver.log
  Ctrl-C stops both.

EOF

# Foreground until Ctrl-C, or until one of them dies.
set +e
wait -n "$SYN_PID" "$BRIDGE_PID"
status=$?
set -e
if kill -0 "$SYN_PID" 2>/dev/null; then
  log "the bridge exited ($status); the end of $DEMO/bridge.log:"; tail -n 30 "$DEMO/bridge.log" >&2
else
  log "Synapse exited ($status); the end of $SYN/homeserver.log:"; tail -n 30 "$SYN/homeserver.log" >&2
fi
exit 1
