#!/usr/bin/env bash
# `make image-test`: builds the images (`make image`), then checks them for real:
# - the OCI archives hold only the binary, its libraries and a few /etc files (no shell, no tools);
# - both archives push with skopeo to a registry (docker-registry on 127.0.0.1), and the operator
#   image pulled back from it prints the CRD, identical to crds/mqttbroker.yaml;
# - the broker image runs under podman (host network, read-only root, all capabilities dropped)
#   as uid 65532 against a local tansu, gets ready, carries MQTT messages (QoS 1 and a retained
#   message read back from Kafka by a later subscriber) and stops cleanly on SIGTERM.
# Every wait polls a condition with a deadline. Ends with "image-test: N passed, N failed".
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/scripts/build-images.sh"
version="$("$root/scripts/version.sh")"
broker_image="localhost/tributary-broker:$version"
operator_image="localhost/tributary-operator:$version"
archives="$root/target/images"
tansu="${TANSU_BIN:-$("$root/scripts/ensure-tansu.sh")}"
[[ -x "$tansu" ]] || { echo "error: tansu not found at $tansu (set TANSU_BIN)" >&2; exit 1; }

# runc rather than crun (crun refuses hybrid cgroup v1/v2 hosts), and explicit ulimits: podman's
# defaults (nofile 1048576) are above this machine's hard limits, which root cannot raise here.
nofile="$(ulimit -Hn)"; [[ "$nofile" == unlimited ]] && nofile=1048576
nproc="$(ulimit -Hu)"; [[ "$nproc" == unlimited || "$nproc" -gt 32768 ]] && nproc=32768
podman_run=(podman --runtime runc run --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")

work="$(mktemp -d)"
ctr="tributary-image-test-$$"
pids=()
cleanup() {
  podman rm -f -t 0 "$ctr" >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { local name="$1"; shift; if "$@" >"$work/check.log" 2>&1; then ok "$name"; else fail "$name"; sed 's/^/     /' "$work/check.log"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# until_ok SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds or the deadline passes.
until_ok() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) < deadline )) || return 1
    sleep 0.2
  done
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# 1. What the images contain: every file of the layers is on this list.
layer_files() { # layer_files ARCHIVE: the paths in all layers of an OCI archive
  python3 - "$1" <<'EOF'
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as oci:
    blob = lambda d: oci.extractfile("blobs/sha256/" + d.split(":")[1])
    index = json.load(oci.extractfile("index.json"))
    manifest = json.load(blob(index["manifests"][0]["digest"]))
    for layer in manifest["layers"]:
        with tarfile.open(fileobj=blob(layer["digest"]), mode="r:*") as t:
            for m in t.getmembers():
                if not m.isdir():
                    print(m.name.removeprefix("./"))
EOF
}
only_runtime_files() { # only_runtime_files ARCHIVE BINARY
  local unexpected
  layer_files "$1" >"$work/files"
  grep -qx "usr/local/bin/$2" "$work/files" || { echo "no usr/local/bin/$2"; return 1; }
  unexpected="$(grep -vxE "usr/local/bin/$2|etc/(passwd|group|nsswitch\.conf|ssl/certs/ca-certificates\.crt)|lib(64)?/[^/]+/?[^/]*\.so(\.[0-9]+)*|usr/share/doc/[^/]+/copyright" "$work/files" || true)"
  [[ -z "$unexpected" ]] || { echo "unexpected files: $unexpected"; return 1; }
  echo "$(wc -l <"$work/files") files"
}
check "broker image holds only the binary, its libraries and /etc files" \
  only_runtime_files "$archives/tributary-broker-$version.oci.tar" tributary-broker
check "operator image holds only the binary, its libraries and /etc files" \
  only_runtime_files "$archives/tributary-operator-$version.oci.tar" tributary-operator
check "images run as 65532:65532" bash -c \
  '[[ "$(podman image inspect --format "{{.Config.User}}" "$0" "$1" | sort -u)" == 65532:65532 ]]' "$broker_image" "$operator_image"

# 2. The OCI archives push to a registry, and what is pulled back runs.
reg_port="$(free_port)"
registry="127.0.0.1:$reg_port"
mkdir -p "$work/registry"
printf 'version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "%s"}\n' \
  "$work/registry" "$registry" >"$work/registry.yaml"
docker-registry serve "$work/registry.yaml" >"$work/registry.log" 2>&1 &
pids+=($!)
until_ok 30 port_open "$reg_port" || { cat "$work/registry.log"; echo "error: registry did not listen" >&2; exit 1; }
for name in tributary-broker tributary-operator; do
  check "skopeo pushes target/images/$name-$version.oci.tar" skopeo copy --quiet --dest-tls-verify=false \
    "oci-archive:$archives/$name-$version.oci.tar" "docker://$registry/iot/$name:$version"
