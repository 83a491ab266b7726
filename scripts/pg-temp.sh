#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests, on 127.0.0.1 and an ephemeral port.
#
#   scripts/pg-temp.sh start DIR    initdb + start in DIR (created if missing, must be
#                                   empty); prints the DATABASE_URL once it accepts
#                                   connections
#   scripts/pg-temp.sh restart DIR  pg_ctl restart -m fast (same port)
#   scripts/pg-temp.sh stop DIR     pg_ctl stop -m fast, then removes DIR
#
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` user
# (DIR is chowned to it); otherwise as the current user. Trust authentication and
# fsync=off: for tests only. PG_BIN overrides where initdb/pg_ctl are looked up.
# A freshly initialised cluster is cached in $TMPDIR/gw-pg-template-<uid>-<version>
# and copied for the next start (delete it to force a new initdb).
set -euo pipefail

usage() {
  echo "usage: $0 start|restart|stop DIR" >&2
  exit 2
}
[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2

find_pg_bin() {
  if [[ -n ${PG_BIN:-} ]]; then
    echo "$PG_BIN"
    return
  fi
  local d
  # Newest installed major version first.
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
    if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
      echo "$d"
      return
    fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(command -v initdb)"
    return
  fi
  echo "pg-temp: no PostgreSQL server binaries found (set PG_BIN)" >&2
  exit 1
}

# Runs a command as the user that owns the cluster.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
  else
    echo $((20000 + RANDOM % 40000))
  fi
}

pg_bin=$(find_pg_bin)

case $cmd in
  start)
    mkdir -p "$dir"
    if [[ -n $(ls -A "$dir") ]]; then
      echo "pg-temp: $dir is not empty" >&2
      exit 1
    fi
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) -eq 0 ]]; then
      chown postgres: "$dir"
      # The postgres user must reach DIR: temp dirs (mktemp -d) are mode 700.
      p=$(dirname "$dir")
      while [[ $p != / ]]; do
        runuser -u postgres -- test -x "$p" || chmod o+x "$p"
        p=$(dirname "$p")
      done
    fi
    # initdb is most of the start-up time: copy a cached, freshly initialised cluster
    # when there is one (owned by the cluster's user), else make one and cache it.
    cache="${TMPDIR:-/tmp}/gw-pg-template-$(id -u)-$(basename "$(dirname "$pg_bin")")"
    if [[ -d $cache/data ]] && as_owner test -O "$cache" && as_owner cp -a "$cache/data" "$dir/data"; then
      :
    else
      as_owner rm -rf "$dir/data"  # a partial copy
      as_owner "$pg_bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync \
        --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
      }
      if [[ ! -e $cache ]]; then
        # Built aside and renamed into place: concurrent starts never see half a copy.
        tmp="$cache.tmp.$$"
        if as_owner mkdir "$tmp" && as_owner cp -a "$dir/data" "$tmp/data"; then
          as_owner mv -T "$tmp" "$cache" 2>/dev/null || true
        fi
        as_owner rm -rf "$tmp"
      fi
    fi
    # Another process may take the port between free_port and the server's bind: retry.
    for _ in 1 2 3 4 5; do
      port=$(free_port)
      opts="-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir"
      opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
      if as_owner "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "$opts" start >/dev/null; then
        echo "$port" >"$dir/port"
        echo "postgresql://postgres@127.0.0.1:$port/postgres"
        exit 0
      fi
    done
    cat "$dir/server.log" >&2 || true
    exit 1
    ;;
  restart)
    # pg_ctl restart reuses the options of the last start (postmaster.opts).
    as_owner "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -m fast \
      restart >/dev/null
    ;;
  stop)
    if [[ -d $dir/data ]]; then
      as_owner "$pg_bin/pg_ctl" -D "$dir/data" -w -t 60 -m fast stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
  *)
    usage
    ;;
esac
