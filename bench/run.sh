#!/usr/bin/env bash
# The side-by-side load benchmark: this proxy against a bare
# httputil.ReverseProxy (the baseline), nginx and HAProxy, and against going
# straight to a backend.
#
#   bench/run.sh [-s scenario] [-d seconds] [-r rounds] [-o dir] [-m]
#
# -m adds two builds of this proxy to compare: with metrics off
# (sy-nometrics) and with the access log written to a file (sy-accesslog).
#
# scenarios:
#   c64      64 keep-alive connections (default)
#   c256     256 keep-alive connections
#   latency  64 connections, backends that take 1 ms to answer
#   idle     1,000 idle keep-alive client connections: memory only
#
# Every server is bound to 127.0.0.1. The proxy under test is pinned to CPU 0,
# wrk and the backends to CPU 1; each proxy runs one worker (GOMAXPROCS follows
# the pinning). Targets are measured in interleaved rounds, so that a noisy
# neighbour hurts them all alike. CPU per request is the proxy process's user
# plus system time (from /proc/PID/stat) over the run, divided by the
# requests served. Everything started is stopped on exit, also on Ctrl-C.
set -euo pipefail

scenario=c64 duration=8 rounds=3 out="" variants=""
while getopts "s:d:r:o:mh" opt; do
  case $opt in
    s) scenario=$OPTARG ;;
    d) duration=$OPTARG ;;
    r) rounds=$OPTARG ;;
    o) out=$OPTARG ;;
    m) variants=1 ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
  esac
done
case $scenario in
  c64) conns=64 delay=0 ;;
  c256) conns=256 delay=0 ;;
  latency) conns=64 delay=1ms ;;
  idle) conns=0 delay=0 ;;
  *) echo "run.sh: unknown scenario $scenario" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
out=${out:-$work}
mkdir -p "$out"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need=()
for cmd in wrk nginx haproxy taskset bc curl; do
  command -v "$cmd" >/dev/null || need+=("$cmd")
done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=("${need[@]/taskset/util-linux}")
  echo "installing ${pkgs[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get install -y "${pkgs[@]}" >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y "${pkgs[@]}" >/dev/null; }
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
export PATH=$PATH:/usr/sbin

echo "building" >&2
(cd "$root" && go build -o "$work/proxy" ./cmd/proxy && go build -o "$work/backend" ./bench/backend &&
  go build -o "$work/baseline" ./bench/baseline && go build -o "$work/idle" ./bench/idle)

b1=127.0.0.1:19001 b2=127.0.0.1:19002 b3=127.0.0.1:19003
declare -A port=([direct]=19001 [baseline]=19010 [switchyard]=19011 [nginx]=19013 [haproxy]=19014
  [sy-nometrics]=19021 [sy-accesslog]=19023)
declare -A pid

start() { # name, then the command; the process is pinned by the caller
  "${@:2}" >"$work/$1.log" 2>&1 &
  pids+=($!)
  pid[$1]=$!
}

wait_port() {
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "run.sh: nothing answers on port $1; logs in $work" >&2
  exit 1
}

# Measure only what this script starts: a port already taken would be
# someone else's server.
for p in 19001 19002 19003 19010 19011 19012 19013 19014 19021 19022 19023 19024; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "run.sh: port $p is already in use; stop whatever listens there" >&2
    exit 1
  fi
done

start backends taskset -c 1 "$work/backend" -addrs "$b1,$b2,$b3" -delay "$delay"
pid[direct]=${pid[backends]}
wait_port 19001

start baseline taskset -c 0 "$work/baseline" -addr "127.0.0.1:${port[baseline]}" \
  -backends "http://$b1,http://$b2,http://$b3"

# config PORT ADMIN_PORT EXTRA writes a config for this proxy.
config() {
  cat <<JSON
{"port": $1, "admin_addr": "127.0.0.1:$2", "strategy": "round-robin", $3
 "health_check_frequency": "10s", "backends": ["http://$b1", "http://$b2", "http://$b3"]}
JSON
}
config "${port[switchyard]}" 19012 "" >"$work/config.json"
start switchyard taskset -c 0 "$work/proxy" -config "$work/config.json" -log-level warn
if [ -n "$variants" ]; then
  config "${port[sy-nometrics]}" 19022 '"metrics": false,' >"$work/nometrics.json"
  start sy-nometrics taskset -c 0 "$work/proxy" -config "$work/nometrics.json" -log-level warn
  config "${port[sy-accesslog]}" 19024 "\"access_log\": \"$work/access.log\"," >"$work/accesslog.json"
  start sy-accesslog taskset -c 0 "$work/proxy" -config "$work/accesslog.json" -log-level warn
fi

