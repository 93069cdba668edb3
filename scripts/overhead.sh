#!/usr/bin/env bash
# The overhead of platform-telemetry on an axum service, next to its peer stacks, measured with
# wrk on loopback.
#
# The same handler (GET /orders/{id}, a format! of a small JSON body) is served in up to seven
# configurations, each its own process:
#   bare           scripts/bench-server: no telemetry, no layer
#   ours-100       bench-server: platform_telemetry::init() + http::server_layer(), 100% sampling
#                  (the default parentbased_always_on; wrk sends no traceparent, so every request
#                  is a sampled root)
#   ours-1         the same with OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01
#   towerhttp-100  scripts/peer-bench-server: tracing_subscriber registry + EnvFilter + fmt json +
#                  tracing-opentelemetry 0.34 over the SDK 0.33.1 batch exporter (OTLP/HTTP
#                  protobuf), and tower_http::trace::TraceLayer (span level INFO) on the router
#   towerhttp-1    the same at parentbased_traceidratio 0.01
#   axumotel-100   the same subscriber and provider, with axum-tracing-opentelemetry 0.42.1's
#                  OtelInResponseLayer + OtelAxumLayer instead of TraceLayer
#   axumotel-1     the same at parentbased_traceidratio 0.01
# Spans (and log records) go over OTLP/HTTP to one loopback sink (`bench-server sink`, its own
# process) that decodes every export with opentelemetry-proto, counts the items and keeps nothing.
# All servers run for the whole test, idle except the one under load; wrk drives them in turn
# (round-robin over CONFIGS) for ROUNDS rounds of DURATION each, after a warm-up of WARMUP each.
# For each window: requests/s and p99 latency from wrk; the server's CPU time (utime+stime of
# all its threads, from /proc/<pid>/stat) divided by the requests served; and the allocations it
# made (alloc + realloc calls, all threads: both servers count them with a global allocator and
# serve the count on a control port, `GET /allocations`, outside any layer) divided by the
# requests. The first table gives medians over the rounds and ratios to bare; the second the
# ratio of CPU us added (over bare), ours / each peer, at the same sampling.
#
# With taskset available (PIN=1, the default) each server runs on CPU 0 and wrk and the sink on
# CPU 1, so the service is a one-CPU service and the load generator does not steal from it.
#
# Results (2-core x86_64 VM, Rust 1.95, 2026-12-04, ROUNDS=3 DURATION=8 WARMUP=2; BENCHMARKS.md):
#   bare 85,041 req/s, 11.31 CPU us/req, 19.0 allocs/req
#   ours-100 +11.24 us/req, 56.3 allocs   towerhttp-100 +15.14, 67.2   axumotel-100 +45.56, 151.3
#   ours-1   +3.56 us/req, 24.3 allocs    towerhttp-1    +6.96, 44.2   axumotel-1   +30.07, 120.2
#   CPU us added, ours/towerhttp: 0.742 (100%), 0.511 (1%); ours/axumotel: 0.247, 0.118
#
# Usage: scripts/overhead.sh
#   env: ROUNDS=3 DURATION=10 CONNECTIONS=32 PIN=1 WARMUP=3
#        CONFIGS="bare ours-100 ..." (a space-separated subset, in the order to run; default all)
#        RESULTS_OUT=<file> (also write the raw per-window TSV and the tables there)
# Installs wrk from Debian if missing. Stops everything it starts, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
PIN=${PIN:-1}
WARMUP=${WARMUP:-3}
ALL_CONFIGS=(bare ours-100 ours-1 towerhttp-100 towerhttp-1 axumotel-100 axumotel-1)
read -r -a CONFIGS <<<"${CONFIGS:-${ALL_CONFIGS[*]}}"
[ ${#CONFIGS[@]} -gt 0 ] || { echo "overhead.sh: CONFIGS is empty" >&2; exit 2; }
need_peer=0
for config in "${CONFIGS[@]}"; do
  case " ${ALL_CONFIGS[*]} " in
    *" $config "*) ;;
    *) echo "overhead.sh: unknown configuration '$config' (known: ${ALL_CONFIGS[*]})" >&2; exit 2 ;;
  esac
  case $config in towerhttp-* | axumotel-*) need_peer=1 ;; esac
