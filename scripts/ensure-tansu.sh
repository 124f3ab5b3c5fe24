#!/usr/bin/env bash
# Installs the Kafka-compatible server used for local runs and tests (tansu, Apache-2.0) into .tools/,
# once. Prints the path of the binary. Building it takes ~12 minutes on 2 cores, so it is reused.
set -euo pipefail
exec "$(dirname "$0")/ensure-cargo-tool.sh" tansu 0.6.0 tansu "one-time, ~12 min" --features libsql,dynostore