for f in nginx.conf haproxy.cfg; do
  sed -e "s|@DIR@|$work|g" -e "s|@B1@|$b1|g" -e "s|@B2@|$b2|g" -e "s|@B3@|$b3|g" \
    -e "s|@PORT@|${port[${f%%.*}]}|g" "$root/bench/$f" >"$work/$f"
done
start nginx taskset -c 0 nginx -c "$work/nginx.conf" -p "$work"
start haproxy taskset -c 0 haproxy -f "$work/haproxy.cfg"

targets=(direct baseline switchyard nginx haproxy)
[ -z "$variants" ] || targets+=(sy-nometrics sy-accesslog)
for t in "${targets[@]}"; do wait_port "${port[$t]}"; done

# procs NAME: the PIDs whose CPU and memory count for a target (nginx's
# master and its worker).
procs() { echo "${pid[$1]}" $(pgrep -P "${pid[$1]}" 2>/dev/null || true); }
ticks() { local s=0; for p in $(procs "$1"); do
  s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $s; }
mem_kb() { local s=0; for p in $(procs "$1"); do
  s=$((s + $(awk -v k="$2:" '$1 == k {print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo $s; }
hz=$(getconf CLK_TCK)

# to_us converts one of wrk's latencies (850.00us, 1.20ms, 2.00s) to µs.
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else m = 1000000; printf "%.0f", n * m }'; }

echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $(date -u +%F)" >&2

if [ "$scenario" = idle ]; then
  printf "%-11s %12s %16s %10s\n" target "RSS before" "RSS 1000 idle" "per conn"
  for t in baseline switchyard nginx haproxy; do
    before=$(mem_kb "$t" VmRSS)
    "$work/idle" -addr "127.0.0.1:${port[$t]}" -n 1000 -hold 30s >"$work/idle.out" 2>&1 &
    ip=$!; pids+=($ip)
    for _ in $(seq 300); do grep -q ready "$work/idle.out" && break; sleep 0.1; done
    sleep 1
    with=$(mem_kb "$t" VmRSS)
    kill $ip; wait $ip 2>/dev/null || true
    printf "%-11s %9d KiB %13d KiB %7.1f KiB\n" "$t" "$before" "$with" "$(echo "($with - $before) / 1000" | bc -l)"
  done
  exit 0
fi

# Warm every target up (connections, page faults, JIT-less but still).
for t in "${targets[@]}"; do
  taskset -c 1 wrk -t1 -c"$conns" -d1s "http://127.0.0.1:${port[$t]}/" >/dev/null
done

for r in $(seq "$rounds"); do
  for t in "${targets[@]}"; do
    c0=$(ticks "$t")
    taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:${port[$t]}/" >"$out/$t.$r.txt"
    c1=$(ticks "$t")
    f=$out/$t.$r.txt
    reqs=$(awk '/requests in/ {print $1}' "$f")
    rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$f")
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$f")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$f")")
    errs=$(awk '/Socket errors/ {gsub(",", ""); s += $4 + $6 + $8 + $10} /Non-2xx/ {s += $NF} END {print s + 0}' "$f")
    cpu=$(echo "($c1 - $c0) * 1000000 / $hz / $reqs" | bc -l)
    echo "$t $rps $p50 $p99 $cpu $errs" >>"$work/results"
    printf "round %d %-10s %7d req/s  cpu %6.1f µs/req\n" "$r" "$t" "$rps" "$cpu" >&2
  done
done

median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
col() { awk -v t="$1" -v c="$2" '$1 == t {print $c}' "$work/results" | median; }
nginx_cpu=$(col nginx 5)
base_cpu=$(col baseline 5)
echo
echo "scenario $scenario: wrk -t1 -c$conns -d${duration}s, $rounds interleaved rounds, medians; $(date -u +%F), $(nproc) cores"
printf "| %-12s | %7s | %8s | %8s | %10s | %9s | %6s | %8s | %11s |\n" target "req/s" "p50 µs" "p99 µs" "CPU µs/req" "peak RSS" errors "vs nginx" "vs baseline"
printf "|%s|\n" "--------------|---------|----------|----------|------------|-----------|--------|----------|-------------"
for t in "${targets[@]}"; do
  cpu=$(col "$t" 5)
  errs=$(awk -v t="$t" '$1 == t {s += $6} END {print s + 0}' "$work/results")
  printf "| %-12s | %7d | %8d | %8d | %10.1f | %5d MiB | %6d | %7.2fx | %10.2fx |\n" "$t" "$(col "$t" 2)" "$(col "$t" 3)" \
    "$(col "$t" 4)" "$cpu" "$(($(mem_kb "$t" VmHWM) / 1024))" "$errs" \
    "$(echo "$cpu / $nginx_cpu" | bc -l)" "$(echo "$cpu / $base_cpu" | bc -l)"
done
echo "(direct: the backend process itself, for scale)"
