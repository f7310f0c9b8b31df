#!/usr/bin/env bash
# Webhook ingest benchmark with wrk (issue 7), loopback only, release binary as its own process:
# signed Standard Webhooks deliveries to POST /api/integrations/medusa/webhook, each verified,
# logged and enqueued (committed, fsync on) before its 200.
#
# The deliveries are generated and signed before the timed window (unique ids, timestamps of
# "now", well inside WEBHOOK_REPLAY_WINDOW_SECONDS), one file per run, and wrk replays them with
# scripts/bench-webhooks.lua, so the load generator costs little CPU and the server never sees a
# redelivery. After each run the accepted log rows are counted through the REST API, and the CPU
# time the server, PostgreSQL (postmaster and children) and wrk used is divided by them.
# Prints a Markdown table and writes it to target/bench/webhooks.md.
#
# Env: CITYOS_BIN (target/release/cityos), BENCH_PORT (3093), BENCH_RUNS (3),
#      BENCH_DURATION (10s), BENCH_THREADS (2), BENCH_CONNECTIONS (32),
#      BENCH_WEBHOOKS (deliveries generated per run, 150000), plus any server setting
#      (e.g. SYNC_WORKERS=2 to process the deliveries while they arrive).
#      BENCH_FORGED=1 signs every delivery with a wrong secret instead: each is refused (401)
#      and logged as `failed`, and those rows are what is counted (the cost of a flood of
#      forged or misconfigured deliveries).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BIN="${CITYOS_BIN:-$ROOT/target/release/cityos}"
PORT="${BENCH_PORT:-3093}"
RUNS="${BENCH_RUNS:-3}"
DURATION="${BENCH_DURATION:-10s}"
THREADS="${BENCH_THREADS:-2}"
CONNS="${BENCH_CONNECTIONS:-32}"
COUNT="${BENCH_WEBHOOKS:-150000}"
OUT_DIR="$ROOT/target/bench"
WORK="$OUT_DIR/webhooks"
DATA_DIR="$ROOT/.data-bench-webhooks"
BASE="http://127.0.0.1:$PORT"
SECRET="whsec_Y2l0eW9zLW1lZHVzYS10ZXN0LXNlY3JldC0zMmJ5dGU="
SIGNING_SECRET="$SECRET"
COUNTED=received
if [ "${BENCH_FORGED:-0}" = 1 ]; then
  SIGNING_SECRET="whsec_d3Jvbmctc2VjcmV0LWZvci1mb3JnZWQtYmVuY2g="
  COUNTED=failed
fi
LUA="$ROOT/scripts/bench-webhooks.lua"

log() { printf '[bench-webhooks] %s\n' "$*" >&2; }
die() { printf '[bench-webhooks] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "$BIN not found: run 'cargo build --release' first"
command -v wrk >/dev/null 2>&1 || die "wrk not found (scripts/install-system-deps.sh --bench installs it)"
command -v python3 >/dev/null 2>&1 || die "python3 not found"
mkdir -p "$WORK"

SERVER_PID=""
stop_server() {
  local pid="$SERVER_PID"
  [ -n "$pid" ] || return 0
  SERVER_PID=""
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  wait "$pid" 2>/dev/null || true
}
trap stop_server EXIT
trap 'exit 130' INT TERM

LOAD_BEFORE="$(uptime | sed 's/.*load average: //')"
rm -rf "$DATA_DIR"
env CITYOS_DATA_DIR="$DATA_DIR" PORT="$PORT" HOST=127.0.0.1 APP_ENV=development LOG_LEVEL=warn \
  MEDUSA_WEBHOOK_SECRET="$SECRET" SYNC_WORKERS="${SYNC_WORKERS:-0}" \
  "$BIN" serve >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 2400); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/ready" 2>/dev/null || true)" = 200 ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$WORK/serve.log" >&2; die "server exited"; }
  sleep 0.05
