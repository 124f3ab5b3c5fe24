#!/usr/bin/env python3
"""Checks of the monitoring and autoscaling add-ons that the Kubernetes schemas cannot make
(used by scripts/helm-test.sh, run with the .tools/venv Python of scripts/ensure-helm.sh).

  check-observability.py dashboard RENDERED.yaml --dashboard charts/tributary/dashboards/tributary.json
                         [--label KEY=VALUE] [--namespace NS]
      RENDERED.yaml (helm template output) holds exactly one ConfigMap carrying the label
      (default grafana_dashboard=1), in NS if given, whose only data key tributary.json is JSON
      equal to the chart's dashboard file; the dashboard has the datasource, namespace and pod
      variables, every query uses the datasource variable and every tributary_ series in it is
      filtered by the namespace and pod variables.

  check-observability.py keda FILE.yaml --crd crds/mqttbroker.yaml
      FILE.yaml is one KEDA ScaledObject (keda.sh/v1alpha1; no KEDA CRD is available offline, so
      this is a structural check of the fields KEDA documents): it targets a Deployment or an
      MqttBroker (whose CRD must have the scale subresource), never scales to zero, its HPA
      behaviour validates as an autoscaling/v2 HPA's, and its first trigger is a prometheus
      trigger with string metadata whose query reads only tributary_connections, for the target's
      namespace-scoped pods.

Prints one line per file; exits 1 with the first problem found.
"""
import argparse
import json
import re
import sys

import yaml

METRIC = re.compile(r"\btributary_[a-zA-Z0-9_]+(\{[^}]*\})?")


