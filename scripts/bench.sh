#!/usr/bin/env bash
# Benchmarks the release binary (target/release/cityos) on this machine, loopback only:
#   (a) cold start: spawn `cityos serve` -> first 200 from GET /api/ready (n runs, min/median),
#       also without the embedded PostgreSQL start (the `elapsed_ms` of the binary's
#       "embedded postgres ready" log line, when found)
#   (b) idle RSS of the cityos process (not its postgres children), ready + 2 s idle
#   (c) HTTP load with wrk: list, by-id, published list sorted at depth 1, list with a JWT,
#       create — req/s, p50, p99, peak RSS
# Prints a Markdown table and writes it to target/bench/results.md.
# `scripts/bench.sh media` (or `./run bench media`) runs the upload benchmark instead
# (scripts/bench-media.sh: 1 MB uploads to local disk and S3, RSS during a 100 MB upload).
#
# `scripts/bench.sh integrations` runs the integration-plane benchmark instead
# (examples/bench_integrations.rs: signed webhook ingest, queue throughput, enqueue cost), and
# `scripts/bench.sh webhooks` the ingest with wrk against the release binary
# (scripts/bench-webhooks.sh: pre-signed deliveries, the server as a process of its own).
#
# Build first (`./run bench` does: deps with --bench, cargo build --release, this script).
#
# Env: BENCH_PORT (3091), BENCH_RUNS (5), BENCH_THREADS (2), BENCH_CONNECTIONS (32),
#      BENCH_DURATION (10s), BENCH_TENANT (bench-07), BENCH_READY_TIMEOUT (120 s),
#      BENCH_KEEP_DATA=1 keeps .data-bench/ (and skips re-seeding) instead of starting
#      from an empty one, CITYOS_BIN (target/release/cityos), BENCH_ONLY=create,list (run
#      only these load rows, by name; the admin and tenancy tables are skipped then).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

case "${1:-}" in
  "") ;;
  media) exec "$(dirname "${BASH_SOURCE[0]}")/bench-media.sh" ;;
  webhooks) exec "$(dirname "${BASH_SOURCE[0]}")/bench-webhooks.sh" ;;
  integrations)
    # Webhook ingest, queue throughput, enqueue cost (examples/bench_integrations.rs).
    cd "$ROOT" && exec cargo run --release --example bench_integrations ;;
  -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) printf '[bench] ERROR: unknown argument: %s (settings are env vars, see --help)\n' "$1" >&2; exit 2 ;;
esac

BIN="${CITYOS_BIN:-$ROOT/target/release/cityos}"
DATA_DIR="$ROOT/.data-bench"
# shellcheck source=scripts/bench-lib.sh
. "$ROOT/scripts/bench-lib.sh"
OUT_DIR="$ROOT/target/bench"
RESULTS="$OUT_DIR/results.md"
PORT="${BENCH_PORT:-3091}"
RUNS="${BENCH_RUNS:-5}"
THREADS="${BENCH_THREADS:-2}"
CONNS="${BENCH_CONNECTIONS:-32}"
DURATION="${BENCH_DURATION:-10s}"
TENANT="${BENCH_TENANT:-bench-07}"
BENCH_BASE_DOMAIN="${BENCH_BASE_DOMAIN:-bench.test}"
export CITYOS_BASE_DOMAINS="$BENCH_BASE_DOMAIN"
READY_TIMEOUT="${BENCH_READY_TIMEOUT:-120}"
BASE="http://127.0.0.1:${PORT}"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "$BIN not found: run 'cargo build --release' first (or ./run bench)"
command -v curl >/dev/null 2>&1 || die "curl not found (scripts/install-system-deps.sh --bench installs it)"
command -v python3 >/dev/null 2>&1 || die "python3 not found"
HAVE_WRK=1
command -v wrk >/dev/null 2>&1 || { HAVE_WRK=0; log "wrk not found: the load part is skipped (scripts/install-system-deps.sh --bench installs it)"; }
mkdir -p "$OUT_DIR"

