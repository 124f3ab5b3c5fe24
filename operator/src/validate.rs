//! Checks of an `MqttBroker` spec that the CRD schema cannot express (or that must hold even
//! when the schema was bypassed). A failed check sets `Ready=False` with reason `InvalidSpec`
//! and leaves running children untouched.

use std::collections::BTreeSet;
use std::fmt;

use crate::crd::{AutoscalingSpec, ListenerSpec, MqttBrokerSpec, ServiceType, TopicsSpec};
use crate::desired::configmap::{DEFAULT_TOPIC, RETAINED_TOPIC, SESSIONS_TOPIC};
use crate::labels::ADMIN_PORT;

/// One invalid field: its path from the resource root and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.listeners[1].port`.
    pub field: String,
    /// Human-readable reason.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Collects errors while walking the spec.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }
}

/// Validates a spec; returns every problem found, in spec order (empty when valid).
pub fn validate(spec: &MqttBrokerSpec) -> Vec<FieldError> {
    let mut errors = Errors::default();
    if let Some(image) = &spec.image {
        if image.trim().is_empty() {
            errors.push("spec.image", "must not be empty");
        }
    }
    if let Some(replicas) = spec.replicas {
        if replicas < 0 {
            errors.push("spec.replicas", "must not be negative");
        }
        if spec.autoscaling.is_some() {
            errors.push("spec.replicas", "replicas and autoscaling are mutually exclusive");
        }
    }
    if let Some(autoscaling) = &spec.autoscaling {
        validate_autoscaling(autoscaling, &mut errors);
    }
    validate_kafka(spec, &mut errors);
    if let Some(topics) = &spec.topics {
        validate_topics(topics, &mut errors);
    }
    validate_listeners(&spec.listeners, &mut errors);
    validate_limits(spec, &mut errors);
    validate_auth(spec, &mut errors);
    if let Some(service) = &spec.service {
        let lb = matches!(service.type_.unwrap_or_default(), ServiceType::LoadBalancer);
        if service.load_balancer_class.is_some() && !lb {
            errors.push("spec.service.loadBalancerClass", "only allowed with service type LoadBalancer");
        }
    }
    errors.0
}

fn validate_autoscaling(a: &AutoscalingSpec, errors: &mut Errors) {
    let min = a.min_replicas.unwrap_or(1);
    if min < 1 {
        errors.push("spec.autoscaling.minReplicas", "must be at least 1");
    }
    if a.max_replicas < 1 {
        errors.push("spec.autoscaling.maxReplicas", "must be at least 1");
    }
    if min > a.max_replicas {
        errors.push(
            "spec.autoscaling.minReplicas",
            format!("must be less than or equal to maxReplicas ({} > {})", min, a.max_replicas),
        );
    }
    if matches!(a.target_connections_per_pod, Some(t) if t < 1) {
        errors.push("spec.autoscaling.targetConnectionsPerPod", "must be at least 1");
    }
    if matches!(a.target_cpu_utilization, Some(t) if !(1..=100).contains(&t)) {
        errors.push("spec.autoscaling.targetCPUUtilization", "must be between 1 and 100 (percent)");
    }
}

/// librdkafka property names that hold secrets and must come from `credentialsSecretRef`.
fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("secret") || key.ends_with(".key.pem")
}

fn validate_kafka(spec: &MqttBrokerSpec, errors: &mut Errors) {
    let field = "spec.kafka.bootstrapServers";
    let servers = &spec.kafka.bootstrap_servers;
    if servers.trim().is_empty() {
        errors.push(field, "must list at least one host:port");
    } else {
        for server in servers.split(',').map(str::trim) {
            if let Err(message) = parse_host_port(server) {
                errors.push(field, format!("{server:?}: {message}"));
            }
        }
    }
    for key in spec.kafka.properties.keys() {
        if key.trim().is_empty() {
            errors.push("spec.kafka.properties", "property names must not be empty");
        } else if is_secret_property(key) {
            errors.push(
                format!("spec.kafka.properties[{key}]"),
                "secrets do not belong in a ConfigMap: put them in the credentialsSecretRef Secret",
            );
        }
    }
    if let Some(secret) = &spec.kafka.credentials_secret_ref {
        if secret.name.trim().is_empty() {
            errors.push("spec.kafka.credentialsSecretRef.name", "must not be empty");
        }
    }
}

