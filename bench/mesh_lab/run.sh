#!/usr/bin/env bash
# Real routers in simulated hosts: time from the last `weft launch` until every router's
# `weft status` shows a full mesh (N-1 established connections each). Baseline in the same
# run: the same measurement for 2 hosts, so the table shows how formation time scales.
# Run as root from anywhere: bench/mesh_lab/run.sh [N]   (default N=10)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-10}
cargo build --release --locked --bin weft --bin weft-lab >/dev/null 2>&1
weft=$PWD/target/release/weft
lab() { "$PWD/target/release/weft-lab" --prefix bml "$@"; }
trap 'lab down >/dev/null 2>&1 || true' EXIT

# form N: launch N routers (h2..hN each given h1 as their only peer; discovery finds the
# rest), print seconds from the last launch to a full mesh everywhere.
form() {
  local n=$1
  lab down >/dev/null 2>&1 || true
  lab up --hosts "$n" >/dev/null
  lab exec h1 -- "$weft" launch >/dev/null
  for i in $(seq 2 "$n"); do lab exec "h$i" -- "$weft" launch 198.18.0.1 >/dev/null; done
  local t0; t0=$(date +%s.%N)
  local deadline=$(( $(date +%s) + 120 ))
  while :; do
    local done_hosts=0
    for i in $(seq 1 "$n"); do
      local est
      est=$(lab exec "h$i" -- "$weft" status connections | grep -c ' established ' || true)
      [ "$est" -ge $((n - 1)) ] && done_hosts=$((done_hosts + 1))
    done
    [ "$done_hosts" -eq "$n" ] && break
    if [ "$(date +%s)" -gt "$deadline" ]; then echo "timeout" ; return 1; fi
    sleep 0.1
  done
  local t1; t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

base=$(form 2)
full=$(form "$N")
printf '\n| hosts | full mesh formed after (s) | ratio to 2 hosts |\n|---|---|---|\n'
printf '| 2 | %.2f | 1.00 |\n' "$base"
printf '| %d | %.2f | %.2f |\n' "$N" "$full" "$(echo "$full / $base" | bc -l)"