# The binary's environment: its own embedded cluster in the bench data dir, JSON logs,
# loopback only.
unset DATABASE_URL
export CITYOS_DATA_DIR="$DATA_DIR" PORT HOST=127.0.0.1 APP_ENV=development LOG_FORMAT=json

SERVER_PID=""
SAMPLER_PID=""

now_us() { local t="${EPOCHREALTIME//[.,]/}"; printf '%s' "$t"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# A postgres left running in the bench data dir (binary killed, or not stopping its
# cluster on SIGTERM): fast shutdown (SIGINT to the postmaster), then SIGKILL.
stop_stray_postgres() {
  local pidfile pid i
  [ -d "$DATA_DIR" ] || return 0
  while IFS= read -r pidfile; do
    pid="$(head -n 1 "$pidfile" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    kill -0 "$pid" 2>/dev/null || continue
    log "WARNING: postgres (pid $pid, $(dirname "$pidfile")) still runs after cityos exited; stopping it"
    kill -INT "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done < <(find "$DATA_DIR" -maxdepth 4 -name postmaster.pid 2>/dev/null)
}

stop_server() {
  local pid="$SERVER_PID" i
  [ -n "$pid" ] || return 0
  SERVER_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "WARNING: cityos (pid $pid) did not exit 30 s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  stop_stray_postgres
}

PDP_STARTED=0
cleanup() {
  [ "$PDP_STARTED" = 1 ] && bash "$CERBOS_SH" stop >/dev/null 2>&1 || true
  if [ -n "${OIDC_PID:-}" ]; then kill "$OIDC_PID" 2>/dev/null || true; fi
  if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; fi
  stop_server
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts `cityos serve` (log to $1) and waits for GET /api/ready -> 200, polling every
# 5 ms. Sets SERVER_PID and READY_MS (spawn -> ready, in ms, 1 decimal).
start_and_wait_ready() {
  local logfile="$1" t0 t1 code deadline
  port_in_use "$PORT" && die "port $PORT on 127.0.0.1 is already in use (set BENCH_PORT)"
  t0="$(now_us)"
  "$BIN" serve >"$logfile" 2>&1 &
  SERVER_PID=$!
  deadline=$((t0 + READY_TIMEOUT * 1000000))
  while :; do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/api/ready" 2>/dev/null || true)"
    [ "$code" = 200 ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID" 2>/dev/null || true
      SERVER_PID=""
      tail -n 30 "$logfile" | sed 's/^/[bench]   | /' >&2
      die "cityos serve exited before /api/ready answered 200 (log: $logfile)"
    fi
    if [ "$(now_us)" -gt "$deadline" ]; then
      tail -n 30 "$logfile" | sed 's/^/[bench]   | /' >&2
      die "/api/ready did not answer 200 within ${READY_TIMEOUT} s (last status: ${code:-none}; log: $logfile)"
    fi
    sleep 0.005
  done
  t1="$(now_us)"
  READY_MS="$(awk -v d="$((t1 - t0))" 'BEGIN { printf "%.1f", d / 1000 }')"
}

# elapsed_ms of the first "embedded postgres ready" line (JSON `"elapsed_ms":123.4` or
# text `elapsed_ms=123.4`); empty when not found.
pg_ready_ms() {
  grep -m 1 'embedded postgres ready' "$1" 2>/dev/null |
    grep -oE 'elapsed_ms"?[[:space:]]*[:=][[:space:]]*"?[0-9]+(\.[0-9]+)?' |
    head -n 1 | grep -oE '[0-9]+(\.[0-9]+)?$' || true
}

# min and median of the numbers given as arguments: prints "min median".
min_median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "- -"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.1f %.1f\n", v[1], m }'
}

# wrk latency value ("812.00us", "1.23ms", "2.01s") -> ms
to_ms() {
  awk -v x="$1" 'BEGIN {
    if (x ~ /us$/) { sub(/us$/, "", x); printf "%.2f", x / 1000 }
    else if (x ~ /ms$/) { sub(/ms$/, "", x); printf "%.2f", x }
    else if (x ~ /m$/) { sub(/m$/, "", x); printf "%.2f", x * 60000 }
    else if (x ~ /s$/) { sub(/s$/, "", x); printf "%.2f", x * 1000 }
    else printf "%s", x }'
}

# ------------------------------------------------------------------ (a) prepare data ------
if [ "${BENCH_KEEP_DATA:-0}" = 1 ] && [ -d "$DATA_DIR" ]; then
  log "keeping $DATA_DIR (BENCH_KEEP_DATA=1): no re-seeding"
  SEED_BENCH_MS="-"
else
  stop_stray_postgres
  rm -rf "$DATA_DIR"
  for step in migrate "seed --demo" "seed --bench"; do
    log "cityos $step (data dir $DATA_DIR)"
    t0="$(now_us)"
    # shellcheck disable=SC2086 # $step is two words on purpose
    "$BIN" $step >"$OUT_DIR/${step// /-}.log" 2>&1 || {
      tail -n 30 "$OUT_DIR/${step// /-}.log" | sed 's/^/[bench]   | /' >&2
      stop_stray_postgres
      die "cityos $step failed (log: $OUT_DIR/${step// /-}.log)"
    }
    t1="$(now_us)"
    SEED_BENCH_MS="$(awk -v d="$((t1 - t0))" 'BEGIN { printf "%.0f", d / 1000 }')"
    stop_stray_postgres
  done
fi

# ------------------------------------------------------------------ (a) cold start --------
TOTALS=()
APPS=()
for ((run = 1; run <= RUNS; run++)); do
  logfile="$OUT_DIR/serve-cold-$run.log"
  start_and_wait_ready "$logfile"
  stop_server   # SIGTERM, wait for exit; the log is complete afterwards
  TOTALS+=("$READY_MS")
  pg_ms="$(pg_ready_ms "$logfile")"
  if [ -n "$pg_ms" ]; then
    APPS+=("$(awk -v t="$READY_MS" -v p="$pg_ms" 'BEGIN { printf "%.1f", t - p }')")
    log "cold start $run/$RUNS: ${READY_MS} ms to ready (embedded postgres ${pg_ms} ms)"
  else
    log "cold start $run/$RUNS: ${READY_MS} ms to ready (no 'embedded postgres ready' line with elapsed_ms)"
  fi
done
read -r COLD_MIN COLD_MED < <(min_median "${TOTALS[@]}")
if [ "${#APPS[@]}" = "$RUNS" ]; then
  read -r APP_MIN APP_MED < <(min_median "${APPS[@]}")
else
  APP_MIN="n/a"; APP_MED="n/a"
fi

# ------------------------------------------------------------------ Keycloak stand-in ----
# The OIDC stand-in (../shared/recipes/oidc-stand-in, installed under target/tmp by the tests or
# here) issues Keycloak-shaped tokens for the authenticated by-id run; skipped without Node.
OIDC_DIR="$ROOT/target/tmp/oidc-stand-in"
OIDC_PID=""
OIDC_BASE=""
start_oidc() {
  command -v node >/dev/null 2>&1 || { log "node not found: the Keycloak run is skipped"; return 0; }
  if [ ! -f "$OIDC_DIR/node_modules/jose/package.json" ]; then
    local src="${OIDC_STAND_IN_DIR:-$ROOT/../shared/recipes/oidc-stand-in}"
    [ -f "$src/server.mjs" ] || { log "no OIDC stand-in at $src: the Keycloak run is skipped"; return 0; }
    mkdir -p "$OIDC_DIR"
    cp "$src/server.mjs" "$src/package.json" "$src/package-lock.json" "$OIDC_DIR/"
    (cd "$OIDC_DIR" && npm ci --no-audit --no-fund --silent) || { log "npm ci failed: the Keycloak run is skipped"; return 0; }
  fi
  (cd "$OIDC_DIR" && PORT=0 exec node server.mjs >"$OUT_DIR/oidc.log" 2>&1) &
  OIDC_PID=$!
  for _ in $(seq 1 100); do
    OIDC_BASE="$(awk '/listening/ {print $3; exit}' "$OUT_DIR/oidc.log" 2>/dev/null || true)"
    [ -n "$OIDC_BASE" ] && curl -sf -o /dev/null "$OIDC_BASE/health/ready" && break
    sleep 0.1
  done
  [ -n "$OIDC_BASE" ] || { log "the OIDC stand-in did not start"; return 0; }
  export KEYCLOAK_ISSUER_URL="$OIDC_BASE/realms/cms" KEYCLOAK_CLIENT_ID=cms-orchestrator KEYCLOAK_AUDIENCE=cms-orchestrator
}
stop_oidc() { [ -n "$OIDC_PID" ] && kill "$OIDC_PID" 2>/dev/null; OIDC_PID=""; }
start_oidc

# ------------------------------------------------------------------ (b) idle RSS ----------
start_and_wait_ready "$OUT_DIR/serve-load.log"
sleep 2
IDLE_RSS_KB="$(rss_kb "$SERVER_PID")"
log "idle RSS: ${IDLE_RSS_KB:-?} kB"

# ------------------------------------------------------------------ (c) load --------------
# Brackets in `where[...]` are percent-encoded, as qs-style clients send them.
LIST_PATH="/api/pages?limit=10&depth=0&tenant=${TENANT}"
QUERY_PATH="/api/pages?where%5Bstatus%5D%5Bequals%5D=published&sort=-publishedAt&depth=1&limit=10&tenant=${TENANT}"

# id of the first document of a list response ({"docs": [...]}, {"data": [...]} or [...])
first_id() {
  python3 -c '
import json, sys
try:
    body = json.load(sys.stdin)
except Exception:
    sys.exit(0)
docs = body
if isinstance(body, dict):
    docs = body.get("docs", body.get("data", body.get("items", [])))
if isinstance(docs, list) and docs and isinstance(docs[0], dict) and "id" in docs[0]:
    print(docs[0]["id"])
'
}

LIST_BODY="$(curl -s --max-time 10 "$BASE$LIST_PATH" || true)"
PAGE_ID="$(printf '%s' "$LIST_BODY" | first_id)"
if [ -n "$PAGE_ID" ]; then
  BYID_PATH="/api/pages/${PAGE_ID}?depth=0&tenant=${TENANT}"
else
  BYID_PATH=""
  log "no page id found in the response of GET $LIST_PATH: the by-id endpoint is skipped"
fi

# A super admin token (the demo seed's admin) for the authenticated runs.
ADMIN_TOKEN="$(curl -s --max-time 10 -H 'Content-Type: application/json' \
  -d "{\"email\":\"${SEED_ADMIN_EMAIL:-admin@cityos.local}\",\"password\":\"${SEED_ADMIN_PASSWORD:-cityos-admin}\"}" \
  "$BASE/api/users/login" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("token",""))' 2>/dev/null || true)"
[ -n "$ADMIN_TOKEN" ] || log "login failed: the authenticated runs will be skipped"
# Creates go to another tenant, as drafts, so they do not change what the read runs measure.
CREATE_TENANT="${BENCH_CREATE_TENANT:-bench-50}"
TENANT_ID="$(curl -s --max-time 10 "$BASE/api/tenants?where%5Bhandle%5D%5Bequals%5D=${CREATE_TENANT}&depth=0&tenant=${CREATE_TENANT}" | first_id)"

# wrk script for creates: unique titles (the slug is derived from them and unique per tenant).
CREATE_LUA="$OUT_DIR/create.lua"
cat >"$CREATE_LUA" <<LUA
-- setup() runs in the main state and hands each thread its number as the global "thread_no".
local threads = 0
function setup(thread) threads = threads + 1; thread:set("thread_no", threads) end
local counter = 0
function init(args) math.randomseed(os.time() * 100 + (thread_no or 0)) end
request = function()
  counter = counter + 1
  local body = string.format('{"tenant":"${TENANT_ID}","title":"Bench create %d %d %d","status":"draft"}',
    thread_no or 0, counter, math.random(1, 1000000000))
  return wrk.format("POST", "/api/pages?depth=0", {["Content-Type"] = "application/json",
    ["Authorization"] = "JWT ${ADMIN_TOKEN}"}, body)
end
LUA

# An API key of the read tenant (read:pages), and a Keycloak token of a viewer of that tenant.
READ_TENANT_ID="$(curl -s --max-time 10 "$BASE/api/tenants?where%5Bhandle%5D%5Bequals%5D=${TENANT}&depth=0&tenant=${TENANT}" | first_id)"
API_KEY=""
if [ -n "$ADMIN_TOKEN" ] && [ -n "$READ_TENANT_ID" ]; then
  API_KEY="$(curl -s --max-time 10 -H "Authorization: JWT $ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench\",\"tenant\":\"$READ_TENANT_ID\",\"scopes\":[\"read:pages\"]}" "$BASE/api/api-keys?depth=0" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["doc"].get("key",""))' 2>/dev/null || true)"
