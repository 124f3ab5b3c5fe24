#!/usr/bin/env bash
# Installs cargo-fuzz (the libFuzzer driver used by `make fuzz`) into .tools/, once, and prints
# the path of the binary. Pinned, so every machine runs the same driver and the same flags.
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=..., -Cpasses=sancov-module, ...). The
# machine has only a stable toolchain and no other can be fetched, so callers set
# RUSTC_BOOTSTRAP=1, which lets stable rustc accept them, and pass `--sanitizer none`:
# AddressSanitizer (cargo-fuzz's default) checks memory accesses of unsafe code, and the broker
# has no unsafe code (its dependencies are not the target), so its slowdown buys little. What the
# targets look for is panics and broken properties (fuzz/properties.rs). For example:
#   cd fuzz && RUSTC_BOOTSTRAP=1 "$(../scripts/ensure-cargo-fuzz.sh)" fuzz run --sanitizer none decode_v5
set -euo pipefail
exec "$(dirname "$0")/ensure-cargo-tool.sh" cargo-fuzz 0.13.2 cargo-fuzz "one-time, ~1.5 min"
