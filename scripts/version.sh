#!/usr/bin/env bash
# Prints the workspace version (Cargo.toml [workspace.package]), the tag of the container images.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --no-deps --format-version 1 --offline 2>/dev/null \
  | python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "tributary-broker"))'
