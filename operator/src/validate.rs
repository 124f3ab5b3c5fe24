//! Checks of an `MqttBroker` spec that the CRD schema cannot express (or that must hold even
//! when the schema was bypassed). A failed check sets `Ready=False` with reason `InvalidSpec`
//! and leaves running children untouched.
//!
//! What makes a valid broker configuration is the broker's decision, not the operator's: the
//! spec is rendered into the broker's `Config` and judged by `Config::problems`, the checks
//! the broker runs at startup, with each key mapped back to the spec field it came from. On
//! top of that the operator checks what only it knows about (Kubernetes names and ports,
//! Secret references, autoscaling, secrets in properties), and field by field what the broker
//! would report only one at a time (every topic name, filter and principal), with the broker's
//! own validators.

use std::collections::BTreeSet;
use std::fmt;

use tributary_broker::config::{validate_kafka_topic_name, Config, ConfigError, Principal};
use tributary_broker::topic::validate_filter;

use crate::crd::{AutoscalingSpec, ListenerSpec, MqttBrokerSpec, ServiceType, TopicsSpec};
use crate::desired::configmap::broker_config;
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

    /// Whether an error was already reported in the spec section of `field` (e.g. `topics`).
    fn in_section(&self, field: &str) -> bool {
        self.0.iter().any(|e| section(&e.field) == section(field))
    }
}

/// The top-level spec key a field path is under: `topics` for `spec.topics.mappings[0]`.
fn section(field: &str) -> &str {
    let path = field.strip_prefix("spec.").unwrap_or(field);
    path.split(['.', '[']).next().unwrap_or(path)
}

/// Validates a spec; returns every problem found (empty when valid): the operator's checks in
/// spec order, then the broker's verdict on the sections they found nothing in.
pub fn validate(spec: &MqttBrokerSpec) -> Vec<FieldError> {
    let mut errors = Errors::default();
    let config = broker_config(spec);
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
        validate_topics(topics, &config, &mut errors);
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
    validate_contract(&config, &mut errors);
    errors.0
}

/// The broker's verdict on the rendered file: the first problem of each section, for the
/// sections the operator's own checks found nothing in (theirs name the spec field more
/// precisely, and the broker's is reported once they are fixed).
fn validate_contract(config: &Config, errors: &mut Errors) {
    for problem in config.problems() {
        // Validation only reports `Invalid`; the other kinds come from reading and parsing.
        let ConfigError::Invalid { key, message } = problem else {
            continue;
        };
        let field = spec_field(&key);
        if !errors.in_section(&field) {
            let message = in_spec_terms(&key, message);
            errors.push(field, message);
        }
    }
}

/// The spec field a key of the rendered file comes from. Keys mirror the spec's, except where
/// the operator derives the value: TLS files from `tlsSecretRef`, the client CA from
/// `requireClientCert`, the password file from `passwordSecretRef`.
fn spec_field(key: &str) -> String {
    // `listeners[i].tls` and `listeners[i].tls.<file>` come from the listener's TLS Secret.
    if let Some((listener, tls_key)) = key.split_once("].tls").filter(|(l, _)| l.starts_with("listeners[")) {
        let field = if tls_key == ".requireClientCert" { "requireClientCert" } else { "tlsSecretRef" };
        return format!("spec.{listener}].{field}");
    }
    match key {
        "authentication.passwordFile" => "spec.authentication.passwordSecretRef".to_string(),
        _ => format!("spec.{}", jwt_files_as_refs(key)),
    }
}

/// The broker's message, or for a key whose message names settings of the file, the same
/// verdict in the spec's terms.
fn in_spec_terms(key: &str, message: String) -> String {
    match key {
        "authentication.allowAnonymous" => "is false but there is no passwordSecretRef, no jwt and no listener \
                                            with requireClientCert: no client could connect"
            .to_string(),
        _ if key.starts_with("authentication.jwt") => jwt_files_as_refs(&message),
        _ => message,
    }
}

