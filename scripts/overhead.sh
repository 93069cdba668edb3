#!/usr/bin/env bash
# The overhead ratio of platform-telemetry on an axum service, measured with wrk on loopback.
#
# The same handler (GET /orders/{id}, scripts/bench-server) is served in three configurations:
#   bare   no telemetry, no layer
#   full   platform_telemetry::init() + http::server_layer(), 100% sampling (the default
#          parentbased_always_on; wrk sends no traceparent, so every request is a sampled root)
#   ratio  the same with OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01
# Spans and log records go over OTLP/HTTP to a loopback sink (`bench-server sink`, its own
# process) that decodes every export with opentelemetry-proto, counts the items and keeps nothing.
# All three servers run for the whole test; wrk drives them in turn (bare, full, ratio, bare,
# ...) for ROUNDS rounds of DURATION each, after a short warm-up. For each run: requests/s and
# p99 latency from wrk, and the server's CPU time (utime+stime from /proc/<pid>/stat) divided by
# the requests served. The table gives medians over the rounds and ratios to bare.
#
# With taskset available (PIN=1, the default) each server runs on CPU 0 and wrk and the sink on
# CPU 1, so the service is a one-CPU service and the load generator does not steal from it.
#
# Results (2-core x86_64 VM, Rust 1.95, 2026-11-23, defaults; more in BENCHMARKS.md):
#   bare 159,230 req/s, p99 0.234 ms, 6.25 CPU us/req
#   100% sampled: req/s ratio 0.371, p99 ratio 10.9, +9.48 CPU us/req
#   ratio 0.01:   req/s ratio 0.494, p99 ratio 1.95, +6.41 CPU us/req
#
# Usage: scripts/overhead.sh   (env: ROUNDS=3 DURATION=10 CONNECTIONS=32 PIN=1)
# Installs wrk from Debian if missing. Stops everything it starts, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
PIN=${PIN:-1}
WARMUP=${WARMUP:-3}
CONFIGS=(bare full ratio)

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

WORK=$(mktemp -d "${TMPDIR:-/tmp}/overhead.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    # Bounded: the library's shutdown returns within 5 s.
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
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
PIDS+=($!)
ENDPOINT=$(wait_for_line "$WORK/sink.err" endpoint)

declare -A PID PORT
start_server() { # start_server <config>
  local config=$1 mode=telemetry
  local -a env=(OTEL_SERVICE_NAME="bench-$config" OTEL_EXPORTER_OTLP_ENDPOINT="$ENDPOINT"
    OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)
  case $config in
    bare) mode=bare ;;
    full) ;;
    ratio) env+=(OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01) ;;
  esac
  # taskset and env exec the server: $! is its pid. Pinned from the start, tokio sizes its
  # worker pool to the one CPU it may use.
  "${CPU0[@]}" env "${env[@]}" "$BIN" serve "$mode" >"$WORK/$config.out" 2>"$WORK/$config.err" &
  local pid=$!
  PIDS+=("$pid")
  PORT[$config]=$(wait_for_line "$WORK/$config.err" port)
  PID[$config]=$pid
}
for config in "${CONFIGS[@]}"; do start_server "$config"; done

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of a process, in clock ticks
  # Fields after the command name (which may hold spaces): utime is 14th, stime 15th overall.
  sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
to_ms() { # wrk latency (e.g. 812.00us, 1.23ms, 1.01s) to milliseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /s$/) n *= 1000
    printf "%.4f", n }'
}

run_wrk() { # run_wrk <config> <seconds> <outfile>
  "${CPU1[@]}" wrk -t1 -c"$CONNECTIONS" -d"$2"s --latency "http://127.0.0.1:${PORT[$1]}/orders/7" >"$3"
}

echo "warm-up: ${WARMUP}s per configuration" >&2
for config in "${CONFIGS[@]}"; do run_wrk "$config" "$WARMUP" /dev/null; done

RESULTS="$WORK/results.tsv"
for round in $(seq "$ROUNDS"); do
  for config in "${CONFIGS[@]}"; do
    sleep 1
    before=$(cpu_ticks "${PID[$config]}")
    run_wrk "$config" "$DURATION" "$WORK/wrk.txt"
    after=$(cpu_ticks "${PID[$config]}")
    requests=$(awk '/requests in/ { print $1 }' "$WORK/wrk.txt")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk.txt")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$WORK/wrk.txt")")
    errors=$(awk '/Non-2xx|Socket errors/ { print }' "$WORK/wrk.txt" | tr '\n' ' ')
    cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
      'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$config" "$rps" "$p99" "$cpu_us" "$requests" >>"$RESULTS"
    printf 'round %s %-5s %10.0f req/s  p99 %7.3f ms  %6.2f CPU us/req  %s\n' \
      "$round" "$config" "$rps" "$p99" "$cpu_us" "$errors" >&2
  done
done

# Stop the servers (they print their pipeline counts) and the sink.
cleanup

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v c="$1" -v k="$2" '$2 == c { print $k }' "$RESULTS" | median; }

echo
echo "platform-telemetry overhead: $ROUNDS x ${DURATION}s per configuration, wrk -t1 -c$CONNECTIONS, $ncpu CPUs, pinned=$PIN"
echo
printf '| %-36s | %10s | %8s | %10s | %8s | %12s | %12s |\n' \
  "Configuration" "req/s" "ratio" "p99 ms" "ratio" "CPU us/req" "CPU us added"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..38})" "$(printf -- '-%.0s' {1..12})" \
  "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..10})" \
  "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})"
base_rps=$(col bare 3)
base_p99=$(col bare 4)
base_cpu=$(col bare 5)
for config in "${CONFIGS[@]}"; do
  case $config in
    bare) label="bare (no telemetry)" ;;
    full) label="init + server_layer, 100% sampled" ;;
    ratio) label="init + server_layer, ratio 0.01" ;;
  esac
  rps=$(col "$config" 3)
  p99=$(col "$config" 4)
  cpu=$(col "$config" 5)
  awk -v l="$label" -v r="$rps" -v br="$base_rps" -v p="$p99" -v bp="$base_p99" -v c="$cpu" -v bc="$base_cpu" \
    'BEGIN { printf "| %-36s | %10.0f | %8.3f | %10.3f | %8.3f | %12.2f | %12.2f |\n", l, r, r / br, p, p / bp, c, c - bc }'
done
echo
for config in full ratio; do
  echo "$config: $(grep '^pipeline' "$WORK/$config.err" || echo 'no pipeline counts (server did not stop cleanly)')"
done
echo "sink: $(grep '^received' "$WORK/sink.err" || echo 'no counts')"
