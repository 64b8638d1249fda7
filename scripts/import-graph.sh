#!/usr/bin/env bash
# The import graph of each crate's files (micloudfs in src/, the emulator in micloud-sim/src/):
# every file with the files it imports, then the cycles. Fails, as the test it runs does
# (tests/import_graph.rs, also part of scripts/test.sh), on a cycle between files of
# different folders, or on any cycle between the emulator's files.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --quiet --test import_graph -- --nocapture --test-threads 1 "$@"
