//! Validation of a parsed [`Config`]: everything the schema cannot express, reported with the
//! key path of the offending value.

use std::collections::HashMap;

use super::{invalid, Config, ConfigError, Jwt, Protocol, Tls, MAX_KAFKA_TOPIC_LEN, MAX_PACKET_SIZE};
use crate::topic::validate_filter;

/// Checks a WebSocket listener's `path`. It is compared with the request's path as sent, so it
/// must be one: absolute, no query or fragment, nothing an HTTP request line could not carry.
/// Returns the reason on failure.
fn validate_ws_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.chars().any(|c| c == '?' || c == '#' || !c.is_ascii_graphic()) {
        return Err(format!("{path:?} must start with '/' and hold no '?', '#', space or non-ASCII character"));
    }
    Ok(())
}

/// Checks a Kafka topic name the way Kafka does: 1 to 249 characters from
/// `[a-zA-Z0-9._-]`, and neither `.` nor `..`. Returns the reason on failure.
pub fn validate_kafka_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not allowed as a Kafka topic name"));
    }
    // All allowed characters are ASCII, so bytes and characters agree once this passes.
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!(
            "invalid character {c:?} in Kafka topic name {name:?}: only a-z, A-Z, 0-9, '.', '_' and '-' are allowed"
        ));
    }
    if name.len() > MAX_KAFKA_TOPIC_LEN {
        return Err(format!(
            "Kafka topic name is {} characters long, the maximum is {MAX_KAFKA_TOPIC_LEN}",
            name.len()
        ));
    }
    Ok(())
}

/// Checks an OTLP/HTTP endpoint: an `http://` or `https://` URL with a host (the exporter parses
/// it fully at start). Returns the reason on failure.
pub fn validate_otlp_endpoint(url: &str) -> Result<(), String> {
    let expected = "expected an http:// or https:// URL such as \"http://otel-collector:4318\"";
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !url.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(format!("{url:?}: {expected}")),
    }
}

impl Config {
    /// Checks everything the schema cannot express; the first problem found is
    /// returned, with the path of the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// The first problem of each section, in file order (the first of them is what
    /// [`validate`](Self::validate) reports). For callers that report every section at once:
    /// the operator checks an `MqttBroker` by rendering it and calling this.
    pub fn problems(&self) -> Vec<ConfigError> {
        [
            self.validate_listeners(),
            self.validate_kafka(),
            self.validate_topics(),
            self.validate_limits(),
            self.validate_authentication(),
            self.validate_authorization(),
            self.validate_tracing(),
        ]
        .into_iter()
        .filter_map(Result::err)
        .collect()
    }

    fn validate_kafka(&self) -> Result<(), ConfigError> {
        if self.kafka.bootstrap_servers.trim().is_empty() {
            return Err(invalid("kafka.bootstrapServers", "must not be empty"));
        }
        if self.kafka.properties.keys().any(|k| k.trim().is_empty()) {
            return Err(invalid("kafka.properties", "property names must not be empty"));
        }
        Ok(())
    }

