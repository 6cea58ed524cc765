#!/usr/bin/env bash
# Start (or stop) a throwaway PostgreSQL server on 127.0.0.1 for the worker tests.
#   eval "$(.ci/postgres.sh start)"   prints `export SEARCH_TEST_POSTGRES=...; export PG_TEST_DIR=...`
#   .ci/postgres.sh stop "$PG_TEST_DIR"
# Installs Debian's postgresql package when no server binaries are found (CI machines).
set -euo pipefail
# a free port unless one is given (another server may hold the usual ones)
PORT="${PG_TEST_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

find_bin() {
  local c
  for c in "$(command -v pg_ctl || true)" /usr/lib/postgresql/*/bin/pg_ctl; do
    [ -x "$c" ] && { dirname "$(readlink -f "$c")"; return 0; }
  done
  return 1
}

as_pg() {  # the server refuses to run as root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
  if ! BIN=$(find_bin); then
    echo "installing PostgreSQL from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq postgresql; } >&2
    BIN=$(find_bin)
  fi
  DIR=$(mktemp -d /tmp/pgtest.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$DIR"
  as_pg "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=100" start >&2
  as_pg "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres search_test
  echo "export SEARCH_TEST_POSTGRES=postgresql+psycopg://postgres@127.0.0.1:$PORT/search_test"
  echo "export PG_TEST_DIR=$DIR"
  ;;
stop)
  DIR="${2:?give the PG_TEST_DIR}"
  BIN=$(find_bin)
  as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >&2 || true
  rm -rf "$DIR"
  ;;
*)
  echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac
