//! Desired-state functions: spec → objects, field by field, including defaults, and every
//! validation error of the reconciler.

mod common;

use std::collections::BTreeMap;

use common::{broker, spec, FULL_SPEC, MINIMAL_SPEC};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tributary_broker::{classify, Change};
use tributary_operator::crd::{LogFormat, MqttBrokerSpec};
use tributary_operator::desired::configmap::{broker_config, restart_hash};
use tributary_operator::desired::{children, Children};
use tributary_operator::labels::default_image;
use tributary_operator::validate::{is_valid_principal, is_valid_topic_filter, parse_host_port, validate};

fn render(spec_yaml: &str) -> Children {
    children(&broker("cars", spec(spec_yaml)), "default/broker:1").expect("children render")
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "tributary".to_string()),
        ("app.kubernetes.io/instance".to_string(), "cars".to_string()),
        ("app.kubernetes.io/managed-by".to_string(), "tributary-operator".to_string()),
    ])
}

fn selector() -> BTreeMap<String, String> {
    let mut s = labels();
    s.remove("app.kubernetes.io/managed-by");
    s
}

fn pod_spec(c: &Children) -> &PodSpec {
    c.deployment.spec.template.spec.as_ref().expect("pod spec")
}

fn container(c: &Children) -> &Container {
    &pod_spec(c).containers[0]
}

fn yaml(c: &Children) -> serde_yaml::Value {
    let data = c.config_map.data.as_ref().expect("configmap data");
    serde_yaml::from_str(&data["broker.yaml"]).expect("broker.yaml parses")
}

#[test]
fn every_child_is_owned_labelled_and_named_after_the_broker() {
    let c = render(MINIMAL_SPEC);
    let metas = [
        &c.service_account.metadata,
        &c.config_map.metadata,
        &c.deployment.metadata,
        &c.service.metadata,
        &c.pod_disruption_budget.metadata,
    ];
    for meta in metas {
        assert_eq!(meta.name.as_deref(), Some("cars"));
        assert_eq!(meta.namespace.as_deref(), Some("iot"));
        assert_eq!(meta.labels.as_ref(), Some(&labels()));
        let owners = meta.owner_references.as_ref().expect("owner refs");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "MqttBroker");
        assert_eq!(owners[0].api_version, "tributary.io/v1alpha1");
        assert_eq!(owners[0].name, "cars");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(owners[0].uid, "7f6c1e2a-0000-4000-8000-000000000001");
    }
    assert_eq!(c.service_account.automount_service_account_token, Some(false));
}

#[test]
fn minimal_spec_renders_the_contract_with_all_defaults() {
    let c = render(MINIMAL_SPEC);
    let expected = r#"
listeners:
- name: mqtt
  protocol: mqtt
  address: 0.0.0.0:1883
admin:
  address: 0.0.0.0:9090
kafka:
  bootstrapServers: kafka:9092
  properties: {}
topics:
  mappings: []
  default: mqtt-messages
  retained: mqtt-retained
  sessions: mqtt-sessions
  partitions: 12
  replicationFactor: 1
limits:
  maxPacketSize: 1048576
  maxPendingBytes: 67108864
  maxInflight: 32
  maxConnections: 0
  maxConnectionsPerAddress: 0
  maxConnectRate: 1000
  maxSubscriptions: 1000
  maxTopicLength: 1024
  maxTopicLevels: 32
  maxQueuedMessages: 1000
  maxKeepAlive: 0
  nodeTimeout: 15
  drainSeconds: 30
  maxRewindSeconds: 0
  maxShareGroups: 100
authentication:
  allowAnonymous: true
  certificateName: commonName
authorization:
  defaultEffect: allow
  rules: []
"#;
    let expected: serde_yaml::Value = serde_yaml::from_str(expected).expect("expected parses");
    assert_eq!(yaml(&c), expected);
    assert_eq!(c.config_map.data.as_ref().map(|d| d.len()), Some(1), "only broker.yaml");
}

