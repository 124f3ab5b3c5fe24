#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for `make run` and `make test`:
# mosquitto-clients (real MQTT clients used by tests), openssl, paho-mqtt (the Python client of
# the WebSocket tests), chromium, node and the npm packages of the browser test and of the fleet demo's page
# (MQTT.js, copied into demo/web/vendor/), and tansu (the
# local Kafka).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# openssl makes the test certificates of the TLS tests.
missing=()
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# MQTT.js in headless Chromium (e2e/tests/websocket.rs, e2e/browser/).
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(npm)
has_paho() { python3 -c 'import paho.mqtt.client as m; m.CallbackAPIVersion' >/dev/null 2>&1; }
has_paho || python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [[ ${#missing[@]} -gt 0 ]]; then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}" \
    || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; }
fi
# paho-mqtt 2 (CallbackAPIVersion): e2e/paho/ and e2e/tests/websocket.rs.
has_paho \
  || python3 -m pip install --quiet 'paho-mqtt==2.1.0' \
  || python3 -m pip install --quiet --break-system-packages 'paho-mqtt==2.1.0'
[[ -d "$root/e2e/browser/node_modules/mqtt" ]] || (cd "$root/e2e/browser" && npm ci --no-audit --no-fund --silent)
# The fleet demo's page loads MQTT.js from demo/web/vendor/ (no CDN), copied from its npm package.
if [[ ! -f "$root/demo/web/vendor/mqtt.min.js" ]]; then
  [[ -d "$root/demo/web/node_modules/mqtt" ]] || (cd "$root/demo/web" && npm ci --no-audit --no-fund --silent)
  mkdir -p "$root/demo/web/vendor"
  cp "$root/demo/web/node_modules/mqtt/dist/mqtt.min.js" "$root/demo/web/vendor/mqtt.min.js"
fi
"$root/scripts/ensure-tansu.sh" >/dev/null