fi
# A platform key (no tenant) for the "without tenancy" baseline.
PLATFORM_KEY=""
if [ -n "$ADMIN_TOKEN" ]; then
  PLATFORM_KEY="$(curl -s --max-time 10 -H "Authorization: JWT $ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d '{"name":"bench-platform","scopes":["read:pages"]}' "$BASE/api/api-keys?depth=0" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["doc"].get("key",""))' 2>/dev/null || true)"
fi
KC_TOKEN=""
if [ -n "$OIDC_BASE" ]; then
  KC_TOKEN="$(curl -s --max-time 10 -H 'Content-Type: application/json' \
    -d "{\"sub\":\"bench-viewer\",\"email\":\"viewer@bench.local\",\"ttl\":3600,\"tenantId\":\"${TENANT}\",\"clientRoles\":{\"cms-orchestrator\":[\"viewer\"]}}" \
    "$OIDC_BASE/test/mint" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' 2>/dev/null || true)"
fi

ROWS=()
# selected NAME: whether BENCH_ONLY (a comma list of row names) is unset or names NAME.
selected() { [ -z "${BENCH_ONLY:-}" ] || [[ ",$BENCH_ONLY," == *",$1,"* ]]; }
# bench_endpoint NAME PATH [AUTH] [LUA]: AUTH is jwt (the admin), apikey or keycloak; LUA is a wrk script.
bench_endpoint() {
  local name="$1" path="$2" auth="${3:-none}" lua="${4:-}" host="${5:-}" code out sampler_file rps p50 p99 reqs errs peak pm s0 s1 p0 p1
  local -a hdr=() wrk_extra=()
  local credential=""
  selected "$name" || return 0
  case "$auth" in
    jwt) credential="$ADMIN_TOKEN"; hdr=(-H "Authorization: JWT $ADMIN_TOKEN") ;;
    apikey) credential="$API_KEY"; hdr=(-H "X-API-Key: $API_KEY") ;;
    platformkey) credential="$PLATFORM_KEY"; hdr=(-H "X-API-Key: $PLATFORM_KEY") ;;
    keycloak) credential="$KC_TOKEN"; hdr=(-H "Authorization: Bearer $KC_TOKEN") ;;
    *) credential="-" ;;
  esac
  [ -n "$host" ] && hdr+=(-H "Host: $host")
  if [ -z "$credential" ]; then
    ROWS+=("| $name | \`$path\` | no credential | skipped | - | - | - | - |")
    return 0
  fi
  [ -n "$lua" ] && wrk_extra=(-s "$lua")
  if [ -z "$path" ]; then
    ROWS+=("| $name | \`/api/pages/<id>?depth=0\` | no id | - | - | - | - | - |")
    return 0
  fi
  if [ -n "$lua" ]; then
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${hdr[@]}" -H 'Content-Type: application/json' \
      -d "{\"tenant\":\"$TENANT_ID\",\"title\":\"Bench probe $$\"}" "$BASE$path" || true)"
  else
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${hdr[@]}" "$BASE$path" || true)"
  fi
  case "$code" in
    2??) ;;
    *)
      log "$name: GET $path -> HTTP ${code:-none}: load skipped"
      ROWS+=("| $name | \`$path\` | ${code:-none} | skipped | - | - | - | - |")
      return 0
      ;;
  esac
  if [ "$HAVE_WRK" = 0 ]; then
    ROWS+=("| $name | \`$path\` | $code | no wrk | - | - | - | - |")
    return 0
  fi
  log "$name: wrk -t$THREADS -c$CONNS -d$DURATION --latency $BASE$path"
  sampler_file="$OUT_DIR/rss-$name.txt"
  : >"$sampler_file"
  (
    while [ -r "/proc/$SERVER_PID/status" ]; do
      awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status" >>"$sampler_file" 2>/dev/null || true
      sleep 0.1
    done
  ) &
  SAMPLER_PID=$!
  out="$OUT_DIR/wrk-$name.txt"
  pm="$(postmaster_under "$DATA_DIR")"
  s0=$(ticks "$SERVER_PID") p0=$(pg_ticks "$pm")
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${hdr[@]}" "${wrk_extra[@]}" "$BASE$path" >"$out" 2>&1 ||
    log "$name: wrk exited non-zero (see $out)"
  kill "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=""
  rps="$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")"
  p50="$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")"
  p99="$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")"
  reqs="$(awk '/requests in/ {print $1}' "$out")"
  errs="$(awk -F': ' '/Non-2xx or 3xx responses/ {n += $2} END {print n + 0}' "$out")"
  if grep -q 'Socket errors' "$out"; then
    errs="$errs; $(sed -n 's/^ *Socket errors: *//p' "$out")"
  fi
  peak="$(sort -n "$sampler_file" | tail -n 1)"
  s1=$(ticks "$SERVER_PID") p1=$(pg_ticks "$pm")
  [ "${reqs:-0}" -gt 0 ] && log "$name: CPU µs per request: server $(((s1 - s0) * 10000 / reqs)) / PostgreSQL $(((p1 - p0) * 10000 / reqs))"
  ROWS+=("| $name | \`$path\` | $code | ${rps:-?} | ${p50:-?} | ${p99:-?} | ${reqs:-?} req, non-2xx: ${errs} | $( [ -n "$peak" ] && mib "$peak" || echo '?') |")
}

