#!/usr/bin/env bash
# Benchmarks behind BENCHMARKS.md. Starts its own tansu (sqlite storage) and a release broker on
# loopback, then runs the load simulator against them. Usage: scripts/bench.sh [idle|idle-burst|idle-tls|idle-ws|throughput|busy|sessions|adoption|all]
# Environment: CONNECTIONS (default 10000), MESSAGES per publisher (default 1000), PUBLISHERS (100),
# SESSIONS stored sessions (100000), LATENCY_CONNECTS (1000), ORPHANS sessions of a dead broker (20000),
# BURST_RAMP connections per second of idle-burst (default 5000), BUSY_RATES messages per second
# of busy's runs (default "1000 3000"), CARGO_TARGET_DIR (where the release binaries are built).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
what="${1:-all}"
connections="${CONNECTIONS:-10000}"
publishers="${PUBLISHERS:-100}"
messages="${MESSAGES:-1000}"
sessions="${SESSIONS:-100000}"
latency_connects="${LATENCY_CONNECTS:-1000}"
orphans="${ORPHANS:-20000}"
ulimit -n 20000
tansu="$("$root/scripts/ensure-tansu.sh")"
bin_dir="${CARGO_TARGET_DIR:-$root/target}/release"
broker="$bin_dir/tributary-broker"
load="$bin_dir/tributary-load"
(cd "$root" && cargo build --release -p tributary-broker -p tributary-e2e --bins)

work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 200); do port_open "$1" && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU time (user + system) of a process so far, in seconds.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
http_get() { exec 3<>"/dev/tcp/127.0.0.1/$aport"; printf 'GET %s HTTP/1.0\r\n\r\n' "$1" >&3; cat <&3; exec 3>&-; }
metric() { http_get /metrics | awk -v m="$1" '$1 == m {print $2}'; }

