//! The broker configuration file (`tributary-broker --config FILE`).
//!
//! The YAML schema is the contract in `docs/config-contract.md`: camelCase keys,
//! unknown keys rejected, everything but `kafka.bootstrapServers` optional. Loading
//! is parse-then-validate, and every error names the offending key path (for
//! example `listeners[0].tls` or `topics.mappings[1].mqttTopics[0]`) because the
//! file is usually rendered by the operator and read by a human only when the
//! broker refuses it.
//!
//! One owner per decision, so that the broker and the operator (which renders this file from
//! an `MqttBroker`) cannot disagree: the schema and its defaults are in [`schema`](self) types,
//! what is a valid value in `validate`, what flags and environment change in `overrides`, and
//! which sections a running broker applies without a restart in `reload`
//! ([`Config::restart_relevant`]).

mod overrides;
mod reload;
mod schema;
#[cfg(test)]
pub(crate) mod test_support;
mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use overrides::{Overrides, KAFKA_ENV_PREFIX};
pub use schema::{
    Action, Admin, Authentication, Authorization, AuthorizationRule, CertificateName, Effect, Jwt, JwtAlgorithm, Kafka,
    Limits, Listener, LogFormat, Logging, MappingRule, Principal, Protocol, Rebalance, Tls, Topics, Tracing,
    DEFAULT_USERNAME_CLAIM, DEFAULT_WS_PATH,
};
pub use validate::{validate_kafka_topic_name, validate_otlp_endpoint};

use crate::mapping::{MappingError, TopicMapping};

/// Largest MQTT packet: the Remaining Length field tops out at 268435455 bytes.
pub const MAX_PACKET_SIZE: u32 = 268_435_455;

/// Default `limits.maxPacketSize`: 1 MiB, Kafka's default `message.max.bytes`, so that what a
/// device may send is what Kafka takes.
pub const DEFAULT_MAX_PACKET_SIZE: u32 = 1 << 20;

/// Default `limits.maxPendingBytes`: 64 MiB of packets being received, per process.
pub const DEFAULT_MAX_PENDING_BYTES: u64 = 64 << 20;

/// Port of the admin endpoint when `admin.address` is not set; the operator exposes it too.
pub const DEFAULT_ADMIN_PORT: u16 = 9090;

/// Longest Kafka topic name Kafka accepts.
pub const MAX_KAFKA_TOPIC_LEN: usize = 249;

