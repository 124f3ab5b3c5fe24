#!/usr/bin/env bash
# Opt-in end-to-end test of tributary-operator against whatever cluster KUBECONFIG points to
# (kind, k3d, a real one). Skips cleanly when kubectl or a cluster is missing.
#
#   bash e2e/operator-cluster.sh
#
# What it does, in a throw-away namespace:
#   1. installs the CRD (crds/mqttbroker.yaml) and waits for it to be established;
#   2. runs the operator from this checkout (`cargo run -p tributary-operator -- run`), or uses
#      an operator already running in the cluster when E2E_OPERATOR=external;
#   3. applies every example in deploy/ (creating the Secrets tls-acl.yaml needs), waits for the
#      children (ServiceAccount, ConfigMap, Deployment, Service, PDB, HPA when autoscaled) and for
#      status.observedGeneration and the Ready/Reconciling/KafkaReachable conditions;
#   4. changes a topic mapping and checks that the ConfigMap follows without rolling the pods,
#      scales with `kubectl scale`, checks a CEL rejection and an InvalidSpec condition;
#   5. deletes the MqttBrokers and waits for garbage collection of the children.
# Broker pods need not become Ready (no Kafka is required); set E2E_EXPECT_READY=1 when the
# cluster has a Kafka at E2E_KAFKA (default my-kafka-bootstrap.kafka.svc:9092) and the image.
#
# Environment: E2E_OPERATOR=local|external (default local), E2E_NAMESPACE (default random),
# E2E_KEEP=1 keeps the namespace and CRD, E2E_TIMEOUT seconds per wait (default 120).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TIMEOUT="${E2E_TIMEOUT:-120}"
NS="${E2E_NAMESPACE:-tributary-e2e-$RANDOM}"
KAFKA="${E2E_KAFKA:-my-kafka-bootstrap.kafka.svc:9092}"
PASSED=0
FAILED=0
OPERATOR_PID=""

skip() {
  echo "SKIPPED: no Kubernetes cluster configured (KUBECONFIG)${1:+ - $1}"
  exit 0
}

command -v kubectl >/dev/null 2>&1 || skip "kubectl not found"
kubectl version --request-timeout=5s >/dev/null 2>&1 || skip "cluster not reachable"

log() { echo "--- $*"; }
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }

# wait_for DESCRIPTION COMMAND...: retries COMMAND until it succeeds or TIMEOUT passes.
wait_for() {
  local what="$1"
  shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      fail "$what (timed out after ${TIMEOUT}s)"
      return 1
    fi
    sleep 2
  done
  pass "$what"
}

k() { kubectl -n "$NS" "$@"; }

jsonpath() { k get "$1" -o "jsonpath=$2" 2>/dev/null; }

cleanup() {
  set +e
  if [[ "${E2E_KEEP:-}" != 1 ]]; then
    log "cleaning up namespace $NS"
    kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1
  fi
  if [[ -n "$OPERATOR_PID" ]]; then
    kill "$OPERATOR_PID" 2>/dev/null
    wait "$OPERATOR_PID" 2>/dev/null
  fi
  echo "$PASSED passed, $FAILED failed"
}
trap cleanup EXIT

log "cluster: $(kubectl config current-context 2>/dev/null || echo in-cluster), namespace $NS"
kubectl apply -f "$ROOT/crds/mqttbroker.yaml" >/dev/null
wait_for "CRD established" kubectl wait --for=condition=Established --timeout=5s crd/mqttbrokers.tributary.io
kubectl create namespace "$NS" >/dev/null

if [[ "${E2E_OPERATOR:-local}" == local ]]; then
  log "building and starting the operator (watching $NS)"
  cargo build --quiet -p tributary-operator --manifest-path "$ROOT/Cargo.toml"
  target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  # Outside the cluster the pod network is unreachable: no metrics scraping.
  RUST_LOG="${RUST_LOG:-info}" "$target_dir/debug/tributary-operator" run --namespace "$NS" \
    --no-scrape-metrics --resync-secs 10 >"${TMPDIR:-/tmp}/tributary-operator-e2e.log" 2>&1 &
  OPERATOR_PID=$!
  log "operator pid $OPERATOR_PID, log ${TMPDIR:-/tmp}/tributary-operator-e2e.log"
fi

# Secrets the TLS + ACL example references.
if command -v openssl >/dev/null 2>&1; then
  tmp="$(mktemp -d)"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=tributary-e2e" \
    -keyout "$tmp/tls.key" -out "$tmp/tls.crt" >/dev/null 2>&1
  k create secret tls tributary-tls --cert="$tmp/tls.crt" --key="$tmp/tls.key" >/dev/null
  rm -rf "$tmp"
  TLS_EXAMPLE=1
else
  log "openssl not found: skipping deploy/tls-acl.yaml"
  TLS_EXAMPLE=0
fi
k create secret generic tributary-passwords \
  --from-literal=passwords="$(echo secret | cargo run -q -p tributary-broker -- hash-password --user alice)" >/dev/null
