#!/usr/bin/env bash
# Media upload benchmark (issue 8), loopback only, release binary:
#   (a) throughput of ~1 MB PNG uploads (multipart, `file` + `_payload`) to local disk, with the
#       configured image sizes and without (MEDIA_IMAGE_SIZES=none)
#   (b) the same to S3 (moto_server from ../shared/recipes/s3.sh, on $S3_PORT)
#   (c) peak RSS of the cityos process while one 100 MB file is uploaded (curl streams it)
# Prints a Markdown table and writes it to target/bench/media.md.
#
# Env: CITYOS_BIN (target/release/cityos), BENCH_PORT (3092), S3_PORT (9011),
#      BENCH_MEDIA_UPLOADS (60), BENCH_MEDIA_PARALLEL (4), TOOLS_DIR (target/tmp/s3-tools).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BIN="${CITYOS_BIN:-$ROOT/target/release/cityos}"
PORT="${BENCH_PORT:-3092}"
S3_PORT="${S3_PORT:-9011}"
UPLOADS="${BENCH_MEDIA_UPLOADS:-60}"
PARALLEL="${BENCH_MEDIA_PARALLEL:-4}"
OUT_DIR="$ROOT/target/bench"
WORK="$OUT_DIR/media"
DATA_DIR="$ROOT/.data-bench-media"
BASE="http://127.0.0.1:$PORT"
export TOOLS_DIR="${TOOLS_DIR:-$ROOT/target/tmp/s3-tools}"
RECIPE="${S3_RECIPE:-$ROOT/../shared/recipes/s3.sh}"

log() { printf '[bench-media] %s\n' "$*" >&2; }
die() { printf '[bench-media] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "$BIN not found: run 'cargo build --release' first"
mkdir -p "$WORK"

SERVER_PID=""
MOTO_PID=""
stop_server() {
  local pid="$SERVER_PID"
  [ -n "$pid" ] || return 0
  SERVER_PID=""
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_server
  if [ -n "$MOTO_PID" ]; then kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts the server with the extra environment given as arguments (NAME=value ...).
start_server() {
  env CITYOS_DATA_DIR="$DATA_DIR" PORT="$PORT" HOST=127.0.0.1 APP_ENV=development LOG_LEVEL=warn \
    MEDIA_MAX_BYTES=200000000 REQUEST_TIMEOUT_SECONDS=600 "$@" \
    "$BIN" serve >"$WORK/serve.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 2400); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/ready" 2>/dev/null || true)" = 200 ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$WORK/serve.log" >&2; die "server exited"; }
    sleep 0.05
  done
  die "server not ready"
}

login() {
  curl -s -H 'Content-Type: application/json' \
    -d "{\"email\":\"${SEED_ADMIN_EMAIL:-admin@cityos.local}\",\"password\":\"${SEED_ADMIN_PASSWORD:-cityos-admin}\"}" \
    "$BASE/api/users/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

# A ~1 MB PNG of noise (incompressible), 600x580 RGB, written with the standard library.
python3 - "$WORK/photo.png" <<'PY'
import os, struct, sys, zlib
w, h = 600, 580
raw = b"".join(b"\x00" + os.urandom(w * 3) for _ in range(h))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
PHOTO_BYTES="$(stat -c %s "$WORK/photo.png")"

# Uploads the photo $UPLOADS times, $PARALLEL at a time; prints "uploads/s MB/s".
throughput() {
  local token="$1" t0 t1 failures
  export BENCH_BASE="$BASE" BENCH_TOKEN="$token" BENCH_PHOTO="$WORK/photo.png"
  t0="$(date +%s.%N)"
  seq 1 "$UPLOADS" | xargs -P "$PARALLEL" -I{} sh -c \
    'curl -s -o /dev/null -w "%{http_code}\n" -H "Authorization: JWT $BENCH_TOKEN" \
       -F "_payload={\"alt\":\"bench {}\"}" -F "file=@$BENCH_PHOTO;filename=photo.png" \
       "$BENCH_BASE/api/media?tenant=fashionista-sa&depth=0"' >"$WORK/codes.txt"
  t1="$(date +%s.%N)"
  failures="$(grep -vc '^201$' "$WORK/codes.txt" || true)"
  [ "$failures" = 0 ] || log "WARNING: $failures uploads did not answer 201: $(sort "$WORK/codes.txt" | uniq -c | tr '\n' ' ')"
  awk -v n="$UPLOADS" -v b="$PHOTO_BYTES" -v t0="$t0" -v t1="$t1" \
    'BEGIN { d = t1 - t0; printf "%.1f %.1f\n", n / d, n * b / d / 1000000 }'
}

ROWS=()
run_case() {
  local label="$1"; shift
  rm -rf "$DATA_DIR"
  start_server "$@"
  local token; token="$(login)"
  read -r ups mbs < <(throughput "$token")
  log "$label: $ups uploads/s, $mbs MB/s"
  ROWS+=("| $label | $ups | $mbs |")
  if [ "$label" = "local disk, no sizes" ]; then
    # (c) one 100 MB upload, RSS sampled every 20 ms.
    head -c 100000000 /dev/urandom | { printf '%%PDF-1.7\n'; cat; } >"$WORK/big.pdf"
    local base_rss peak=0 rss
    base_rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")"
    curl -s -o "$WORK/big.json" -H "Authorization: JWT $token" -F '_payload={"alt":"big"}' \
      -F "file=@$WORK/big.pdf;filename=big.pdf" "$BASE/api/media?tenant=fashionista-sa&depth=0" &
    local curl_pid=$!
    while kill -0 "$curl_pid" 2>/dev/null; do
      rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")"
      [ "${rss:-0}" -gt "$peak" ] && peak="$rss"
      sleep 0.02
    done
    wait "$curl_pid"
    grep -q '"filesize":100000009' "$WORK/big.json" || log "WARNING: the 100 MB upload failed: $(head -c 300 "$WORK/big.json")"
    RSS_LINE="| RSS during a 100 MB upload (local disk) | before $((base_rss / 1024)) MiB | peak $((peak / 1024)) MiB |"
    rm -f "$WORK/big.pdf"
  fi
  stop_server
}

run_case "local disk, sizes thumbnail/card/feature" MEDIA_STORAGE=local
run_case "local disk, no sizes" MEDIA_STORAGE=local MEDIA_IMAGE_SIZES=none

MOTO="$(bash "$RECIPE" install)"
"$MOTO" -H 127.0.0.1 -p "$S3_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 1 200); do curl -sf -o /dev/null "http://127.0.0.1:$S3_PORT/moto-api/" && break; sleep 0.05; done
curl -sf -X PUT -o /dev/null "http://127.0.0.1:$S3_PORT/cms-media" || die "cannot create the bucket"
S3ENV=(MEDIA_STORAGE=s3 S3_ENDPOINT="http://127.0.0.1:$S3_PORT" S3_BUCKET=cms-media S3_REGION=us-east-1
  S3_ACCESS_KEY_ID=test S3_SECRET_ACCESS_KEY=test)
run_case "S3 (moto, loopback), no sizes" "${S3ENV[@]}" MEDIA_IMAGE_SIZES=none
rm -rf "$DATA_DIR"

{
  echo "| uploads of a $((PHOTO_BYTES / 1000)) kB PNG, $UPLOADS × $PARALLEL parallel | uploads/s | MB/s |"
  echo "|---|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo "${RSS_LINE:-}"
} | tee "$OUT_DIR/media.md"
