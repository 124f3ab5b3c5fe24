//! The committed CRD files equal the generated CRD, and every manifest in `deploy/` and the
//! chart's example values validate against its schema (OpenAPI part with a JSON Schema
//! validator, made strict about unknown fields; CEL part with kube's client-side evaluator).
//! Negative cases prove both validators actually reject bad input.

mod common;

use common::{chart_values_files, example_brokers, repo_root, yaml_documents};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde_json::{json, Value};

const REGENERATE: &str = "regenerate with: cargo run -p tributary-operator -- crd > FILE";

fn generated_crd() -> String {
    tributary_operator::crd_yaml().expect("CRD renders")
}

#[test]
fn committed_crd_files_match_the_types() {
    let generated = generated_crd();
    for file in ["crds/mqttbroker.yaml", "charts/tributary/crds/mqttbroker.yaml", "deploy/operator/crd.yaml"] {
        let committed = std::fs::read_to_string(repo_root().join(file)).expect("CRD file exists");
        assert!(committed == generated, "{file} differs from the Rust types; {}", REGENERATE.replace("FILE", file));
    }
}

fn open_api_schema() -> Value {
    let crd: Value = serde_yaml::from_str(&generated_crd()).expect("CRD parses");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Kubernetes prunes unknown fields silently; for the examples an unknown field is a typo, so
/// the test schema forbids them.
fn strict(mut schema: Value) -> Value {
    if let Some(obj) = schema.as_object_mut() {
        if obj.contains_key("properties")
            && !obj.contains_key("additionalProperties")
            && obj.get("x-kubernetes-preserve-unknown-fields") != Some(&json!(true))
        {
            obj.insert("additionalProperties".into(), json!(false));
        }
        for value in obj.values_mut() {
            *value = strict(value.take());
        }
    } else if let Some(items) = schema.as_array_mut() {
        for item in items {
            *item = strict(item.take());
        }
    }
    schema
}

/// Schema and CEL violations of one MqttBroker object (empty when valid).
fn violations(object: &Value) -> Vec<String> {
    let schema = open_api_schema();
    let spec_schema = strict(schema["properties"]["spec"].clone());
    let validator = jsonschema::validator_for(&spec_schema).expect("spec schema compiles");
    let mut out: Vec<String> =
        validator.iter_errors(&object["spec"]).map(|e| format!("schema: {e} at {}", e.instance_path())).collect();
    if let Err(errors) = kube::core::cel::Validator::new().validate(&schema, object, None) {
        out.push(format!("CEL: {errors}"));
    }
    out
}

#[test]
fn every_example_manifest_validates_against_the_crd_schema() {
    for (origin, object) in example_brokers() {
        assert_eq!(object["apiVersion"], "tributary.io/v1alpha1", "{origin}");
        assert_eq!(violations(&object), Vec::<String>::new(), "{origin}");
    }
}

#[test]
fn the_test_fixtures_validate_too() {
    for fixture in [common::MINIMAL_SPEC, common::FULL_SPEC] {
        let spec: Value = serde_yaml::from_str(fixture).expect("fixture parses");
        let object = json!({"apiVersion": "tributary.io/v1alpha1", "kind": "MqttBroker",
            "metadata": {"name": "x"}, "spec": spec});
        assert_eq!(violations(&object), Vec::<String>::new());
    }
}

fn with_spec(spec_yaml: &str) -> Value {
    let spec: Value = serde_yaml::from_str(spec_yaml).expect("spec parses");
    json!({"apiVersion": "tributary.io/v1alpha1", "kind": "MqttBroker",
        "metadata": {"name": "x"}, "spec": spec})
}

fn assert_rejected(spec_yaml: &str, needle: &str) {
    let v = violations(&with_spec(spec_yaml));
    assert!(
        v.iter().any(|m| m.contains(needle)),
        "expected a violation mentioning {needle:?} for {spec_yaml}, got {v:?}"
    );
}

#[test]
fn the_schema_rejects_what_kubernetes_would_reject() {
    const K: &str = "kafka: { bootstrapServers: 'k:9092' }\n";
    // OpenAPI part.
    assert_rejected("{}", "kafka");
    assert_rejected(&format!("{K}listeners: [{{ name: a, protocol: tcp, port: 1 }}]"), "tcp");
    assert_rejected(&format!("{K}listeners: [{{ name: a, protocol: mqtt, port: 70000 }}]"), "70000");
    assert_rejected(&format!("{K}topics: {{ mappings: [{{ kafkaTopic: k, mqttTopics: ['a/#/b'] }}] }}"), "a/#/b");
    assert_rejected(
        &format!("{K}authorization: {{ rules: [{{ principal: bob, action: all, topic: '#', effect: allow }}] }}"),
        "bob",
    );
    assert_rejected(&format!("{K}service: {{ type: External }}"), "External");
    assert_rejected(&format!("{K}replicsa: 2"), "replicsa");
    // CEL part.
    assert_rejected(&format!("{K}autoscaling: {{ minReplicas: 5, maxReplicas: 2 }}"), "minReplicas must be less");
    assert_rejected(&format!("{K}replicas: 1\nautoscaling: {{ maxReplicas: 2 }}"), "mutually exclusive");
    assert_rejected(&format!("{K}listeners: [{{ name: a, protocol: mqtts, port: 8883 }}]"), "tlsSecretRef is required");
    assert_rejected(
        &format!("{K}listeners: [{{ name: a, protocol: mqtt, port: 1 }}, {{ name: a, protocol: ws, port: 2 }}]"),
        "names must be unique",
    );
    assert_rejected(
        &format!("{K}listeners: [{{ name: a, protocol: mqtt, port: 1 }}, {{ name: b, protocol: ws, port: 1 }}]"),
        "ports must be unique",
    );
}

#[test]
fn chart_values_match_values_schema() {
    let schema_path = repo_root().join("charts/tributary/values.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(schema_path).expect("schema exists"))
        .expect("values.schema.json is JSON");
    let validator = jsonschema::validator_for(&schema).expect("values schema compiles");
    for file in chart_values_files() {
        for doc in yaml_documents(&file) {
            let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert_eq!(errors, Vec::<String>::new(), "{}", file.display());
        }
    }
    assert!(!validator.is_valid(&json!({"mqttBroker": {"enabled": "yes", "name": "x"}})));
    assert!(!validator.is_valid(&json!({"unknownKey": 1})));
}

#[test]
fn operator_manifests_deserialize_as_their_kinds() {
    let dir = repo_root().join("deploy/operator");
    let mut kinds = Vec::new();
    for file in ["namespace.yaml", "rbac.yaml", "deployment.yaml"] {
        for doc in yaml_documents(&dir.join(file)) {
            let kind = doc["kind"].as_str().expect("kind").to_string();
            let ok = match kind.as_str() {
                "Namespace" => serde_json::from_value::<Namespace>(doc).is_ok(),
                "ServiceAccount" => serde_json::from_value::<ServiceAccount>(doc).is_ok(),
                "ClusterRole" => serde_json::from_value::<ClusterRole>(doc).is_ok(),
                "ClusterRoleBinding" => serde_json::from_value::<ClusterRoleBinding>(doc).is_ok(),
                "Deployment" => serde_json::from_value::<Deployment>(doc).is_ok(),
                other => panic!("unexpected kind {other} in {file}"),
            };
            assert!(ok, "{file}: {kind} does not deserialize");
            kinds.push(kind);
        }
    }
    assert_eq!(kinds, ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"]);
    let kustomization = yaml_documents(&repo_root().join("deploy/kustomization.yaml"));
    let resources = kustomization[0]["resources"].as_array().expect("resources");
    for r in resources {
        let path = repo_root().join("deploy").join(r.as_str().expect("path"));
        assert!(path.exists(), "kustomization lists missing {}", path.display());
    }
}

#[test]
fn chart_and_raw_rbac_grant_the_same_rules() {
    let raw = std::fs::read_to_string(repo_root().join("deploy/operator/rbac.yaml")).expect("rbac");
    let chart = std::fs::read_to_string(repo_root().join("charts/tributary/templates/rbac.yaml")).expect("chart rbac");
    let rules = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| l.starts_with("- apiGroups:") || l.starts_with("resources:") || l.starts_with("verbs:"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(rules(&raw), rules(&chart));
}
