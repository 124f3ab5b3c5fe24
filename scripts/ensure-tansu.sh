#!/usr/bin/env bash
# Installs the Kafka-compatible server used for local runs and tests (tansu, Apache-2.0) into .tools/,
# once. Prints the path of the binary. Building it takes ~12 minutes on 2 cores, so it is reused.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="0.6.0"
bin="$root/.tools/bin/tansu"
if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -q "$version"; then
  echo "$bin"
  exit 0
fi
echo "installing tansu $version into $root/.tools (one-time, ~12 min)..." >&2
cargo install tansu --version "$version" --locked --features libsql,dynostore --root "$root/.tools" >&2
echo "$bin"
