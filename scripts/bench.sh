#!/usr/bin/env bash
# Benchmarks behind BENCHMARKS.md. Starts its own tansu (sqlite storage) and a release broker on
# loopback, then runs the load simulator against them. Usage: scripts/bench.sh [idle|throughput|all]
# Environment: CONNECTIONS (default 10000), MESSAGES per publisher (default 1000), PUBLISHERS (100),
# CARGO_TARGET_DIR (where the release binaries are built).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
what="${1:-all}"
connections="${CONNECTIONS:-10000}"
publishers="${PUBLISHERS:-100}"
messages="${MESSAGES:-1000}"
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
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
metric() { exec 3<>"/dev/tcp/127.0.0.1/$aport"; printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3; awk -v m="$1" '$1 == m {print $2}' <&3; exec 3>&-; }

kport=$(free_port); mport=$(free_port); aport=$(free_port)
(cd "$work" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" --storage-engine "sqlite://tansu.db" >"$work/tansu.log" 2>&1) &
pids+=($!)
wait_port "$kport"
cat >"$work/broker.yaml" <<YAML
listeners:
  - { name: mqtt, protocol: mqtt, address: "127.0.0.1:$mport" }
admin: { address: "127.0.0.1:$aport" }
kafka: { bootstrapServers: "127.0.0.1:$kport" }
topics: { partitions: 4 }
YAML
RUST_LOG=warn "$broker" --config "$work/broker.yaml" >"$work/broker.log" 2>&1 &
bpid=$!
pids+=($bpid)
wait_port "$mport"
echo "machine: $(nproc) cores, $(uname -r); broker pid $bpid; tansu on :$kport"

if [[ "$what" == idle || "$what" == all ]]; then
  sleep 2
  base=$(rss_kib "$bpid")
  "$load" idle --port "$mport" --connections "$connections" --keep-alive 60 --hold-secs 15 >"$work/idle.log" 2>&1 &
  lpid=$!
  for _ in $(seq 1 600); do grep -q READY "$work/idle.log" && break; sleep 0.2; done
  grep -q READY "$work/idle.log" || { cat "$work/idle.log"; exit 1; }
  sleep 5
  held=$(rss_kib "$bpid")
  conns=$(metric tributary_connections)
  wait "$lpid" || true
  echo "idle: $(head -1 "$work/idle.log")"
  echo "idle: broker RSS before ${base} KiB, with ${conns:-$connections} connections ${held} KiB"
  awk -v b="$base" -v h="$held" -v n="$connections" 'BEGIN { printf "idle: %.2f KiB per idle connection\n", (h-b)/n }'
fi

if [[ "$what" == throughput || "$what" == all ]]; then
  for qos in 0 1; do
    "$load" publish --port "$mport" --publishers "$publishers" --messages "$messages" --size 500 --qos "$qos" \
      --bootstrap "127.0.0.1:$kport" --topic mqtt-messages
  done
  "$load" kafka --bootstrap "127.0.0.1:$kport" --topic mqtt-messages --records $((publishers * messages)) --size 500 --keys "$publishers"
fi