done
pulled="$registry/iot/tributary-operator:$version"
check "operator image pulled from the registry prints the CRD of crds/mqttbroker.yaml" bash -c \
  'podman pull -q --tls-verify=false "$0" >/dev/null && "$@" --rm "$0" crd | diff -u crds/mqttbroker.yaml -' \
  "$pulled" "${podman_run[@]}"
podman rmi "$pulled" >/dev/null 2>&1 || true
check "local operator image: crd equals crds/mqttbroker.yaml" bash -c \
  '"$@" --rm "$0" crd | diff -u crds/mqttbroker.yaml -' "$operator_image" "${podman_run[@]}"

# 3. The broker image carries MQTT traffic through Kafka.
kafka_port="$(free_port)"
mkdir -p "$work/kafka"
(cd "$work/kafka" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$kafka_port" \
  --advertised-listener-url "tcp://127.0.0.1:$kafka_port" --storage-engine "sqlite://tansu.db") >"$work/tansu.log" 2>&1 &
pids+=($!)
until_ok 30 port_open "$kafka_port" || { cat "$work/tansu.log"; echo "error: tansu did not listen" >&2; exit 1; }

mqtt_port="$(free_port)" admin_port="$(free_port)"
mkdir -p "$work/config"
cat >"$work/config/broker.yaml" <<EOF
listeners:
  - { name: mqtt, protocol: mqtt, address: "127.0.0.1:$mqtt_port" }
admin: { address: "127.0.0.1:$admin_port" }
kafka: { bootstrapServers: "127.0.0.1:$kafka_port", properties: { fetch.wait.max.ms: "10" } }  # tansu holds fetches for the full wait
topics:
  partitions: 1
  mappings:
    - { kafkaTopic: image-test, mqttTopics: ["image-test/#"] }
EOF
chmod -R a+rX "$work"
# As the operator runs it: read-only root (podman mounts a tmpfs on /tmp), no capabilities.
"${podman_run[@]}" -d --name "$ctr" --network host --read-only --cap-drop ALL \
  --security-opt no-new-privileges -e RUST_LOG=info -v "$work/config:/etc/tributary:ro" \
  "$broker_image" --config /etc/tributary/broker.yaml >/dev/null
ready() { curl -fsS "http://127.0.0.1:$admin_port/readyz"; }
running() { [[ "$(podman inspect --format '{{.State.Running}}' "$ctr")" == true ]]; }
if until_ok 90 ready; then ok "broker container ready (/readyz)"; else
  fail "broker container ready (/readyz)"; podman logs "$ctr" 2>&1 | tail -30 | sed 's/^/     /'; fi
check "broker process runs as uid 65532" bash -c \
  'grep -E "^Uid:\s+65532\s" "/proc/$(podman inspect --format "{{.State.Pid}}" "$0")/status"' "$ctr"

# A subscriber (wait for its SUBACK), then a QoS 1 and a retained publish.
payload="hello-from-image-$$-$RANDOM"
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -i image-test-sub -t 'image-test/#' -q 1 -v -d -C 2 -W 60 \
  >"$work/sub.out" 2>&1 &
sub=$!
pids+=($sub)
until_ok 30 grep -q "received SUBACK" "$work/sub.out" || { cat "$work/sub.out"; }
check "QoS 1 publish acknowledged (after the Kafka ack)" \
  mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -i image-test-pub -t image-test/qos1 -m "$payload" -q 1
check "retained publish acknowledged" \
  mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -i image-test-pub -t image-test/retained -m "kept-$payload" -q 1 -r
if wait "$sub"; then ok "subscriber got 2 messages"; else fail "subscriber got 2 messages"; sed 's/^/     /' "$work/sub.out"; fi
check "subscriber got the QoS 1 message" grep -qx "image-test/qos1 $payload" "$work/sub.out"
check "subscriber got the retained message" grep -qx "image-test/retained kept-$payload" "$work/sub.out"
check "a later subscriber gets the retained message (from Kafka)" bash -c \
  'mosquitto_sub -h 127.0.0.1 -p "$0" -t image-test/retained -q 1 -C 1 -W 30 | grep -qx "kept-$1"' "$mqtt_port" "$payload"
check "broker metrics count the connections" bash -c \
  'curl -fsS "http://127.0.0.1:$0/metrics" | grep -q "^tributary_connections"' "$admin_port"

# SIGTERM: drains and exits 0.
podman stop -t 40 "$ctr" >/dev/null 2>&1 || true
check "SIGTERM: broker container exits 0" bash -c \
  '[[ "$(podman inspect --format "{{.State.ExitCode}}" "$0")" == 0 ]] || { podman logs "$0" 2>&1 | tail -20; exit 1; }' "$ctr"
if running; then fail "broker container still running after podman stop"; fi

echo "image-test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
