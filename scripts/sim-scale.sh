#!/usr/bin/env bash
# Start-up time and peak memory of micloud-sim at scale (realistic sizes), cold and warm.
#
# Usage: scripts/sim-scale.sh [ITEMS ...]        (default: 100000)
#
# Builds the release binary, then for each item count starts `micloud-sim --items N` twice
# on 127.0.0.1 with a fresh --data-dir: "cold" (no fingerprint cache file yet) and "warm"
# (reads the file the cold run wrote). Each run measures, from launch:
#   listen  - the `listening on` line on stdout,
#   login   - the login chain done with the default passToken (login, serviceLogin, sts),
#   page0   - `galleries?pageNum=0&pageSize=30` answered,
#   deep    - a page in the middle of the merged listing answered (pageSize=100),
# and peak RSS (VmHWM from /proc/PID/status) after those requests. Needs curl. Stops the
# emulator it started (by its pid) at the end of each run.
set -euo pipefail
cd "$(dirname "$0")/.."

counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(100000)
command -v curl >/dev/null || { echo "sim-scale.sh: needs curl" >&2; exit 1; }

cargo build --release --quiet -p micloud-sim --bin micloud-sim
bin=target/release/micloud-sim
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

run() { # run ITEMS LABEL DATA_DIR
  local items=$1 label=$2 data=$3 out="$work/out" t0 t_listen t_login t_page0 t_deep base
  : >"$out"
  t0=$(now_ms)
  "$bin" --listen 127.0.0.1:0 --items "$items" --data-dir "$data" >"$out" 2>"$work/log" &
  pid=$!
  until grep -q '^listening on ' "$out"; do
    kill -0 "$pid" 2>/dev/null || { echo "micloud-sim exited:" >&2; cat "$work/log" >&2; exit 1; }
    sleep 0.01
  done
  t_listen=$(now_ms)
  base=$(sed -n 's/^listening on //p' "$out" | head -1)

  # Login chain: loginUrl, passport (302 to sts), sts (sets serviceToken).
  local login_url sts jar="$work/jar"
  login_url=$(curl -sf "$base/api/user/login?ts=1&followUp=%2F&_locale=zh_CN" |
    sed -n 's/.*"loginUrl":"\([^"]*\)".*/\1/p')
  sts=$(curl -sf -o /dev/null -w '%{redirect_url}' \
    -H "Cookie: userId=1234567890; deviceId=wb_scale; passToken=V1:sim-pass-token" "$login_url")
  curl -sf -o /dev/null -c "$jar" "$sts"
  t_login=$(now_ms)
  local token
  token=$(awk '$6 == "serviceToken" { print $7 }' "$jar")
  local cookie="userId=1234567890; serviceToken=$token"
  curl -sf -o "$work/page0" -H "Cookie: $cookie" \
    "$base/gallery/user/galleries?ts=1&pageNum=0&pageSize=30"
  grep -q '"galleries":\[{' "$work/page0" || { echo "page 0 is empty" >&2; exit 1; }
  t_page0=$(now_ms)
  curl -sf -o "$work/deep" -H "Cookie: $cookie" \
    "$base/gallery/user/galleries?ts=1&pageNum=$((items / 200))&pageSize=100"
  grep -q '"galleries":\[{' "$work/deep" || { echo "deep page is empty" >&2; exit 1; }
  t_deep=$(now_ms)
  local hwm
  hwm=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  printf '%-8s %-5s %8d %8d %8d %8d %9s\n' "$items" "$label" $((t_listen - t0)) \
    $((t_login - t0)) $((t_page0 - t0)) $((t_deep - t0)) "${hwm} MiB"
}

echo "micloud-sim --sizes real, times in ms from launch, peak RSS (VmHWM)"
printf '%-8s %-5s %8s %8s %8s %8s %9s\n' items cache listen login page0 deep peak
for n in "${counts[@]}"; do
  data="$work/data-$n"
  run "$n" cold "$data"
  run "$n" warm "$data"
done
