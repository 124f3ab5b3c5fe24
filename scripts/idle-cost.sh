#!/usr/bin/env bash
# What an idle broker costs its Kafka server: tansu's CPU over 20 s while one broker holds one
# idle persistent subscriber (three tailers: retained, sessions, the subscribed topic), then the
# mean of 20 sequential connect + QoS 1 publish + disconnect rounds (mosquitto_pub), then
# CONNECT → CONNACK of 200 sequential connections, clean and persistent (tributary-load).
# Usage: scripts/idle-cost.sh [FETCH_WAIT_MS|default]...  (default: "default 10")
# Needs built binaries (cargo build --workspace --bins) and tansu (make deps).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tansu="$("$root/scripts/ensure-tansu.sh")"
broker="${CARGO_TARGET_DIR:-$root/target}/debug/tributary-broker"
load="${CARGO_TARGET_DIR:-$root/target}/debug/tributary-load"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
hz="$(getconf CLK_TCK)"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

measure() {
  local wait="$1" kport=19392 mport=11983 aport=19390 props="{}"
  [[ "$wait" != default ]] && props="{ fetch.wait.max.ms: \"$wait\" }"
  mkdir -p "$work/data" && rm -rf "$work/data"/*
  (cd "$work/data" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$kport" \
     --advertised-listener-url "tcp://127.0.0.1:$kport" --storage-engine "sqlite://tansu.db") >"$work/tansu.log" 2>&1 &
  local tp=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$kport") 2>/dev/null && break; sleep 0.1; done
  cat >"$work/b.yaml" <<YAML
listeners: [ { name: mqtt, protocol: mqtt, address: "127.0.0.1:$mport" } ]
admin: { address: "127.0.0.1:$aport" }
kafka: { bootstrapServers: "127.0.0.1:$kport", properties: $props }
topics: { partitions: 1 }
YAML
  "$broker" --config "$work/b.yaml" >"$work/b.log" 2>&1 &
  local bp=$!
  for _ in $(seq 150); do curl -sf "127.0.0.1:$aport/readyz" >/dev/null && break; sleep 0.2; done
  mosquitto_sub -h 127.0.0.1 -p "$mport" -t 'idle/#' -q 1 -i idle-sub -c >/dev/null &
  local sp=$!
  sleep 5 # let the subscription's tailer start
  local t0 t1 s e
  t0="$(cpu "$tp")"; sleep 20; t1="$(cpu "$tp")"
  s="$(date +%s%N)"
  for i in $(seq 20); do mosquitto_pub -h 127.0.0.1 -p "$mport" -t idle/x -m hi -q 1 -i "p$i"; done
  e="$(date +%s%N)"
  printf 'fetch.wait.max.ms=%-7s tansu CPU %3d%% of a core idle; connect+publish+disconnect mean %d ms\n' \
    "$wait" $(( (t1 - t0) * 100 / (20 * hz) )) $(( (e - s) / 20000000 ))
  "$load" connect-latency --port "$mport" --count 200 --clean
  "$load" sessions --bootstrap "127.0.0.1:$kport" --topic mqtt-sessions --count 200 --prefix latency- >/dev/null
  "$load" connect-latency --port "$mport" --count 200 --prefix latency- --stored 200 --persistent
  kill "$sp" "$bp" 2>/dev/null; wait "$bp" 2>/dev/null || true
  kill "$tp" 2>/dev/null; wait "$tp" 2>/dev/null || true
}

waits=("$@")
[[ ${#waits[@]} -gt 0 ]] || waits=(default 10)
for w in "${waits[@]}"; do measure "$w"; done