#[test]
fn full_spec_renders_every_config_field() {
    let c = render(FULL_SPEC);
    let y = yaml(&c);
    assert_eq!(y["kafka"]["bootstrapServers"], "kafka-0:9092, kafka-1:9092");
    assert_eq!(y["kafka"]["properties"]["security.protocol"], "SASL_SSL");
    assert_eq!(y["kafka"]["properties"]["sasl.mechanism"], "PLAIN");
    let listeners = y["listeners"].as_sequence().expect("listeners");
    assert_eq!(listeners.len(), 4);
    assert_eq!(listeners[0]["address"], "0.0.0.0:1883");
    assert!(listeners[0].get("tls").is_none(), "plain mqtt has no tls");
    assert_eq!(listeners[1]["protocol"], "mqtts");
    assert_eq!(listeners[1]["tls"]["certFile"], "/etc/tributary/tls/mqtts/tls.crt");
    assert_eq!(listeners[1]["tls"]["keyFile"], "/etc/tributary/tls/mqtts/tls.key");
    assert_eq!(listeners[1]["tls"]["clientCaFile"], "/etc/tributary/tls/mqtts/ca.crt");
    assert_eq!(listeners[1]["tls"]["requireClientCert"], true);
    assert!(listeners[2].get("tls").is_none(), "ws has no tls");
    assert_eq!(listeners[2]["path"], "/broker/mqtt", "the WebSocket path is passed on");
    assert_eq!(listeners[3]["tls"]["requireClientCert"], false);
    assert!(listeners[3]["tls"].get("clientCaFile").is_none());
    assert_eq!(y["topics"]["mappings"][0]["kafkaTopic"], "k1");
    assert_eq!(y["topics"]["mappings"][0]["mqttTopics"][0], "cars/speed/+");
    assert_eq!(y["topics"]["mappings"][1]["mqttTopics"][1], "trucks/+/gps");
    assert_eq!(y["topics"]["default"], "other");
    assert_eq!(y["topics"]["retained"], "state-retained");
    assert_eq!(y["topics"]["sessions"], "state-sessions");
    assert_eq!(y["topics"]["partitions"], 6);
    assert_eq!(y["topics"]["replicationFactor"], 3);
    assert_eq!(y["limits"]["maxPacketSize"], 1048576);
    assert_eq!(y["limits"]["maxInflight"], 100);
    assert_eq!(y["limits"]["maxConnections"], 50000);
    assert_eq!(y["limits"]["maxKeepAlive"], 600);
    assert_eq!(y["limits"]["nodeTimeout"], 20);
    assert_eq!(y["authentication"]["allowAnonymous"], false);
    assert_eq!(y["authentication"]["passwordFile"], "/etc/tributary/auth/passwords");
    assert_eq!(y["authorization"]["defaultEffect"], "deny");
    let rules = y["authorization"]["rules"].as_sequence().expect("rules");
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0]["principal"], "user:alice");
    assert_eq!(rules[0]["action"], "publish");
    assert_eq!(rules[0]["topic"], "cars/#");
    assert_eq!(rules[0]["effect"], "allow");
    assert_eq!(rules[1]["action"], "subscribe");
    assert_eq!(rules[2]["action"], "all");
    assert_eq!(rules[2]["effect"], "deny");
}

#[test]
fn kafka_credentials_are_env_from_the_secret_never_in_the_configmap() {
    let c = render(FULL_SPEC);
    let env_from = container(&c).env_from.as_ref().expect("envFrom");
    assert_eq!(env_from.len(), 1);
    assert_eq!(env_from[0].prefix.as_deref(), Some("TRIBUTARY_KAFKA_"));
    let secret = env_from[0].secret_ref.as_ref().expect("secretRef");
    assert_eq!(secret.name, "kafka-creds");
    assert_eq!(secret.optional, Some(false));
    let text = &c.config_map.data.as_ref().expect("data")["broker.yaml"];
    assert!(!text.contains("kafka-creds"));
    assert!(render(MINIMAL_SPEC).deployment.spec.template.spec.as_ref().expect("pod").containers[0].env_from.is_none());
}

#[test]
fn deployment_defaults() {
    let c = render(MINIMAL_SPEC);
    let d = &c.deployment.spec;
    assert_eq!(d.replicas, Some(1));
    assert_eq!(d.selector.match_labels.as_ref(), Some(&selector()));
    let strategy = d.strategy.as_ref().expect("strategy");
    let rolling = strategy.rolling_update.as_ref().expect("rolling update");
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)));
    let template_meta = d.template.metadata.as_ref().expect("template metadata");
    assert_eq!(template_meta.labels.as_ref(), Some(&labels()));
    let annotations = template_meta.annotations.as_ref().expect("annotations");
    assert_eq!(annotations["tributary.io/config-hash"].len(), 16);
    assert_eq!(annotations["prometheus.io/port"], "9090");
    assert_eq!(annotations["prometheus.io/scrape"], "true");

    let pod = pod_spec(&c);
    assert_eq!(pod.service_account_name.as_deref(), Some("cars"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.termination_grace_period_seconds, Some(60));
    let security = pod.security_context.as_ref().expect("pod security");
    assert_eq!(security.run_as_non_root, Some(true));
    assert!(security.sysctls.is_none(), "no privileged port, no sysctl");
    let anti = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref())
        .expect("default anti-affinity");
    assert_eq!(anti[0].pod_affinity_term.topology_key, "kubernetes.io/hostname");
    assert_eq!(
        anti[0].pod_affinity_term.label_selector.as_ref().and_then(|s| s.match_labels.as_ref()),
        Some(&selector())
    );
    let spread = pod.topology_spread_constraints.as_ref().expect("spread");
    assert_eq!(spread[0].topology_key, "topology.kubernetes.io/zone");
    assert_eq!(spread[0].when_unsatisfiable, "ScheduleAnyway");
    assert!(pod.node_selector.is_none());
    assert!(pod.tolerations.is_none());

    let ctr = container(&c);
    assert_eq!(ctr.name, "broker");
    assert_eq!(ctr.image.as_deref(), Some("default/broker:1"));
    assert_eq!(ctr.args.as_ref(), Some(&vec!["--config".to_string(), "/etc/tributary/broker.yaml".to_string()]));
    let ports: Vec<(String, i32)> = ctr
        .ports
        .as_ref()
        .expect("ports")
        .iter()
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect();
    assert_eq!(ports, vec![("mqtt".into(), 1883), ("admin".into(), 9090)]);
    let readiness = ctr.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("readiness");
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));
    assert_eq!(readiness.port, IntOrString::String("admin".into()));
    let liveness = ctr.liveness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("liveness");
    assert_eq!(liveness.path.as_deref(), Some("/healthz"));
    assert!(ctr.startup_probe.is_some());
    let resources = ctr.resources.as_ref().expect("resources");
    assert_eq!(resources.requests.as_ref().expect("requests")["cpu"].0, "250m");
    assert_eq!(resources.limits.as_ref().expect("limits")["memory"].0, "512Mi");
    let mounts = ctr.volume_mounts.as_ref().expect("mounts");
    assert_eq!(mounts[0].mount_path, "/etc/tributary");
    assert_eq!(mounts[0].read_only, Some(true));
    let sc = ctr.security_context.as_ref().expect("container security");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));

    let volumes = pod.volumes.as_ref().expect("volumes");
    let sources = volumes[0].projected.as_ref().and_then(|p| p.sources.as_ref()).expect("projected sources");
    assert_eq!(sources.len(), 1, "only the ConfigMap without TLS or passwords");
    let cm = sources[0].config_map.as_ref().expect("configmap source");
    assert_eq!(cm.name, "cars");
    assert_eq!(cm.items.as_ref().expect("items")[0].path, "broker.yaml");
}

