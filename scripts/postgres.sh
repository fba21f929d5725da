#!/usr/bin/env bash
# Run a private, unprivileged PostgreSQL for tests (no systemd, no system cluster needed).
#   scripts/postgres.sh start DIR PORT -> starts it on 127.0.0.1:PORT, prints:
#                                          export OCIREG_TEST_POSTGRES_URL=postgres://ocireg@127.0.0.1:PORT/postgres
#   scripts/postgres.sh stop DIR       -> stops it (0 if it was not running)
#   scripts/postgres.sh bindir         -> prints the folder of the server's binaries (1 if none)
# Everything (data, socket, log) lives under DIR; user `ocireg`, trust authentication, and
# durability off (fsync, synchronous_commit, full_page_writes): for tests only.
# PostgreSQL refuses to run as root: as root, DIR is given to the `postgres` user
# (POSTGRES_OS_USER) and initdb/pg_ctl run as that user through runuser.
# Binaries: POSTGRES_BINDIR, else `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin.
set -euo pipefail

usage() { echo "usage: $0 start DIR PORT | stop DIR | bindir" >&2; exit 2; }

START_TIMEOUT=${POSTGRES_START_TIMEOUT:-30}
STOP_TIMEOUT=${POSTGRES_STOP_TIMEOUT:-30}
OS_USER=${POSTGRES_OS_USER:-postgres}
DB_USER=ocireg

find_bindir() {
  local candidate
  if [ -n "${POSTGRES_BINDIR:-}" ]; then
    [ -x "$POSTGRES_BINDIR/initdb" ] && { echo "$POSTGRES_BINDIR"; return 0; }
    echo "POSTGRES_BINDIR=$POSTGRES_BINDIR holds no initdb" >&2
    return 1
  fi
  # Debian's /usr/bin/pg_config may come from the client package alone: check for the server too.
  if command -v pg_config >/dev/null && candidate=$(pg_config --bindir 2>/dev/null) && [ -x "$candidate/initdb" ]; then
    echo "$candidate"
    return 0
  fi
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4 -n -r); do
    [ -x "$candidate/initdb" ] && { echo "$candidate"; return 0; }
  done
  echo "no PostgreSQL server binaries found (install Debian's postgresql package, or set POSTGRES_BINDIR)" >&2
  return 1
}

cmd=${1:-}
case "$cmd" in
  bindir) [ $# -eq 1 ] || usage; find_bindir; exit $? ;;
  start) [ $# -eq 3 ] || usage ;;
  stop) [ $# -eq 2 ] || usage ;;
  *) usage ;;
esac

dir=$2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)   # absolute path
data="$dir/data"
log="$dir/postgres.log"

# Runs a server command as the owner of DIR: ourselves, or OS_USER when we are root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$OS_USER" -- "$@"
  else
    "$@"
  fi
}

# The postmaster's pid, from the first line of its pidfile, if that process is alive.
running_pid() {
  local pid
  [ -s "$data/postmaster.pid" ] || return 1
  pid=$(head -n 1 "$data/postmaster.pid")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

start() {
  local port=$1 bin pid
  case "$port" in ''|*[!0-9]*) echo "PORT must be a number, not $port" >&2; exit 2 ;; esac
  bin=$(find_bindir) || exit 1
  # The server's unix socket goes in DIR too (none in /var/run/postgresql, which may not exist).
  local sock="$dir/.s.PGSQL.$port"
  if [ ${#sock} -gt 100 ]; then
    echo "socket path too long (${#sock} chars): $sock; use a shorter DIR" >&2
    exit 2
  fi
  if [ "$(id -u)" -eq 0 ]; then
    id -u "$OS_USER" >/dev/null 2>&1 || { echo "running as root needs the user $OS_USER (POSTGRES_OS_USER)" >&2; exit 1; }
    chown "$OS_USER" "$dir"
    # The server appends to the log as that user too.
    touch "$log"
    chown "$OS_USER" "$log"
    if ! runuser -u "$OS_USER" -- test -w "$dir"; then
      echo "$OS_USER cannot reach $dir (a parent folder is closed to it); use a folder under /tmp" >&2
      exit 1
    fi
  fi

  if pid=$(running_pid); then
    local running_port
    running_port=$(sed -n 4p "$data/postmaster.pid" | tr -d ' ')
    echo "postgres already running in $dir (pid $pid, port $running_port)" >&2
    port=$running_port
  else
    if [ ! -s "$data/PG_VERSION" ]; then
      # C locale and UTF-8: the cluster's own order is byte order; test databases choose theirs.
      as_owner "$bin/initdb" -D "$data" -U "$DB_USER" -A trust -E UTF8 --no-locale --no-sync >>"$log" 2>&1 || {
        echo "initdb failed; last log lines:" >&2
        tail -n 30 "$log" >&2 || true
        exit 1
      }
    fi
    # -W: do not let pg_ctl wait; the loop below waits, bounded, and reports a failed start.
    as_owner "$bin/pg_ctl" -D "$data" -l "$log" -W -o "-p $port -k '$dir' -c listen_addresses=127.0.0.1 \
-c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null
  fi

  local began=$SECONDS deadline=$((SECONDS + START_TIMEOUT))
  until ours_ready "$bin" "$port"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "postgres did not answer on 127.0.0.1:$port within ${START_TIMEOUT}s; last log lines:" >&2
      tail -n 30 "$log" >&2 || true
      stop >/dev/null 2>&1 || true
      exit 1
    fi
    # A postmaster that died (e.g. the port was taken) removes its pidfile; give it a moment
    # to write one first.
    if { [ -s "$data/postmaster.pid" ] || [ $((SECONDS - began)) -ge 2 ]; } && ! running_pid >/dev/null; then
      echo "postgres exited during startup; last log lines:" >&2
      tail -n 30 "$log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  echo "export OCIREG_TEST_POSTGRES_URL=postgres://$DB_USER@127.0.0.1:$port/postgres"
}

# Whether our postmaster says it is ready on PORT and pg_isready gets an answer there: another
# server on that port answers pg_isready too, but it is not ours.
ours_ready() {  # ours_ready BINDIR PORT
  running_pid >/dev/null || return 1
  [ "$(sed -n 4p "$data/postmaster.pid" | tr -d ' ')" = "$2" ] || return 1
  [ "$(sed -n 8p "$data/postmaster.pid" | tr -d ' ')" = ready ] || return 1
  "$1/pg_isready" -q -h 127.0.0.1 -p "$2" -U "$DB_USER" -d postgres -t 2
}

# true while PID exists
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

wait_gone() {  # wait_gone PID SECONDS
  local deadline=$((SECONDS + $2))
  while alive "$1" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  ! alive "$1"
}

stop() {
  local pid bin
  if ! pid=$(running_pid); then
    echo "postgres not running" >&2
    return 0
  fi
  bin=$(find_bindir) || bin=""
  # fast: roll back open transactions and disconnect clients (tests may leave some open).
  if [ -n "$bin" ]; then
    as_owner "$bin/pg_ctl" -D "$data" -m fast -t "$STOP_TIMEOUT" -W stop >/dev/null 2>&1 || true
  else
    kill -INT "$pid" 2>/dev/null || true
  fi
  if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
    echo "postgres (pid $pid) did not stop within ${STOP_TIMEOUT}s; sending SIGQUIT, then SIGKILL" >&2
    kill -QUIT "$pid" 2>/dev/null || true
    wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 15 || echo "warning: pid $pid still present" >&2
  fi
  echo "postgres stopped" >&2
}

case "$cmd" in
  start) start "$3" ;;
  stop) stop ;;
esac
