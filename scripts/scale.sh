#!/usr/bin/env bash
# Listing at scale: first sync, warm remount, daemon memory and `ls -lR` against local disk.
#
# Usage: scripts/scale.sh [ITEMS ...]          (default: 100000)
#        PROFILE=lan scripts/scale.sh 100000  (default PROFILE=wan: 40 ms a request)
#        BIN_DIR=DIR scripts/scale.sh          (binaries from DIR, e.g. an older build; no build)
#
# Builds the release binaries, then for each item count:
#   1. starts `micloud-sim --items N --profile $PROFILE` on 127.0.0.1 (fingerprints cached in
#      $SCALE_DATA, default /tmp/micloudfs-scale, so the second run starts fast);
#   2. logs in, mounts with an empty cache dir and times `mount` until it returns (the tree is
#      live then): "first sync", with the number of listing requests the emulator served;
#   3. times `ls -lR` of the whole fresh mount, and of the same tree laid out on local disk
#      (directories and empty files, same names; the local run is the second of two, so its
#      metadata is in the page cache: the ratio is the mount's cost against a warm disk);
#   4. reads the daemon's peak RSS (VmHWM);
#   5. unmounts and mounts again with the same cache dir, $WARM_RUNS times (default 5):
#      "warm remount" (median, min and max), its listing requests before `mount` returned,
#      and how the daemon got its tree (from the tree snapshot, or built from the catalog),
#      as its log says;
#   6. unmounts. Everything it started (emulator, mounts) is stopped at exit, by pid.
# Needs root or FUSE rights, /dev/fuse and fusermount3. Prints one block per item count.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(100000)
profile=${PROFILE:-wan}
data=${SCALE_DATA:-/tmp/micloudfs-scale}
mkdir -p "$data"

bin=${BIN_DIR:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet --bins
  bin=$PWD/target/release
fi
fs=$bin/micloudfs
simbin=$bin/micloud-sim
work=$(mktemp -d)
sim_pid=""
mnt="$work/mnt"
mkdir -p "$mnt"

cleanup() {
  if mountpoint -q "$mnt" 2>/dev/null; then "$fs" unmount "$mnt" 2>/dev/null || "$fs" unmount --lazy "$mnt" || true; fi
  if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f s", ms / 1000 }'; }

# The pid of the daemon serving $mnt (a `micloudfs mount` process naming it).
daemon_pid() {
  local p
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "micloudfs mount $mnt "; then
      basename "$p"; return
    fi
  done
}

# Listing requests the emulator has served (album list, galleries, timeline, cursors, recordings).
listing_requests() {
  curl -sf "$base/_sim/stats" | python3 -c '
import json, sys
r = json.load(sys.stdin)["requests"]
print(sum(v for k, v in r.items() if not k.startswith(("/gallery/storage", "/_sim", "/api", "/pass", "/sts", "/status", "/sfs/ns/recorder/file", "/dl", "/file", "/thumb"))))'
}

run() {
  local items=$1
  start_sim "$work/sim.out" "$work/sim.log" "$simbin" --items "$items" --profile "$profile" \
    --data-dir "$data"
  local config="$work/config-$items" cache="$work/cache-$items"
  sim_login "$fs" "$config"

  local r0 t0 t1 r1
  r0=$(listing_requests)
  t0=$(now_ms)
  "$fs" mount "$mnt" --config-dir "$config" --cache-dir "$cache" >/dev/null
  t1=$(now_ms)
  r1=$(listing_requests)
  local first=$((t1 - t0)) first_req=$((r1 - r0))

  t0=$(now_ms)
  ls -lR "$mnt" >"$work/ls-mount" 2>&1
  t1=$(now_ms)
  local ls_mount=$((t1 - t0))
  local pid hwm
  pid=$(daemon_pid)
  hwm=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")

  # The same tree on local disk: directories and empty files with the same names.
  local disk="$work/disk"
  rm -rf "$disk"; mkdir -p "$disk"
  (cd "$mnt" && find . -type d -print0) | (cd "$disk" && xargs -0 mkdir -p)
  (cd "$mnt" && find . -type f -print0) | (cd "$disk" && xargs -0 touch)
  ls -lR "$disk" >/dev/null 2>&1
  t0=$(now_ms)
  ls -lR "$disk" >"$work/ls-disk" 2>&1
  t1=$(now_ms)
  local ls_disk=$((t1 - t0))
  local entries
  entries=$(grep -c '^[-d]' "$work/ls-mount" || true)
  rm -rf "$disk"

  "$fs" unmount "$mnt"
  while [ -n "$(daemon_pid)" ]; do sleep 0.05; done
  # Let the first mount's background snapshot finish (it is written after the mount returns).
  sleep 1
  local warms=() warm_req=0 i
  for ((i = 0; i < ${WARM_RUNS:-5}; i++)); do
    r0=$(listing_requests)
    t0=$(now_ms)
    "$fs" mount "$mnt" --config-dir "$config" --cache-dir "$cache" >/dev/null
    t1=$(now_ms)
    r1=$(listing_requests)
    warms+=($((t1 - t0)))
    warm_req=$((warm_req + r1 - r0))
    "$fs" unmount "$mnt"
    while [ -n "$(daemon_pid)" ]; do sleep 0.05; done
  done
  local sorted warm warm_min warm_max
  sorted=$(printf '%s\n' "${warms[@]}" | sort -n)
  warm=$(echo "$sorted" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  warm_min=$(echo "$sorted" | head -1)
  warm_max=$(echo "$sorted" | tail -1)
  local tree_line how
  tree_line=$(grep -E "tree read from its snapshot|tree built from the catalog" "$cache/micloudfs.log" \
    | tail -1 | sed -E 's/\x1b\[[0-9;]*m//g' || true)
  case "$tree_line" in
    *snapshot*) how="read from its snapshot" ;;
    *built*) how="built from the catalog" ;;
    *) how="(not in the log)" ;;
  esac
  how="$how $(echo "$tree_line" | grep -oE '\b(ms|load_ms|build_ms|record_ms)=[0-9]+' | tr '\n' ' ')"

  kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true; sim_pid=""

  echo "items $items, profile $profile"
  echo "  first sync (mount until live)  $(secs $first), $first_req listing requests"
  echo "  warm remount                   $(secs $warm) median of ${#warms[@]} ($(secs $warm_min) to $(secs $warm_max)), $warm_req listing requests before they returned"
  echo "  warm remount's tree            $how(last run, daemon's log)"
  echo "  daemon peak RSS                ${hwm} MiB"
  echo "  ls -lR fresh mount             $(secs $ls_mount) for $entries entries"
  echo "  ls -lR same tree, local disk   $(secs $ls_disk)"
  awk -v a="$ls_mount" -v b="$ls_disk" 'BEGIN { printf "  ls -lR mount / local disk      %.2fx\n", a / (b > 0 ? b : 1) }'
}

for n in "${counts[@]}"; do run "$n"; done