class Failed(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Failed(msg)


def documents(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def check_dashboard_json(d):
    need(isinstance(d.get("schemaVersion"), int), "schemaVersion missing")
    need(d.get("uid") and d.get("title"), "uid or title missing")
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    need(ds and ds.get("type") == "datasource" and ds.get("query") == "prometheus",
         "no datasource variable of type prometheus")
    for name in ("namespace", "pod"):
        v = variables.get(name)
        need(v and v.get("type") == "query", f"no query variable {name}")
        q = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
        need(q.startswith("label_values(tributary_connections") and q.endswith(f", {name})"),
             f"variable {name} is not label_values(tributary_connections..., {name}): {q}")
    ids = set()
    panels = d.get("panels", [])
    need(panels, "no panels")
    queries = 0
    for p in panels:
        title = p.get("title")
        need(p.get("id") not in ids, f"duplicate panel id {p.get('id')}")
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        need(0 <= g.get("x", -1) and g.get("w", 0) > 0 and g["x"] + g["w"] <= 24, f"{title}: gridPos {g}")
        if p.get("type") == "row":
            continue
        need(p.get("datasource", {}).get("uid") == "${datasource}", f"{title}: datasource is not ${{datasource}}")
        need(p.get("targets"), f"{title}: no query")
        for t in p["targets"]:
            need(t.get("datasource", {}).get("uid") == "${datasource}", f"{title}: query datasource is not ${{datasource}}")
            expr = t.get("expr", "")
            series = list(METRIC.finditer(expr))
            need(series, f"{title}: query reads no tributary_ metric: {expr}")
            for m in series:
                sel = m.group(1) or ""
                need('namespace=~"$namespace"' in sel and 'pod=~"$pod"' in sel,
                     f"{title}: {m.group(0)} is not filtered by $namespace and $pod")
            queries += 1
    return len(panels), queries


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}


def query_metrics(query):
    """Metric names a PromQL query reads: identifiers left once label matchers, strings, ranges,
    grouping clauses, function and aggregation names and keywords are taken out."""
    q = re.sub(r'"(\\.|[^"\\])*"', " ", query)
    q = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", q)
    q = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", q)
    q = re.sub(r"\b[a-zA-Z_][a-zA-Z0-9_]*\s*\(", "(", q)
    return {w for w in re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*", q) if w not in PROMQL_WORDS and not w[0].isdigit()}


def dashboard(a):
    with open(a.dashboard) as f:
        expected = json.load(f)
    key, _, value = a.label.partition("=")
    maps = [d for d in documents(a.rendered)
            if d.get("kind") == "ConfigMap" and (d.get("metadata", {}).get("labels") or {}).get(key) == value]
    need(len(maps) == 1, f"{len(maps)} ConfigMaps labelled {key}={value!r}, expected 1")
    cm = maps[0]
    meta = cm["metadata"]
    need(meta.get("name", "").endswith("-grafana-dashboard"), f"ConfigMap name {meta.get('name')}")
    if a.namespace:
        need(meta.get("namespace") == a.namespace, f"namespace {meta.get('namespace')}, expected {a.namespace}")
    data = cm.get("data") or {}
    need(list(data) == ["tributary.json"], f"data keys {list(data)}, expected tributary.json")
    try:
        got = json.loads(data["tributary.json"])
    except json.JSONDecodeError as e:
        raise Failed(f"tributary.json is not JSON: {e}")
    need(got == expected, f"tributary.json differs from {a.dashboard}")
    panels, queries = check_dashboard_json(got)
    return f"ConfigMap/{meta['name']}: dashboard {got['uid']!r}, {panels} panels, {queries} queries"


def keda(a):
    docs = documents(a.file)
    need(len(docs) == 1, f"{len(docs)} objects, expected one ScaledObject")
    so = docs[0]
    need(so.get("apiVersion") == "keda.sh/v1alpha1" and so.get("kind") == "ScaledObject",
         f"{so.get('apiVersion')}/{so.get('kind')} is not keda.sh/v1alpha1 ScaledObject")
    need(set(so) <= {"apiVersion", "kind", "metadata", "spec"}, f"unknown top-level fields {sorted(set(so) - {'apiVersion', 'kind', 'metadata', 'spec'})}")
    need(so.get("metadata", {}).get("name"), "metadata.name missing")
    spec = so.get("spec") or {}
    known = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
             "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"}
    need(set(spec) <= known, f"unknown spec fields {sorted(set(spec) - known)}")
    for k in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
        need(k not in spec or (isinstance(spec[k], int) and spec[k] >= 0), f"spec.{k} is not a count")
    need(spec.get("minReplicaCount", 0) >= 1, "spec.minReplicaCount must be >= 1: a broker scaled to zero refuses every client")
    need("idleReplicaCount" not in spec, "spec.idleReplicaCount scales the broker to zero")
    need(spec["minReplicaCount"] <= spec.get("maxReplicaCount", 100), "minReplicaCount > maxReplicaCount")

    ref = spec.get("scaleTargetRef") or {}
    need(set(ref) <= {"apiVersion", "kind", "name", "envSourceContainerName"}, f"unknown scaleTargetRef fields {sorted(ref)}")
    need(ref.get("name"), "spec.scaleTargetRef.name missing")
    target = (ref.get("apiVersion", "apps/v1"), ref.get("kind", "Deployment"))
    if target != ("apps/v1", "Deployment"):
        scalable = set()
        for crd in documents(a.crd):
            for v in crd["spec"]["versions"]:
                if (v.get("subresources") or {}).get("scale"):
                    scalable.add((f"{crd['spec']['group']}/{v['name']}", crd["spec"]["names"]["kind"]))
        need(target in scalable, f"scaleTargetRef {target[0]}/{target[1]} has no scale subresource in {a.crd}")

    advanced = spec.get("advanced") or {}
    need(set(advanced) <= {"restoreToOriginalReplicaCount", "horizontalPodAutoscalerConfig", "scalingModifiers"},
         f"unknown spec.advanced fields {sorted(advanced)}")
    hpa_config = advanced.get("horizontalPodAutoscalerConfig") or {}
    need(set(hpa_config) <= {"name", "behavior"}, f"unknown horizontalPodAutoscalerConfig fields {sorted(hpa_config)}")
    if "behavior" in hpa_config:
        # KEDA copies it into the HPA it creates: it must be a valid autoscaling/v2 behaviour.
        import kubernetes_validate
        hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "keda-hpa"},
               "spec": {"scaleTargetRef": {"apiVersion": target[0], "kind": target[1], "name": ref["name"]},
                        "minReplicas": spec["minReplicaCount"], "maxReplicas": spec.get("maxReplicaCount", 100),
                        "behavior": hpa_config["behavior"]}}
        for k in a.kubernetes_version:
            try:
                kubernetes_validate.validate(hpa, k, strict=True)
            except kubernetes_validate.ValidationError as e:
                raise Failed(f"advanced.horizontalPodAutoscalerConfig.behavior: {'.'.join(map(str, e.path))}: {e.message}")

    triggers = spec.get("triggers") or []
    need(triggers, "spec.triggers is empty")
    for i, t in enumerate(triggers):
        need(set(t) <= {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"},
             f"unknown triggers[{i}] fields {sorted(t)}")
        need(t.get("metricType", "AverageValue") in ("AverageValue", "Value", "Utilization"), f"triggers[{i}].metricType")
        md = t.get("metadata") or {}
        bad = sorted(k for k, v in md.items() if not isinstance(v, str))
        need(not bad, f"triggers[{i}].metadata values must be strings (KEDA's map[string]string): {bad}")
    t = triggers[0]
    need(t.get("type") == "prometheus", f"triggers[0].type is {t.get('type')!r}, expected prometheus")
    need(t.get("metricType", "AverageValue") == "AverageValue", "triggers[0].metricType: connections per pod need AverageValue")
    md = t["metadata"]
    need(re.match(r"^https?://[^\s/]+", md.get("serverAddress", "")), "triggers[0].metadata.serverAddress is not a URL")
    try:
        need(float(md.get("threshold", "")) > 0, "triggers[0].metadata.threshold must be > 0")
    except ValueError:
        raise Failed(f"triggers[0].metadata.threshold {md.get('threshold')!r} is not a number")
    query = md.get("query", "")
    need(query_metrics(query) == {"tributary_connections"},
         f"the query must read tributary_connections only, reads {sorted(query_metrics(query))}: {query}")
    need(re.search(r'\bnamespace="[a-z0-9-]+"', query), "the query has no namespace=\"...\" matcher")
    need(f'pod=~"{ref["name"]}-' in query, f"the query's pod matcher does not select the pods of {ref['name']}")
    return f"ScaledObject/{so['metadata']['name']}: {target[1]}/{ref['name']}, prometheus on {query}"


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dashboard")
    d.add_argument("rendered")
    d.add_argument("--dashboard", required=True)
    d.add_argument("--label", default="grafana_dashboard=1")
    d.add_argument("--namespace")
    k = sub.add_parser("keda")
    k.add_argument("file")
    k.add_argument("--crd", required=True)
    k.add_argument("-k", "--kubernetes-version", action="append", default=[])
    a = p.parse_args()
    path = a.rendered if a.cmd == "dashboard" else a.file
    try:
        print(f"ok   {path}: {dashboard(a) if a.cmd == 'dashboard' else keda(a)}")
    except (Failed, OSError, KeyError, TypeError, yaml.YAMLError, json.JSONDecodeError) as e:
        print(f"FAIL {path}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