/// Splits `host:port` (IPv6 as `[addr]:port`); the error says what is wrong.
pub fn parse_host_port(server: &str) -> Result<(&str, u16), &'static str> {
    let (host, port) = server.rsplit_once(':').ok_or("expected host:port")?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return Err("host is empty");
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err("port must be a number between 1 and 65535"),
        Ok(port) => Ok((host, port)),
    }
}

/// Whether `name` is a valid Kafka topic name.
pub fn is_valid_kafka_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Whether `filter` is a valid MQTT topic filter: non-empty, `+` only as a whole level, `#` only
/// as the whole last level, no NUL character, at most 65535 bytes.
pub fn is_valid_topic_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > 65535 || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    levels.iter().enumerate().all(|(i, level)| {
        if level.contains('#') {
            *level == "#" && i == last
        } else if level.contains('+') {
            *level == "+"
        } else {
            true
        }
    })
}

/// Whether `principal` is `*`, `anonymous`, `user:<name>`, `client:<id>` or `cn:<name>`.
pub fn is_valid_principal(principal: &str) -> bool {
    if principal == "*" || principal == "anonymous" {
        return true;
    }
    ["user:", "client:", "cn:"]
        .iter()
        .any(|prefix| matches!(principal.strip_prefix(prefix), Some(rest) if !rest.is_empty()))
}

fn validate_topics(topics: &TopicsSpec, errors: &mut Errors) {
    let default = topics.default.as_deref().unwrap_or(DEFAULT_TOPIC);
    let retained = topics.retained.as_deref().unwrap_or(RETAINED_TOPIC);
    let sessions = topics.sessions.as_deref().unwrap_or(SESSIONS_TOPIC);
    for (field, name) in
        [("spec.topics.default", default), ("spec.topics.retained", retained), ("spec.topics.sessions", sessions)]
    {
        if !is_valid_kafka_topic(name) {
            errors.push(field, format!("{name:?} is not a valid Kafka topic name"));
        }
    }
    if retained == sessions {
        errors.push(
            "spec.topics.sessions",
            "must differ from topics.retained: each state topic needs its own compacted topic",
        );
    }
    for (field, state) in [("spec.topics.retained", retained), ("spec.topics.sessions", sessions)] {
        if default == state {
            errors.push(field, "a compacted state topic must not be the default message topic");
        }
    }
    for (i, mapping) in topics.mappings.iter().enumerate() {
        let field = format!("spec.topics.mappings[{i}]");
        if !is_valid_kafka_topic(&mapping.kafka_topic) {
            errors.push(
                format!("{field}.kafkaTopic"),
                format!("{:?} is not a valid Kafka topic name", mapping.kafka_topic),
            );
        } else if mapping.kafka_topic == retained || mapping.kafka_topic == sessions {
            errors.push(format!("{field}.kafkaTopic"), "must not be a compacted state topic (retained/sessions)");
        }
        if mapping.mqtt_topics.is_empty() {
            errors.push(format!("{field}.mqttTopics"), "must list at least one filter");
        }
        for (j, filter) in mapping.mqtt_topics.iter().enumerate() {
            if !is_valid_topic_filter(filter) {
                errors.push(format!("{field}.mqttTopics[{j}]"), format!("{filter:?} is not a valid MQTT topic filter"));
            }
        }
    }
    if matches!(topics.partitions, Some(p) if p < 1) {
        errors.push("spec.topics.partitions", "must be at least 1");
    }
    if matches!(topics.replication_factor, Some(r) if !(1..=i32::from(i16::MAX)).contains(&r)) {
        errors.push("spec.topics.replicationFactor", "must be between 1 and 32767");
    }
}

