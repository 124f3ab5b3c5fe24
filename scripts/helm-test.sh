#!/usr/bin/env bash
# `make helm-test`: the Helm chart rendered by real helm and the plain manifests by real kubectl
# (kustomize), every rendered object validated offline: built-in kinds strictly against the
# Kubernetes 1.29 (the chart's kubeVersion floor) and 1.32 API schemas, MqttBrokers against the
# generated CRD; the Grafana dashboard ConfigMap and the KEDA example by scripts/check-observability.py.
# No cluster is needed. helm/kubectl/the validator come from scripts/ensure-helm.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="$("$root/scripts/ensure-helm.sh")"
helm="$bin/helm"
kubectl="$bin/kubectl"
validate=("$root/.tools/venv/bin/python" "$root/scripts/validate-manifests.py" --crd crds/mqttbroker.yaml -k 1.29.0 -k 1.32.0)
observability=("$root/.tools/venv/bin/python" "$root/scripts/check-observability.py")
chart=charts/tributary
version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$chart/Chart.yaml")"
out="$root/target/helm-test"
rm -rf "$out" && mkdir -p "$out"

passed=0 failed=0
check() { # check NAME COMMAND...: runs it, counts it, shows its output on failure
  local name="$1"; shift
  if "$@" >"$out/log" 2>&1; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/     /' "$out/log"
  fi
}
refuses() { ! "$@"; } # the command must fail (the checks are not vacuous)
contains() { grep -qF -- "$2" "$1"; }

values_files=("$chart"/ci/*.yaml)
render() { # render NAME [helm args...]: lint + template + validate, output in $out/NAME.yaml
  local name="$1"; shift
  check "helm lint $name" "$helm" lint --strict "$chart" "$@"
  check "helm template $name" bash -c '"$0" template tributary "$1" -n tributary-system --include-crds "${@:3}" > "$2"' \
    "$helm" "$chart" "$out/$name.yaml" "$@"
  check "validate $name" "${validate[@]}" "$out/$name.yaml"
}

render default
for f in "${values_files[@]}"; do
  render "$(basename "$f" .yaml)" -f "$f"
done
render grafana-custom --set grafanaDashboard.enabled=true --set grafanaDashboard.namespace=monitoring \
  --set grafanaDashboard.labelKey=dashboards.example.com/load --set-string grafanaDashboard.labelValue=tributary

# The default images are the ones `make image` builds; a registry is one pair of values.
check "default operator image is localhost/tributary-operator:$version" \
  contains "$out/default.yaml" "image: \"localhost/tributary-operator:$version\""
check "default broker image left to the operator (no TRIBUTARY_BROKER_IMAGE)" \
  refuses contains "$out/default.yaml" "TRIBUTARY_BROKER_IMAGE"
check "registry values set both images" bash -c \
  'grep -qF "image: \"registry.example.com/iot/tributary-operator:'"$version"'\"" "$0" &&
   grep -A1 -F "name: TRIBUTARY_BROKER_IMAGE" "$0" | grep -qF "registry.example.com/iot/tributary-broker:"' \
  "$out/registry-values.yaml"

# The Grafana dashboard is opt-in: a ConfigMap whose data is the chart's dashboard JSON, with the
# sidecar's label (configurable); the KEDA example is a ScaledObject on the MqttBroker's scale
# subresource reading only tributary_connections (no KEDA CRD offline: a structural check).
dashboard_json=(--dashboard "$chart/dashboards/tributary.json")
check "default values render no Grafana dashboard ConfigMap" refuses contains "$out/default.yaml" "-grafana-dashboard"
check "dashboard check refuses the default render" refuses "${observability[@]}" dashboard "$out/default.yaml" "${dashboard_json[@]}"
check "example values: dashboard ConfigMap labelled grafana_dashboard=1, data is the dashboard JSON" \
  "${observability[@]}" dashboard "$out/example-values.yaml" "${dashboard_json[@]}" --namespace tributary-system
check "grafanaDashboard.labelKey/labelValue/namespace are honoured" \
  "${observability[@]}" dashboard "$out/grafana-custom.yaml" "${dashboard_json[@]}" \
  --label dashboards.example.com/load=tributary --namespace monitoring
check "helm lint refuses grafanaDashboard.enable (a typo)" refuses "$helm" lint --strict "$chart" --set grafanaDashboard.enable=true
check "deploy/keda-scaledobject.yaml: ScaledObject on the MqttBroker, prometheus on tributary_connections" \
  "${observability[@]}" keda deploy/keda-scaledobject.yaml --crd crds/mqttbroker.yaml -k 1.29.0 -k 1.32.0
sed 's/sum(tributary_connections{/sum(tributary_subscriptions{/' deploy/keda-scaledobject.yaml >"$out/bad-keda-query.yaml"
check "KEDA check refuses a query on another metric" refuses \
  "${observability[@]}" keda "$out/bad-keda-query.yaml" --crd crds/mqttbroker.yaml
sed 's/threshold: "1000"/threshold: 1000/' deploy/keda-scaledobject.yaml >"$out/bad-keda-threshold.yaml"
check "KEDA check refuses non-string trigger metadata" refuses \
  "${observability[@]}" keda "$out/bad-keda-threshold.yaml" --crd crds/mqttbroker.yaml
sed 's/kind: MqttBroker/kind: MqttBrokers/' deploy/keda-scaledobject.yaml >"$out/bad-keda-target.yaml"
check "KEDA check refuses a target without a scale subresource" refuses \
  "${observability[@]}" keda "$out/bad-keda-target.yaml" --crd crds/mqttbroker.yaml

# Plain manifests: kustomize (offline) and the example MqttBrokers.
check "kubectl kustomize deploy/" bash -c '"$0" kustomize deploy/ > "$1"' "$kubectl" "$out/kustomize.yaml"
check "validate kustomize deploy/" "${validate[@]}" "$out/kustomize.yaml"
check "validate deploy/*.yaml MqttBrokers" "${validate[@]}" deploy/minimal.yaml deploy/topic-mapping.yaml deploy/tls-acl.yaml

# Negative controls: a wrong value, a wrong field and a wrong MqttBroker are refused.
check "helm lint refuses image.pullPolicy=Sometimes" refuses "$helm" lint --strict "$chart" --set image.pullPolicy=Sometimes
printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 1\n  bogus: true\n  selector: {}\n  template: {}\n' >"$out/bad-deployment.yaml"
check "validator refuses an unknown Deployment field" refuses "${validate[@]}" "$out/bad-deployment.yaml"
printf 'apiVersion: tributary.io/v1alpha1\nkind: MqttBroker\nmetadata: {name: x}\nspec: {replicas: two, kafka: {bootstrapServers: "k:9092"}}\n' >"$out/bad-broker.yaml"
check "validator refuses a wrong MqttBroker" refuses "${validate[@]}" "$out/bad-broker.yaml"
printf 'apiVersion: tributary.io/v1alpha1\nkind: MqttBroker\nmetadata: {name: x}\nspec: {replicaz: 2, kafka: {bootstrapServers: "k:9092"}}\n' >"$out/typo-broker.yaml"
check "validator refuses an unknown MqttBroker field" refuses "${validate[@]}" "$out/typo-broker.yaml"

echo "helm-test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