k create secret generic tributary-kafka-credentials \
  --from-literal=SASL_USERNAME=e2e --from-literal=SASL_PASSWORD=e2e >/dev/null

has_condition() { # NAME TYPE
  [[ -n "$(jsonpath "mqtt/$1" "{.status.conditions[?(@.type==\"$2\")].status}")" ]]
}
observed() { # NAME
  local gen obs
  gen="$(jsonpath "mqtt/$1" '{.metadata.generation}')"
  obs="$(jsonpath "mqtt/$1" '{.status.observedGeneration}')"
  [[ -n "$gen" && "$gen" == "$obs" ]]
}
configmap_has() { # NAME TEXT
  jsonpath "configmap/$1" '{.data.broker\.yaml}' | grep -qF -- "$2"
}
ready_true() { [[ "$(jsonpath "mqtt/$1" '{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
deploy_replicas() { [[ "$(jsonpath "deployment/$1" '{.spec.replicas}')" == "$2" ]]; }
owned_by() { # KIND NAME
  [[ "$(jsonpath "$1/$2" '{.metadata.ownerReferences[0].kind}')" == MqttBroker ]]
}
gone() { ! k get "$1" >/dev/null 2>&1; }
invalid_spec() { [[ "$(jsonpath "mqtt/$1" '{.status.conditions[?(@.type=="Ready")].reason}')" == InvalidSpec ]]; }

check_example() { # FILE NAME AUTOSCALED
  local file="$1" name="$2" autoscaled="$3"
  log "applying $file"
  sed "s|bootstrapServers: .*|bootstrapServers: $KAFKA|" "$file" | k apply -f - >/dev/null
  for kind in serviceaccount configmap deployment service poddisruptionbudget; do
    wait_for "$name: $kind exists and is owned" owned_by "$kind" "$name" || true
  done
  if [[ "$autoscaled" == 1 ]]; then
    wait_for "$name: hpa exists" owned_by horizontalpodautoscaler "$name" || true
  fi
  wait_for "$name: status.observedGeneration" observed "$name" || true
  for type in Ready Reconciling KafkaReachable; do
    wait_for "$name: condition $type" has_condition "$name" "$type" || true
  done
  if [[ "${E2E_EXPECT_READY:-}" == 1 ]]; then
    wait_for "$name: Ready=True" ready_true "$name" || true
  fi
}

check_example "$ROOT/deploy/minimal.yaml" tributary 0
check_example "$ROOT/deploy/topic-mapping.yaml" cars 0
if [[ "$TLS_EXAMPLE" == 1 ]]; then
  check_example "$ROOT/deploy/tls-acl.yaml" secure 1
fi

log "changing a topic mapping"
hash_before="$(jsonpath deployment/cars '{.spec.template.metadata.annotations.tributary\.io/config-hash}')"
k patch mqtt cars --type merge -p \
  '{"spec":{"topics":{"mappings":[{"kafkaTopic":"k1","mqttTopics":["cars/speed/+"]},{"kafkaTopic":"k3","mqttTopics":["bikes/#"]}]}}}' >/dev/null
wait_for "cars: ConfigMap has the new mapping" configmap_has cars "bikes/#" || true
hash_after="$(jsonpath deployment/cars '{.spec.template.metadata.annotations.tributary\.io/config-hash}')"
if [[ -n "$hash_before" && "$hash_before" == "$hash_after" ]]; then
  pass "cars: mapping change did not roll the pods"
else
  fail "cars: config hash changed on a mapping edit ($hash_before -> $hash_after)"
fi

log "scale subresource"
k scale mqtt/cars --replicas=3 >/dev/null && pass "kubectl scale mqtt/cars accepted" || fail "kubectl scale mqtt/cars"
wait_for "cars: Deployment scaled to 3" deploy_replicas cars 3 || true

log "validation"
if k patch mqtt cars --type merge -p '{"spec":{"replicas":null,"autoscaling":{"minReplicas":5,"maxReplicas":2}}}' >/dev/null 2>&1; then
  fail "CEL accepted minReplicas > maxReplicas"
else
  pass "CEL rejects minReplicas > maxReplicas"
fi
k patch mqtt cars --type merge -p '{"spec":{"kafka":{"bootstrapServers":"no-port"}}}' >/dev/null
wait_for "cars: bad bootstrapServers gives Ready=False/InvalidSpec" invalid_spec cars || true
if configmap_has cars "bikes/#"; then
  pass "cars: children untouched by the invalid spec"
else
  fail "cars: ConfigMap changed by an invalid spec"
fi

log "deleting the MqttBrokers"
k delete mqtt --all --wait=true --timeout="${TIMEOUT}s" >/dev/null
for name in tributary cars; do
  wait_for "$name: Deployment garbage-collected" gone "deployment/$name" || true
  wait_for "$name: ConfigMap garbage-collected" gone "configmap/$name" || true
done
if [[ "$TLS_EXAMPLE" == 1 ]]; then
  wait_for "secure: HPA garbage-collected" gone horizontalpodautoscaler/secure || true
fi

((FAILED == 0))
