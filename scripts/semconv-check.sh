#!/usr/bin/env bash
# The OpenTelemetry semantic-conventions live check: runs the example services (gateway -> orders
# -> PostgreSQL / Redis -> NATS -> worker) and `obs verify`'s probe with every signal exported over OTLP/gRPC into
# OpenTelemetry Weaver's `registry live-check`, against the project registry in semconv/ (which
# depends on the official semantic-conventions registry), and fails on any violation.
#
# Usage: scripts/semconv-check.sh
# Env:
#   WEAVER            the weaver binary (default: ../shared/tools/weaver beside the repository)
#   SEMCONV_REGISTRY  the official registry's model/ folder
#                     (default: ../shared/tools/semconv/model beside the repository)
#   SEMCONV_FAIL_ON   violation (default) | improvement | information: the lowest level that fails
# Writes target/semconv-check/: live_check.json (the full report), summary.txt, and each
# process's log.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

weaver="${WEAVER:-$root/../shared/tools/weaver}"
registry="${SEMCONV_REGISTRY:-$root/../shared/tools/semconv/model}"
fail_on="${SEMCONV_FAIL_ON:-violation}"
out="$root/target/semconv-check"

if [ ! -x "$weaver" ]; then
  cat >&2 <<EOF
semconv-check: no Weaver at $weaver (WEAVER).
  Install OpenTelemetry Weaver 0.25 (the open-telemetry/weaver project's release binaries, or
  'cargo install' from its repository) and set WEAVER=/path/to/weaver.
EOF
  exit 2
fi
if [ ! -f "$registry/manifest.yaml" ] && [ ! -f "$registry/registry_manifest.yaml" ]; then
  cat >&2 <<EOF
semconv-check: no semantic-conventions registry at $registry (SEMCONV_REGISTRY).
  Check out open-telemetry/semantic-conventions (the version README.md names) and set
  SEMCONV_REGISTRY to its model/ folder.
EOF
  exit 2
fi
case "$fail_on" in
  violation|improvement|information) ;;
  *) echo "semconv-check: SEMCONV_FAIL_ON=$fail_on: use violation, improvement or information" >&2
     exit 2 ;;
esac
command -v nats-server >/dev/null 2>&1 || {
  echo "semconv-check: nats-server is not installed: run scripts/test.sh (apt-get install nats-server)" >&2
  exit 2
}
command -v redis-server >/dev/null 2>&1 || {
  echo "semconv-check: redis-server is not installed: run scripts/test.sh (apt-get install redis-server)" >&2
  exit 2
}
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$pg_bin/postgres" ] || {
  echo "semconv-check: PostgreSQL is not installed: run scripts/test.sh (apt-get install postgresql)" >&2
  exit 2
}
command -v python3 >/dev/null 2>&1 || { echo "semconv-check: python3 is needed to read the report" >&2; exit 2; }
command -v curl >/dev/null 2>&1 || { echo "semconv-check: curl is needed (apt-get install curl)" >&2; exit 2; }

# The binaries the test suite builds: example-service (runs gateway, orders or worker exactly as
# their own binaries do) and obs. The same command as scripts/test.sh's, so after it (in CI)
# nothing is compiled again; alone, it builds the test targets.
cargo test --workspace --all-targets --locked --no-run --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/debug"

