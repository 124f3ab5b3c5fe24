#!/usr/bin/env bash
# `make run`: a local Kafka-compatible server (tansu, data in .run/) plus one broker on
# 127.0.0.1:1883, both logging here; Ctrl-C stops both. With KAFKA_BOOTSTRAP=host:port an
# existing Kafka is used instead of starting tansu.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
pids=()
# Broker first (it flushes to Kafka and publishes Wills), then Kafka.
cleanup() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; wait "${pids[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

bootstrap="${KAFKA_BOOTSTRAP:-}"
if [[ -z "$bootstrap" ]]; then
  tansu="$("$root/scripts/ensure-tansu.sh")"
  port="${KAFKA_PORT:-9092}"
  mkdir -p .run
  # sqlite storage: durable across restarts, compacts, and reports high watermarks correctly.
  (cd .run && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine "sqlite://tansu.db") &
  pids+=($!)
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  bootstrap="127.0.0.1:$port"
  echo "tansu (Kafka API) listening on $bootstrap, data in .run/tansu.db"
fi
cargo build --release -p tributary-broker
RUST_LOG="${RUST_LOG:-info}" "${CARGO_TARGET_DIR:-$root/target}/release/tributary-broker" --config deploy/local/broker.yaml --kafka-bootstrap "$bootstrap" &
pids+=($!)
wait -n "${pids[@]}"
