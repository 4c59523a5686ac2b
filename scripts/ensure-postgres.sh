#!/usr/bin/env bash
# Starts a private PostgreSQL cluster for the tests when no server is available, and prints its
# URL (postgres://postgres@127.0.0.1:PORT/postgres). Idempotent and flock-protected: a second
# run finds the cluster running and only prints the URL.
#
# - Installs Debian's `postgresql` with apt-get when no server binaries are found (as root).
# - The cluster lives in $SWITCHBOARD_PG_DIR, default $SWITCHBOARD_CACHE/pg (~/.cache/switchboard/pg);
#   when running as root and the `postgres` user cannot reach that directory (root's home is
#   private), it lives in /var/tmp/switchboard-pg instead. It runs as the `postgres` user when
#   we are root (PostgreSQL refuses to run as root), else as ourselves.
# - Listens on 127.0.0.1 only, port 5433 if free (else a free one, remembered in the data dir),
#   trust authentication, superuser `postgres`. Not stopped afterwards: the next test run reuses
#   it. Stop it with: pg_ctl -D <dir>/data stop
set -euo pipefail
CACHE="${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}"
log() { echo "ensure-postgres: $*" >&2; }

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(command -v initdb)"; return 0
  fi
  return 1
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

BINDIR="$(find_bindir || true)"
if [ -z "$BINDIR" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Do not let the package start (or fail to start) its own cluster in a container without
    # systemd: we run a private one.
    mkdir -p /etc/postgresql-common
    if [ ! -f /etc/postgresql-common/createcluster.conf ]; then
      echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
    BINDIR="$(find_bindir)" || { log "postgresql installed but initdb not found"; exit 1; }
  else
    log "PostgreSQL server binaries not found and cannot install them (not root / no apt-get)"
    exit 1
  fi
fi

AS_ROOT=0
[ "$(id -u)" = 0 ] && AS_ROOT=1
run_pg() {
  if [ "$AS_ROOT" = 1 ]; then
    if command -v runuser >/dev/null; then runuser -u postgres -- "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
  else
    "$@"
  fi
}

DIR="${SWITCHBOARD_PG_DIR:-$CACHE/pg}"
if [ "$AS_ROOT" = 1 ]; then
  id postgres >/dev/null 2>&1 || { log "user postgres does not exist (is the postgresql package installed?)"; exit 1; }
  mkdir -p "$DIR" 2>/dev/null || true
  if ! runuser -u postgres -- test -x "$DIR" 2>/dev/null; then
    DIR=/var/tmp/switchboard-pg
  fi
fi
mkdir -p "$DIR"
exec 9>"$DIR.lock"
flock 9

DATA="$DIR/data"
if [ "$AS_ROOT" = 1 ]; then chown postgres: "$DIR"; fi

if [ ! -f "$DATA/PG_VERSION" ]; then
  log "initialising a cluster in $DATA"
  rm -rf "$DATA"
  run_pg mkdir -p "$DATA"
  run_pg "$BINDIR/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >&2 \
    || run_pg "$BINDIR/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C >&2
fi

if [ -f "$DATA/switchboard-port" ]; then
  PORT="$(cat "$DATA/switchboard-port")"
else
  PORT=5433
  if ! port_free "$PORT"; then
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  fi
  echo "$PORT" | run_pg tee "$DATA/switchboard-port" >/dev/null
fi
URL="postgres://postgres@127.0.0.1:$PORT/postgres"

if ! run_pg "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  if ! port_free "$PORT"; then
    log "port $PORT is taken by something else; remove $DATA/switchboard-port to pick another"
    exit 1
  fi
  log "starting PostgreSQL on 127.0.0.1:$PORT"
  run_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >&2 9>&- || { log "pg_ctl start failed:"; tail -n 30 "$DIR/postgres.log" >&2 || true; exit 1; }
fi
echo "$URL"
