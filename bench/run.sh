#!/usr/bin/env bash
# The side-by-side load benchmark: this proxy against a bare
# httputil.ReverseProxy (the baseline), nginx and HAProxy, and against going
# straight to a backend.
#
#   bench/run.sh [-s scenario] [-d seconds] [-r rounds] [-o dir] [-m] [-x binary]
#
# -m adds two builds of this proxy to compare: with metrics off
# (sy-nometrics) and with the access log written to a file (sy-accesslog).
# -x adds another build of the proxy (sy-x), such as one of an earlier
# commit, to measure a change side by side in one run:
#   git worktree add /tmp/before HEAD~1 && (cd /tmp/before && go build -o /tmp/proxy-before ./cmd/proxy)
#   bench/run.sh -x /tmp/proxy-before
#
# scenarios:
#   c64             64 keep-alive connections (default)
#   c256            256 keep-alive connections
#   latency         64 connections, backends that take 1 ms to answer
#   idle            1,000 idle keep-alive client connections: memory only
#   https           64 keep-alive HTTP/1.1 connections over TLS (wrk)
#   h2              HTTP/2 over TLS, 8 connections of 8 streams each (h2load)
#   tls-handshakes  a new TLS connection for each request, 16 at a time
#                   (bench/handshake: full handshakes, never a resumption)
#
# The TLS scenarios use an ECDSA P-256 certificate made for the run, the
# same for every server, TLS 1.2 or later, each server's default ciphers;
# the backends are spoken to in HTTP/1.1 over keep-alive, as in the others.
# The direct target has no TLS and sits them out.
#
# Every server is bound to 127.0.0.1 (but this proxy's port and tls.port,
# which take every interface: it has no setting for an address), and all the
# load goes to 127.0.0.1. The proxy under test is pinned to CPU 0, the load
# generator (wrk, h2load or bench/handshake) and the backends to CPU 1; each
# proxy runs one worker (GOMAXPROCS follows the pinning). Targets are
# measured in interleaved rounds, so that a noisy neighbour hurts them all
# alike. CPU per request (or handshake) is the proxy process's user plus
# system time (from /proc/PID/stat) over the run, divided by the requests
# (handshakes) done; "CPU busy" says how much of its core each proxy used,
# so that a proxy the load generator could not keep busy shows as such.
# Everything started is stopped on exit, also on Ctrl-C.
set -euo pipefail

scenario=c64 duration=8 rounds=3 out="" variants="" other=""
while getopts "s:d:r:o:mx:h" opt; do
  case $opt in
    s) scenario=$OPTARG ;;
    d) duration=$OPTARG ;;
    r) rounds=$OPTARG ;;
    o) out=$OPTARG ;;
    m) variants=1 ;;
    x) other=$(realpath "$OPTARG") ;;
    *) sed -n '2,40p' "$0"; exit 2 ;;
  esac
done
tls="" streams=1 unit=req
case $scenario in
  c64) conns=64 delay=0 ;;
  c256) conns=256 delay=0 ;;
  latency) conns=64 delay=1ms ;;
  idle) conns=0 delay=0 ;;
  https) conns=64 delay=0 tls=1 ;;
  h2) conns=8 streams=8 delay=0 tls=1 ;;
  tls-handshakes) conns=16 delay=0 tls=1 unit=hs ;;
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

# The Debian package of each command this script runs.
declare -A pkg=([wrk]=wrk [nginx]=nginx [haproxy]=haproxy [taskset]=util-linux [bc]=bc [curl]=curl
  [openssl]=openssl [h2load]=nghttp2-client)
cmds=(wrk nginx haproxy taskset bc curl)
[ -z "$tls" ] || cmds+=(openssl)
[ "$scenario" != h2 ] || cmds+=(h2load)
pkgs=()
for cmd in "${cmds[@]}"; do
  command -v "$cmd" >/dev/null || PATH=$PATH:/usr/sbin command -v "$cmd" >/dev/null || pkgs+=("${pkg[$cmd]}")
