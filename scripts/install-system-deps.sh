#!/usr/bin/env bash
# Installs the system packages CityOS needs on Debian bookworm:
#   - PostgreSQL 15 server binaries (postgresql-15): the embedded cluster runs them
#   - PostGIS 3 for PostgreSQL 15 (postgresql-15-postgis-3)
#   - pgvector, built with PGXS from Debian's trixie *source* package (bookworm has no
#     pgvector for PG 15); the build dir is .tools/pgext in the repo (git-ignored)
#   - wrk, only with --bench
#
# Usage: scripts/install-system-deps.sh [--bench]
#
# Idempotent and non-interactive. When everything is present it only looks at a few
# files and exits at once; `apt-get update` runs at most once, and only when something
# has to be installed. Waits for an apt/dpkg lock held by another process instead of
# failing. Runs as root, or through sudo when not root.
#
# Env: OPTFLAGS (default "": a portable pgvector build; pgvector's own default would be
#      -march=native), DEBIAN_MIRROR (mirror URI for the deb-src entry; default: the one
#      this machine already uses for bookworm), APT_LOCK_WAIT (seconds to wait for a
#      held apt/dpkg lock, default 900).
set -Eeuo pipefail

PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PG_LIB="/usr/lib/postgresql/${PG_MAJOR}/lib"
PG_SHARE="/usr/share/postgresql/${PG_MAJOR}"
PGVECTOR_SUITE=trixie
SRC_LIST="/etc/apt/sources.list.d/pgvector-${PGVECTOR_SUITE}-src.sources"
OPTFLAGS="${OPTFLAGS-}"
APT_LOCK_WAIT="${APT_LOCK_WAIT:-900}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="$ROOT/.tools"
PGEXT_DIR="$TOOLS_DIR/pgext"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[deps] %s\n' "$*"; }
die() { printf '[deps] ERROR: %s\n' "$*" >&2; exit 1; }
on_err() { printf '[deps] ERROR: command failed (exit %s, line %s): %s\n' "$1" "$2" "$BASH_COMMAND" >&2; }
trap 'on_err $? $LINENO' ERR

usage() {
  sed -n '2,/^set -Eeuo/{/^set -Eeuo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

WANT_BENCH=0
for arg in "$@"; do
  case "$arg" in
    --bench) WANT_BENCH=1 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done

# ---------------------------------------------------------------- what is there ------
have_pg() { [ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ]; }
have_postgis() { [ -f "$PG_SHARE/extension/postgis.control" ] && [ -f "$PG_LIB/postgis-3.so" ]; }
have_vector() { [ -f "$PG_SHARE/extension/vector.control" ] && [ -f "$PG_LIB/vector.so" ]; }
have_cmd() { command -v "$1" >/dev/null 2>&1; }
vector_version() { sed -n "s/^default_version = '\(.*\)'/\1/p" "$PG_SHARE/extension/vector.control" 2>/dev/null || true; }
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

MISSING=()
find_missing() {
  MISSING=()
  have_pg || MISSING+=("postgresql-${PG_MAJOR}")
  have_postgis || MISSING+=(postgis)
  have_vector || MISSING+=(pgvector)
  if [ "$WANT_BENCH" = 1 ]; then
    have_cmd wrk || MISSING+=(wrk)
    have_cmd curl || MISSING+=(curl)
  fi
  return 0
}

present_summary() {
  local s
  s="postgresql-${PG_MAJOR}, postgis, pgvector $(vector_version)"
  [ "$WANT_BENCH" = 1 ] && s="$s, wrk, curl"
  printf '%s' "$s"
}

find_missing
if [ "${#MISSING[@]}" = 0 ]; then
  log "all present: $(present_summary)"
  exit 0
fi
log "missing: ${MISSING[*]}"

# ---------------------------------------------------------------- privileges ---------
if [ "$(id -u)" = 0 ]; then
  as_root() { "$@"; }
elif have_cmd sudo; then
  log "not root: using sudo for the install steps"
  as_root() { sudo env DEBIAN_FRONTEND=noninteractive "$@"; }
else
  die "installing ${MISSING[*]} needs root, and sudo is not available: run this script as root (e.g. su -c '$0${*:+ $*}')"
fi

# One run of this script at a time (two runs would share the pgvector build dir).
mkdir -p "$TOOLS_DIR"
exec 9>"$TOOLS_DIR/install-system-deps.lock"
if ! flock -n 9; then
  log "another install-system-deps run is active; waiting for it"
  flock -w 1800 9 || die "timed out waiting for the other install-system-deps run"