bench_endpoint list "$LIST_PATH"
bench_endpoint by-id "$BYID_PATH"
bench_endpoint published-sorted "$QUERY_PATH"
bench_endpoint list-jwt "$LIST_PATH" jwt
bench_endpoint create "/api/pages?depth=0" jwt "$CREATE_LUA"
bench_endpoint by-id-apikey "$BYID_PATH" apikey
bench_endpoint by-id-keycloak "$BYID_PATH" keycloak

# Tenancy and authorization: the tenant from the Host header (a subdomain under
# CITYOS_BASE_DOMAINS), decided by the built-in evaluator, then by the real Cerbos PDP; the
# baseline is the same page list without any tenant context (super admin, explicit where).
HOST_NAME="${TENANT}.${BENCH_BASE_DOMAIN}"
HOST_LIST_PATH="/api/pages?limit=10&depth=0"
HOST_BYID_PATH="${PAGE_ID:+/api/pages/${PAGE_ID}?depth=0}"
NOTENANCY_PATH="/api/pages?limit=10&depth=0&where%5Btenant%5D%5Bequals%5D=${READ_TENANT_ID}&where%5Bstatus%5D%5Bequals%5D=published"
# Admin UI (server-rendered): a list of 50 pages and a page's edit form, as the super admin.
ADMIN_LIST_PATH="/admin/c/pages?limit=50"
ADMIN_EDIT_PATH="${PAGE_ID:+/admin/c/pages/${PAGE_ID}}"
ADMIN_ROWS=()
# admin_timing NAME PATH: sequential requests (no concurrency): server time p50/p90 as seen
# by curl (time to first byte on loopback) and the page's weight with its CSS and JS.
admin_timing() {
  local name="$1" path="$2" n="${BENCH_ADMIN_N:-200}" times=() sizes html css js i line
  selected "$name" || return 0
  if [ -z "$ADMIN_TOKEN" ] || [ -z "$path" ]; then
    ADMIN_ROWS+=("| $name | \`${path:-?}\` | skipped | - | - | - |")
    return 0
  fi
  for ((i = 0; i < n; i++)); do
    line="$(curl -s -o /dev/null -w '%{http_code} %{time_starttransfer} %{size_download}' \
      -H "Authorization: JWT $ADMIN_TOKEN" "$BASE$path")"
    [ "${line%% *}" = 200 ] || { ADMIN_ROWS+=("| $name | \`$path\` | HTTP ${line%% *} | - | - | - |"); return 0; }
    times+=("$(awk -v t="$(echo "$line" | cut -d' ' -f2)" 'BEGIN { printf "%.3f", t * 1000 }')")
    html="$(echo "$line" | cut -d' ' -f3)"
  done
  css="$(curl -s -o /dev/null -w '%{size_download}' "$BASE/static/admin.css")"
  js="$(curl -s -o /dev/null -w '%{size_download}' "$BASE/static/htmx.min.js")"
  local p50 p90
  p50="$(printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }')"
  p90="$(printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", v[int(NR * 0.9)] }')"
  ADMIN_ROWS+=("| $name | \`$path\` | $p50 | $p90 | $(awk -v h="$html" 'BEGIN { printf "%.1f KB", h / 1024 }') | $(awk -v t="$((html + css + js))" 'BEGIN { printf "%.1f KB", t / 1024 }') |")
}
admin_timing admin-list-50 "$ADMIN_LIST_PATH"
admin_timing admin-edit "$ADMIN_EDIT_PATH"
# The same inside one tenant (how editors work: the super admin's tenant selector, or a member).
admin_timing admin-list-50-tenant "$ADMIN_LIST_PATH&tenant=${TENANT}"
admin_timing admin-edit-tenant "${ADMIN_EDIT_PATH:+$ADMIN_EDIT_PATH?tenant=${TENANT}}"
bench_endpoint admin-list-50 "$ADMIN_LIST_PATH" jwt
bench_endpoint admin-edit "$ADMIN_EDIT_PATH" jwt

