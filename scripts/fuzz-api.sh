#!/usr/bin/env bash
# Fuzzes the REST API from its own OpenAPI document (GET /api/openapi.json) with schemathesis:
# generated and mutated paths, queries and bodies for every operation, checked for
# `not_a_server_error` (no 5xx on any input). Three passes against the release binary on a
# fresh embedded database with the demo data:
#   1. anonymous;
#   2. as the demo super admin, /api/users/* left out (a generated logout or password change
#      would end the session and leave the rest of the pass at 401);
#   3. the integration routes the document leaves out (webhooks, cron, pushes), unsigned, with
#      generated bodies and headers (scripts/fuzz-integrations.py, hypothesis).
# Also fails when the server log shows an internal error or a panic.
#
# Build first (`cargo build --release`). schemathesis is installed into target/fuzz-venv (PyPI).
#
# Env: FUZZ_PORT (3092), FUZZ_SECONDS (300 per schemathesis pass), FUZZ_REQUESTS (5000, the
#      integration pass), FUZZ_SEED (random), FUZZ_WORKERS (2), CITYOS_BIN (target/release/cityos).
# Results: target/fuzz/ (schemathesis reports, server log).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BIN="${CITYOS_BIN:-$ROOT/target/release/cityos}"
DATA_DIR="$ROOT/.data-fuzz"
OUT_DIR="$ROOT/target/fuzz"
VENV="$ROOT/target/fuzz-venv"
SCHEMATHESIS_VERSION="4.32.5"
PORT="${FUZZ_PORT:-3092}"
SECONDS_PER_PASS="${FUZZ_SECONDS:-300}"
WORKERS="${FUZZ_WORKERS:-2}"
BASE="http://127.0.0.1:${PORT}"

log() { printf '[fuzz] %s\n' "$*" >&2; }
die() { printf '[fuzz] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "$BIN not found: run 'cargo build --release' first"
command -v python3 >/dev/null 2>&1 || die "python3 not found"
mkdir -p "$OUT_DIR"

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

unset DATABASE_URL
export CITYOS_DATA_DIR="$DATA_DIR" PORT HOST=127.0.0.1 APP_ENV=development LOG_FORMAT=json
# Generated requests may hit the login throttle; that is a 429, not a failure.

SERVER_PID=""
stop_server() {
  local pid="$SERVER_PID" i
  [ -n "$pid" ] || return 0
  SERVER_PID=""
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
trap stop_server EXIT
trap 'exit 130' INT TERM

(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && die "port $PORT is in use (set FUZZ_PORT)"
rm -rf "$DATA_DIR"
for step in migrate "seed --demo"; do
  log "cityos $step"
  # shellcheck disable=SC2086
  "$BIN" $step >"$OUT_DIR/${step// /-}.log" 2>&1 || die "cityos $step failed (log: $OUT_DIR/${step// /-}.log)"
done
SERVER_LOG="$OUT_DIR/server.log"
"$BIN" serve >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/api/ready" || true)" = 200 ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || die "cityos serve exited (log: $SERVER_LOG)"
  sleep 0.1
done

TOKEN="$(curl -s --max-time 10 -H 'Content-Type: application/json' \
  -d "{\"email\":\"${SEED_ADMIN_EMAIL:-admin@cityos.local}\",\"password\":\"${SEED_ADMIN_PASSWORD:-cityos-admin}\"}" \
  "$BASE/api/users/login" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("token",""))')"
[ -n "$TOKEN" ] || die "the demo super admin could not log in"

seed_args=()
[ -n "${FUZZ_SEED:-}" ] && seed_args=(--seed "$FUZZ_SEED")
status=0
run_pass() {
  local name="$1"
  shift
  log "pass '$name': ${SECONDS_PER_PASS} s"
  local report="$OUT_DIR/$name.txt"
  # Run from the output folder: schemathesis and hypothesis keep their caches in the working one.
  (cd "$OUT_DIR" && "$VENV/bin/schemathesis" run "$BASE/api/openapi.json" --checks not_a_server_error \
    --phases coverage,fuzzing --max-time "$SECONDS_PER_PASS" -w "$WORKERS" "${seed_args[@]}" \
    "$@") >"$report" 2>&1 || true
  sed -n '/SUMMARY/,$p' "$report" | grep -E 'Server error|Runtime Error|generated|Seed' | sed "s/^/[fuzz] $name: /" >&2 || true
  # Its exit code also counts the tool's own runtime errors (seen: a hypothesis AST error), so
  # the verdict is read from the report: any server error fails, no summary fails.
  if grep -q 'Server error' "$report" || ! grep -q ' generated, ' "$report"; then
    status=1
  fi
}
run_pass anonymous
run_pass super-admin -H "Authorization: JWT $TOKEN" --exclude-path-regex '^/api/users'
log "pass 'integrations': ${FUZZ_REQUESTS:-5000} requests"
if ! (cd "$OUT_DIR" && "$VENV/bin/python" "$ROOT/scripts/fuzz-integrations.py" "$BASE" \
  "${FUZZ_REQUESTS:-5000}" ${FUZZ_SEED:+"$FUZZ_SEED"}) >"$OUT_DIR/integrations.txt" 2>&1; then
  status=1
fi
sed 's/^/[fuzz] integrations: /' "$OUT_DIR/integrations.txt" | tail -n 11 >&2

internal="$(grep -c '"internal error"\|panicked' "$SERVER_LOG" || true)"
if [ "${internal:-0}" -gt 0 ]; then
  log "the server logged $internal internal errors or panics (see $SERVER_LOG)"
  status=1
fi
[ "$status" = 0 ] && log "no server errors" || log "FAILED: reports in $OUT_DIR"
exit "$status"