done
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "installing ${pkgs[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get install -y "${pkgs[@]}" >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y "${pkgs[@]}" >/dev/null; }
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
export PATH=$PATH:/usr/sbin

echo "building" >&2
(cd "$root" && go build -o "$work/proxy" ./cmd/proxy && go build -o "$work/backend" ./bench/backend &&
  go build -o "$work/baseline" ./bench/baseline && go build -o "$work/idle" ./bench/idle &&
  go build -o "$work/handshake" ./bench/handshake)

b1=127.0.0.1:19001 b2=127.0.0.1:19002 b3=127.0.0.1:19003
declare -A port=([direct]=19001 [baseline]=19010 [switchyard]=19011 [nginx]=19013 [haproxy]=19014
  [sy-nometrics]=19021 [sy-accesslog]=19023 [sy-x]=19025)
# The TLS port of each target, in the TLS scenarios.
declare -A tport=([baseline]=19030 [switchyard]=19031 [nginx]=19033 [haproxy]=19034
  [sy-nometrics]=19041 [sy-accesslog]=19043 [sy-x]=19045)
declare -A pid

# url TARGET is where the load goes.
url() {
  if [ -n "$tls" ]; then echo "https://127.0.0.1:${tport[$1]}/"; else echo "http://127.0.0.1:${port[$1]}/"; fi
}

start() { # name, then the command; the process is pinned by the caller
  "${@:2}" >"$work/$1.log" 2>&1 &
  pids+=($!)
  pid[$1]=$!
}

wait_url() {
  for _ in $(seq 100); do
    curl -fsSk -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "run.sh: nothing answers at $1; logs in $work" >&2
  exit 1
}

# Measure only what this script starts: a port already taken would be
# someone else's server.
for p in 19001 19002 19003 19010 19011 19012 19013 19014 19021 19022 19023 19024 19025 19026 19030 19031 \
  19033 19034 19041 19043 19045; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "run.sh: port $p is already in use; stop whatever listens there" >&2
    exit 1
  fi
done

if [ -n "$tls" ]; then
  # One self-signed ECDSA P-256 certificate for every server; HAProxy wants
  # the chain and the key in one file.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
  cat "$work/tls.crt" "$work/tls.key" >"$work/tls.pem"
fi

start backends taskset -c 1 "$work/backend" -addrs "$b1,$b2,$b3" -delay "$delay"
pid[direct]=${pid[backends]}
wait_url "http://$b1/"

baseline_tls=()
[ -z "$tls" ] || baseline_tls=(-tls-addr "127.0.0.1:${tport[baseline]}" -cert "$work/tls.crt" -key "$work/tls.key")
start baseline taskset -c 0 "$work/baseline" -addr "127.0.0.1:${port[baseline]}" \
  -backends "http://$b1,http://$b2,http://$b3" "${baseline_tls[@]}"

# config TARGET ADMIN_PORT EXTRA writes a config for this proxy.
config() {
  local tlscfg=""
  [ -z "$tls" ] || tlscfg="\"tls\": {\"port\": ${tport[$1]}, \"min_version\": \"1.2\",
 \"certificates\": [{\"cert_file\": \"$work/tls.crt\", \"key_file\": \"$work/tls.key\"}]},"
  cat <<JSON
{"port": ${port[$1]}, "admin_addr": "127.0.0.1:$2", "strategy": "round-robin", $3 $tlscfg
 "health_check_frequency": "10s", "backends": ["http://$b1", "http://$b2", "http://$b3"]}
JSON
}
config switchyard 19012 "" >"$work/config.json"
start switchyard taskset -c 0 "$work/proxy" -config "$work/config.json" -log-level warn
if [ -n "$variants" ]; then
  config sy-nometrics 19022 '"metrics": false,' >"$work/nometrics.json"
  start sy-nometrics taskset -c 0 "$work/proxy" -config "$work/nometrics.json" -log-level warn
  config sy-accesslog 19024 "\"access_log\": \"$work/access.log\"," >"$work/accesslog.json"
  start sy-accesslog taskset -c 0 "$work/proxy" -config "$work/accesslog.json" -log-level warn
