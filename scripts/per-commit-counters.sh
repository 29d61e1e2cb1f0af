#!/bin/bash
# Per-commit counters of running processes, for docs/performance.md §12:
# CPU (user + system, all threads), system calls by type and context
# switches per transaction committed on a primary, over an interval.
#
#   scripts/per-commit-counters.sh SECONDS PRIMARY_PORT LABEL=PID...
#
# Run it while a benchmark loads the primary (e.g. node dist/bench/quorum.js
# with WK_BENCH_QUORUM_SIDES=walkeeper and long WK_BENCH_QUORUM_SECONDS).
# Transactions are xact_commit of database "postgres" on the primary;
# counting needs perf with the syscalls tracepoints (perf_event_paranoid ≤ 2
# as root). A PID counts its threads and the children it starts meanwhile.
set -euo pipefail
secs=$1 port=$2
shift 2
xact() { psql -X -At -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "select xact_commit from pg_stat_database where datname = 'postgres'"; }
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # clock ticks (1/100 s)
events=raw_syscalls:sys_enter,context-switches
for s in read write writev pwrite64 pread64 fdatasync fsync futex epoll_pwait epoll_wait select pselect6 poll ppoll sendto recvfrom; do events+=",syscalls:sys_enter_$s"; done
out=$(mktemp -d)
declare -A cpu0
for lp in "$@"; do cpu0[${lp#*=}]=$(cpu "${lp#*=}"); done
x0=$(xact)
for lp in "$@"; do perf stat -x, -e "$events" -p "${lp#*=}" -- sleep "$secs" 2>"$out/${lp#*=}" >/dev/null & done
wait
tx=$(($(xact) - x0))
echo "$tx transactions in $secs s"
for lp in "$@"; do
  pid=${lp#*=}
  printf '%-10s CPU %5d µs/tx |' "${lp%%=*}" $((($(cpu "$pid") - cpu0[$pid]) * 10000 / tx))
  awk -F, -v tx="$tx" '$1 ~ /^[0-9]+$/ && $1 > 0 { n = $3; sub(/syscalls:sys_enter_/, "", n); sub(/raw_syscalls:sys_enter/, "syscalls", n); printf " %s %.2f", n, $1 / tx }' "$out/$pid"
  echo
done
rm -rf "$out"
