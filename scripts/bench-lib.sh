# Helpers the benchmark scripts share (sourced, not run).

# CPU ticks (1/100 s) used so far by a process, or by the postmaster and all its children.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
  local pm="$1" t=0 f
  t=$(ticks "$pm")
  for f in /proc/[0-9]*/stat; do
    awk -v pm="$pm" '{ if ($4 == pm) { s += $14 + $15 } } END { print s + 0 }' "$f" 2>/dev/null
  done | awk -v t="$t" '{ s += $1 } END { print s + t }'
}

# The pid of the postmaster of the cluster under a data directory (empty if none runs).
postmaster_under() {
  local pm_file
  pm_file="$(find "$1" -maxdepth 3 -name postmaster.pid 2>/dev/null | head -n 1)"
  head -n 1 "$pm_file" 2>/dev/null || true
}
