#!/usr/bin/env bash
# `make demo`: the fleet demo (README "Demo"). Starts a local Kafka (tansu, data in memory, logs
# in .run/demo/), two brokers (MQTT on 127.0.0.1:1883/1884, WebSocket on 8080/8081, admin
# on 9090/9091) with password authentication and access rules, the stream job, the web server
# of the map UI and the truck simulator; prints the URL. Ctrl-C stops everything.
# TRUCKS (default 15000), FLEET_INTERVAL (seconds between reports, 5), FLEET_TIME_SCALE (60),
# DEMO_HTTP_PORT (8000), KAFKA_PORT (9092) and DEMO_PROFILE (debug | release) change it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
run="$root/.run/demo"
profile="${DEMO_PROFILE:-debug}"
kafka_port="${KAFKA_PORT:-9092}"
http_port="${DEMO_HTTP_PORT:-8000}"
sim_password="${FLEET_SIM_PASSWORD:-sim-secret}"
viewer_password="${FLEET_VIEWER_PASSWORD:-viewer}"

pids=()
# Producers first (simulator, stream job), then the brokers, then Kafka.
# Each gets SIGTERM and 10 s to exit (tansu can take long with a large store), then SIGKILL.
cleanup() {
  trap - EXIT INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || continue
    for _ in $(seq 1 100); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.1; done
    kill -9 "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM
wait_port() {
  for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listening on 127.0.0.1:$1 after 60 s" >&2; return 1
}
# Until the admin endpoint on port $1 answers /readyz with 200 (Kafka reached, sessions loaded).
wait_ready() {
  for _ in $(seq 1 600); do
    ( exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -1 <&3 | grep -q " 200 " ) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the broker with admin port $1 is not ready after 60 s" >&2; return 1
}

[[ -f demo/web/vendor/mqtt.min.js ]] || ./scripts/install-deps.sh
tansu="$("$root/scripts/ensure-tansu.sh")"
flag=(); [[ "$profile" == release ]] && flag=(--release)
cargo build "${flag[@]}" -p tributary-broker -p tributary-demo --bins
bin="${CARGO_TARGET_DIR:-$root/target}/$profile"

rm -rf "$run" && mkdir -p "$run"
{
  echo "$sim_password" | "$bin/tributary-broker" hash-password --user simulator
  echo "$viewer_password" | "$bin/tributary-broker" hash-password --user viewer
} > "$run/passwords"

# In its own session, so Ctrl-C reaches it only through cleanup, after the brokers have
# flushed to it and stopped. In memory: tansu's sqlite engine looks up every fetched record's
# headers by a scan of all headers stored, so with thousands of trucks (three headers per
# report) reading each session claim back costs more and more until CONNECTs time out. The
# demo's data is thrown away at each start anyway; it grows by ~1.8 MB/s at 15,000 trucks.
(cd "$run" && exec setsid "$tansu" broker --listener-url "tcp://127.0.0.1:$kafka_port" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka_port" --storage-engine "memory://tansu/") > "$run/tansu.log" 2>&1 &
pids+=($!)
wait_port "$kafka_port"
bootstrap="127.0.0.1:$kafka_port"

for n in 1 2; do
  cat > "$run/broker-$n.yaml" <<YAML
# Written by scripts/demo.sh: broker $n of the fleet demo.
listeners:
  - { name: mqtt, protocol: mqtt, address: "127.0.0.1:$((1882 + n))" }
  - { name: ws, protocol: ws, address: "127.0.0.1:$((8079 + n))", path: /mqtt }
admin: { address: "127.0.0.1:$((9089 + n))" }
# Kafka's own long poll (500 ms): tansu holds a waiting fetch for its full wait, so the map
# lags by up to half a second, but a 10 ms poll of every tailer of two brokers would take more
# than tansu's core (scripts/idle-cost.sh) and starve the trucks' CONNECTs.
kafka: { bootstrapServers: "$bootstrap" }
topics:
  mappings:
    - { kafkaTopic: fleet-trucks, mqttTopics: ["fleet/trucks/#"] }
    - { kafkaTopic: fleet-stats, mqttTopics: ["fleet/stats/#"] }
  partitions: 4
  replicationFactor: 1
authentication: { allowAnonymous: false, passwordFile: "$run/passwords" }
authorization:
  defaultEffect: deny
  rules:
    - { principal: "user:simulator", action: publish, topic: "fleet/trucks/#", effect: allow }
    - { principal: "user:viewer", action: subscribe, topic: "fleet/#", effect: allow }
limits: { maxConnectRate: 1000, drainSeconds: 0 }   # Ctrl-C closes connections at once
YAML
  RUST_LOG="${RUST_LOG:-info}" "$bin/tributary-broker" --config "$run/broker-$n.yaml" > "$run/broker-$n.log" 2>&1 &
  pids+=($!)
  # One at a time: the first creates the topics.
  wait_ready "$((9089 + n))"
done
echo "brokers: MQTT 127.0.0.1:1883 and :1884, WebSocket :8080 and :8081 (/mqtt), metrics :9090 and :9091"

"$bin/fleet-stream" --bootstrap "$bootstrap" --metrics 127.0.0.1:9090,127.0.0.1:9091 \
  > "$run/stream.log" 2>&1 &
pids+=($!)
"$bin/fleet-web" --listen "127.0.0.1:$http_port" --dir "$root/demo/web" > "$run/web.log" 2>&1 &
pids+=($!)
wait_port "$http_port"
# One socket per truck: the simulator checks the open-files limit itself.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FLEET_SIM_PASSWORD="$sim_password" "$bin/fleet-simulator" --brokers 127.0.0.1:1883,127.0.0.1:1884 &
pids+=($!)

cat <<TEXT

  Fleet demo: http://127.0.0.1:$http_port/?ws=ws://127.0.0.1:8080/mqtt,ws://127.0.0.1:8081/mqtt&user=viewer&password=$viewer_password

  Logs in $run/ (tansu, broker-1, broker-2, stream, web); the simulator logs here. Ctrl-C stops everything.

TEXT
wait -n "${pids[@]}"