# start_tansu DIR: a tansu with its sqlite file in DIR; sets kport and tpid.
start_tansu() {
  kport=$(free_port)
  (cd "$1" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" --storage-engine "${TANSU_STORAGE:-sqlite://tansu.db}" >"$1/tansu.log" 2>&1) &
  tpid=$!
  pids+=($tpid)
  wait_port "$kport"
}

# start_broker NAME: a release broker against tansu on $kport, config and log in $work/NAME.*;
# sets bpid, mport, aport and startup_secs (process start until the MQTT port accepts: the broker
# listens only once the retained and sessions topics are loaded).
start_broker() {
  mport=$(free_port); aport=$(free_port)
  cat >"$work/$1.yaml" <<YAML
listeners:
  - { name: mqtt, protocol: mqtt, address: "127.0.0.1:$mport" }${EXTRA_LISTENER:+
  - $EXTRA_LISTENER}
admin: { address: "127.0.0.1:$aport" }
kafka: { bootstrapServers: "127.0.0.1:$kport", properties: { fetch.wait.max.ms: "10" } }
topics: { partitions: 4 }
YAML
  local t0 t1
  t0=$(date +%s.%N)
  RUST_LOG="${BROKER_LOG:-warn}" "$broker" --config "$work/$1.yaml" >"$work/$1.log" 2>&1 &
  bpid=$!
  pids+=($bpid)
  for _ in $(seq 1 30000); do port_open "$mport" && break; kill -0 "$bpid" 2>/dev/null || break; sleep 0.01; done
  port_open "$mport" || { cat "$work/$1.log"; echo "broker $1 never listened" >&2; return 1; }
  t1=$(date +%s.%N)
  startup_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

stop_broker() { kill -TERM "$bpid"; wait "$bpid" 2>/dev/null || true; }

if [[ "$what" == idle-tls || "$what" == all ]]; then
  # A test CA and a server certificate for 127.0.0.1 (EC P-256, as cert-manager issues by default).
  pki="$work/pki"; mkdir -p "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/ca.key" \
    -out "$pki/ca.pem" -days 2 -subj /CN=bench-ca 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/server.key" \
    -out "$pki/server.csr" -subj /CN=127.0.0.1 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >"$pki/ext"
  openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -out "$pki/server.pem" -days 2 -extfile "$pki/ext" 2>/dev/null
  tport=$(free_port)
  export EXTRA_LISTENER="{ name: mqtts, protocol: mqtts, address: \"127.0.0.1:$tport\", tls: { certFile: \"$pki/server.pem\", keyFile: \"$pki/server.key\" } }"
fi

if [[ "$what" == idle-ws || "$what" == all ]]; then
  wport=$(free_port)
  ws_listener="{ name: ws, protocol: ws, address: \"127.0.0.1:$wport\" }"
  # A second extra listener when idle-tls set one (the config template adds the first "- ").
  export EXTRA_LISTENER="${EXTRA_LISTENER:+$EXTRA_LISTENER
  - }$ws_listener"
fi

if [[ "$what" == idle || "$what" == idle-burst || "$what" == idle-tls || "$what" == idle-ws || "$what" == throughput || "$what" == all ]]; then
  mkdir -p "$work/main"
  start_tansu "$work/main"
  start_broker main
  echo "machine: $(nproc) cores, $(uname -r); broker pid $bpid; tansu on :$kport"
fi

# measure_idle NAME KIND [idle options...]: broker RSS before and while `tributary-load idle`
# holds $connections connections, and the difference per connection.
measure_idle() {
  local name=$1 kind=$2; shift 2
  sleep 2
  base=$(rss_kib "$bpid")
  "$load" idle --connections "$connections" --keep-alive 60 --hold-secs 15 "$@" >"$work/$name.log" 2>&1 &
  lpid=$!
  for _ in $(seq 1 600); do grep -q READY "$work/$name.log" && break; sleep 0.2; done
  grep -q READY "$work/$name.log" || { cat "$work/$name.log"; exit 1; }
  sleep 5
  held=$(rss_kib "$bpid")
  conns=$(metric tributary_connections)
  wait "$lpid" || true
  echo "$name: $(head -1 "$work/$name.log")"
  echo "$name: broker RSS before ${base} KiB, with ${conns:-$connections} ${kind}connections ${held} KiB"
  awk -v b="$base" -v h="$held" -v n="$connections" -v name="$name" -v kind="$kind" \
    'BEGIN { printf "%s: %.2f KiB per idle %sconnection\n", name, (h-b)/n, kind }'
}

if [[ "$what" == idle || "$what" == all ]]; then
  measure_idle idle "" --port "$mport"
fi

# The same idle connections opened in a burst ($BURST_RAMP per second, from one simulator
# process per 18,000 and 127.0.0.1-4): what the allocator keeps after many CONNECTs at once.
if [[ "$what" == idle-burst || "$what" == all ]]; then
  sleep 2
  base=$(rss_kib "$bpid")
  "$load" sim --brokers "127.0.0.1:$mport" --devices "$connections" --sources 4 --ramp "${BURST_RAMP:-5000}" \
    --interval 1000000 --prefix burst- --duration 25 >"$work/burst.log" 2>&1 &
  lpid=$!
  for _ in $(seq 1 1200); do [[ "$(metric tributary_connections)" == "$connections" ]] && break; sleep 0.1; done
  sleep 5
  held=$(rss_kib "$bpid")
  conns=$(metric tributary_connections)
  wait "$lpid" || true
  echo "idle-burst: broker RSS before ${base} KiB, with ${conns} connections opened ${BURST_RAMP:-5000}/s ${held} KiB"
  awk -v b="$base" -v h="$held" -v n="$conns" 'BEGIN { printf "idle-burst: %.2f KiB per idle connection\n", (h-b)/n }'
fi

if [[ "$what" == idle-tls || "$what" == all ]]; then
  measure_idle idle-tls "TLS " --port "$tport" --prefix idle-tls --tls-ca "$pki/ca.pem"
fi

if [[ "$what" == idle-ws || "$what" == all ]]; then
  measure_idle idle-ws "WebSocket " --port "$wport" --prefix idle-ws --ws-path /mqtt
fi

if [[ "$what" == throughput || "$what" == all ]]; then
  for qos in 0 1; do
    "$load" publish --port "$mport" --publishers "$publishers" --messages "$messages" --size 500 --qos "$qos" \
      --bootstrap "127.0.0.1:$kport" --topic mqtt-messages
  done
  "$load" kafka --bootstrap "127.0.0.1:$kport" --topic mqtt-messages --records $((publishers * messages)) --size 500 --keys "$publishers"
fi

if [[ "$what" == sessions || "$what" == all ]]; then
  [[ "$what" == all ]] && { stop_broker; kill "$tpid"; wait "$tpid" 2>/dev/null || true; }
  # A tansu of its own, so the idle/throughput runs leave nothing in this sessions topic.
  mkdir -p "$work/sessions"
  start_tansu "$work/sessions"
  echo "sessions: machine: $(nproc) cores, $(uname -r); tansu on :$kport"
  # Baseline: a broker on empty topics (it creates them, the sessions topic with 4 partitions).
  BROKER_LOG=info start_broker empty
  sleep 3
  empty_rss=$(rss_kib "$bpid")
  echo "sessions: empty topics: ready in ${startup_secs}s, RSS ${empty_rss} KiB"
  stop_broker
  "$load" sessions --bootstrap "127.0.0.1:$kport" --topic mqtt-sessions --count "$sessions" --subscriptions 2
  echo "sessions: tansu db $(du -sh "$work/sessions/tansu.db" | cut -f1)"
  tansu_cpu0=$(cpu_secs "$tpid")
  BROKER_LOG=info start_broker loaded
  tansu_cpu1=$(cpu_secs "$tpid")
  broker_cpu=$(cpu_secs "$bpid")
  ready=$(http_get /readyz | tail -1)
  echo "sessions: $sessions stored: ready in ${startup_secs}s (/readyz: $ready); CPU during startup: broker ${broker_cpu}s, tansu $(awk -v a="$tansu_cpu0" -v b="$tansu_cpu1" 'BEGIN { printf "%.2f", b - a }')s"
  grep -E "retained messages loaded|sessions loaded|mqtt listener ready" "$work/loaded.log" | sed 's/\x1b\[[0-9;]*m//g; s/^/sessions:   /'
  sleep 3
  loaded_rss=$(rss_kib "$bpid")
  echo "sessions: tributary_sessions_stored $(metric tributary_sessions_stored); RSS ${loaded_rss} KiB"
  awk -v b="$empty_rss" -v h="$loaded_rss" -v n="$sessions" 'BEGIN { printf "sessions: %.0f B per stored session (RSS delta vs empty topics)\n", (h-b)*1024/n }'
  "$load" connect-latency --port "$mport" --prefix bench-session- --stored "$sessions" --count "$latency_connects" --persistent
  "$load" connect-latency --port "$mport" --count "$latency_connects" --clean
  echo "sessions: after the connects: RSS $(rss_kib "$bpid") KiB, tributary_sessions_stored $(metric tributary_sessions_stored)"
fi

if [[ "$what" == adoption || "$what" == all ]]; then
  [[ "$what" == all ]] && { stop_broker; kill "$tpid"; wait "$tpid" 2>/dev/null || true; }
  # Sessions a killed broker left connected, each with a Will: a new broker adopts them all
  # (claim + state write each) and publishes the Wills.
  mkdir -p "$work/adoption"
  start_tansu "$work/adoption"
  echo "adoption: machine: $(nproc) cores, $(uname -r); tansu on :$kport"
  BROKER_LOG=info start_broker empty-adoption
  stop_broker
  "$load" sessions --bootstrap "127.0.0.1:$kport" --topic mqtt-sessions --count "$orphans" --subscriptions 2 \
    --prefix orphan- --orphaned
  BROKER_LOG=info start_broker adopter
  t0=$(date +%s.%N)
  adopted=0
  for _ in $(seq 1 6000); do
    adopted=$(metric tributary_sessions_adopted_total); wills=$(metric tributary_wills_published_total)
    [[ "${adopted:-0}" -ge "$orphans" && "${wills:-0}" -ge "$orphans" ]] && break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  echo "adoption: ready in ${startup_secs}s; then $adopted of $orphans sessions adopted and ${wills:-0} Wills published in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')s"
  echo "adoption: CPU broker $(cpu_secs "$bpid")s, tansu $(cpu_secs "$tpid")s; RSS $(rss_kib "$bpid") KiB"
  grep -E "taking over|no sessions left" "$work/adopter.log" | sed 's/\x1b\[[0-9;]*m//g; s/^/adoption:   /'
fi

# One busy flow: one QoS 1 publisher (200 B) and one clean-session QoS 1 subscriber on one
# broker, at each rate of $BUSY_RATES; the simulator checks every message in Kafka. tansu keeps
# these records in memory (its sqlite engine slows down as headers accumulate).
if [[ "$what" == busy || "$what" == all ]]; then
  [[ "$what" == all ]] && { stop_broker; kill "$tpid"; wait "$tpid" 2>/dev/null || true; }
  mkdir -p "$work/busy"
  TANSU_STORAGE=memory:// start_tansu "$work/busy"
  start_broker busy
  echo "busy: machine: $(nproc) cores, $(uname -r); broker pid $bpid; tansu (memory) on :$kport"
  for rate in ${BUSY_RATES:-1000 3000}; do
    "$load" sim --brokers "127.0.0.1:$mport" --devices 1 --interval "$(awk -v r="$rate" 'BEGIN { print 1 / r }')" \
      --payload-min 200 --payload-max 200 --qos 1 --duration 15 --subscribers 1 --subscribe 'vehicles/#' \
      --prefix "busy-$rate-" --kafka "127.0.0.1:$kport" | grep -E '^sim: (report|kafka)' | sed "s/^sim: /busy $rate\/s: /"
    echo "busy $rate/s: broker CPU so far $(cpu_secs "$bpid")s; deferred $(metric tributary_deliveries_deferred_total), dropped $(metric 'tributary_dropped_total{reason="queue_full"}')"
  done
fi