done

need_apt=()
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
[ "$PIN" = 1 ] && ! command -v taskset >/dev/null 2>&1 && need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
ncpu=$(nproc)
if [ "$PIN" = 1 ] && [ "$ncpu" -lt 2 ]; then
  echo "overhead.sh: one CPU only: running without pinning" >&2
  PIN=0
fi
# Command prefixes that pin to a CPU. Background processes are started as simple commands
# (never through a shell function, which would fork a subshell): $! is then the process itself.
CPU0=() CPU1=()
if [ "$PIN" = 1 ]; then CPU0=(taskset -c 0) CPU1=(taskset -c 1); fi

echo "building scripts/bench-server (release)..." >&2
cargo build --release --quiet --manifest-path scripts/bench-server/Cargo.toml \
  --target-dir "$ROOT/target/bench-server"
BIN="$ROOT/target/bench-server/release/bench-server"
PEER="$ROOT/target/peer-bench-server/release/peer-bench-server"
if [ "$need_peer" = 1 ]; then
  echo "building scripts/peer-bench-server (release)..." >&2
  cargo build --release --quiet --manifest-path scripts/peer-bench-server/Cargo.toml \
    --target-dir "$ROOT/target/peer-bench-server"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/overhead.XXXXXX")
PIDS=() SINK_PID=""
stop() { # stop <pid>...: SIGTERM, then wait (bounded: the library's and the peers' shutdowns
  # return within 5 s), then SIGKILL
  local pid
  for pid in "$@"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "$@"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
cleanup() { # the servers first, so that the sink is still there for their last export
  stop "${PIDS[@]}"
  PIDS=()
  if [ -n "$SINK_PID" ]; then stop "$SINK_PID"; fi
  SINK_PID=""
}
trap 'cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

wait_for_line() { # wait_for_line <file> <prefix>: prints the rest of the first matching line
  local file=$1 prefix=$2
  for _ in $(seq 200); do
    if grep -q "^$prefix " "$file" 2>/dev/null; then
      grep -m1 "^$prefix " "$file" | cut -d' ' -f2
      return 0
    fi
    sleep 0.05
  done
  echo "overhead.sh: no '$prefix' line in $file:" >&2
  cat "$file" >&2
  return 1
}

# The loopback OTLP/HTTP sink.
"${CPU1[@]}" "$BIN" sink >"$WORK/sink.out" 2>"$WORK/sink.err" &
SINK_PID=$!
ENDPOINT=$(wait_for_line "$WORK/sink.err" endpoint)

declare -A PID PORT CONTROL SERVED
start_server() { # start_server <config>
  local config=$1
  local -a env=(OTEL_SERVICE_NAME="bench-$config" OTEL_EXPORTER_OTLP_ENDPOINT="$ENDPOINT"
    OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)
  local -a cmd
  case $config in
    bare) cmd=("$BIN" serve bare) ;;
    ours-*) cmd=("$BIN" serve telemetry) ;;
    towerhttp-*) cmd=("$PEER" serve towerhttp) ;;
    axumotel-*) cmd=("$PEER" serve axumotel) ;;
  esac
  case $config in
    *-1) env+=(OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01) ;;
  esac
  # taskset and env exec the server: $! is its pid. Pinned from the start, tokio sizes its
  # worker pool to the one CPU it may use.
  "${CPU0[@]}" env "${env[@]}" "${cmd[@]}" >"$WORK/$config.out" 2>"$WORK/$config.err" &
  local pid=$!
  PIDS+=("$pid")
  PORT[$config]=$(wait_for_line "$WORK/$config.err" port)
  CONTROL[$config]=$(wait_for_line "$WORK/$config.err" control)
  PID[$config]=$pid
  SERVED[$config]=0
}
for config in "${CONFIGS[@]}"; do start_server "$config"; done

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of a process, in clock ticks
  # Fields after the command name (which may hold spaces): utime is 14th, stime 15th overall.
  sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
