#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for `make run` and `make test`:
# mosquitto-clients (real MQTT clients used by tests), openssl and tansu (the local Kafka).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# openssl makes the test certificates of the TLS tests.
missing=()
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [[ ${#missing[@]} -gt 0 ]]; then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}" \
    || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; }
fi
"$root/scripts/ensure-tansu.sh" >/dev/null