    fn validate_authentication(&self) -> Result<(), ConfigError> {
        if let Some(file) = &self.authentication.password_file {
            if file.as_os_str().is_empty() {
                return Err(invalid("authentication.passwordFile", "must not be empty"));
            }
        }
        if let Some(jwt) = &self.authentication.jwt {
            validate_jwt(jwt)?;
        }
        let client_certs = self.listeners.iter().any(|l| l.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some()));
        let authn = &self.authentication;
        if !authn.allow_anonymous && authn.password_file.is_none() && authn.jwt.is_none() && !client_certs {
            return Err(invalid(
                "authentication.allowAnonymous",
                "false leaves no way in: set passwordFile or jwt, or a listener with tls.clientCaFile",
            ));
        }
        Ok(())
    }

    fn validate_authorization(&self) -> Result<(), ConfigError> {
        for (i, rule) in self.authorization.rules.iter().enumerate() {
            validate_filter(&rule.topic)
                .map_err(|e| invalid(format!("authorization.rules[{i}].topic"), e.to_string()))?;
        }
        Ok(())
    }

    fn validate_tracing(&self) -> Result<(), ConfigError> {
        let tracing = &self.tracing;
        if let Some(endpoint) = &tracing.otlp_endpoint {
            validate_otlp_endpoint(endpoint).map_err(|e| invalid("tracing.otlpEndpoint", e))?;
        }
        if !(0.0..=1.0).contains(&tracing.sample_ratio) {
            return Err(invalid("tracing.sampleRatio", format!("{} is not between 0 and 1", tracing.sample_ratio)));
        }
        Ok(())
    }

    fn validate_listeners(&self) -> Result<(), ConfigError> {
        if self.listeners.is_empty() {
            return Err(invalid("listeners", "at least one listener is required"));
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, listener) in self.listeners.iter().enumerate() {
            let key = format!("listeners[{i}]");
            let name = listener.name.as_str();
            if name.is_empty() {
                return Err(invalid(format!("{key}.name"), "must not be empty"));
            }
            if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("invalid character {c:?} in {name:?}: only a-z, 0-9 and '-' are allowed"),
                ));
            }
            if let Some(first) = names.insert(name, i) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("duplicate listener name {name:?} (also used by listeners[{first}])"),
                ));
            }
            match (&listener.tls, listener.protocol.uses_tls()) {
                (None, true) => {
                    return Err(invalid(format!("{key}.tls"), format!("required for protocol {}", listener.protocol)))
                }
                (Some(_), false) => {
                    return Err(invalid(
                        format!("{key}.tls"),
                        format!(
                            "not allowed for protocol {} (use {} for TLS)",
                            listener.protocol,
                            if listener.protocol == Protocol::Ws { "wss" } else { "mqtts" }
                        ),
                    ))
                }
                (Some(tls), true) => validate_tls(tls, &format!("{key}.tls"))?,
                (None, false) => {}
            }
            match (&listener.path, listener.protocol.uses_websocket()) {
                (Some(_), false) => {
                    return Err(invalid(
                        format!("{key}.path"),
                        format!("not allowed for protocol {} (only ws and wss have an HTTP path)", listener.protocol),
                    ))
                }
                (Some(path), true) => validate_ws_path(path).map_err(|m| invalid(format!("{key}.path"), m))?,
                _ => {}
            }
        }
        Ok(())
    }

    fn validate_topics(&self) -> Result<(), ConfigError> {
        let topics = &self.topics;
        let named = [
            ("topics.default", &topics.default),
            ("topics.retained", &topics.retained),
            ("topics.sessions", &topics.sessions),
        ];
        for (key, name) in named {
            validate_kafka_topic_name(name).map_err(|m| invalid(key, m))?;
        }
        for (i, rule) in topics.mappings.iter().enumerate() {
            validate_kafka_topic_name(&rule.kafka_topic)
                .map_err(|m| invalid(format!("topics.mappings[{i}].kafkaTopic"), m))?;
            if rule.mqtt_topics.is_empty() {
                // A rule without patterns can never match; almost certainly a mistake.
                return Err(invalid(
                    format!("topics.mappings[{i}].mqttTopics"),
                    "must list at least one MQTT topic filter",
                ));
            }
        }
        // Validates every pattern, reporting it under its key path.
        self.mapping()?;

        // Retained messages and sessions live in compacted topics with their own
        // record formats; sharing a topic with messages or each other would mix
        // formats and let compaction delete messages.
        if topics.retained == topics.sessions {
            return Err(invalid(
                "topics.sessions",
                format!("{:?} is also topics.retained; they must differ", topics.sessions),
            ));
        }
        let message_topics = std::iter::once(("topics.default".to_owned(), &topics.default)).chain(
            topics
                .mappings
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("topics.mappings[{i}].kafkaTopic"), &r.kafka_topic)),
        );
        for (message_key, name) in message_topics {
            for (key, compacted) in [("topics.retained", &topics.retained), ("topics.sessions", &topics.sessions)] {
                if name == compacted {
                    return Err(invalid(
                        key,
                        format!(
                            "{compacted:?} is also used for messages by {message_key}; it must be a separate topic"
                        ),
                    ));
                }
            }
        }

        if topics.partitions < 1 {
            return Err(invalid("topics.partitions", "must be at least 1"));
        }
        // Kafka encodes the replication factor as a 16-bit integer.
        if !(1..=i32::from(i16::MAX)).contains(&topics.replication_factor) {
            return Err(invalid("topics.replicationFactor", "must be between 1 and 32767"));
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_PACKET_SIZE).contains(&self.limits.max_packet_size) {
            return Err(invalid("limits.maxPacketSize", format!("must be between 1 and {MAX_PACKET_SIZE}")));
        }
        if self.limits.max_pending_bytes < u64::from(self.limits.max_packet_size) {
            return Err(invalid(
                "limits.maxPendingBytes",
                format!(
                    "{} is below limits.maxPacketSize ({}): a packet of the maximum size could never be received",
                    self.limits.max_pending_bytes, self.limits.max_packet_size
                ),
            ));
        }
        // The upper bound 65535 is enforced by the type (u16); MQTT forbids 0.
        if self.limits.max_inflight == 0 {
            return Err(invalid("limits.maxInflight", "must be between 1 and 65535"));
        }
        if self.limits.max_topic_length == 0 {
            return Err(invalid("limits.maxTopicLength", "must be between 1 and 65535"));
        }
        if self.limits.max_topic_levels == 0 {
            return Err(invalid("limits.maxTopicLevels", "must be between 1 and 65535"));
        }
        if self.limits.drain_seconds > 3600 {
            return Err(invalid("limits.drainSeconds", "must be between 0 and 3600"));
        }
        if let Some(reference) = &self.limits.drain_server_reference {
            // An MQTT UTF-8 string; an empty one would send clients nowhere.
            if reference.is_empty() || reference.len() > usize::from(u16::MAX) || reference.contains(char::is_control) {
                return Err(invalid("limits.drainServerReference", "must be a host[:port] of 1 to 65535 bytes"));
            }
        }
        if self.limits.max_queued_messages == 0 {
            return Err(invalid("limits.maxQueuedMessages", "must be at least 1"));
        }
        if !(1..=1000).contains(&self.rebalance.tolerance_percent) {
            return Err(invalid("rebalance.tolerancePercent", "must be between 1 and 1000"));
        }
        if !(1..=100_000).contains(&self.rebalance.per_second) {
            return Err(invalid("rebalance.perSecond", "must be between 1 and 100000"));
        }
        // Below 2 s a busy broker's heartbeat could miss the deadline; above an hour a dead
        // broker's Wills would wait too long.
        if !(2..=3600).contains(&self.limits.node_timeout) {
            return Err(invalid("limits.nodeTimeout", "must be between 2 and 3600 seconds"));
        }
        Ok(())
    }
}

