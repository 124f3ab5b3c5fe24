//! Fixtures shared by the integration tests. Each test crate uses a different subset, hence the
//! `dead_code` allowance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kube::api::ObjectMeta;
use tributary_operator::crd::{MqttBroker, MqttBrokerSpec};

/// Repository root (the operator crate's parent).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("operator crate has a parent directory").to_path_buf()
}

/// An MqttBroker as the API server would hand it to the controller.
pub fn broker(name: &str, spec: MqttBrokerSpec) -> MqttBroker {
    MqttBroker {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("iot".to_string()),
            uid: Some("7f6c1e2a-0000-4000-8000-000000000001".to_string()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

/// Parses a spec from YAML.
pub fn spec(yaml: &str) -> MqttBrokerSpec {
    serde_yaml::from_str(yaml).expect("test spec parses")
}

/// A spec using every field.
pub const FULL_SPEC: &str = r##"
image: registry.example.com/tributary-broker:dev
autoscaling: { minReplicas: 2, maxReplicas: 8, targetConnectionsPerPod: 2000, targetCPUUtilization: 75 }
kafka:
  bootstrapServers: " kafka-0:9092, kafka-1:9092 "
  properties: { security.protocol: SASL_SSL, sasl.mechanism: PLAIN }
  credentialsSecretRef: { name: kafka-creds }
topics:
  mappings:
    - { kafkaTopic: k1, mqttTopics: ["cars/speed/+"] }
    - { kafkaTopic: k2, mqttTopics: ["cars/#", "trucks/+/gps"] }
  default: other
  retained: state-retained
  sessions: state-sessions
  partitions: 6
  replicationFactor: 3
listeners:
  - { name: mqtt, protocol: mqtt, port: 1883 }
  - { name: mqtts, protocol: mqtts, port: 8883, tlsSecretRef: { name: tls-a }, requireClientCert: true }
  - { name: ws, protocol: ws, port: 8080, path: /broker/mqtt }
  - { name: wss, protocol: wss, port: 443, tlsSecretRef: { name: tls-b } }
limits: { maxPacketSize: 1048576, maxInflight: 100, maxConnections: 50000, maxKeepAlive: 600, nodeTimeout: 20 }
authentication:
  allowAnonymous: false
  passwordSecretRef: { name: mqtt-passwords, key: users }
authorization:
  defaultEffect: deny
  rules:
    - { principal: "user:alice", action: publish, topic: "cars/#", effect: allow }
    - { principal: "cn:gateway-1", action: subscribe, topic: "cars/+/speed", effect: allow }
    - { principal: "*", action: all, topic: "#", effect: deny }
service:
  type: LoadBalancer
  annotations: { lb.example.com/internal: "true" }
  loadBalancerClass: example.com/lb
resources:
  requests: { cpu: "1", memory: 1Gi }
podTemplate:
  labels: { team: iot, app.kubernetes.io/name: overridden }
  annotations: { example.com/owner: iot }
  nodeSelector: { pool: mqtt }
  tolerations: [{ key: dedicated, operator: Equal, value: mqtt, effect: NoSchedule }]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms: [{ matchExpressions: [{ key: pool, operator: In, values: [mqtt] }] }]
  topologySpreadConstraints:
    - { maxSkew: 2, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule }
"##;

/// The minimal spec.
pub const MINIMAL_SPEC: &str = "kafka: { bootstrapServers: 'kafka:9092' }";

/// Every YAML document of a file.
pub fn yaml_documents(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("manifest is readable");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let value: serde_yaml::Value = serde::Deserialize::deserialize(doc).expect("manifest is YAML");
            serde_json::to_value(value).expect("YAML converts to JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Every MqttBroker in `deploy/` (not `deploy/local/`, the broker's own) and every
/// `mqttBroker.spec` of the chart's values files, as (origin, object).
pub fn example_brokers() -> Vec<(String, serde_json::Value)> {
    let root = repo_root();
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("deploy"))
        .expect("deploy/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        for doc in yaml_documents(&file) {
            if doc["kind"] == "MqttBroker" {
                out.push((file.display().to_string(), doc));
            }
        }
    }
    for values in chart_values_files() {
        for doc in yaml_documents(&values) {
            let spec = &doc["mqttBroker"]["spec"];
            if !spec.is_null() {
                let object = serde_json::json!({
                    "apiVersion": "tributary.io/v1alpha1",
                    "kind": "MqttBroker",
                    "metadata": { "name": doc["mqttBroker"]["name"] },
                    "spec": spec,
                });
                out.push((values.display().to_string(), object));
            }
        }
    }
    assert!(out.len() >= 5, "expected the deploy/ and chart examples, found {}", out.len());
    out
}

/// `values.yaml` and `ci/*.yaml` of the chart.
pub fn chart_values_files() -> Vec<PathBuf> {
    let chart = repo_root().join("charts/tributary");
    let mut files = vec![chart.join("values.yaml")];
    let mut ci: Vec<PathBuf> =
        std::fs::read_dir(chart.join("ci")).expect("chart ci/ exists").map(|e| e.expect("dir entry").path()).collect();
    ci.sort();
    files.extend(ci);
    files
}

/// Every spec the desired-state tests render: fixtures plus all examples.
pub fn all_specs() -> Vec<(String, MqttBrokerSpec)> {
    let mut specs = vec![("minimal".to_string(), spec(MINIMAL_SPEC)), ("full".to_string(), spec(FULL_SPEC))];
    for (origin, object) in example_brokers() {
        let spec: MqttBrokerSpec = serde_json::from_value(object["spec"].clone()).expect("example spec deserializes");
        specs.push((origin, spec));
    }
    specs
}