stop_server

# Tenancy and authorization, measured without the public read cache (PUBLIC_CACHE_TTL_MS=0)
# so that every request resolves its context, asks for a decision and reads PostgreSQL. The
# baseline "without tenancy" is the same page read by a platform API key (no tenant context,
# an explicit where on the tenant).
export PUBLIC_CACHE_TTL_MS=0
start_and_wait_ready "$OUT_DIR/serve-nocache.log"
bench_endpoint list-uncached "$LIST_PATH"
bench_endpoint by-id-uncached "$BYID_PATH"
bench_endpoint list-no-tenancy "$NOTENANCY_PATH" platformkey
bench_endpoint list-host-builtin "$HOST_LIST_PATH" none "" "$HOST_NAME"
bench_endpoint by-id-host-builtin "$HOST_BYID_PATH" none "" "$HOST_NAME"
stop_server

CERBOS_SH="${CITYOS_RECIPES_DIR:-$ROOT/../shared/recipes}/cerbos.sh"
if ! selected list-host-pdp && ! selected by-id-host-pdp && ! selected list-host-pdp-uncached; then
  :
elif [ -f "$CERBOS_SH" ] && command -v npm >/dev/null 2>&1; then
  export TOOLS_DIR="$ROOT/target/tmp/cerbos/tools" CERBOS_HTTP_ADDR="127.0.0.1:${BENCH_CERBOS_PORT:-3692}" \
    CERBOS_GRPC_ADDR="127.0.0.1:${BENCH_CERBOS_GRPC_PORT:-3693}"
  if bash "$CERBOS_SH" start "$ROOT/policies"; then
    PDP_STARTED=1
    export CERBOS_PDP_URL="http://$CERBOS_HTTP_ADDR"
    start_and_wait_ready "$OUT_DIR/serve-pdp.log"
    bench_endpoint list-host-pdp "$HOST_LIST_PATH" none "" "$HOST_NAME"
    bench_endpoint by-id-host-pdp "$HOST_BYID_PATH" none "" "$HOST_NAME"
    stop_server
    export CERBOS_PLAN_CACHE_MS=0
    start_and_wait_ready "$OUT_DIR/serve-pdp-nocache.log"
    bench_endpoint list-host-pdp-uncached "$HOST_LIST_PATH" none "" "$HOST_NAME"
    stop_server
    unset CERBOS_PDP_URL CERBOS_PLAN_CACHE_MS
    bash "$CERBOS_SH" stop >/dev/null 2>&1 || true
    PDP_STARTED=0
  else
    log "the Cerbos PDP did not start: the PDP runs are skipped"
  fi