/// The file settings of `authentication.jwt` named as the spec's Secret references.
fn jwt_files_as_refs(text: &str) -> String {
    text.replace("secretFile", "secretRef").replace("publicKeyFile", "publicKeyRef").replace("jwksFile", "jwksRef")
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
        if is_secret_property(key) {
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

/// Whether `filter` is a valid MQTT topic filter, by the broker's rule
/// ([`tributary_broker::topic::validate_filter`]).
pub fn is_valid_topic_filter(filter: &str) -> bool {
    validate_filter(filter).is_ok()
}

/// Whether `principal` is one the broker accepts: `*`, `anonymous`, `user:<name>`,
/// `client:<id>` or `cn:<name>` ([`Principal`]'s parser).
pub fn is_valid_principal(principal: &str) -> bool {
    principal.parse::<Principal>().is_ok()
}

/// Every topic name and filter the spec sets, each reported on its own (the broker stops at
/// the first), and message topics that are also a state topic, reported on the field most
/// likely wrong. The rest of `topics` (partitions, replication factor, distinct state topics,
/// mappings with no filter) is the broker's verdict, in [`validate_contract`].
fn validate_topics(topics: &TopicsSpec, config: &Config, errors: &mut Errors) {
    let named = [
        ("spec.topics.default", &topics.default),
        ("spec.topics.retained", &topics.retained),
        ("spec.topics.sessions", &topics.sessions),
    ];
    for (field, name) in named {
        if let Some(Err(reason)) = name.as_deref().map(validate_kafka_topic_name) {
            errors.push(field, reason);
        }
    }
    let (default, retained, sessions) = (&config.topics.default, &config.topics.retained, &config.topics.sessions);
    for (field, state) in [("spec.topics.retained", retained), ("spec.topics.sessions", sessions)] {
        if default == state {
            errors.push(field, "a compacted state topic must not be the default message topic");
        }
    }
    for (i, mapping) in topics.mappings.iter().enumerate() {
        let field = format!("spec.topics.mappings[{i}]");
        if let Err(reason) = validate_kafka_topic_name(&mapping.kafka_topic) {
            errors.push(format!("{field}.kafkaTopic"), reason);
        } else if mapping.kafka_topic == *retained || mapping.kafka_topic == *sessions {
            errors.push(format!("{field}.kafkaTopic"), "must not be a compacted state topic (retained/sessions)");
        }
        for (j, filter) in mapping.mqtt_topics.iter().enumerate() {
            if let Err(reason) = validate_filter(filter) {
                errors.push(format!("{field}.mqttTopics[{j}]"), format!("not a valid MQTT topic filter: {reason}"));
            }
        }
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

/// The spec's limits are wider integers than the broker's; a value that does not fit would be
/// clamped when rendered, so it is refused here. Which values in range are acceptable is the
/// broker's verdict, in [`validate_contract`].
fn validate_limits(spec: &MqttBrokerSpec, errors: &mut Errors) {
    let Some(limits) = &spec.limits else {
        return;
    };
    let (u16_max, u32_max) = (i64::from(u16::MAX), i64::from(u32::MAX));
    let fields = [
        ("spec.limits.maxPacketSize", limits.max_packet_size, u32_max),
        ("spec.limits.maxPendingBytes", limits.max_pending_bytes, i64::MAX),
        ("spec.limits.maxInflight", limits.max_inflight.map(i64::from), u16_max),
        ("spec.limits.maxConnections", limits.max_connections, u32_max),
        ("spec.limits.maxKeepAlive", limits.max_keep_alive.map(i64::from), u16_max),
        ("spec.limits.nodeTimeout", limits.node_timeout.map(i64::from), u16_max),
        ("spec.limits.maxConnectionsPerAddress", limits.max_connections_per_address, u32_max),
        ("spec.limits.maxConnectRate", limits.max_connect_rate, u32_max),
        ("spec.limits.maxSubscriptions", limits.max_subscriptions, u32_max),
        ("spec.limits.maxTopicLength", limits.max_topic_length.map(i64::from), u16_max),
        ("spec.limits.maxTopicLevels", limits.max_topic_levels.map(i64::from), u16_max),
        ("spec.limits.maxQueuedMessages", limits.max_queued_messages, u32_max),
        ("spec.limits.drainSeconds", limits.drain_seconds.map(i64::from), u16_max),
        ("spec.limits.maxRewindSeconds", limits.max_rewind_seconds, u32_max),
        ("spec.limits.maxShareGroups", limits.max_share_groups, u32_max),
    ];
    for (field, value, max) in fields {
        match value {
            Some(v) if v < 0 => errors.push(field, "must not be negative"),
            Some(v) if v > max => errors.push(field, format!("must be at most {max}")),
            _ => {}
        }
    }
}

fn validate_auth(spec: &MqttBrokerSpec, errors: &mut Errors) {
    let authn = spec.authentication.clone().unwrap_or_default();
    let jwt = authn.jwt.as_ref();
    let refs = [
        ("spec.authentication.passwordSecretRef", authn.password_secret_ref.as_ref()),
        ("spec.authentication.jwt.secretRef", jwt.and_then(|j| j.secret_ref.as_ref())),
        ("spec.authentication.jwt.publicKeyRef", jwt.and_then(|j| j.public_key_ref.as_ref())),
        ("spec.authentication.jwt.jwksRef", jwt.and_then(|j| j.jwks_ref.as_ref())),
    ];
    for (field, secret) in refs {
        let Some(secret) = secret else { continue };
        if secret.name.trim().is_empty() {
            errors.push(format!("{field}.name"), "must not be empty");
        }
        if matches!(&secret.key, Some(k) if k.trim().is_empty()) {
            errors.push(format!("{field}.key"), "must not be empty");
        }
    }
    let Some(authz) = &spec.authorization else {
        return;
    };
    for (i, rule) in authz.rules.iter().enumerate() {
        let field = format!("spec.authorization.rules[{i}]");
        if let Err(reason) = rule.principal.parse::<Principal>() {
            errors.push(format!("{field}.principal"), reason);
        }
        if let Err(reason) = validate_filter(&rule.topic) {
            errors.push(format!("{field}.topic"), format!("not a valid MQTT topic filter: {reason}"));
        }
    }
}
