#!/usr/bin/env bash
# Installs a pinned crates.io binary into .tools/ unless that version is already there, and prints
# the path of the binary; the ensure-*.sh scripts of cargo-installed tools call it.
# Usage: ensure-cargo-tool.sh CRATE VERSION BINARY NOTE [cargo install options...]
#   NOTE is shown only when it installs (how long the one-time build takes).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
crate="$1" version="$2" bin="$root/.tools/bin/$3" note="$4"
shift 4
if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -q "$version"; then
  echo "$bin"
  exit 0
fi
echo "installing $crate $version into $root/.tools ($note)..." >&2
cargo install "$crate" --version "$version" --locked --root "$root/.tools" "$@" >&2
echo "$bin"