allocations() { # allocations <config>: the server's allocation count (GET /allocations)
  local body="" line
  exec 3<>"/dev/tcp/127.0.0.1/${CONTROL[$1]}"
  printf 'GET /allocations HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  while IFS= read -r line <&3 || [ -n "$line" ]; do body=${line%$'\r'}; done
  exec 3<&-
  case $body in
    '' | *[!0-9]*) echo "overhead.sh: bad /allocations answer from $1: '$body'" >&2; return 1 ;;
  esac
  echo "$body"
}
to_ms() { # wrk latency (e.g. 812.00us, 1.23ms, 1.01s) to milliseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /s$/) n *= 1000
    printf "%.4f", n }'
}

run_wrk() { # run_wrk <config> <seconds> <outfile>: also adds the requests to SERVED
  "${CPU1[@]}" wrk -t1 -c"$CONNECTIONS" -d"$2"s --latency "http://127.0.0.1:${PORT[$1]}/orders/7" >"$3"
  SERVED[$1]=$((SERVED[$1] + $(awk '/requests in/ { print $1 }' "$3")))
}

echo "warm-up: ${WARMUP}s per configuration" >&2
for config in "${CONFIGS[@]}"; do run_wrk "$config" "$WARMUP" "$WORK/warmup.txt"; done

RESULTS="$WORK/results.tsv"
printf 'round\tconfig\treq_per_s\tp99_ms\tcpu_us_per_req\trequests\tallocs_per_req\n' >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for config in "${CONFIGS[@]}"; do
    sleep 1
    allocs_before=$(allocations "$config")
    before=$(cpu_ticks "${PID[$config]}")
    run_wrk "$config" "$DURATION" "$WORK/wrk.txt"
    after=$(cpu_ticks "${PID[$config]}")
    allocs_after=$(allocations "$config")
    requests=$(awk '/requests in/ { print $1 }' "$WORK/wrk.txt")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk.txt")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$WORK/wrk.txt")")
    errors=$(awk '/Non-2xx|Socket errors/ { print }' "$WORK/wrk.txt" | tr '\n' ' ')
    cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
      'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    allocs=$(awk -v a=$((allocs_after - allocs_before)) -v n="$requests" 'BEGIN { printf "%.1f", a / n }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$config" "$rps" "$p99" "$cpu_us" "$requests" "$allocs" >>"$RESULTS"
    printf 'round %s %-13s %10.0f req/s  p99 %7.3f ms  %6.2f CPU us/req  %6.1f allocs/req  %s\n' \
      "$round" "$config" "$rps" "$p99" "$cpu_us" "$allocs" "$errors" >&2
  done
done

# Stop the servers (they print their pipeline counts) and the sink.
cleanup

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v c="$1" -v k="$2" 'NR > 1 && $2 == c { print $k }' "$RESULTS" | median; }
has() { case " ${CONFIGS[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
label() {
  case $1 in
    bare) echo "bare (no telemetry)" ;;
    ours-100) echo "ours: init + server_layer, 100%" ;;
    ours-1) echo "ours: init + server_layer, ratio 0.01" ;;
    towerhttp-100) echo "tower-http TraceLayer + tracing-otel, 100%" ;;
    towerhttp-1) echo "tower-http TraceLayer + tracing-otel, 0.01" ;;
    axumotel-100) echo "axum-tracing-opentelemetry, 100%" ;;
    axumotel-1) echo "axum-tracing-opentelemetry, ratio 0.01" ;;
  esac
}
rule() { printf -- '-%.0s' $(seq "$1"); }

