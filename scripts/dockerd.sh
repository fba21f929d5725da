#!/usr/bin/env bash
# Run a private, network-less dockerd for end-to-end tests (no systemd needed).
#   scripts/dockerd.sh start DIR   -> starts dockerd, prints: export DOCKER_HOST=unix://DIR/docker.sock
#   scripts/dockerd.sh stop DIR    -> stops it (0 if it was not running)
# Everything (data-root, exec-root, pidfile, socket, log) lives under DIR.
# Keep DIR short: unix socket paths are limited to ~108 bytes (e.g. /tmp/dk).
# DOCKERD_EXTRA_ARGS: more dockerd flags, split on spaces (e.g. "--registry-mirror http://127.0.0.1:5000").
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)   # absolute path

sock="$dir/docker.sock"
pidfile="$dir/dockerd.pid"
log="$dir/dockerd.log"
START_TIMEOUT=${DOCKERD_START_TIMEOUT:-60}
STOP_TIMEOUT=${DOCKERD_STOP_TIMEOUT:-30}
read -r -a EXTRA_ARGS <<<"${DOCKERD_EXTRA_ARGS:-}"

# Client used for the readiness probe: first `docker` on PATH (28.x or 20.10, both work).
DOCKER_CLI=${DOCKER_CLI:-$(command -v docker)}

if [ ${#sock} -gt 100 ]; then
  echo "socket path too long (${#sock} chars): $sock; use a shorter DIR" >&2
  exit 2
fi

running_pid() {
  local pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

start() {
  if pid=$(running_pid); then
    echo "dockerd already running (pid $pid)" >&2
  else
    command -v dockerd >/dev/null || { echo "dockerd not installed (run scripts/install-e2e-deps.sh)" >&2; exit 1; }
    rm -f "$sock" "$pidfile"
    mkdir -p "$dir/data" "$dir/exec"
    # setsid: own session, so a Ctrl-C in the caller's terminal does not reach the daemon.
    # -w: if setsid has to fork, it waits, so $! lives exactly as long as dockerd.
    setsid -w dockerd \
      --data-root "$dir/data" \
      --exec-root "$dir/exec" \
      --pidfile "$pidfile" \
      --host "unix://$sock" \
      --iptables=false --ip6tables=false --bridge=none \
      --storage-driver=vfs \
      ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"} \
      </dev/null >>"$log" 2>&1 &
    # dockerd writes its own pidfile, but record the pid now in case it dies early.
    echo $! >"$pidfile.launch"
  fi

  local deadline=$((SECONDS + START_TIMEOUT))
  until "$DOCKER_CLI" -H "unix://$sock" version >/dev/null 2>&1; do
    if [ -s "$pidfile.launch" ] && ! kill -0 "$(cat "$pidfile.launch")" 2>/dev/null \
       && ! running_pid >/dev/null; then
      echo "dockerd exited during startup; last log lines:" >&2
      tail -n 30 "$log" >&2 || true
      stop >/dev/null 2>&1 || true
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "dockerd did not answer within ${START_TIMEOUT}s; last log lines:" >&2
      tail -n 30 "$log" >&2 || true
      stop >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.5
  done
  rm -f "$pidfile.launch"
  echo "export DOCKER_HOST=unix://$sock"
}

# true while PID exists (including as an unreaped zombie, which still holds its pid)
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

wait_gone() {  # wait_gone PID SECONDS
  local deadline=$((SECONDS + $2))
  while alive "$1" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  ! alive "$1"
}

unmount_leftovers() {
  # After a SIGKILL dockerd leaves its bind mount of the data-root (and maybe others) behind.
  local m
  awk -v d="$dir/" '{ if (index($5 "/", d) == 1) print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}

stop() {
  local pid cpid=""
  pid=$(running_pid || true)
  if [ -z "$pid" ] && [ -s "$pidfile.launch" ] && alive "$(cat "$pidfile.launch")"; then
    pid=$(cat "$pidfile.launch")
  fi
  [ -s "$dir/exec/containerd/containerd.pid" ] && cpid=$(cat "$dir/exec/containerd/containerd.pid")
  if [ -z "$pid" ]; then
    rm -f "$pidfile" "$pidfile.launch"
    unmount_leftovers
    echo "dockerd not running" >&2
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
    echo "dockerd (pid $pid) did not stop within ${STOP_TIMEOUT}s; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    # the managed containerd it spawned would be left behind
    if [ -n "$cpid" ] && alive "$cpid"; then kill -KILL "$cpid" 2>/dev/null || true; fi
    # killed processes linger as zombies until init reaps them; a lingering containerd
    # pid would make the next dockerd start wait on a dead containerd, so wait for reaping.
    wait_gone "$pid" 15 || echo "warning: pid $pid still present" >&2
    if [ -n "$cpid" ]; then wait_gone "$cpid" 15 || echo "warning: containerd pid $cpid still present" >&2; fi
  fi
  unmount_leftovers
  rm -f "$pidfile" "$pidfile.launch" "$sock"
  echo "dockerd stopped" >&2
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