/// One key source, the one the algorithm uses; files named, claims not empty.
fn validate_jwt(jwt: &Jwt) -> Result<(), ConfigError> {
    let key = "authentication.jwt";
    let sources =
        [("secretFile", &jwt.secret_file), ("publicKeyFile", &jwt.public_key_file), ("jwksFile", &jwt.jwks_file)];
    let set: Vec<&str> = sources.iter().filter(|(_, f)| f.is_some()).map(|(name, _)| *name).collect();
    for (name, file) in sources {
        if file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
            return Err(invalid(format!("{key}.{name}"), "must not be empty"));
        }
    }
    let algorithm = format!("{:?}", jwt.algorithm);
    match (jwt.algorithm.is_hmac(), set.as_slice()) {
        (true, ["secretFile"]) | (false, ["publicKeyFile"] | ["jwksFile"]) => {}
        (true, _) => {
            return Err(invalid(format!("{key}.secretFile"), format!("{algorithm} needs secretFile and no other key")))
        }
        (false, _) => {
            return Err(invalid(
                format!("{key}.publicKeyFile"),
                format!("{algorithm} needs one of publicKeyFile or jwksFile, and no secretFile"),
            ))
        }
    }
    if jwt.username_claim.is_empty() {
        return Err(invalid(format!("{key}.usernameClaim"), "must not be empty"));
    }
    if jwt.groups_claim.as_ref().is_some_and(String::is_empty) {
        return Err(invalid(format!("{key}.groupsClaim"), "must not be empty"));
    }
    Ok(())
}

