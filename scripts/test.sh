#!/usr/bin/env bash
# The whole test suite in one command, real FUSE mounts included.
#
# Installs what the tests call when it is missing (fuse3 for fusermount3, rsync), then runs
# every test of the workspace: micloudfs's unit and end-to-end tests, the import-graph check,
# and the emulator's (micloud-sim/) own unit and conformance tests. The end-to-end tests mount
# for real, so this needs /dev/fuse and root (or a user allowed to mount FUSE file systems).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
command -v sha1sum >/dev/null 2>&1 || need+=(coreutils)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -e /dev/fuse ]; then
  echo "test.sh: /dev/fuse is missing; the end-to-end tests need a machine that can mount FUSE" >&2
  exit 1
fi

cargo test --workspace --all-targets "$@"