fi
find_missing   # the other run (or another process) may have installed things meanwhile
if [ "${#MISSING[@]}" = 0 ]; then
  log "all present: $(present_summary)"
  exit 0
fi

# ---------------------------------------------------------------- apt helpers --------
APT_LOG="$(mktemp)"
cleanup() { rm -f "$APT_LOG"; }
trap cleanup EXIT

show_log_tail() { tail -n "${2:-25}" "$1" | sed 's/^/[deps]   | /' >&2; }

# apt-get with waiting for a lock held by another apt/dpkg process (the lock timeout
# option covers dpkg's lock; the lists lock of `apt-get update` is retried here).
apt_try() {
  local waited=0
  while :; do
    if as_root apt-get -o DPkg::Lock::Timeout=60 "$@" >"$APT_LOG" 2>&1; then
      return 0
    fi
    if grep -qiE 'could not get lock|unable to acquire the dpkg frontend lock|unable to lock|is another process using it' "$APT_LOG"; then
      [ "$waited" -lt "$APT_LOCK_WAIT" ] || return 1
      log "apt/dpkg lock is held by another process; waiting (${waited}s so far)"
      sleep 10
      waited=$((waited + 10))
      continue
    fi
    if grep -q "dpkg --configure -a" "$APT_LOG" && [ -z "${DPKG_CONFIGURED:-}" ]; then
      DPKG_CONFIGURED=1
      log "dpkg was interrupted earlier: running dpkg --configure -a"
      as_root dpkg --configure -a >/dev/null 2>&1 || true
      continue
    fi
    return 1
  done
}

APT_UPDATED=0
apt_update_once() {
  [ "$APT_UPDATED" = 1 ] && return 0
  log "apt-get update"
  apt_try update -qq || { show_log_tail "$APT_LOG"; die "apt-get update failed"; }
  APT_UPDATED=1
}

# Installs those of the given packages that are not installed yet.
apt_install() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [ "${#missing[@]}" = 0 ] && return 0
  # Empty or stale package lists: update first when apt does not know a package.
  apt-cache show "${missing[@]}" >/dev/null 2>&1 || apt_update_once
  log "apt-get install ${missing[*]}"
  if ! apt_try install -y -qq --no-install-recommends "${missing[@]}"; then
    if [ "$APT_UPDATED" = 0 ]; then   # e.g. a 404 for a superseded version: refresh and retry
      apt_update_once
      apt_try install -y -qq --no-install-recommends "${missing[@]}" ||
        { show_log_tail "$APT_LOG"; die "apt-get install ${missing[*]} failed"; }
    else
      show_log_tail "$APT_LOG"
      die "apt-get install ${missing[*]} failed"
    fi
  fi
}

# ---------------------------------------------------------------- pgvector -----------
ensure_pgvector_src_list() {
  [ -f "$SRC_LIST" ] && return 0
  local mirror="${DEBIAN_MIRROR:-}"
  if [ -z "$mirror" ]; then   # reuse the mirror this machine already uses for bookworm
    mirror="$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ && u !~ /security/ {print u; exit}' \
      /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  fi
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror="$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list)"
  fi
  [ -n "$mirror" ] || die "cannot find this machine's Debian mirror; set DEBIAN_MIRROR"
  log "adding deb-src ${PGVECTOR_SUITE} entry: $SRC_LIST"
  printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" "$PGVECTOR_SUITE" | as_root tee "$SRC_LIST" >/dev/null
}

# newest file in the build dir matching a glob (name only); empty when none
newest() { find "$PGEXT_DIR" -maxdepth 1 -type f -name "$1" -printf '%f\n' 2>/dev/null | sort -V | tail -n 1 || true; }
latest_dsc() { newest 'pgvector_*.dsc'; }

fetch_pgvector_source() {
  mkdir -p "$PGEXT_DIR"
  [ -n "$(latest_dsc)" ] && return 0
  log "apt-get source --download-only pgvector/${PGVECTOR_SUITE}"
  # no root needed: it only downloads into the build dir (lists are world-readable)
  if ! (cd "$PGEXT_DIR" && apt-get source --download-only -qq "pgvector/${PGVECTOR_SUITE}") >"$APT_LOG" 2>&1; then
    [ "$APT_UPDATED" = 1 ] && { show_log_tail "$APT_LOG"; die "cannot download pgvector's ${PGVECTOR_SUITE} source package"; }
    apt_update_once
    (cd "$PGEXT_DIR" && apt-get source --download-only -qq "pgvector/${PGVECTOR_SUITE}") >"$APT_LOG" 2>&1 ||
      { show_log_tail "$APT_LOG"; die "cannot download pgvector's ${PGVECTOR_SUITE} source package"; }
  fi
  [ -n "$(latest_dsc)" ] || die "pgvector source download left no .dsc in $PGEXT_DIR"
}