fn is_valid_listener_name(name: &str) -> bool {
    // A Kubernetes port name (IANA_SVC_NAME): 1-15 of [a-z0-9-], at least one letter,
    // no leading, trailing or doubled '-'.
    !name.is_empty()
        && name.len() <= 15
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.chars().any(|c| c.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

fn validate_listeners(listeners: &[ListenerSpec], errors: &mut Errors) {
    let mut names = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for (i, listener) in listeners.iter().enumerate() {
        let field = format!("spec.listeners[{i}]");
        if !is_valid_listener_name(&listener.name) {
            errors.push(
                format!("{field}.name"),
                format!("{:?} must be 1-15 characters of [a-z0-9-] with at least one letter", listener.name),
            );
        } else if listener.name == "admin" {
            errors.push(format!("{field}.name"), "\"admin\" is reserved for the broker's admin port");
        }
        if !names.insert(listener.name.as_str()) {
            errors.push(format!("{field}.name"), "duplicate listener name");
        }
        if !(1..=65535).contains(&listener.port) {
            errors.push(format!("{field}.port"), "must be between 1 and 65535");
        } else if listener.port == ADMIN_PORT {
            errors.push(format!("{field}.port"), format!("{ADMIN_PORT} is the broker's admin port"));
        }
        if !ports.insert(listener.port) {
            errors.push(format!("{field}.port"), "duplicate listener port");
        }
        let tls = listener.protocol.is_tls();
        match (&listener.tls_secret_ref, tls) {
            (None, true) => errors
                .push(format!("{field}.tlsSecretRef"), format!("required for protocol {}", listener.protocol.as_str())),
            (Some(_), false) => errors.push(
                format!("{field}.tlsSecretRef"),
                format!("not allowed for protocol {}", listener.protocol.as_str()),
            ),
            (Some(secret), true) if secret.name.trim().is_empty() => {
                errors.push(format!("{field}.tlsSecretRef.name"), "must not be empty")
            }
            _ => {}
        }
        if listener.require_client_cert == Some(true) && !tls {
            errors.push(format!("{field}.requireClientCert"), "client certificates need a TLS protocol (mqtts or wss)");
        }
    }
}

fn validate_limits(spec: &MqttBrokerSpec, errors: &mut Errors) {
    let Some(limits) = &spec.limits else {
        return;
    };
    if matches!(limits.max_packet_size, Some(v) if !(1..=268_435_455).contains(&v)) {
        errors.push("spec.limits.maxPacketSize", "must be between 1 and 268435455");
    }
    if matches!(limits.max_inflight, Some(v) if !(1..=65535).contains(&v)) {
        errors.push("spec.limits.maxInflight", "must be between 1 and 65535");
    }
    if matches!(limits.max_connections, Some(v) if v < 0) {
        errors.push("spec.limits.maxConnections", "must not be negative");
    }
    if matches!(limits.max_keep_alive, Some(v) if !(0..=65535).contains(&v)) {
        errors.push("spec.limits.maxKeepAlive", "must be between 0 and 65535");
    }
    if matches!(limits.node_timeout, Some(v) if !(2..=3600).contains(&v)) {
        errors.push("spec.limits.nodeTimeout", "must be between 2 and 3600");
    }
}

fn validate_auth(spec: &MqttBrokerSpec, errors: &mut Errors) {
    let authn = spec.authentication.clone().unwrap_or_default();
    if let Some(secret) = &authn.password_secret_ref {
        if secret.name.trim().is_empty() {
            errors.push("spec.authentication.passwordSecretRef.name", "must not be empty");
        }
        if matches!(&secret.key, Some(k) if k.trim().is_empty()) {
            errors.push("spec.authentication.passwordSecretRef.key", "must not be empty");
        }
    }
    let mtls = spec.listeners.iter().any(|l| l.require_client_cert == Some(true));
    if authn.allow_anonymous == Some(false) && authn.password_secret_ref.is_none() && !mtls {
        errors.push(
            "spec.authentication.allowAnonymous",
            "is false but there is no passwordSecretRef and no listener with requireClientCert: no client could connect",
        );
    }
    let Some(authz) = &spec.authorization else {
        return;
    };
    for (i, rule) in authz.rules.iter().enumerate() {
        let field = format!("spec.authorization.rules[{i}]");
        if !is_valid_principal(&rule.principal) {
            errors.push(
                format!("{field}.principal"),
                format!("{:?} must be *, anonymous, user:<name>, client:<id> or cn:<name>", rule.principal),
            );
        }
        if !is_valid_topic_filter(&rule.topic) {
            errors.push(format!("{field}.topic"), format!("{:?} is not a valid MQTT topic filter", rule.topic));
        }
    }
}