done
TOKEN="$(curl -s -H 'Content-Type: application/json' \
  -d "{\"email\":\"${SEED_ADMIN_EMAIL:-admin@cityos.local}\",\"password\":\"${SEED_ADMIN_PASSWORD:-cityos-admin}\"}" \
  "$BASE/api/users/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

# Deliveries stored so far (log rows with status `received`, or `failed` with BENCH_FORGED=1).
received() {
  curl -s -H "Authorization: JWT $TOKEN" \
    "$BASE/api/webhook-logs/count?where%5Bstatus%5D%5Bequals%5D=$COUNTED" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["totalDocs"])'
}

# Writes $COUNT signed deliveries (id TAB timestamp TAB signature TAB body) to $1; run $2 keeps
# the ids of different runs apart.
generate() {
  python3 - "$1" "$2" "$COUNT" "$SIGNING_SECRET" <<'PY'
import base64, hashlib, hmac, sys, time
path, run, count, secret = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
key = base64.b64decode(secret[len("whsec_"):])
ts = str(int(time.time()))
with open(path, "w") as out:
    for i in range(count):
        mid = f"msg_r{run}_{i}"
        body = ('{"type":"product.updated","timestamp":"2026-11-24T10:19:17.689Z",'
                f'"data":{{"id":"prod_r{run}_{i}"}}}}')
        mac = hmac.new(key, f"{mid}.{ts}.{body}".encode(), hashlib.sha256).digest()
        out.write(f"{mid}\t{ts}\tv1,{base64.b64encode(mac).decode()}\t{body}\n")
PY
}

# shellcheck source=scripts/bench-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"
PM="$(postmaster_under "$DATA_DIR")"
[ -n "$PM" ] || log "WARNING: postmaster not found under $DATA_DIR: no PostgreSQL CPU figures"

ROWS=()
for ((run = 1; run <= RUNS; run++)); do
  file="$WORK/deliveries-$run.tsv"
  generate "$file" "$run"
  before="$(received)"
  out="$WORK/wrk-$run.txt"
  log "run $run: wrk -t$THREADS -c$CONNS -d$DURATION ($(uptime | sed 's/.*load average: //'))"
  s0="$(ticks "$SERVER_PID")"; p0="$(pg_ticks "${PM:-0}")"
  /usr/bin/time -f 'wrk-cpu: %U %S' -o "$out.time" \
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$LUA" \
    "$BASE/api/integrations/medusa/webhook" -- "$file" "$THREADS" >"$out" 2>&1 || log "wrk exited non-zero (see $out)"
  s1="$(ticks "$SERVER_PID")"; p1="$(pg_ticks "${PM:-0}")"
  after="$(received)"
  rps="$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")"
  reqs="$(awk '/requests in/ {print $1}' "$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' "$out")"
  wrapped="$(awk '/^wrapped:/ {print $2}' "$out")"
  p50="$(awk '$1 == "50%" {print $2}' "$out")"
  p99="$(awk '$1 == "99%" {print $2}' "$out")"
  rm -f "$file"
  n=$((after - before))
  # CPU µs per accepted delivery: server, PostgreSQL, wrk.
  cpu="$(awk -v n="$n" -v s=$((s1 - s0)) -v p=$((p1 - p0)) '/^wrk-cpu:/ { w = ($2 + $3) * 100 }
    END { if (n > 0) printf "%.0f / %.0f / %.0f", s * 10000 / n, p * 10000 / n, w * 10000 / n }' "$out.time")"
  [ "${wrapped:-0}" = 0 ] || log "WARNING: run $run replayed deliveries (raise BENCH_WEBHOOKS)"
  log "run $run: $rps req/s, p50 $p50, p99 $p99, $reqs requests, ${non2xx:-0} non-2xx, $n rows, CPU µs/delivery $cpu"
  ROWS+=("| $run | $rps | $p50 | $p99 | $reqs | ${non2xx:-0} | $n | $cpu |")
done

{
  echo "Webhook ingest, wrk -t$THREADS -c$CONNS -d$DURATION, $(nproc) cores; load average before: $LOAD_BEFORE, after: $(uptime | sed 's/.*load average: //')"
  echo
  echo "| run | req/s | p50 | p99 | requests | non-2xx | rows $COUNTED | CPU µs per delivery: server / PostgreSQL / wrk |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
} | tee "$WORK/../webhooks.md"
