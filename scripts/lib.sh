# Shell functions shared by scripts/bench.sh and scripts/scale.sh (sourced, not run).

# start_sim OUT LOG SIMBIN ARGS...: starts micloud-sim with ARGS on a free loopback port,
# its stdout in OUT and its log in LOG, and waits until it listens. Sets `sim_pid` and
# `base` (its URL). Exits with the emulator's log if it stops first.
start_sim() {
  local out=$1 log=$2 bin=$3
  shift 3
  : >"$out"
  "$bin" --listen 127.0.0.1:0 "$@" >"$out" 2>"$log" &
  sim_pid=$!
  until grep -q '^listening on ' "$out"; do
    kill -0 "$sim_pid" 2>/dev/null || { echo "micloud-sim exited:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.05
  done
  base=$(sed -n 's/^listening on //p' "$out" | head -1)
}

# sim_login MICLOUDFS CONFIG_DIR: logs in to the emulator at `base` as its default account.
sim_login() {
  "$1" login --user-id 1234567890 --pass-token V1:sim-pass-token --api-base "$base" \
    --config-dir "$2" >/dev/null
}