REPORT="$WORK/report.txt"
{
  echo "overhead: $ROUNDS x ${DURATION}s per configuration (warm-up ${WARMUP}s), wrk -t1 -c$CONNECTIONS, $ncpu CPUs, pinned=$PIN"
  echo "(medians over the rounds; CPU = utime+stime of all the server's threads; ratios and 'added' are to bare)"
  echo
  printf '| %-44s | %10s | %8s | %8s | %10s | %12s | %10s |\n' \
    "Configuration" "req/s" "ratio" "p99 ms" "CPU us/req" "CPU us added" "allocs/req"
  printf '|%s|%s:|%s:|%s:|%s:|%s:|%s:|\n' "$(rule 46)" "$(rule 11)" "$(rule 9)" "$(rule 9)" \
    "$(rule 11)" "$(rule 13)" "$(rule 11)"
  base_rps="" base_cpu=""
  if has bare; then base_rps=$(col bare 3); base_cpu=$(col bare 5); fi
  for config in "${CONFIGS[@]}"; do
    awk -v l="$(label "$config")" -v r="$(col "$config" 3)" -v br="$base_rps" -v p="$(col "$config" 4)" \
      -v c="$(col "$config" 5)" -v bc="$base_cpu" -v a="$(col "$config" 7)" 'BEGIN {
        ratio = br == "" ? "-" : sprintf("%.3f", r / br)
        added = bc == "" ? "-" : sprintf("%.2f", c - bc)
        printf "| %-44s | %10.0f | %8s | %8.3f | %10.2f | %12s | %10.1f |\n", l, r, ratio, p, c, added, a }'
  done
  echo
  if has bare; then
    printf '| %-30s | %10s | %10s | %10s |\n' "CPU us added, ours / peer" "ours" "peer" "ours/peer"
    printf '|%s|%s:|%s:|%s:|\n' "$(rule 32)" "$(rule 11)" "$(rule 11)" "$(rule 11)"
    for pair in ours-100:towerhttp-100 ours-100:axumotel-100 ours-1:towerhttp-1 ours-1:axumotel-1; do
      ours=${pair%%:*} peer=${pair#*:}
      has "$ours" && has "$peer" || continue
      awk -v l="$ours / $peer" -v o="$(col "$ours" 5)" -v p="$(col "$peer" 5)" -v b="$base_cpu" 'BEGIN {
        ratio = (p - b) > 0 ? sprintf("%.3f", (o - b) / (p - b)) : "-"
        printf "| %-30s | %10.2f | %10.2f | %10s |\n", l, o - b, p - b, ratio }'
    done
    echo
  fi
  for config in "${CONFIGS[@]}"; do
    [ "$config" = bare ] && continue
    line=$(grep '^pipeline' "$WORK/$config.err" || echo 'no pipeline counts (server did not stop cleanly)')
    exported=$(echo "$line" | awk '{ for (i = 1; i < NF; i++) if ($i == "exported") print $(i + 1) }')
    share=""
    if [ -n "$exported" ] && [ "${SERVED[$config]}" -gt 0 ]; then
      share=$(awk -v e="$exported" -v n="${SERVED[$config]}" 'BEGIN { printf " = %.1f%% of %d requests served", 100 * e / n, n }')
    fi
    dropped=$(grep -o '"dropped_span_count":[0-9]*' "$WORK/$config.out" | cut -d: -f2 | head -1 || true)
    echo "$config: $line$share${dropped:+ (SDK: $dropped spans dropped, queue full)}"
  done
  echo "sink: $(grep '^received' "$WORK/sink.err" || echo 'no counts')"
} >"$REPORT"
echo
cat "$REPORT"
if [ -n "${RESULTS_OUT:-}" ]; then
  { cat "$RESULTS"; echo; cat "$REPORT"; } >"$RESULTS_OUT"
  echo "(raw TSV and tables written to $RESULTS_OUT)" >&2
fi