fn validate_tls(tls: &Tls, key: &str) -> Result<(), ConfigError> {
    if tls.cert_file.as_os_str().is_empty() {
        return Err(invalid(format!("{key}.certFile"), "must not be empty"));
    }
    if tls.key_file.as_os_str().is_empty() {
        return Err(invalid(format!("{key}.keyFile"), "must not be empty"));
    }
    match &tls.client_ca_file {
        Some(ca) if ca.as_os_str().is_empty() => Err(invalid(format!("{key}.clientCaFile"), "must not be empty")),
        None if tls.require_client_cert => {
            Err(invalid(format!("{key}.requireClientCert"), "needs clientCaFile to verify client certificates against"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::test_support::{assert_starts_with, config_with, error, error_with, MINIMAL};
    use super::super::*;

    #[test]
    fn kafka_is_required() {
        assert_starts_with(&error(""), "missing field `kafka`");
        assert_starts_with(&error("kafka: {}"), "kafka: missing field `bootstrapServers`");
        assert_eq!(error("kafka: {bootstrapServers: ''}"), "kafka.bootstrapServers: must not be empty");
        assert_eq!(error("kafka: {bootstrapServers: '  '}"), "kafka.bootstrapServers: must not be empty");
    }

    #[test]
    fn mapping_patterns_are_validated() {
        let err = error_with(
            "topics:\n  mappings:\n    - {kafkaTopic: k1, mqttTopics: [a]}\n    - {kafkaTopic: k2, mqttTopics: ['a/#/b']}\n",
        );
        assert_eq!(err, "topics.mappings[1].mqttTopics[0]: '#' must be the last level in \"a/#/b\"");
        let err = error_with("topics:\n  mappings:\n    - {kafkaTopic: k1, mqttTopics: [a, 'b+']}\n");
        assert_starts_with(&err, "topics.mappings[0].mqttTopics[1]: '+' must occupy a whole level");
        let err = error_with("topics:\n  mappings:\n    - {kafkaTopic: k1, mqttTopics: ['']}\n");
        assert_eq!(err, "topics.mappings[0].mqttTopics[0]: must not be empty");
        let err = error_with("topics:\n  mappings:\n    - {kafkaTopic: k1, mqttTopics: []}\n");
        assert_eq!(err, "topics.mappings[0].mqttTopics: must list at least one MQTT topic filter");
    }

    #[test]
    fn kafka_topic_names_are_validated() {
        assert_eq!(error_with("topics: {default: ''}\n"), "topics.default: must not be empty");
        assert_eq!(
            error_with("topics: {retained: '..'}\n"),
            "topics.retained: \"..\" is not allowed as a Kafka topic name"
        );
        assert_eq!(
            error_with("topics: {sessions: '.'}\n"),
            "topics.sessions: \".\" is not allowed as a Kafka topic name"
        );
        assert_starts_with(
            &error_with("topics: {default: 'a/b'}\n"),
            "topics.default: invalid character '/' in Kafka topic name \"a/b\"",
        );
        assert_starts_with(
            &error_with("topics:\n  mappings:\n    - {kafkaTopic: 'k 1', mqttTopics: [a]}\n"),
            "topics.mappings[0].kafkaTopic: invalid character ' '",
        );
        let long = "x".repeat(250);
        assert_eq!(
            error_with(&format!("topics: {{default: {long}}}\n")),
            "topics.default: Kafka topic name is 250 characters long, the maximum is 249"
        );
        let longest = "x".repeat(249);
        assert!(Config::from_yaml_str(&format!("{MINIMAL}topics: {{default: {longest}}}\n")).is_ok());
        assert_eq!(validate_kafka_topic_name("Ab.c_d-9"), Ok(()));
        assert!(validate_kafka_topic_name("ü").is_err());
    }

    #[test]
    fn compacted_topics_are_separate() {
        assert_eq!(
            error_with("topics: {retained: x, sessions: x}\n"),
            "topics.sessions: \"x\" is also topics.retained; they must differ"
        );
        assert_eq!(
            error_with("topics: {default: x, retained: x}\n"),
            "topics.retained: \"x\" is also used for messages by topics.default; it must be a separate topic"
        );
        assert_eq!(
            error_with("topics:\n  mappings:\n    - {kafkaTopic: mqtt-sessions, mqttTopics: [a]}\n"),
            "topics.sessions: \"mqtt-sessions\" is also used for messages by topics.mappings[0].kafkaTopic; it must be a separate topic"
        );
        // Several rules may share a Kafka topic, and may share it with the default.
        assert!(Config::from_yaml_str(&format!(
            "{MINIMAL}topics:\n  default: k\n  mappings:\n    - {{kafkaTopic: k, mqttTopics: [a]}}\n    - {{kafkaTopic: k, mqttTopics: [b]}}\n"
        ))
        .is_ok());
    }

    #[test]
    fn topic_creation_settings() {
        assert_eq!(error_with("topics: {partitions: 0}\n"), "topics.partitions: must be at least 1");
        assert_eq!(
            error_with("topics: {replicationFactor: 0}\n"),
            "topics.replicationFactor: must be between 1 and 32767"
        );
        assert_eq!(
            error_with("topics: {replicationFactor: 40000}\n"),
            "topics.replicationFactor: must be between 1 and 32767"
        );
    }

    #[test]
    fn limits_are_validated() {
        assert_eq!(error_with("limits: {maxPacketSize: 0}\n"), "limits.maxPacketSize: must be between 1 and 268435455");
        assert_eq!(
            error_with("limits: {maxPacketSize: 268435456}\n"),
            "limits.maxPacketSize: must be between 1 and 268435455"
        );
        assert_eq!(error_with("limits: {maxInflight: 0}\n"), "limits.maxInflight: must be between 1 and 65535");
        assert_eq!(error_with("limits: {nodeTimeout: 1}\n"), "limits.nodeTimeout: must be between 2 and 3600 seconds");
        assert_eq!(error_with("limits: {maxTopicLength: 0}\n"), "limits.maxTopicLength: must be between 1 and 65535");
        assert_eq!(error_with("limits: {maxTopicLevels: 0}\n"), "limits.maxTopicLevels: must be between 1 and 65535");
        assert_eq!(error_with("limits: {maxQueuedMessages: 0}\n"), "limits.maxQueuedMessages: must be at least 1");
        assert_eq!(error_with("limits: {drainSeconds: 3601}\n"), "limits.drainSeconds: must be between 0 and 3600");
        assert_eq!(
            error_with("limits: {drainServerReference: ''}\n"),
            "limits.drainServerReference: must be a host[:port] of 1 to 65535 bytes"
        );
        assert_eq!(
            error_with("limits: {maxPacketSize: 2000000, maxPendingBytes: 1000000}\n"),
            "limits.maxPendingBytes: 1000000 is below limits.maxPacketSize (2000000): a packet of the maximum size \
             could never be received"
        );
        assert_eq!(
            error_with("authentication: {allowAnonymous: false}\n"),
            "authentication.allowAnonymous: false leaves no way in: set passwordFile or jwt, or a listener with tls.clientCaFile"
        );
        assert!(Config::from_yaml_str(&format!(
            "{MINIMAL}limits: {{maxPacketSize: 1, maxInflight: 65535, maxConnections: 10, maxKeepAlive: 65535}}\n"
        ))
        .is_ok());
    }

    #[test]
    fn listeners_are_validated() {
        assert_eq!(error_with("listeners: []\n"), "listeners: at least one listener is required");
        assert_eq!(
            error_with("listeners:\n  - {name: secure, protocol: mqtts, address: '0.0.0.0:8883'}\n"),
            "listeners[0].tls: required for protocol mqtts"
        );
        assert_eq!(
            error_with(
                "listeners:\n  - {name: a, protocol: mqtt, address: '0.0.0.0:1883'}\n  - {name: b, protocol: wss, address: '0.0.0.0:8443'}\n"
            ),
            "listeners[1].tls: required for protocol wss"
        );
        assert_eq!(
            error_with(
                "listeners:\n  - {name: web, protocol: ws, address: '0.0.0.0:80', tls: {certFile: c, keyFile: k}}\n"
            ),
            "listeners[0].tls: not allowed for protocol ws (use wss for TLS)"
        );
        assert_eq!(
            error_with(
                "listeners:\n  - {name: a, protocol: mqtt, address: '0.0.0.0:1883'}\n  - {name: a, protocol: ws, address: '0.0.0.0:80'}\n"
            ),
            "listeners[1].name: duplicate listener name \"a\" (also used by listeners[0])"
        );
        assert_eq!(
            error_with("listeners:\n  - {name: MQTT, protocol: mqtt, address: '0.0.0.0:1883'}\n"),
            "listeners[0].name: invalid character 'M' in \"MQTT\": only a-z, 0-9 and '-' are allowed"
        );
        assert_eq!(
            error_with("listeners:\n  - {name: '', protocol: mqtt, address: '0.0.0.0:1883'}\n"),
            "listeners[0].name: must not be empty"
        );
        let err = error_with("listeners:\n  - {name: a, protocol: mqtt, address: 'localhost:1883'}\n");
        assert_starts_with(&err, "listeners[0].address: invalid address \"localhost:1883\"");
        assert!(err.contains("line 4"), "{err}");
        assert_starts_with(
            &error_with("listeners:\n  - {name: a, protocol: mqtt, address: '0.0.0.0'}\n"),
            "listeners[0].address: invalid address \"0.0.0.0\"",
        );
        assert_starts_with(&error_with("admin: {address: ':9090'}\n"), "admin.address: invalid address \":9090\"");
        assert_starts_with(
            &error_with("listeners:\n  - {name: a, address: '0.0.0.0:1883'}\n"),
            "listeners[0]: missing field `protocol`",
        );
    }

    #[test]
    fn listeners_accept_all_protocols_and_ipv6() {
        let config = Config::from_yaml_str(&format!(
            "{MINIMAL}listeners:
  - {{name: mqtt, protocol: mqtt, address: '[::]:1883'}}
  - {{name: mqtts, protocol: mqtts, address: '0.0.0.0:8883', tls: {{certFile: c, keyFile: k, clientCaFile: ca, requireClientCert: true}}}}
  - {{name: ws, protocol: ws, address: '127.0.0.1:8080'}}
  - {{name: wss-1, protocol: wss, address: '0.0.0.0:8443', tls: {{certFile: c, keyFile: k}}}}
admin: {{address: '127.0.0.1:0'}}
"
        ))
        .expect("config");
        let protocols: Vec<Protocol> = config.listeners.iter().map(|l| l.protocol).collect();
        assert_eq!(protocols, [Protocol::Mqtt, Protocol::Mqtts, Protocol::Ws, Protocol::Wss]);
        assert!(config.listeners[0].address.is_ipv6());
        assert_eq!(config.admin.address.port(), 0);
        assert_eq!(config.listeners[2].ws_path(), "/mqtt", "the default path");
    }

    #[test]
    fn websocket_paths_are_validated() {
        let config = Config::from_yaml_str(&format!(
            "{MINIMAL}listeners:\n  - {{name: ws, protocol: ws, address: '127.0.0.1:8080', path: /broker/mqtt}}\n"
        ))
        .expect("config");
        assert_eq!(config.listeners[0].ws_path(), "/broker/mqtt");
        assert_eq!(
            error_with("listeners:\n  - {name: a, protocol: mqtt, address: '0.0.0.0:1883', path: /mqtt}\n"),
            "listeners[0].path: not allowed for protocol mqtt (only ws and wss have an HTTP path)"
        );
        for bad in ["mqtt", "/a?b", "'/a b'", "/mqtt#x"] {
            let err =
                error_with(&format!("listeners:\n  - {{name: a, protocol: ws, address: '0.0.0.0:80', path: {bad}}}\n"));
            assert_starts_with(&err, "listeners[0].path: ");
        }
    }

    #[test]
    fn tls_is_validated() {
        assert_eq!(
            error_with(
                "listeners:\n  - {name: s, protocol: mqtts, address: '0.0.0.0:8883', tls: {certFile: c, keyFile: k, requireClientCert: true}}\n"
            ),
            "listeners[0].tls.requireClientCert: needs clientCaFile to verify client certificates against"
        );
        assert_eq!(
            error_with(
                "listeners:\n  - {name: s, protocol: mqtts, address: '0.0.0.0:8883', tls: {certFile: '', keyFile: k}}\n"
            ),
            "listeners[0].tls.certFile: must not be empty"
        );
        assert_starts_with(
            &error_with("listeners:\n  - {name: s, protocol: mqtts, address: '0.0.0.0:8883', tls: {certFile: c}}\n"),
            "listeners[0].tls: missing field `keyFile`",
        );
    }

    #[test]
    fn authorization_rules_are_validated() {
        let rules = |principal: &str, topic: &str| {
            format!(
                "authorization:\n  rules:\n    - {{principal: 'user:a', action: all, topic: '#', effect: deny}}\n    - {{principal: '{principal}', action: subscribe, topic: '{topic}', effect: allow}}\n"
            )
        };
        assert_eq!(
            error_with(&rules("user:bob", "a/#/b")),
            "authorization.rules[1].topic: '#' must be the last level in \"a/#/b\""
        );
        let err = error_with(&rules("bob", "a"));
        assert_starts_with(
            &err,
            "authorization.rules[1].principal: invalid principal \"bob\": expected `*`, `anonymous`, `user:<name>`, `client:<id>`, `cn:<name>` or `group:<name>`",
        );
        assert!(err.contains("line 6"), "{err}");
        assert_starts_with(
            &error_with(&rules("user:", "a")),
            "authorization.rules[1].principal: invalid principal \"user:\": the name after 'user:' must not be empty",
        );
        assert_starts_with(
            &error_with(&rules("team:x", "a")),
            "authorization.rules[1].principal: invalid principal \"team:x\"",
        );
        assert_starts_with(
            &error_with("authorization:\n  rules:\n    - {principal: '*', action: read, topic: a, effect: allow}\n"),
            "authorization.rules[0].action: unknown variant `read`",
        );

        let config = Config::from_yaml_str(&format!(
            "{MINIMAL}authorization:
  defaultEffect: deny
  rules:
    - {{principal: '*', action: subscribe, topic: '$SYS/#', effect: deny}}
    - {{principal: anonymous, action: publish, topic: '#', effect: deny}}
    - {{principal: 'user:alice', action: all, topic: 'cars/+/x', effect: allow}}
    - {{principal: 'client:sensor-1', action: publish, topic: 'sensors/1/#', effect: allow}}
    - {{principal: 'cn:device:42', action: all, topic: '+', effect: allow}}
"
        ))
        .expect("config");
        assert_eq!(config.authorization.default_effect, Effect::Deny);
        let principals: Vec<Principal> = config.authorization.rules.iter().map(|r| r.principal.clone()).collect();
        assert_eq!(
            principals,
            [
                Principal::Any,
                Principal::Anonymous,
                Principal::User("alice".into()),
                Principal::Client("sensor-1".into()),
                // Only the first ':' separates the kind; names may contain more.
                Principal::Cn("device:42".into()),
            ]
        );
        for p in &principals {
            assert_eq!(p.to_string().parse::<Principal>().as_ref(), Ok(p));
        }
        assert_eq!(config.authorization.rules[2].action, Action::All);
    }

    #[test]
    fn jwt_needs_the_key_its_algorithm_uses() {
        let jwt = |body: &str| error_with(&format!("authentication: {{jwt: {{{body}}}}}\n"));
        assert_eq!(
            jwt("algorithm: HS256, publicKeyFile: /k"),
            "authentication.jwt.secretFile: HS256 needs secretFile and no other key"
        );
        assert_eq!(
            jwt("algorithm: ES256, secretFile: /k"),
            "authentication.jwt.publicKeyFile: ES256 needs one of publicKeyFile or jwksFile, and no secretFile"
        );
        assert_eq!(
            jwt("algorithm: RS256, publicKeyFile: /k, jwksFile: /j"),
            "authentication.jwt.publicKeyFile: RS256 needs one of publicKeyFile or jwksFile, and no secretFile"
        );
        assert_eq!(jwt("algorithm: HS256, secretFile: ''"), "authentication.jwt.secretFile: must not be empty");
        assert_eq!(
            jwt("algorithm: HS256, secretFile: /s, usernameClaim: ''"),
            "authentication.jwt.usernameClaim: must not be empty"
        );
        assert!(
            jwt("algorithm: none, secretFile: /s").starts_with("authentication.jwt.algorithm: unknown variant `none`")
        );
        let config = Config::from_yaml_str(&format!(
            "{MINIMAL}authentication: {{allowAnonymous: false, jwt: {{algorithm: ES256, jwksFile: /j, audience: mqtt, groupsClaim: groups}}}}\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let jwt = config.authentication.jwt.unwrap_or_else(|| panic!("jwt parsed"));
        assert_eq!((jwt.algorithm, jwt.username_claim.as_str()), (JwtAlgorithm::ES256, "sub"), "sub by default");
        assert_eq!(jwt.groups_claim.as_deref(), Some("groups"));
    }

    #[test]
    fn authentication_is_validated() {
        assert_eq!(
            error_with("authentication: {passwordFile: ''}\n"),
            "authentication.passwordFile: must not be empty"
        );
        let config =
            Config::from_yaml_str(&format!("{MINIMAL}authentication: {{allowAnonymous: false, passwordFile: /p}}\n"))
                .expect("config");
        assert!(!config.authentication.allow_anonymous);
        assert_eq!(config.authentication.password_file.as_deref(), Some(Path::new("/p")));
    }

    #[test]
    fn logging_and_tracing_are_validated() {
        let config = config_with(
            "logging: {format: json}\ntracing: {otlpEndpoint: 'http://otel-collector:4318', sampleRatio: 0.25}\n",
        );
        assert_eq!(config.logging.format, LogFormat::Json);
        assert_eq!(config.tracing.otlp_endpoint.as_deref(), Some("http://otel-collector:4318"));
        assert_eq!(config.tracing.sample_ratio, 0.25);
        assert_eq!(config_with("tracing: {otlpEndpoint: 'https://otel.example:443/base'}\n").tracing.sample_ratio, 1.0);

        assert_starts_with(&error_with("logging: {format: xml}\n"), "logging.format: unknown variant `xml`");
        assert_eq!(error_with("tracing: {sampleRatio: 1.5}\n"), "tracing.sampleRatio: 1.5 is not between 0 and 1");
        assert_eq!(error_with("tracing: {sampleRatio: -0.1}\n"), "tracing.sampleRatio: -0.1 is not between 0 and 1");
        for bad in ["otel-collector:4318", "grpc://c:4317", "http://", "http:///v1", "http://a b"] {
            assert_eq!(
                error_with(&format!("tracing: {{otlpEndpoint: '{bad}'}}\n")),
                format!(
                    "tracing.otlpEndpoint: {bad:?}: expected an http:// or https:// URL such as \"http://otel-collector:4318\""
                )
            );
        }
    }
}
