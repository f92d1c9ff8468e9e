#!/usr/bin/env bash
# The soak: a leak hunt. Runs the real proxy for a while under a moderate,
# mixed load while its backends are killed and restarted and its admin API
# is churned, and fails if the proxy's goroutines, heap, RSS or open file
# descriptors grow steadily, or if a request fails in a way the kills do
# not explain.
#
#   bench/soak.sh [-d duration] [-o dir]
#
# -d  how long the load runs, a Go duration (default 10m; -d 2m for a quick
#     look; at least 1m)
# -o  copy the logs (proxy, access log, backends, the soak's output, every
#     sample as CSV) there
#
# What runs (bench/soak is the load, the backends and the churn, in Go):
#   - the proxy, built from cmd/proxy, on 127.0.0.1:19100 with its admin API on
#     127.0.0.1:19110 (the proxy binds its port on every interface: its config
#     has no listen address; everything the soak sends goes to 127.0.0.1), least
#     connections over three soak backends (19101-19103), checked every 2s, an
#     access log and a state file;
#   - the soak backends, one process each (a kill is a crash), and a spare
#     (19104): answers of any size, /upload (reads and hashes the body), /ws
#     (101, then echoes), /slow (a large body, slowly);
#   - the load, about 230 requests a second: keep-alive GETs, GETs on a new
#     connection each, uploads of 200-600 KiB (sized or chunked), upgraded
#     connections exchanging messages, slow streams, slow readers (4 MiB read
#     4 KiB at a time) and readers that stop and hang up. Every byte of every
#     body is checked against a pattern seeded per request;
#   - the churn, every minute: two backends killed (SIGKILL) and restarted 4s
#     later, the spare added, re-weighted and removed, a backend put on drain
#     and back to ready, and the config edited (a weight, request_timeout) and
#     reloaded through POST /reload.
# The proxy is pinned to CPU 0 and everything else to CPU 1 when taskset is
# there and the machine has two CPUs. The ports are checked free first, and
# everything started is stopped on exit, also on Ctrl-C.
#
# Output: a row at the start and at the end of each minute with the proxy's
# go_goroutines, go_memstats_heap_inuse_bytes, process_resident_memory_bytes
# and process_open_fds (its admin /metrics) and the minute's counts; then the
# totals by kind of load and the errors by kind, and the verdict.
#
# The criterion. /metrics is read every 5s. The first fifth of the run (at
# most 2 minutes) is warm-up and is not judged. A resource GROWS if both
#   1. the median of the last minute's samples exceeds the median of the
#      first minute after the warm-up (for 10m: minute 3 against minute 10) by
#      more than max(abs, rel x that early median), and
#   2. the Theil-Sen slope of all samples after the warm-up (the median of
#      the slopes between every pair of samples, which outliers cannot move)
#      rises by more than half of that allowance over the judged span;
# with (abs, rel): goroutines (25, 15%), heap in use (4 MiB, 25%), RSS (8
# MiB, 15%), open fds (15, 15%). Medians ignore a GC cycle or a burst of
# connections at one sample; the slope rules out a dip in the early minute
# or a step in the last seconds; a staircase (something leaked per kill or
# per reload) meets both. Then, once the load has stopped, the proxy idles
# until its idle backend connections have timed out (backend_idle_timeout,
# 10s here; 15-30s): its idle floor (the least of 3 readings a second
# apart) must come back within 10 goroutines and 5 fds of its idle floor
# before the load (the least of 5 readings; the "start" row). Every backend
# must then show 0 requests in flight, and none may be left draining.
#
# Errors. Expected, and counted apart, are only what the README promises a
# backend kill may cause: an upload in flight to the killed backend gets
# 502 (or its connection broken) promptly after the kill, and an answer or
# an upgraded connection from the killed backend that was under way at the
# kill is cut short. Anything else is unexpected and fails the soak: a GET
# that fails (GETs are retried on another backend), a 503 (never more than
# one backend is down or draining), a byte that is not the pattern, a short
# body passed off as complete, an admin call or a reload answered wrongly.
#
# Exit status: 0 pass, 1 fail (the reasons are printed last), 2 bad usage.
# On a failure the work directory with every log is kept and named.
set -euo pipefail

duration=10m out=""
while getopts "d:o:h" opt; do
  case $opt in
    d) duration=$OPTARG ;;
    o) out=$OPTARG ;;
    *) sed -n '2,/^set -e/{/^set -e/!p}' "$0"; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
keep=""
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$out" ]; then mkdir -p "$out" && cp "$work"/*.log "$work"/*.txt "$work"/*.csv "$out"/ 2>/dev/null || true; fi
  if [ -n "$keep" ]; then echo "soak.sh: logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

proxy_port=19100 admin_port=19110 pool=(19101 19102 19103) spare=19104
for p in $proxy_port $admin_port "${pool[@]}" $spare; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "soak.sh: port $p is already in use; stop whatever listens there" >&2
    exit 1
  fi
done

pin0=() pin1=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin0=(taskset -c 0) pin1=(taskset -c 1)
else
  echo "soak.sh: taskset or a second CPU missing: nothing is pinned" >&2
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "building" >&2
(cd "$root" && go build -o "$work/proxy" ./cmd/proxy && go build -o "$work/soak" ./bench/soak)

backends=$(printf '"http://127.0.0.1:%s", ' "${pool[@]}")
cat >"$work/config.json" <<JSON
{
  "port": $proxy_port,
  "admin_addr": "127.0.0.1:$admin_port",
  "strategy": "least-connections",
  "health_check_frequency": "2s",
  "backend_idle_timeout": "10s",
  "request_timeout": "30s",
  "access_log": "$work/access.log",
  "state_file": "$work/state.json",
  "backends": [${backends%, }]
}
JSON

# The backends first (the soak starts them), then the proxy: started the
# other way round, the first health checks would find them down.
pool_addrs=$(printf '127.0.0.1:%s,' "${pool[@]}")
"${pin1[@]}" "$work/soak" -proxy "127.0.0.1:$proxy_port" -admin "127.0.0.1:$admin_port" \
  -config "$work/config.json" -pool "${pool_addrs%,}" -spare "127.0.0.1:$spare" \
  -d "$duration" -settle 30s -logs "$work" -samples "$work/samples.csv" > >(tee "$work/soak.txt") &
soak_pid=$!
pids+=("$soak_pid")
for _ in $(seq 100); do
  all=1
  for p in "${pool[@]}" $spare; do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || all=""; done
  [ -n "$all" ] && break
  kill -0 "$soak_pid" 2>/dev/null || break
  sleep 0.1
done
if ! kill -0 "$soak_pid" 2>/dev/null; then # bad flags, or a backend that would not start
  rc=0
  wait "$soak_pid" || rc=$?
  exit "$rc"
fi
"${pin0[@]}" "$work/proxy" -config "$work/config.json" -log-level info >"$work/proxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")

rc=0
wait "$soak_pid" || rc=$?
if ! kill -0 "$proxy_pid" 2>/dev/null; then
  echo "soak.sh: FAIL: the proxy exited during the soak; see $work/proxy.log" >&2
  rc=1
fi
if grep -qi panic "$work/proxy.log"; then
  echo "soak.sh: FAIL: the proxy logged a panic:" >&2
  grep -i -m5 panic "$work/proxy.log" >&2
  rc=1
fi
echo "proxy log: $(wc -l <"$work/proxy.log") lines, $(grep -c "level=WARN\|level=ERROR" "$work/proxy.log" || true) of them warnings or errors" >&2
[ "$rc" -eq 0 ] || keep=1
exit "$rc"