else
  log "no Cerbos recipe or npm: the PDP runs are skipped"
fi

# ------------------------------------------------------------------ report ----------------
GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
if [ -n "$(git status --porcelain 2>/dev/null | head -n 1)" ]; then GIT_REV="$GIT_REV (dirty tree)"; fi
{
  echo "# CityOS bench — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Binary \`${BIN#"$ROOT"/}\` at $GIT_REV; $(nproc) cores, $(awk '/^MemTotal:/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); wrk shares the cores with the server and PostgreSQL."
  echo "Data: \`${DATA_DIR#"$ROOT"/}\` seeded with \`cityos seed --demo\` and \`cityos seed --bench\` (seed --bench: ${SEED_BENCH_MS:-?} ms)."
  echo
  echo "| Measure | min | median |"
  echo "| --- | ---: | ---: |"
  echo "| Cold start: spawn \`cityos serve\` → first 200 from \`/api/ready\` (n=$RUNS) | $COLD_MIN ms | $COLD_MED ms |"
  echo "| … without the embedded PostgreSQL start (\`elapsed_ms\` of \"embedded postgres ready\") | $APP_MIN ms | $APP_MED ms |"
  echo "| Idle RSS of the cityos process (ready + 2 s, postgres children excluded) | $( [ -n "$IDLE_RSS_KB" ] && mib "$IDLE_RSS_KB" || echo '?') | |"
  echo
  echo "Load: \`wrk -t$THREADS -c$CONNS -d$DURATION --latency\`, tenant \`$TENANT\`, 127.0.0.1."
  echo
  echo "| Endpoint | Request | HTTP | req/s | p50 ms | p99 ms | requests / errors | peak RSS |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Admin UI, sequential (n=${BENCH_ADMIN_N:-200}, one connection at a time): time to first byte and page weight (HTML + admin.css + htmx.min.js, uncompressed)."
  echo
  echo "| Page | Request | p50 ms | p90 ms | HTML | HTML + CSS + JS |"
  echo "| --- | --- | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${ADMIN_ROWS[@]}"
} >"$RESULTS"
cat "$RESULTS"
log "written to ${RESULTS#"$ROOT"/} (raw wrk output and logs in ${OUT_DIR#"$ROOT"/}/)"