/// Why the configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {}: {error}", file.display())]
    Read {
        /// The file that was asked for.
        file: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The YAML is malformed or does not fit the schema (unknown or missing key,
    /// wrong type). serde_yaml's message already starts with the key path and
    /// ends with the line and column, so it is shown unchanged.
    #[error("{0}")]
    Parse(serde_yaml::Error),
    /// The YAML fits the schema but a value is not acceptable.
    #[error("{key}: {message}")]
    Invalid {
        /// Path of the offending key, e.g. `listeners[0].tls`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Shorthand for a validation error at `key`.
fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Where MQTT clients connect; at least one. Defaults to plain MQTT on 0.0.0.0:1883.
    #[serde(default = "default_listeners")]
    pub listeners: Vec<Listener>,
    /// The HTTP endpoint for health checks and metrics.
    #[serde(default)]
    pub admin: Admin,
    /// How to reach Kafka. Required: the broker keeps all of its state there.
    pub kafka: Kafka,
    /// Which Kafka topics hold messages, retained messages and sessions.
    #[serde(default)]
    pub topics: Topics,
    /// Protocol limits enforced per connection and per broker.
    #[serde(default)]
    pub limits: Limits,
    /// Who may connect.
    #[serde(default)]
    pub authentication: Authentication,
    /// Who may publish and subscribe to what.
    #[serde(default)]
    pub authorization: Authorization,
    /// The format of log lines.
    #[serde(default, skip_serializing_if = "Logging::is_default")]
    pub logging: Logging,
    /// Span export (OpenTelemetry), off unless an endpoint is set.
    #[serde(default, skip_serializing_if = "Tracing::is_default")]
    pub tracing: Tracing,
    /// Shedding connections towards the average after a scale-out, off by default.
    #[serde(default, skip_serializing_if = "Rebalance::is_default")]
    pub rebalance: Rebalance,
}

impl Default for Config {
    /// What a file with only `kafka.bootstrapServers` gives, except that the
    /// servers are empty: set them before use, `validate` rejects this as is.
    fn default() -> Self {
        Config {
            listeners: default_listeners(),
            admin: Admin::default(),
            kafka: Kafka::default(),
            topics: Topics::default(),
            limits: Limits::default(),
            authentication: Authentication::default(),
            authorization: Authorization::default(),
            logging: Logging::default(),
            tracing: Tracing::default(),
            rebalance: Rebalance::default(),
        }
    }
}

fn default_listeners() -> Vec<Listener> {
    vec![Listener::default()]
}

impl Config {
    /// Parses and validates a configuration from YAML text.
    pub fn from_yaml_str(s: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_yaml::from_str(s).map_err(ConfigError::Parse)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { file: path.to_owned(), error })?;
        Config::from_yaml_str(&text)
    }

    /// Builds the MQTT-to-Kafka topic mapping from `topics.mappings` and `topics.default`.
    ///
    /// Cannot fail on a validated configuration; on an unvalidated one, an invalid
    /// pattern is reported as `topics.mappings[i].mqttTopics[j]: ...`.
    pub fn mapping(&self) -> Result<TopicMapping, ConfigError> {
        let rules = self.topics.mappings.iter().map(|r| (r.kafka_topic.clone(), r.mqtt_topics.clone())).collect();
        TopicMapping::new(rules, self.topics.default.clone()).map_err(|e| match e {
            MappingError::InvalidPattern { rule, pattern, reason, .. } => {
                invalid(format!("topics.mappings[{rule}].mqttTopics[{pattern}]"), reason.to_string())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{assert_starts_with, error, error_with, MINIMAL};
    use super::*;

    /// The example file from `docs/config-contract.md`, read from the document itself so the
    /// two cannot drift apart.
    fn contract_example() -> &'static str {
        const DOC: &str = include_str!("../../../docs/config-contract.md");
        let start = DOC.find("```yaml\n").map(|i| i + 8).expect("yaml block");
        let len = DOC[start..].find("```").expect("end of yaml block");
        &DOC[start..start + len]
    }

    #[test]
    fn contract_example_parses() {
        let config = Config::from_yaml_str(contract_example()).expect("contract example");
        assert_eq!(config.listeners.len(), 4);
        assert_eq!(config.listeners[0].protocol, Protocol::Mqtt);
        assert_eq!((config.listeners[2].protocol, config.listeners[2].ws_path()), (Protocol::Ws, "/mqtt"));
        assert_eq!(config.listeners[3].protocol, Protocol::Wss);
        assert!(config.listeners[3].tls.is_some());
        assert!(config.listeners[0].tls.is_none());
        let listener = &config.listeners[1];
        assert_eq!(listener.name, "mqtts");
        assert_eq!(listener.protocol, Protocol::Mqtts);
        assert_eq!(listener.address, "0.0.0.0:8883".parse().expect("addr"));
        let tls = listener.tls.as_ref().expect("tls");
        assert_eq!(tls.cert_file, Path::new("/etc/tributary/tls/mqtts/tls.crt"));
        assert_eq!(tls.key_file, Path::new("/etc/tributary/tls/mqtts/tls.key"));
        assert_eq!(tls.client_ca_file.as_deref(), Some(Path::new("/etc/tributary/tls/mqtts/ca.crt")));
        assert!(!tls.require_client_cert);
        assert_eq!(config.admin.address, "0.0.0.0:9090".parse().expect("addr"));
        assert_eq!(config.kafka.bootstrap_servers, "127.0.0.1:9092");
        assert!(config.kafka.properties.is_empty());
        assert_eq!(
            config.topics.mappings,
            [
                MappingRule { kafka_topic: "kafkaTopic1".into(), mqtt_topics: vec!["cars/speed/+".into()] },
                MappingRule { kafka_topic: "kafkaTopic2".into(), mqtt_topics: vec!["cars/#".into()] },
            ]
        );
        assert_eq!(config.topics.default, "mqtt-messages");
        assert_eq!(config.topics.retained, "mqtt-retained");
        assert_eq!(config.topics.sessions, "mqtt-sessions");
        assert_eq!(config.topics.partitions, 12);
        assert_eq!(config.topics.replication_factor, 1);
        assert_eq!(config.limits, Limits::default());
        assert!(config.authentication.allow_anonymous);
        assert_eq!(config.authentication.password_file.as_deref(), Some(Path::new("/etc/tributary/auth/passwords")));
        assert_eq!(config.authentication.certificate_name, CertificateName::CommonName);
        let jwt = config.authentication.jwt.as_ref().expect("jwt");
        assert_eq!((jwt.algorithm, jwt.username_claim.as_str()), (JwtAlgorithm::HS256, DEFAULT_USERNAME_CLAIM));
        assert_eq!(jwt.secret_file.as_deref(), Some(Path::new("/etc/tributary/auth/jwt-secret")));
        assert_eq!(config.authorization.default_effect, Effect::Allow);
        assert_eq!(
            config.authorization.rules,
            [AuthorizationRule {
                principal: Principal::User("alice".into()),
                action: Action::Publish,
                topic: "cars/#".into(),
                effect: Effect::Allow,
            }]
        );

        assert_eq!(config.logging.format, LogFormat::Text);
        assert_eq!(config.tracing.otlp_endpoint.as_deref(), Some("http://otel-collector:4318"));
        assert_eq!(config.tracing.sample_ratio, 1.0);

        let mapping = config.mapping().expect("mapping");
        assert_eq!(mapping.kafka_topic_for("cars/speed/1"), "kafkaTopic1");
        assert_eq!(mapping.kafka_topic_for("cars/location/1"), "kafkaTopic2");
        assert_eq!(mapping.kafka_topic_for("trains/1"), "mqtt-messages");
    }

    #[test]
    fn defaults_fill_in() {
        let config = Config::from_yaml_str(MINIMAL).expect("minimal config");
        assert_eq!(
            config.listeners,
            [Listener {
                name: "mqtt".into(),
                protocol: Protocol::Mqtt,
                address: "0.0.0.0:1883".parse().expect("addr"),
                tls: None,
                path: None,
            }]
        );
        assert_eq!(config.admin.address, "0.0.0.0:9090".parse().expect("addr"));
        assert_eq!(config.kafka.bootstrap_servers, "kafka:9092");
        assert!(config.kafka.properties.is_empty());
        assert!(config.topics.mappings.is_empty());
        assert_eq!(config.topics.default, "mqtt-messages");
        assert_eq!(config.topics.retained, "mqtt-retained");
        assert_eq!(config.topics.sessions, "mqtt-sessions");
        assert_eq!(config.topics.partitions, 12);
        assert_eq!(config.topics.replication_factor, 1);
        assert_eq!(config.limits.max_packet_size, 1_048_576);
        assert_eq!(config.limits.max_pending_bytes, 64 * 1_048_576);
        assert_eq!(config.limits.max_inflight, 32);
        assert_eq!(config.limits.max_connections, 0);
        assert_eq!(config.limits.max_keep_alive, 0);
        assert_eq!(config.limits.node_timeout, 15);
        assert!(config.authentication.allow_anonymous);
        assert_eq!(config.authentication.password_file, None);
        assert_eq!(config.authorization.default_effect, Effect::Allow);
        assert!(config.authorization.rules.is_empty());
        assert_eq!(config.mapping().expect("mapping").all_kafka_topics(), ["mqtt-messages"]);

        // The in-code default equals the parsed minimal file apart from the servers.
        let mut default = Config::default();
        default.kafka.bootstrap_servers = "kafka:9092".into();
        assert_eq!(default, config);
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let config =
            Config::from_yaml_str(&format!("{MINIMAL}topics:\n  default: msgs\nlimits:\n  maxInflight: 100\n"))
                .expect("config");
        assert_eq!(config.topics.default, "msgs");
        assert_eq!(config.topics.retained, "mqtt-retained");
        assert_eq!(config.limits.max_inflight, 100);
        assert_eq!(config.limits.max_packet_size, DEFAULT_MAX_PACKET_SIZE);
    }

    #[test]
    fn serialized_config_parses_back() {
        let config = Config::from_yaml_str(contract_example()).expect("contract example");
        let text = serde_yaml::to_string(&config).expect("serialize");
        assert_eq!(Config::from_yaml_str(&text).expect("round trip"), config);
    }

    #[test]
    fn default_logging_and_tracing_are_not_written_out() {
        let text = serde_yaml::to_string(&Config::from_yaml_str(MINIMAL).expect("minimal")).expect("serialize");
        assert!(!text.contains("logging") && !text.contains("tracing"), "{text}");
        let config =
            Config::from_yaml_str(&format!("{MINIMAL}logging: {{format: json}}\ntracing: {{sampleRatio: 0.5}}\n"))
                .expect("config");
        let text = serde_yaml::to_string(&config).expect("serialize");
        assert!(text.contains("format: json") && text.contains("sampleRatio: 0.5"), "{text}");
        assert_eq!(Config::from_yaml_str(&text).expect("round trip"), config);
    }

    #[test]
    fn kafka_properties_accept_any_scalar() {
        let config = Config::from_yaml_str(
            "kafka:\n  bootstrapServers: k:9092\n  properties:\n    linger.ms: 5\n    enable.idempotence: true\n    client.id: tributary\n",
        )
        .expect("config");
        assert_eq!(config.kafka.properties["linger.ms"], "5");
        assert_eq!(config.kafka.properties["enable.idempotence"], "true");
        assert_eq!(config.kafka.properties["client.id"], "tributary");
        assert_eq!(
            error("kafka:\n  bootstrapServers: k:9092\n  properties: {'': x}\n"),
            "kafka.properties: property names must not be empty"
        );
    }

    #[test]
    fn unknown_keys_name_key_and_location() {
        let err = error_with("foo: 1\n");
        assert!(err.contains("unknown field `foo`"), "{err}");
        assert!(err.contains("line 3"), "{err}");

        let err = error_with("limits:\n  maxPacketSise: 5\n");
        assert_starts_with(&err, "limits: unknown field `maxPacketSise`");
        assert!(err.contains("line 4"), "{err}");

        let err = error_with("listeners:\n  - {name: a, protocol: mqtt, address: '0.0.0.0:1', extra: 1}\n");
        assert_starts_with(&err, "listeners[0]: unknown field `extra`");
        assert!(err.contains("line 4"), "{err}");

        let err = error_with("topics:\n  mappings:\n    - {kafkaTopic: k, mqttTopics: [a], why: x}\n");
        assert_starts_with(&err, "topics.mappings[0]: unknown field `why`");

        // snake_case is not camelCase.
        let err = error("kafka: {bootstrap_servers: k}");
        assert_starts_with(&err, "kafka: unknown field `bootstrap_servers`");
    }

    #[test]
    fn wrong_types_name_key() {
        assert_starts_with(
            &error_with("listeners:\n  - {name: a, protocol: tcp, address: '0.0.0.0:1'}\n"),
            "listeners[0].protocol: unknown variant `tcp`",
        );
        assert_starts_with(
            &error_with("limits: {maxInflight: 70000}\n"),
            "limits.maxInflight: invalid value: integer `70000`",
        );
        assert_starts_with(
            &error_with("limits: {maxPacketSize: -1}\n"),
            "limits.maxPacketSize: invalid type: integer `-1`",
        );
        assert_starts_with(
            &error_with("authorization: {defaultEffect: maybe}\n"),
            "authorization.defaultEffect: unknown variant `maybe`",
        );
    }

    #[test]
    fn load_reads_files_and_names_missing_ones() {
        let dir = std::env::temp_dir().join(format!("tributary-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("config.yaml");
        std::fs::write(&file, MINIMAL).expect("write");
        let config = Config::load(&file).expect("load");
        assert_eq!(config.kafka.bootstrap_servers, "kafka:9092");

        let missing = dir.join("missing.yaml");
        let err = Config::load(&missing).expect_err("missing file");
        assert!(matches!(err, ConfigError::Read { .. }));
        assert_starts_with(&err.to_string(), &format!("cannot read configuration file {}: ", missing.display()));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn malformed_yaml_reports_location() {
        let err = error("kafka: [unclosed");
        assert!(err.contains("line 1"), "{err}");
        let err = error("kafka:\n  bootstrapServers: a\n  bootstrapServers: b\n");
        assert!(err.contains("duplicate field `bootstrapServers`"), "{err}");
    }
}
