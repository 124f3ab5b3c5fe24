#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for `make run` and `make test`:
# mosquitto-clients (real MQTT clients used by tests) and tansu (the local Kafka).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v mosquitto_pub >/dev/null 2>&1; then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends mosquitto-clients \
    || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends mosquitto-clients; }
fi
"$root/scripts/ensure-tansu.sh" >/dev/null