fi
if [ -n "$other" ]; then
  config sy-x 19026 "" >"$work/other.json"
  start sy-x taskset -c 0 "$other" -config "$work/other.json" -log-level warn
fi

for f in nginx.conf haproxy.cfg; do
  keep_tls=(-e '/# tls$/d')
  [ -z "$tls" ] || keep_tls=()
  sed "${keep_tls[@]}" -e "s|@DIR@|$work|g" -e "s|@B1@|$b1|g" -e "s|@B2@|$b2|g" -e "s|@B3@|$b3|g" \
    -e "s|@PORT@|${port[${f%%.*}]}|g" -e "s|@TLSPORT@|${tport[${f%%.*}]}|g" "$root/bench/$f" >"$work/$f"
done
start nginx taskset -c 0 nginx -c "$work/nginx.conf" -p "$work"
start haproxy taskset -c 0 haproxy -f "$work/haproxy.cfg"

targets=(direct baseline switchyard nginx haproxy)
[ -z "$tls" ] || targets=(baseline switchyard nginx haproxy)
[ -z "$variants" ] || targets+=(sy-nometrics sy-accesslog)
[ -z "$other" ] || targets+=(sy-x)
for t in "${targets[@]}"; do wait_url "$(url "$t")"; done

# procs NAME: the PIDs whose CPU and memory count for a target (nginx's
# master and its worker).
procs() { echo "${pid[$1]}" $(pgrep -P "${pid[$1]}" 2>/dev/null || true); }
ticks() { local s=0; for p in $(procs "$1"); do
  s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $s; }
sys_ticks() { local s=0; for p in $(procs "$1"); do
  s=$((s + $(awk '{print $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $s; }
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

# load TARGET SECONDS FILE runs the scenario's client against TARGET, on
# the backends' CPU, and leaves its report in FILE.
load() {
  case $scenario in
    h2) # h2load appends to its log: start each run on a new one.
      rm -f "$work/h2load.log"
      taskset -c 1 h2load -c"$conns" -m"$streams" -D"$2" --log-file="$work/h2load.log" "$(url "$1")" >"$3" ;;
    tls-handshakes) taskset -c 1 "$work/handshake" -addr "127.0.0.1:${tport[$1]}" -c "$conns" -d "$2s" >"$3" 2>>"$work/handshake.log" ;;
    *) taskset -c 1 wrk -t1 -c"$conns" -d"$2s" --latency "$(url "$1")" >"$3" ;;
  esac
}

# summary FILE prints "done rate p50_µs p99_µs errors" from load's report:
# requests (handshakes) done, per second, and those that failed.
summary() {
  case $scenario in
    h2)
      # h2load has no percentiles: they come from its log of every request
      # (µs to the end of the answer in the third column). Failed counts
      # the non-2xx answers too.
      local pp
      pp=$(cut -f3 "$work/h2load.log" | sort -n |
        awk '{a[NR] = $1} END {i = int(NR * 0.99); if (i < 1) i = 1; print a[int((NR + 1) / 2)] + 0, a[i] + 0}')
      awk -v pp="$pp" '/^finished in/ {r = $4} /^requests:/ {d = $6; e = $10} END {printf "%d %.0f %s %d\n", d, r, pp, e}' "$1"
      ;;
    tls-handshakes)
      # A resumed session is an error here: it would not be a full handshake.
      tr ' ' '\n' <"$1" | awk -F= '{v[$1] = $2} END {printf "%d %.0f %d %d %d\n", v["handshakes"], v["rate"],
        v["p50_us"], v["p99_us"], v["errors"] + v["resumed"]}'
      ;;
    *)
      printf "%s %s %s %s %s\n" "$(awk '/requests in/ {print $1}' "$1")" "$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$1")" \
        "$(to_us "$(awk '$1 == "50%" {print $2}' "$1")")" "$(to_us "$(awk '$1 == "99%" {print $2}' "$1")")" \
        "$(awk '/Socket errors/ {gsub(",", ""); s += $4 + $6 + $8 + $10} /Non-2xx/ {s += $NF} END {print s + 0}' "$1")"
      ;;
  esac
}