# Unpacks the source package (with Debian's patches when dpkg-source is there) into
# $PGEXT_DIR/pgvector-<version>; sets PGVECTOR_SRC and PGVECTOR_VER.
unpack_pgvector_source() {
  local dsc tmp orig
  dsc="$(latest_dsc)"
  PGVECTOR_VER="${dsc#pgvector_}"
  PGVECTOR_VER="${PGVECTOR_VER%.dsc}"
  PGVECTOR_VER="${PGVECTOR_VER%-*}"   # drop the Debian revision
  PGVECTOR_SRC="$PGEXT_DIR/pgvector-$PGVECTOR_VER"
  [ -f "$PGVECTOR_SRC/Makefile" ] && return 0
  rm -rf "$PGVECTOR_SRC"
  tmp="$(mktemp -d "$PGEXT_DIR/unpack.XXXXXX")"
  if have_cmd dpkg-source && (cd "$PGEXT_DIR" && dpkg-source -q -x "$dsc" "$tmp/src") >"$APT_LOG" 2>&1; then
    :
  else
    orig="$(newest 'pgvector_*.orig.tar.*')"
    [ -n "$orig" ] || { rm -rf "$tmp"; die "no pgvector orig tarball in $PGEXT_DIR"; }
    mkdir -p "$tmp/src"
    tar -xf "$PGEXT_DIR/$orig" -C "$tmp/src" --strip-components=1
  fi
  mv "$tmp/src" "$PGVECTOR_SRC"
  rm -rf "$tmp"
}

build_pgvector() {
  log "building pgvector ${PGVECTOR_VER} against PostgreSQL ${PG_MAJOR} (PGXS, OPTFLAGS='${OPTFLAGS}')"
  make -C "$PGVECTOR_SRC" -j"$(nproc)" PG_CONFIG="$PG_BIN/pg_config" OPTFLAGS="$OPTFLAGS" \
    >"$PGEXT_DIR/build.log" 2>&1 || { show_log_tail "$PGEXT_DIR/build.log"; die "pgvector build failed (log: $PGEXT_DIR/build.log)"; }
}

install_pgvector() {
  as_root make -C "$PGVECTOR_SRC" install PG_CONFIG="$PG_BIN/pg_config" OPTFLAGS="$OPTFLAGS" \
    >"$PGEXT_DIR/install.log" 2>&1 || { show_log_tail "$PGEXT_DIR/install.log"; die "pgvector make install failed"; }
}

# ---------------------------------------------------------------- install ------------
# Write the deb-src entry first, so that a single `apt-get update` covers everything.
have_vector || ensure_pgvector_src_list

if ! have_pg; then
  apt_install "postgresql-${PG_MAJOR}"
  have_pg || die "PostgreSQL ${PG_MAJOR} binaries still missing in $PG_BIN after install"
  log "postgresql-${PG_MAJOR}: installed"
fi

if ! have_postgis; then
  apt_install "postgresql-${PG_MAJOR}-postgis-3"
  have_postgis || die "PostGIS still missing ($PG_SHARE/extension/postgis.control) after install"
  log "postgis: installed"
fi

if ! have_vector; then
  apt_install build-essential "postgresql-server-dev-${PG_MAJOR}"
  fetch_pgvector_source
  unpack_pgvector_source
  build_pgvector
  have_vector || install_pgvector   # another process may have installed it meanwhile
  have_vector || die "pgvector still missing ($PG_SHARE/extension/vector.control) after make install"
  log "pgvector: installed $(vector_version)"
fi

if [ "$WANT_BENCH" = 1 ]; then
  have_cmd wrk || { apt_install wrk; have_cmd wrk || die "wrk still missing after install"; log "wrk: installed"; }
  have_cmd curl || { apt_install curl; have_cmd curl || die "curl still missing after install"; log "curl: installed"; }
fi

find_missing
[ "${#MISSING[@]}" = 0 ] || die "still missing: ${MISSING[*]}"
log "all present: $(present_summary)"
