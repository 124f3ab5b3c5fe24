#!/usr/bin/env bash
# `make fuzz`: runs every cargo-fuzz target of fuzz/ for FUZZ_SECONDS (default 60) each, and
# prints per target the executions, executions per second, time and corpus size.
#
# Each run starts from the committed seed corpus, copied to fuzz/target/corpus/<target>/
# (libFuzzer writes the inputs it finds to its first corpus directory; the copy keeps
# fuzz/corpus/ as committed, and starting from the seeds every time keeps runs comparable).
# A crash leaves its input in fuzz/artifacts/<target>/; add it to fuzz/corpus/<target>/ once
# the bug is fixed, so `make test` (broker/tests/fuzz_corpus.rs) replays it from then on.
#
# Usage: scripts/fuzz.sh [TARGET...]   (default: every target)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo_fuzz="$("$root/scripts/ensure-cargo-fuzz.sh")"
seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(decode_v311 decode_v5 topic_filter config)
fi
cd "$root/fuzz"
# Stable rustc with nightly flags and no sanitizer: see scripts/ensure-cargo-fuzz.sh.
fuzz=(env RUSTC_BOOTSTRAP=1 "$cargo_fuzz" fuzz)
# Built once up front (all targets), so the build is not counted in the first target's time.
"${fuzz[@]}" build --sanitizer none >&2
failed=()
summary=()
for target in "${targets[@]}"; do
  scratch="target/corpus/$target"
  rm -rf "$scratch"
  mkdir -p "$scratch"
  cp "corpus/$target"/* "$scratch/"
  log="target/fuzz-$target.log"
  echo "fuzzing $target for ${seconds}s (log: fuzz/$log)..." >&2
  if ! "${fuzz[@]}" run --sanitizer none "$target" "$scratch" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    failed+=("$target")
    tail -n 30 "$log" >&2
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  time="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)"
  files="$(find "$scratch" -type f | wc -l)"
  bytes="$(du -sb "$scratch" | cut -f1)"
  seeds="$(find "corpus/$target" -type f | wc -l)"
  summary+=("$(printf '%-13s %12s %10s %6ss   corpus %s → %s files (%s bytes)' \
    "$target" "${runs:-?}" "${rate:-?}" "${time:-?}" "$seeds" "$files" "$bytes")")
done
printf '%-13s %12s %10s %7s\n' target executions exec/s time
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