rm -rf "$out"
mkdir -p "$out/registry"
# The project registry, with its dependency pointed at SEMCONV_REGISTRY.
cp semconv/*.yaml "$out/registry/"
registry_abs="$(cd "$registry" && pwd)"
sed -i "s|^\(\s*registry_path:\).*|\1 $registry_abs|" "$out/registry/manifest.yaml"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
otlp_port="$(free_port)"; admin_port="$(free_port)"; nats_port="$(free_port)"
postgres_port="$(free_port)"; redis_port="$(free_port)"
gateway_port="$(free_port)"; orders_port="$(free_port)"; worker_port="$(free_port)"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${pg_dir:-}" ]; then rm -rf "$pg_dir"; fi
}
trap cleanup EXIT

# Polls until $1 (a command) succeeds, for at most $2 seconds; $3 names what we wait for, $4
# (optional) is the process that must stay alive meanwhile.
wait_for() {
  local deadline=$((SECONDS + $2))
  until eval "$1" >/dev/null 2>&1; do
    if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then
      echo "semconv-check: $3 exited (logs in $out):" >&2
      tail -n 20 "$out"/*.log >&2 || true
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "semconv-check: $3 not ready after $2 s (logs in $out)" >&2
      exit 1
    fi
    sleep 0.2
  done
}

"$weaver" registry live-check --registry "$out/registry" --include-unreferenced \
  --otlp-grpc-address 127.0.0.1 --otlp-grpc-port "$otlp_port" --admin-port "$admin_port" \
  --inactivity-timeout 0 --format json --output "$out" --fail-on none \
  >"$out/weaver.log" 2>&1 &
weaver_pid=$!
pids+=("$weaver_pid")
wait_for "(exec 3<>/dev/tcp/127.0.0.1/$otlp_port)" 60 "weaver live-check (OTLP port $otlp_port)" "$weaver_pid"

nats-server --addr 127.0.0.1 --port "$nats_port" >"$out/nats.log" 2>&1 &
pids+=($!)
wait_for "(exec 3<>/dev/tcp/127.0.0.1/$nats_port)" 20 "nats-server"

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >"$out/redis.log" 2>&1 &
pids+=($!)
wait_for "(exec 3<>/dev/tcp/127.0.0.1/$redis_port)" 20 "redis-server"

# PostgreSQL in a fresh cluster; as root, as the postgres user (the server refuses root), through
# setpriv, which becomes the server, so that the cleanup's kill reaches it.
pg_dir="$(mktemp -d)"
as_postgres=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres:postgres "$pg_dir"
  as_postgres=(setpriv --reuid=postgres --regid=postgres --clear-groups --)
fi
"${as_postgres[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 >"$out/initdb.log" 2>&1
"${as_postgres[@]}" "$pg_bin/postgres" -D "$pg_dir/data" -p "$postgres_port" -k "$pg_dir" \
  -c listen_addresses=127.0.0.1 -c fsync=off >"$out/postgres.log" 2>&1 &
pids+=($!)
wait_for "(exec 3<>/dev/tcp/127.0.0.1/$postgres_port)" 30 "postgres"

export OTEL_EXPORTER_OTLP_PROTOCOL=grpc
export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$otlp_port"
export OTEL_TRACES_EXPORTER=otlp OTEL_LOGS_EXPORTER=otlp OTEL_METRICS_EXPORTER=otlp
# Metrics are pushed once, when each process shuts down: one sample of each, whatever the
# machine's speed, so the counts compare from run to run.
export OTEL_TRACES_SAMPLER=always_on OTEL_METRIC_EXPORT_INTERVAL=600000
export OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=semconv-check
# async-nats's own INFO lines (connected, ...) carry its field names (server, max_payload): not
# what the library or the examples emit, and not ours to rename. Its warnings still go out.
export RUST_LOG=info,async_nats=warn NATS_URL="nats://127.0.0.1:$nats_port"

WORKER_PORT="$worker_port" "$bin/example-service" worker >"$out/worker.log" 2>&1 &
worker_pid=$!; pids+=("$worker_pid")
# Every fourth lookup answers 503 (and the gateway 502): the error paths are checked too.
ORDERS_PORT="$orders_port" ORDERS_FAULT_RATIO=0.25 \
  DATABASE_URL="postgres://postgres@127.0.0.1:$postgres_port/postgres" \
  REDIS_URL="redis://127.0.0.1:$redis_port/0" "$bin/example-service" orders >"$out/orders.log" 2>&1 &
orders_pid=$!; pids+=("$orders_pid")
GATEWAY_PORT="$gateway_port" ORDERS_URL="http://127.0.0.1:$orders_port" \
  "$bin/example-service" gateway >"$out/gateway.log" 2>&1 &
gateway_pid=$!; pids+=("$gateway_pid")
for port in "$worker_port" "$orders_port" "$gateway_port"; do
  wait_for "curl -fsS http://127.0.0.1:$port/healthz" 30 "the service on port $port"
done

gateway="http://127.0.0.1:$gateway_port"
# 1..8 twice: Redis misses, PostgreSQL queries and cache fills, then cache hits; 5000 is no
# order (404).
for id in 1 2 3 4 5 6 7 8 1 2 3 4 5 6 7 8 5000; do
  code="$(curl -sS -o /dev/null -w '%{http_code}' "$gateway/orders/$id")"
  case "$code" in
    200|502|404) ;;
    *) echo "semconv-check: GET /orders/$id answered $code (logs in $out)" >&2; exit 1 ;;
  esac
done
curl -sS -o /dev/null "$gateway/orders/not-a-number" || true  # 400: a client error
curl -sS -o /dev/null "$gateway/no-such-route" || true        # 404 without a route
curl -fsS "http://127.0.0.1:$orders_port/metrics" >/dev/null  # the scrape endpoint's own span

# obs verify's probe, through the gateway. obs wants a store to check the probe's data in; here
# the live check is the judge, so the store is a closed port, its check fails, and obs's verdict
# is ignored: only what the probe emitted counts.
closed_port="$(free_port)"
OTEL_SERVICE_NAME=obs "$bin/obs" verify --otlp-endpoint "http://127.0.0.1:$otlp_port" \
  --target "$gateway/orders/7" --prometheus "http://127.0.0.1:$closed_port" --timeout 3s \
  >"$out/obs.log" 2>&1 || true
grep -q "probe" "$out/obs.log" || { echo "semconv-check: obs verify did not run its probe:" >&2; cat "$out/obs.log" >&2; exit 1; }

# SIGTERM: each service flushes its telemetry on the way out.
for pid in "$gateway_pid" "$orders_pid" "$worker_pid"; do kill -TERM "$pid"; done
for pid in "$gateway_pid" "$orders_pid" "$worker_pid"; do wait "$pid" || true; done

curl -fsS -X POST "http://127.0.0.1:$admin_port/stop" >/dev/null
wait "$weaver_pid" || true
report="$out/live_check.json"
[ -s "$report" ] || { echo "semconv-check: weaver wrote no report (see $out/weaver.log)" >&2; exit 1; }

python3 - "$report" "$fail_on" "$out/summary.txt" <<'PY'
"""Counts Weaver's findings by level and kind, lists each distinct one, fails at fail_on."""
import collections
import json
import sys

report_path, fail_on, summary_path = sys.argv[1:4]
with open(report_path, encoding="utf-8") as f:
    report = json.load(f)
levels = ["violation", "improvement", "information"]
findings = collections.Counter()


def walk(node):
    """Every advice of every sample: resources, scopes, spans, span events, metrics, logs."""
    if isinstance(node, dict):
        result = node.get("live_check_result")
        if isinstance(result, dict):
            for advice in result.get("all_advice") or []:
                context = advice.get("context") or {}
                subject = context.get("attribute_key") or context.get("metric_name") or ""
                detail = context.get("attribute_value") or context.get("stability") or ""
                findings[(advice.get("level") or "?", advice.get("id") or "?",
                          advice.get("signal_type") or "", advice.get("signal_name") or "",
                          str(subject), str(detail))] += 1
        for value in node.values():
            walk(value)
    elif isinstance(node, list):
        for value in node:
            walk(value)


walk(report.get("samples", []))
by_level = collections.Counter()
by_kind = collections.Counter()
for (level, kind, *_), n in findings.items():
    by_level[level] += n
    by_kind[(level, kind)] += n
rank = {level: i for i, level in enumerate(levels)}
lines = ["semantic-conventions live check: "
         + ", ".join(f"{by_level[level]} {level}" for level in levels)]
for (level, kind), n in sorted(by_kind.items(), key=lambda kv: (rank.get(kv[0][0], 9), -kv[1])):
    lines.append(f"  {level:12} {kind:45} {n}")
ordered = sorted(findings.items(), key=lambda kv: (rank.get(kv[0][0], 9), kv[0]))
details = [(key[0], f"{key[0]:12} {key[1]:45} {key[2]:9} {key[3][:60]:60} {key[4]} {key[5]} x{n}")
           for key, n in ordered]
with open(summary_path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines + ["", "level        kind  signal  name  attribute/metric  detail  count"]
                       + [text for _, text in details]) + "\n")
print("\n".join(lines))
failing = set(levels[: levels.index(fail_on) + 1])
bad = [text for level, text in details if level in failing]
if bad:
    print(f"\n{len(bad)} distinct finding(s) at {fail_on} level or above:")
    print("\n".join("  " + text for text in bad[:200]))
    sys.exit(1)
PY