# What each TLS server agreed on with a client like the scenario's (wrk
# offers no ALPN), to show that all shook hands alike.
if [ -n "$tls" ]; then
  alpn=(); [ "$scenario" = https ] || alpn=(-alpn "$([ "$scenario" = h2 ] && echo h2 || echo http/1.1)")
  for t in "${targets[@]}"; do
    printf "tls %-12s %s\n" "$t" "$(openssl s_client -connect "127.0.0.1:${tport[$t]}" -servername localhost "${alpn[@]}" \
      </dev/null 2>&1 | awk '/^New, / {sub(/,$/, "", $2); v = $2 " " $5} /Temp Key:/ {sub(/.*Temp Key: /, ""); k = $0}
        /^ALPN protocol:/ {p = "ALPN " $3} /^No ALPN/ {p = "no ALPN"} END {print v, k, p}')" >&2
  done
fi

# Warm every target up (connections, page faults, JIT-less but still).
for t in "${targets[@]}"; do load "$t" 1 "$work/warmup.txt"; done

for r in $(seq "$rounds"); do
  for t in "${targets[@]}"; do
    c0=$(ticks "$t") s0=$(sys_ticks "$t")
    load "$t" "$duration" "$out/$t.$r.txt"
    c1=$(ticks "$t") s1=$(sys_ticks "$t")
    read -r n rps p50 p99 errs < <(summary "$out/$t.$r.txt")
    cpu=$(echo "($c1 - $c0) * 1000000 / $hz / $n" | bc -l)
    busy=$(echo "($c1 - $c0) * 100 / $hz / $duration" | bc -l)
    sys=$(echo "($s1 - $s0) * 100 / ($c1 - $c0 + 0.001)" | bc -l)
    echo "$t $rps $p50 $p99 $cpu $errs $busy $sys" >>"$work/results"
    printf "round %d %-10s %7d %s/s  cpu %6.1f µs/%s  errors %d\n" "$r" "$t" "$rps" "$unit" "$cpu" "$unit" "$errs" >&2
  done
done

median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
col() { awk -v t="$1" -v c="$2" '$1 == t {print $c}' "$work/results" | median; }
nginx_cpu=$(col nginx 5)
base_cpu=$(col baseline 5)
case $scenario in
  h2) client="h2load -c$conns -m$streams -D$duration ($((conns * streams)) streams in flight)" ;;
  tls-handshakes) client="bench/handshake -c $conns -d ${duration}s (a full handshake and one request per connection)" ;;
  *) client="wrk -t1 -c$conns -d${duration}s" ;;
esac
echo
echo "scenario $scenario: $client, $rounds interleaved rounds, medians; $(date -u +%F), $(nproc) cores"
printf "| %-12s | %7s | %8s | %8s | %10s | %9s | %6s | %8s | %11s |\n" target "$unit/s" "p50 µs" "p99 µs" "CPU µs/$unit" "peak RSS" errors "vs nginx" "vs baseline"
printf "|%s|\n" "--------------|---------|----------|----------|------------|-----------|--------|----------|-------------"
for t in "${targets[@]}"; do
  cpu=$(col "$t" 5)
  errs=$(awk -v t="$t" '$1 == t {s += $6} END {print s + 0}' "$work/results")
  printf "| %-12s | %7d | %8d | %8d | %10.1f | %5d MiB | %6d | %7.2fx | %10.2fx |\n" "$t" "$(col "$t" 2)" "$(col "$t" 3)" \
    "$(col "$t" 4)" "$cpu" "$(($(mem_kb "$t" VmHWM) / 1024))" "$errs" \
    "$(echo "$cpu / $nginx_cpu" | bc -l)" "$(echo "$cpu / $base_cpu" | bc -l)"
done
printf "CPU busy, %% of the proxy's core (of which system time):"
for t in "${targets[@]}"; do printf " %s %.0f%% (%.0f%%)" "$t" "$(col "$t" 7)" "$(col "$t" 8)"; done
echo
[ -n "$tls" ] || echo "(direct: the backend process itself, for scale)"