#[test]
fn default_image_is_the_matching_broker_release() {
    let c = children(&broker("cars", spec(MINIMAL_SPEC)), &default_image()).expect("render");
    assert_eq!(container(&c).image.as_deref(), Some(concat!("localhost/tributary-broker:", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn deployment_honours_every_override() {
    let c = render(FULL_SPEC);
    assert_eq!(c.deployment.spec.replicas, None, "autoscaled: the HPA owns replicas");
    let template = c.deployment.spec.template.metadata.as_ref().expect("meta");
    let pod_labels = template.labels.as_ref().expect("labels");
    assert_eq!(pod_labels["team"], "iot");
    assert_eq!(pod_labels["app.kubernetes.io/name"], "tributary", "standard labels win over overrides");
    assert_eq!(template.annotations.as_ref().expect("annotations")["example.com/owner"], "iot");
    let pod = pod_spec(&c);
    assert_eq!(pod.node_selector.as_ref().expect("nodeSelector")["pool"], "mqtt");
    assert_eq!(pod.tolerations.as_ref().expect("tolerations")[0].key.as_deref(), Some("dedicated"));
    let affinity = pod.affinity.as_ref().expect("affinity");
    assert!(affinity.node_affinity.is_some());
    assert!(affinity.pod_anti_affinity.is_none(), "override replaces the default");
    let spread = pod.topology_spread_constraints.as_ref().expect("spread");
    assert_eq!(spread.len(), 1);
    assert_eq!(spread[0].max_skew, 2);
    let sysctls = pod.security_context.as_ref().and_then(|s| s.sysctls.as_ref()).expect("port 443 needs the sysctl");
    assert_eq!(sysctls[0].name, "net.ipv4.ip_unprivileged_port_start");

    let ctr = container(&c);
    assert_eq!(ctr.image.as_deref(), Some("registry.example.com/tributary-broker:dev"));
    assert_eq!(ctr.resources.as_ref().expect("resources").requests.as_ref().expect("req")["cpu"].0, "1");
    let ports: Vec<i32> = ctr.ports.as_ref().expect("ports").iter().map(|p| p.container_port).collect();
    assert_eq!(ports, vec![1883, 8883, 8080, 443, 9090]);

    let sources =
        pod.volumes.as_ref().expect("volumes")[0].projected.as_ref().and_then(|p| p.sources.as_ref()).expect("sources");
    assert_eq!(sources.len(), 4, "configmap, two TLS secrets, password secret");
    let tls_a = sources[1].secret.as_ref().expect("tls-a");
    assert_eq!(tls_a.name, "tls-a");
    let paths: Vec<&str> = tls_a.items.as_ref().expect("items").iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, vec!["tls/mqtts/tls.crt", "tls/mqtts/tls.key", "tls/mqtts/ca.crt"]);
    let tls_b = sources[2].secret.as_ref().expect("tls-b");
    assert_eq!(tls_b.items.as_ref().expect("items").len(), 2, "no ca.crt without mTLS");
    let passwords = sources[3].secret.as_ref().expect("passwords");
    assert_eq!(passwords.name, "mqtt-passwords");
    let item = &passwords.items.as_ref().expect("items")[0];
    assert_eq!((item.key.as_str(), item.path.as_str()), ("users", "auth/passwords"));
}

#[test]
fn jwt_renders_the_key_files_where_their_secrets_are_mounted() {
    let c = render(&format!(
        "{K}authentication:
  allowAnonymous: false
  certificateName: sanUri
  jwt: {{ algorithm: ES256, jwksRef: {{ name: idp }}, audience: mqtt, groupsClaim: roles }}
limits: {{ maxConnectRate: 50, maxTopicLevels: 8 }}
"
    ));
    let y = yaml(&c);
    let jwt = &y["authentication"]["jwt"];
    assert_eq!(jwt["algorithm"], "ES256");
    assert_eq!(jwt["jwksFile"], "/etc/tributary/auth/jwks.json");
    assert_eq!(
        (&jwt["usernameClaim"], &jwt["groupsClaim"], &jwt["audience"]),
        (&"sub".into(), &"roles".into(), &"mqtt".into())
    );
    assert!(jwt.get("secretFile").is_none() && jwt.get("publicKeyFile").is_none());
    assert_eq!(y["authentication"]["certificateName"], "sanUri");
    assert_eq!((&y["limits"]["maxConnectRate"], &y["limits"]["maxTopicLevels"]), (&50.into(), &8.into()));
    let pod = pod_spec(&c);
    let sources =
        pod.volumes.as_ref().expect("volumes")[0].projected.as_ref().and_then(|p| p.sources.as_ref()).expect("sources");
    let idp = sources.iter().filter_map(|s| s.secret.as_ref()).find(|s| s.name == "idp").expect("the JWKS secret");
    let item = &idp.items.as_ref().expect("items")[0];
    assert_eq!((item.key.as_str(), item.path.as_str()), ("jwks.json", "auth/jwks.json"));
}

#[test]
fn the_termination_grace_period_follows_the_drain_window() {
    let c = render(&format!("{K}limits: {{ drainSeconds: 90 }}\n"));
    assert_eq!(pod_spec(&c).termination_grace_period_seconds, Some(120));
    assert_eq!(yaml(&c)["limits"]["drainSeconds"], 90);
}

#[test]
fn rewind_is_switched_on_through_the_limits() {
    let c = render(&format!("{K}limits: {{ maxRewindSeconds: 86400 }}\n"));
    assert_eq!(yaml(&c)["limits"]["maxRewindSeconds"], 86400);
    let c = render(&format!("{K}limits: {{ maxShareGroups: 7 }}\n"));
    assert_eq!(yaml(&c)["limits"]["maxShareGroups"], 7);
}

#[test]
fn rebalance_logging_and_tracing_reach_the_broker_file() {
    let c = render(&format!(
        "{K}rebalance: {{ enabled: true, tolerancePercent: 25, perSecond: 50 }}\nlogging: {{ format: json }}\n\
         tracing: {{ otlpEndpoint: 'http://otel-collector.observability:4318', sampleRatio: 0.1 }}\n"
    ));
    let file = yaml(&c);
    assert_eq!(file["rebalance"]["enabled"], true);
    assert_eq!(file["rebalance"]["tolerancePercent"], 25);
    assert_eq!(file["rebalance"]["perSecond"], 50);
    assert_eq!(file["logging"]["format"], "json");
    assert_eq!(file["tracing"]["otlpEndpoint"], "http://otel-collector.observability:4318");
    assert_eq!(file["tracing"]["sampleRatio"], 0.1);
    // Left out, the broker's defaults hold: no rebalancing, text logs, no span export (the
    // sections are then not written at all).
    let plain = yaml(&render(K));
    for section in ["rebalance", "logging", "tracing"] {
        assert!(plain.get(section).is_none(), "{section} written without being set");
    }
    let partial = yaml(&render(&format!("{K}rebalance: {{ enabled: true }}\n")));
    assert_eq!(partial["rebalance"]["tolerancePercent"], 10);
    assert_eq!(partial["rebalance"]["perSecond"], 20);
}

#[test]
fn replicas_are_taken_from_the_spec_without_autoscaling() {
    let c = render("replicas: 3\nkafka: { bootstrapServers: 'k:9092' }");
    assert_eq!(c.deployment.spec.replicas, Some(3));
    assert!(c.horizontal_pod_autoscaler.is_none());
}

#[test]
fn service_exposes_listeners_not_admin() {
    let c = render(MINIMAL_SPEC);
    let svc = c.service.spec.as_ref().expect("service spec");
    assert_eq!(svc.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(svc.selector.as_ref(), Some(&selector()));
    let ports = svc.ports.as_ref().expect("ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].name.as_deref(), Some("mqtt"));
    assert_eq!(ports[0].port, 1883);
    assert_eq!(ports[0].target_port, Some(IntOrString::String("mqtt".into())));
    assert!(svc.load_balancer_class.is_none());
    assert!(c.service.metadata.annotations.is_none());

    let c = render(FULL_SPEC);
    let svc = c.service.spec.as_ref().expect("service spec");
    let names: Vec<_> = svc.ports.as_ref().expect("ports").iter().map(|p| p.name.clone().unwrap_or_default()).collect();
    assert_eq!(names, vec!["mqtt", "mqtts", "ws", "wss"]);
    assert_eq!(svc.load_balancer_class.as_deref(), Some("example.com/lb"));
    assert_eq!(c.service.metadata.annotations.as_ref().expect("annotations")["lb.example.com/internal"], "true");

    let c = render("kafka: { bootstrapServers: 'k:9092' }\nservice: { type: ClusterIP }");
    assert_eq!(c.service.spec.as_ref().and_then(|s| s.type_.as_deref()), Some("ClusterIP"));
}

#[test]
fn hpa_scales_on_connections_and_optionally_cpu() {
    let c = render(FULL_SPEC);
    let hpa = c.horizontal_pod_autoscaler.expect("hpa");
    assert_eq!(hpa.metadata.name.as_deref(), Some("cars"));
    let s = hpa.spec;
    assert_eq!(s.scale_target_ref.kind, "Deployment");
    assert_eq!(s.scale_target_ref.name, "cars");
    assert_eq!(s.scale_target_ref.api_version.as_deref(), Some("apps/v1"));
    assert_eq!(s.min_replicas, Some(2));
    assert_eq!(s.max_replicas, 8);
    let metrics = s.metrics.expect("metrics");
    assert_eq!(metrics.len(), 2);
    let pods = metrics[0].pods.as_ref().expect("pods metric");
    assert_eq!(metrics[0].type_, "Pods");
    assert_eq!(pods.metric.name, "tributary_connections");
    assert_eq!(pods.target.type_, "AverageValue");
    assert_eq!(pods.target.average_value.as_ref().map(|q| q.0.as_str()), Some("2000"));
    let cpu = metrics[1].resource.as_ref().expect("cpu metric");
    assert_eq!(cpu.name, "cpu");
    assert_eq!(cpu.target.average_utilization, Some(75));
    let down = s.behavior.and_then(|b| b.scale_down).expect("scale down behaviour");
    assert_eq!(down.stabilization_window_seconds, Some(300));

    let c = render("autoscaling: { maxReplicas: 4 }\nkafka: { bootstrapServers: 'k:9092' }");
    let s = c.horizontal_pod_autoscaler.expect("hpa").spec;
    assert_eq!(s.min_replicas, Some(1));
    let metrics = s.metrics.expect("metrics");
    assert_eq!(metrics.len(), 1, "no CPU metric unless asked");
    assert_eq!(
        metrics[0].pods.as_ref().and_then(|p| p.target.average_value.as_ref()).map(|q| q.0.as_str()),
        Some("1000")
    );
}

#[test]
fn pdb_allows_one_pod_down() {
    let c = render(MINIMAL_SPEC);
    let spec = c.pod_disruption_budget.spec.expect("pdb spec");
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(spec.selector.and_then(|s| s.match_labels), Some(selector()));
}

fn hash_of(s: &MqttBrokerSpec) -> String {
    restart_hash(&broker_config(s)).expect("hash")
}

#[test]
fn config_hash_ignores_hot_reloadable_fields_only() {
    let base = spec(common::FULL_SPEC);
    let h = hash_of(&base);

    let mut mappings = base.clone();
    if let Some(t) = mappings.topics.as_mut() {
        t.mappings[0].mqtt_topics.push("bikes/#".into());
        t.mappings.pop();
    }
    assert_eq!(hash_of(&mappings), h, "mapping edits are hot-reloaded");

    let mut acl = base.clone();
    if let Some(a) = acl.authorization.as_mut() {
        a.rules.reverse();
        a.default_effect = None;
    }
    assert_eq!(hash_of(&acl), h, "ACL edits are hot-reloaded");

    let mut listener = base.clone();
    listener.listeners[0].port = 1884;
    assert_ne!(hash_of(&listener), h, "listener edits roll the pods");

    let mut kafka = base.clone();
    kafka.kafka.properties.insert("acks".into(), "all".into());
    assert_ne!(hash_of(&kafka), h, "Kafka edits roll the pods");

    let mut limits = base.clone();
    if let Some(l) = limits.limits.as_mut() {
        l.max_inflight = Some(10);
    }
    assert_ne!(hash_of(&limits), h);

    let mut default_topic = base.clone();
    if let Some(t) = default_topic.topics.as_mut() {
        t.default = Some("elsewhere".into());
    }
    assert_eq!(hash_of(&default_topic), h, "default-topic edits are hot-reloaded, as the broker does");

    let mut retained = base;
    if let Some(t) = retained.topics.as_mut() {
        t.retained = Some("elsewhere".into());
    }
    assert_ne!(hash_of(&retained), h, "state topics are read at startup only");
}

#[test]
fn config_hash_rolls_the_pods_exactly_when_the_broker_needs_a_restart() {
    let base = spec(common::FULL_SPEC);
    type Edit = fn(&mut MqttBrokerSpec);
    let edits: [(&str, Edit); 9] = [
        ("default topic", |s| s.topics.get_or_insert_with(Default::default).default = Some("elsewhere".into())),
        ("mappings", |s| s.topics.get_or_insert_with(Default::default).mappings.clear()),
        ("rules", |s| s.authorization.get_or_insert_with(Default::default).rules.clear()),
        ("listener port", |s| s.listeners[0].port = 1884),
        ("partitions", |s| s.topics.get_or_insert_with(Default::default).partitions = Some(1)),
        ("node timeout", |s| s.limits.get_or_insert_with(Default::default).node_timeout = Some(30)),
        ("rebalance", |s| s.rebalance.get_or_insert_with(Default::default).enabled = Some(true)),
        ("log format", |s| s.logging.get_or_insert_with(Default::default).format = Some(LogFormat::Json)),
        ("tracing", |s| s.tracing.get_or_insert_with(Default::default).otlp_endpoint = Some("http://otel:4318".into())),
    ];
    for (what, edit) in edits {
        let mut edited = base.clone();
        edit(&mut edited);
        let restart = matches!(classify(&broker_config(&base), &broker_config(&edited)), Change::NeedsRestart(_));
        assert_eq!(hash_of(&edited) != hash_of(&base), restart, "{what}");
    }
}

#[test]
fn children_need_namespace_and_uid() {
    let mut b = broker("cars", spec(MINIMAL_SPEC));
    b.metadata.uid = None;
    assert!(children(&b, "img").is_err());
    let mut b = broker("cars", spec(MINIMAL_SPEC));
    b.metadata.namespace = None;
    assert!(children(&b, "img").is_err());
}

// ---- validation -------------------------------------------------------------------------

fn errors_of(yaml: &str) -> Vec<(String, String)> {
    validate(&spec(yaml)).into_iter().map(|e| (e.field, e.message)).collect()
}

/// Asserts that validation fails on exactly `field` with a message containing `needle`.
fn assert_invalid(yaml: &str, field: &str, needle: &str) {
    let errors = errors_of(yaml);
    assert!(errors.iter().any(|(f, m)| f == field && m.contains(needle)), "expected {field}: …{needle}… in {errors:?}");
}

const K: &str = "kafka: { bootstrapServers: 'kafka:9092' }\n";

#[test]
fn examples_and_fixtures_are_valid() {
    for (origin, s) in common::all_specs() {
        assert_eq!(validate(&s), vec![], "{origin}");
    }
}

#[test]
fn invalid_image_and_replicas() {
    assert_invalid(&format!("{K}image: ' '"), "spec.image", "empty");
    assert_invalid(&format!("{K}replicas: -1"), "spec.replicas", "negative");
    assert_invalid(
        &format!("{K}replicas: 2\nautoscaling: {{ maxReplicas: 3 }}"),
        "spec.replicas",
        "mutually exclusive",
    );
}

#[test]
fn invalid_autoscaling() {
    assert_invalid(
        &format!("{K}autoscaling: {{ minReplicas: 5, maxReplicas: 3 }}"),
        "spec.autoscaling.minReplicas",
        "less than or equal",
    );
    assert_invalid(
        &format!("{K}autoscaling: {{ minReplicas: 0, maxReplicas: 3 }}"),
        "spec.autoscaling.minReplicas",
        "at least 1",
    );
    assert_invalid(&format!("{K}autoscaling: {{ maxReplicas: 0 }}"), "spec.autoscaling.maxReplicas", "at least 1");
    assert_invalid(
        &format!("{K}autoscaling: {{ maxReplicas: 3, targetConnectionsPerPod: 0 }}"),
        "spec.autoscaling.targetConnectionsPerPod",
        "at least 1",
    );
    assert_invalid(
        &format!("{K}autoscaling: {{ maxReplicas: 3, targetCPUUtilization: 101 }}"),
        "spec.autoscaling.targetCPUUtilization",
        "between 1 and 100",
    );
}

#[test]
fn invalid_kafka() {
    assert_invalid("kafka: { bootstrapServers: '  ' }", "spec.kafka.bootstrapServers", "at least one");
    assert_invalid("kafka: { bootstrapServers: 'kafka' }", "spec.kafka.bootstrapServers", "host:port");
    assert_invalid("kafka: { bootstrapServers: 'a:9092,b:x' }", "spec.kafka.bootstrapServers", "\"b:x\"");
    assert_invalid("kafka: { bootstrapServers: ':9092' }", "spec.kafka.bootstrapServers", "host is empty");
    assert_invalid(
        "kafka: { bootstrapServers: 'k:9092', properties: { sasl.password: x } }",
        "spec.kafka.properties[sasl.password]",
        "credentialsSecretRef",
    );
    assert_invalid("kafka: { bootstrapServers: 'k:9092', properties: { ' ': x } }", "spec.kafka.properties", "empty");
    assert_invalid(
        "kafka: { bootstrapServers: 'k:9092', credentialsSecretRef: { name: '' } }",
        "spec.kafka.credentialsSecretRef.name",
        "empty",
    );
    assert_eq!(parse_host_port("[::1]:9092"), Ok(("::1", 9092)));
    assert!(parse_host_port("k:0").is_err());
}

#[test]
fn invalid_topics() {
    assert_invalid(&format!("{K}topics: {{ default: 'bad topic' }}"), "spec.topics.default", "Kafka topic");
    assert_invalid(&format!("{K}topics: {{ retained: '..' }}"), "spec.topics.retained", "Kafka topic");
    assert_invalid(&format!("{K}topics: {{ sessions: 'x/y' }}"), "spec.topics.sessions", "Kafka topic");
    assert_invalid(&format!("{K}topics: {{ retained: same, sessions: same }}"), "spec.topics.sessions", "must differ");
    assert_invalid(
        &format!("{K}topics: {{ default: mqtt-retained }}"),
        "spec.topics.retained",
        "default message topic",
    );
    assert_invalid(
        &format!("{K}topics: {{ mappings: [{{ kafkaTopic: 'a b', mqttTopics: ['x'] }}] }}"),
        "spec.topics.mappings[0].kafkaTopic",
        "Kafka topic",
    );
    assert_invalid(
        &format!("{K}topics: {{ mappings: [{{ kafkaTopic: mqtt-sessions, mqttTopics: ['x'] }}] }}"),
        "spec.topics.mappings[0].kafkaTopic",
        "state topic",
    );
    assert_invalid(
        &format!("{K}topics: {{ mappings: [{{ kafkaTopic: k1, mqttTopics: [] }}] }}"),
        "spec.topics.mappings[0].mqttTopics",
        "at least one",
    );
    for bad in ["", "cars/#/x", "cars/sp+", "cars#", "a/b#"] {
        assert_invalid(
            &format!("{K}topics: {{ mappings: [{{ kafkaTopic: k1, mqttTopics: ['ok/+', '{bad}'] }}] }}"),
            "spec.topics.mappings[0].mqttTopics[1]",
            "MQTT topic filter",
        );
    }
    assert_invalid(&format!("{K}topics: {{ partitions: 0 }}"), "spec.topics.partitions", "at least 1");
    assert_invalid(&format!("{K}topics: {{ replicationFactor: 40000 }}"), "spec.topics.replicationFactor", "32767");
}

#[test]
fn topic_filter_syntax() {
    for ok in ["#", "+", "a", "a/b", "a/+/c", "a/#", "+/+/#", "/", "a//b", "$SYS/#"] {
        assert!(is_valid_topic_filter(ok), "{ok}");
    }
    for bad in ["", "#/a", "a/#/b", "a+", "a/b+/c", "##", "a/\0"] {
        assert!(!is_valid_topic_filter(bad), "{bad:?}");
    }
    for ok in ["*", "anonymous", "user:alice", "client:c-1", "cn:gw", "group:ui"] {
        assert!(is_valid_principal(ok), "{ok}");
    }
    for bad in ["", "user:", "alice", "team:x", "**"] {
        assert!(!is_valid_principal(bad), "{bad}");
    }
}

#[test]
fn invalid_listeners() {
    let l = |body: &str| format!("{K}listeners: [{body}]");
    assert_invalid(&l("{ name: 'Bad_Name', protocol: mqtt, port: 1883 }"), "spec.listeners[0].name", "[a-z0-9-]");
    assert_invalid(&l("{ name: '1883', protocol: mqtt, port: 1883 }"), "spec.listeners[0].name", "at least one letter");
    assert_invalid(
        &l("{ name: 'averyveryverylongname', protocol: mqtt, port: 1883 }"),
        "spec.listeners[0].name",
        "1-15",
    );
    assert_invalid(&l("{ name: admin, protocol: mqtt, port: 1883 }"), "spec.listeners[0].name", "reserved");
    assert_invalid(
        &l("{ name: a, protocol: mqtt, port: 1883 }, { name: a, protocol: ws, port: 8080 }"),
        "spec.listeners[1].name",
        "duplicate",
    );
    assert_invalid(
        &l("{ name: a, protocol: mqtt, port: 1883 }, { name: b, protocol: ws, port: 1883 }"),
        "spec.listeners[1].port",
        "duplicate",
    );
    assert_invalid(&l("{ name: a, protocol: mqtt, port: 70000 }"), "spec.listeners[0].port", "between 1 and 65535");
    assert_invalid(&l("{ name: a, protocol: mqtt, port: 9090 }"), "spec.listeners[0].port", "admin port");
    assert_invalid(&l("{ name: a, protocol: mqtts, port: 8883 }"), "spec.listeners[0].tlsSecretRef", "required");
    assert_invalid(
        &l("{ name: a, protocol: ws, port: 80, tlsSecretRef: { name: t } }"),
        "spec.listeners[0].tlsSecretRef",
        "not allowed",
    );
    assert_invalid(
        &l("{ name: a, protocol: wss, port: 443, tlsSecretRef: { name: '' } }"),
        "spec.listeners[0].tlsSecretRef.name",
        "empty",
    );
    assert_invalid(
        &l("{ name: a, protocol: mqtt, port: 1883, requireClientCert: true }"),
        "spec.listeners[0].requireClientCert",
        "TLS",
    );
    // The broker's verdict on the WebSocket path, named by the spec field.
    assert_invalid(
        &l("{ name: a, protocol: mqtt, port: 1883, path: /mqtt }"),
        "spec.listeners[0].path",
        "only ws and wss",
    );
    assert_invalid(
        &l("{ name: a, protocol: ws, port: 80, path: '/a?b' }"),
        "spec.listeners[0].path",
        "must start with '/'",
    );
}

#[test]
fn invalid_limits() {
    assert_invalid(&format!("{K}limits: {{ maxPacketSize: 0 }}"), "spec.limits.maxPacketSize", "between");
    assert_invalid(&format!("{K}limits: {{ maxInflight: 0 }}"), "spec.limits.maxInflight", "between");
    assert_invalid(&format!("{K}limits: {{ maxConnections: -1 }}"), "spec.limits.maxConnections", "negative");
    assert_invalid(&format!("{K}limits: {{ maxKeepAlive: 70000 }}"), "spec.limits.maxKeepAlive", "at most 65535");
    assert_invalid(&format!("{K}limits: {{ nodeTimeout: 1 }}"), "spec.limits.nodeTimeout", "between");
    assert_invalid(&format!("{K}limits: {{ maxTopicLength: 0 }}"), "spec.limits.maxTopicLength", "between");
    assert_invalid(&format!("{K}limits: {{ maxConnectRate: -5 }}"), "spec.limits.maxConnectRate", "negative");
    assert_invalid(&format!("{K}limits: {{ maxQueuedMessages: 0 }}"), "spec.limits.maxQueuedMessages", "at least 1");
    assert_invalid(&format!("{K}limits: {{ maxRewindSeconds: -1 }}"), "spec.limits.maxRewindSeconds", "negative");
    assert_invalid(&format!("{K}limits: {{ maxShareGroups: -1 }}"), "spec.limits.maxShareGroups", "negative");
}

#[test]
fn invalid_rebalance_and_tracing() {
    assert_invalid(&format!("{K}rebalance: {{ tolerancePercent: 0 }}"), "spec.rebalance.tolerancePercent", "between");
    assert_invalid(&format!("{K}rebalance: {{ perSecond: -3 }}"), "spec.rebalance.perSecond", "between");
    assert_invalid(&format!("{K}tracing: {{ sampleRatio: 2 }}"), "spec.tracing.sampleRatio", "between 0 and 1");
    assert_invalid(&format!("{K}tracing: {{ otlpEndpoint: 'otel:4318' }}"), "spec.tracing.otlpEndpoint", "http");
}

#[test]
fn invalid_jwt() {
    assert_invalid(
        &format!("{K}authentication: {{ jwt: {{ algorithm: HS256, publicKeyRef: {{ name: k }} }} }}"),
        "spec.authentication.jwt.secretRef",
        "HS256 needs secretRef",
    );
    assert_invalid(
        &format!("{K}authentication: {{ jwt: {{ algorithm: RS256, jwksRef: {{ name: '' }} }} }}"),
        "spec.authentication.jwt.jwksRef.name",
        "empty",
    );
}

#[test]
fn invalid_auth() {
    assert_invalid(
        &format!("{K}authentication: {{ allowAnonymous: false }}"),
        "spec.authentication.allowAnonymous",
        "no client could connect",
    );
    assert_invalid(
        &format!("{K}authentication: {{ passwordSecretRef: {{ name: '' }} }}"),
        "spec.authentication.passwordSecretRef.name",
        "empty",
    );
    assert_invalid(
        &format!("{K}authentication: {{ passwordSecretRef: {{ name: p, key: '' }} }}"),
        "spec.authentication.passwordSecretRef.key",
        "empty",
    );
    assert_invalid(
        &format!("{K}authorization: {{ rules: [{{ principal: bob, action: all, topic: '#', effect: deny }}] }}"),
        "spec.authorization.rules[0].principal",
        "user:<name>",
    );
    assert_invalid(
        &format!("{K}authorization: {{ rules: [{{ principal: '*', action: all, topic: 'a/#/b', effect: deny }}] }}"),
        "spec.authorization.rules[0].topic",
        "MQTT topic filter",
    );
    // mTLS alone is a way in.
    assert_eq!(
        errors_of(&format!(
            "{K}authentication: {{ allowAnonymous: false }}\nlisteners: [{{ name: s, protocol: mqtts, port: 8883, tlsSecretRef: {{ name: t }}, requireClientCert: true }}]"
        )),
        vec![]
    );
}

#[test]
fn invalid_service() {
    assert_invalid(
        &format!("{K}service: {{ type: ClusterIP, loadBalancerClass: x }}"),
        "spec.service.loadBalancerClass",
        "LoadBalancer",
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let errors = errors_of("kafka: { bootstrapServers: '' }\nreplicas: -1\ntopics: { partitions: 0 }");
    let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, vec!["spec.replicas", "spec.kafka.bootstrapServers", "spec.topics.partitions"]);
}
