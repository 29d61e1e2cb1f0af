#!/usr/bin/env bash
# What one sync round (read a request, pwrite, fdatasync, reply) costs in CPU
# in C, in Node with the fdatasync on the thread pool, in Node blocking, and
# in a walkeeper daemon (an AppendRequest of real WAL; daemon.mjs).
# Usage: scripts/sync-floor/run.sh [ROUNDS] [SIZE] (needs cc, Node 24 on PATH,
# a build, and the replication benchmark's cached WAL)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-5000}
size=${2:-300}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/server-c" "$here/server.c"
port=$((20000 + RANDOM % 20000))
run() {
  local label=$1; shift
  "$@" > "$tmp/out" &
  local pid=$!
  until grep -q ready "$tmp/out" 2>/dev/null; do sleep 0.05; done
  printf '%-22s ' "$label"
  node "$here/driver.mjs" "$port" "$pid" "$rounds" "$size"
  wait "$pid" || true
  port=$((port + 1))
}
for round in 1 2; do
  run "C" "$tmp/server-c" "$port" "$tmp/wal-c"
  run "Node, thread pool" node "$here/server.mjs" "$port" "$tmp/wal-pool"
  SYNC=inline run "Node, blocking" node "$here/server.mjs" "$port" "$tmp/wal-inline"
  printf '%-22s ' "walkeeper daemon"
  node "$here/daemon.mjs" "$rounds" "$size"
done
