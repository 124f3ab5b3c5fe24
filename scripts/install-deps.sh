#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for `make run` and `make test`:
# mosquitto-clients and paho-mqtt (real MQTT clients used by tests), openssl and tansu (the local
# Kafka).
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
python3 -c 'import paho.mqtt' 2>/dev/null || python3 -m pip install -q 'paho-mqtt==2.1.0'
"$root/scripts/ensure-tansu.sh" >/dev/null
