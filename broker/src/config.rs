//! The broker configuration file (`tributary-broker --config FILE`).
//!
//! The YAML schema is the contract in `docs/config-contract.md`: camelCase keys,
//! unknown keys rejected, everything but `kafka.bootstrapServers` optional. Loading
//! is parse-then-validate, and every error names the offending key path (for
//! example `listeners[0].tls` or `topics.mappings[1].mqttTopics[0]`) because the
//! file is usually rendered by the operator and read by a human only when the
//! broker refuses it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use thiserror::Error;

use crate::mapping::{MappingError, TopicMapping};
use crate::topic::validate_filter;

/// Largest MQTT packet: the Remaining Length field tops out at 268435455 bytes.
pub const MAX_PACKET_SIZE: u32 = 268_435_455;

/// Longest Kafka topic name Kafka accepts.
pub const MAX_KAFKA_TOPIC_LEN: usize = 249;

/// Prefix of environment variables that set librdkafka properties
/// (`TRIBUTARY_KAFKA_SASL_PASSWORD` sets `sasl.password`).
pub const KAFKA_ENV_PREFIX: &str = "TRIBUTARY_KAFKA_";

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
        }
    }
}

fn default_listeners() -> Vec<Listener> {
    vec![Listener::default()]
}

/// One socket the broker accepts MQTT connections on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    /// Unique name of `[a-z0-9-]` characters, used in logs and metrics labels.
    pub name: String,
    /// Transport and framing.
    pub protocol: Protocol,
    /// IP address and port to bind, e.g. `0.0.0.0:1883` (host names are not resolved).
    #[serde(deserialize_with = "deserialize_socket_addr")]
    pub address: SocketAddr,
    /// Certificate and key; required for `mqtts` and `wss`, refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

impl Default for Listener {
    /// Plain MQTT on all interfaces, port 1883 (the IANA port for MQTT).
    fn default() -> Self {
        Listener {
            name: "mqtt".to_owned(),
            protocol: Protocol::Mqtt,
            address: SocketAddr::from(([0, 0, 0, 0], 1883)),
            tls: None,
        }
    }
}

/// How MQTT is carried on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// MQTT over TCP.
    Mqtt,
    /// MQTT over TLS.
    Mqtts,
    /// MQTT over WebSocket.
    Ws,
    /// MQTT over WebSocket over TLS.
    Wss,
}

impl Protocol {
    /// Whether this protocol runs over TLS, and so needs a `tls` section.
    pub fn uses_tls(self) -> bool {
        matches!(self, Protocol::Mqtts | Protocol::Wss)
    }

    /// The name used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Mqtt => "mqtt",
            Protocol::Mqtts => "mqtts",
            Protocol::Ws => "ws",
            Protocol::Wss => "wss",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TLS material of a listener (PEM files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    /// Server certificate chain.
    pub cert_file: PathBuf,
    /// Private key of the server certificate.
    pub key_file: PathBuf,
    /// CA bundle to verify client certificates with; setting it enables mTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// Reject clients without a valid certificate (needs `clientCaFile`).
    #[serde(default)]
    pub require_client_cert: bool,
}

/// The admin HTTP endpoint (`/healthz`, `/readyz`, `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Admin {
    /// IP address and port to bind.
    #[serde(deserialize_with = "deserialize_socket_addr")]
    pub address: SocketAddr,
}

impl Default for Admin {
    /// All interfaces, port 9090, so that kubelet probes and Prometheus can reach it.
    fn default() -> Self {
        Admin { address: SocketAddr::from(([0, 0, 0, 0], 9090)) }
    }
}

/// Connection to Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kafka {
    /// Comma-separated `host:port` list; required and non-empty. The default
    /// value (empty) exists only for building configurations in code.
    pub bootstrap_servers: String,
    /// Extra librdkafka properties, passed as given. YAML scalars of any type
    /// are accepted and kept as written (`linger.ms: 5` gives `"5"`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// Kafka topics the broker uses, and how it creates them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Topics {
    /// MQTT-to-Kafka mapping rules, first match wins.
    pub mappings: Vec<MappingRule>,
    /// Kafka topic for MQTT topics no mapping rule matches.
    pub default: String,
    /// Compacted Kafka topic holding retained messages.
    pub retained: String,
    /// Compacted Kafka topic holding session state.
    pub sessions: String,
    /// Partition count for topics the broker creates.
    pub partitions: i32,
    /// Replication factor for topics the broker creates.
    pub replication_factor: i32,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            mappings: Vec::new(),
            default: "mqtt-messages".to_owned(),
            retained: "mqtt-retained".to_owned(),
            sessions: "mqtt-sessions".to_owned(),
            partitions: 12,
            // 1 works on a single-broker development cluster; production sets 3.
            replication_factor: 1,
        }
    }
}

/// One `topics.mappings` entry: MQTT topics matching any of the patterns go to `kafka_topic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MappingRule {
    /// Destination Kafka topic.
    pub kafka_topic: String,
    /// MQTT topic filters, checked in order; at least one.
    pub mqtt_topics: Vec<String>,
}

/// Protocol limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Largest packet accepted, in bytes: 1..=268435455.
    pub max_packet_size: u32,
    /// Receive Maximum advertised to clients: unacknowledged QoS 1/2 publishes in flight.
    pub max_inflight: u16,
    /// Concurrent connections per broker; 0 means unlimited.
    pub max_connections: u32,
    /// Upper bound on the client's keep-alive in seconds; 0 accepts the client's value.
    pub max_keep_alive: u16,
    /// Seconds without a heartbeat after which other brokers take a broker's sessions over
    /// (publish their Wills, start their expiry): 2..=3600.
    pub node_timeout: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: MAX_PACKET_SIZE,
            max_inflight: 32,
            max_connections: 0,
            max_keep_alive: 0,
            node_timeout: 15,
        }
    }
}

/// Client authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Authentication {
    /// Accept clients that send no username.
    pub allow_anonymous: bool,
    /// File of `username:sha256-hex-of-password` lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

impl Default for Authentication {
    fn default() -> Self {
        Authentication { allow_anonymous: true, password_file: None }
    }
}

/// Topic-level access control.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Authorization {
    /// Effect when no rule matches; `allow` by default so that a fresh install works.
    pub default_effect: Effect,
    /// Rules in order, first match wins.
    pub rules: Vec<AuthorizationRule>,
}

/// One access-control rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationRule {
    /// Who the rule is about.
    pub principal: Principal,
    /// What it is about.
    pub action: Action,
    /// MQTT topic filter the rule covers.
    pub topic: String,
    /// Whether matching requests are allowed.
    pub effect: Effect,
}

/// Outcome of an authorization rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Permit the request.
    #[default]
    Allow,
    /// Refuse the request.
    Deny,
}

/// Operation an authorization rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// PUBLISH (including wills and retained messages).
    Publish,
    /// SUBSCRIBE.
    Subscribe,
    /// Both.
    All,
}

/// Whom an authorization rule applies to; written `*`, `anonymous`,
/// `user:<username>`, `client:<client id>` or `cn:<X.509 common name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// `*`: every client.
    Any,
    /// `anonymous`: clients that sent no username.
    Anonymous,
    /// `user:<username>`.
    User(String),
    /// `client:<client id>`.
    Client(String),
    /// `cn:<common name>` of the client certificate.
    Cn(String),
}

impl FromStr for Principal {
    type Err = String;

    /// Parses the configuration syntax; the error says which forms are accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "expected `*`, `anonymous`, `user:<name>`, `client:<id>` or `cn:<name>`";
        match s {
            "*" => return Ok(Principal::Any),
            "anonymous" => return Ok(Principal::Anonymous),
            _ => {}
        }
        let Some((kind, name)) = s.split_once(':') else {
            return Err(format!("invalid principal {s:?}: {expected}"));
        };
        if name.is_empty() {
            return Err(format!("invalid principal {s:?}: the name after '{kind}:' must not be empty"));
        }
        match kind {
            "user" => Ok(Principal::User(name.to_owned())),
            "client" => Ok(Principal::Client(name.to_owned())),
            "cn" => Ok(Principal::Cn(name.to_owned())),
            _ => Err(format!("invalid principal {s:?}: {expected}")),
        }
    }
}

impl fmt::Display for Principal {
    /// Writes the configuration syntax, so parsing the output gives the same principal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Any => f.write_str("*"),
            Principal::Anonymous => f.write_str("anonymous"),
            Principal::User(name) => write!(f, "user:{name}"),
            Principal::Client(id) => write!(f, "client:{id}"),
            Principal::Cn(cn) => write!(f, "cn:{cn}"),
        }
    }
}

impl Serialize for Principal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Principal {
    // A visitor rather than `#[serde(try_from = "String")]`: errors raised inside
    // the visitor get the full key path (`authorization.rules[0].principal`) from
    // serde_yaml, while a failed `try_from` is only attributed to the whole rule.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PrincipalVisitor;
        impl Visitor<'_> for PrincipalVisitor {
            type Value = Principal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a principal: `*`, `anonymous`, `user:<name>`, `client:<id>` or `cn:<name>`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Principal, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(PrincipalVisitor)
    }
}

/// Parses a socket address with an error that quotes the value and shows the
/// expected form; serde's own `SocketAddr` impl only says "invalid socket address syntax".
fn deserialize_socket_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    struct AddrVisitor;
    impl Visitor<'_> for AddrVisitor {
        type Value = SocketAddr;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an IP address and port such as \"0.0.0.0:1883\"")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<SocketAddr, E> {
            s.parse().map_err(|_| {
                E::custom(format!(
                    "invalid address {s:?}: expected an IP address and port such as \"0.0.0.0:1883\" or \"[::]:1883\" (host names are not resolved)"
                ))
            })
        }
    }
    deserializer.deserialize_str(AddrVisitor)
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

    /// Checks everything the schema cannot express; the first problem found is
    /// returned, with the path of the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_listeners()?;
        if self.kafka.bootstrap_servers.trim().is_empty() {
            return Err(invalid("kafka.bootstrapServers", "must not be empty"));
        }
        if self.kafka.properties.keys().any(|k| k.trim().is_empty()) {
            return Err(invalid("kafka.properties", "property names must not be empty"));
        }
        self.validate_topics()?;
        self.validate_limits()?;
        if let Some(file) = &self.authentication.password_file {
            if file.as_os_str().is_empty() {
                return Err(invalid("authentication.passwordFile", "must not be empty"));
            }
        }
        let client_certs = self.listeners.iter().any(|l| l.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some()));
        if !self.authentication.allow_anonymous && self.authentication.password_file.is_none() && !client_certs {
            return Err(invalid(
                "authentication.allowAnonymous",
                "false leaves no way in: set passwordFile, or a listener with tls.clientCaFile",
            ));
        }
        for (i, rule) in self.authorization.rules.iter().enumerate() {
            validate_filter(&rule.topic)
                .map_err(|e| invalid(format!("authorization.rules[{i}].topic"), e.to_string()))?;
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
        // The upper bound 65535 is enforced by the type (u16); MQTT forbids 0.
        if self.limits.max_inflight == 0 {
            return Err(invalid("limits.maxInflight", "must be between 1 and 65535"));
        }
        // Below 2 s a busy broker's heartbeat could miss the deadline; above an hour a dead
        // broker's Wills would wait too long.
        if !(2..=3600).contains(&self.limits.node_timeout) {
            return Err(invalid("limits.nodeTimeout", "must be between 2 and 3600 seconds"));
        }
        Ok(())
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

    /// Applies `TRIBUTARY_KAFKA_<KEY>=value` variables from `vars` (normally
    /// `std::env::vars()`) as librdkafka properties: `<KEY>` is lower-cased and
    /// `_` becomes `.`, so `TRIBUTARY_KAFKA_SASL_PASSWORD` sets `sasl.password`.
    /// They override `kafka.properties` from the file, because that is how the
    /// operator injects credentials from a Secret without putting them in the
    /// ConfigMap. Other variables are ignored.
    ///
    /// Returns the property names that were set, for logging (the values may be
    /// secrets and are not returned).
    pub fn apply_env_overrides(&mut self, vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
        let mut set = Vec::new();
        for (name, value) in vars {
            let Some(key) = name.strip_prefix(KAFKA_ENV_PREFIX) else {
                continue;
            };
            if key.is_empty() {
                continue;
            }
            let property = key.to_lowercase().replace('_', ".");
            self.kafka.properties.insert(property.clone(), value);
            set.push(property);
        }
        set
    }
}

/// Command-line settings that replace values from the file (`tributary-broker --listen ...`).
///
/// Startup and the config reload both go through [`Overrides::resolve`], so a reloaded file is
/// judged exactly as a restart would judge it.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces the address of the first `mqtt` listener.
    pub listen: Option<String>,
    /// Replaces `kafka.bootstrapServers`.
    pub kafka_bootstrap: Option<String>,
    /// Replaces `admin.address`.
    pub admin: Option<String>,
}

impl Overrides {
    /// Turns a parsed file into the configuration the broker runs with: applies these
    /// overrides and the `TRIBUTARY_KAFKA_*` variables of the process environment, validates
    /// the result and refuses what this version does not support yet.
    pub fn resolve(&self, config: Config) -> Result<Config, ConfigError> {
        self.resolve_with_env(config, std::env::vars())
    }

    /// [`resolve`](Self::resolve) with the environment given as `vars`.
    pub fn resolve_with_env(
        &self,
        mut config: Config,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        if let Some(listen) = &self.listen {
            let l = config
                .listeners
                .iter_mut()
                .find(|l| l.protocol == Protocol::Mqtt)
                .ok_or_else(|| invalid("--listen", "given but the configuration has no mqtt listener"))?;
            l.address = parse_override_addr("--listen", listen)?;
        }
        if let Some(b) = &self.kafka_bootstrap {
            config.kafka.bootstrap_servers.clone_from(b);
        }
        if let Some(a) = &self.admin {
            config.admin.address = parse_override_addr("--admin", a)?;
        }
        config.apply_env_overrides(vars);
        config.validate()?;
        config.refuse_unsupported()?;
        Ok(config)
    }
}

fn parse_override_addr(flag: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| invalid(flag, format!("invalid address {value:?}: expected an IP address and port")))
}

impl Config {
    /// Fails closed on settings this version parses but does not enforce yet: silently
    /// ignoring an ACL or a TLS listener would be worse than not starting (or not reloading).
    pub fn refuse_unsupported(&self) -> Result<(), ConfigError> {
        let served = [Protocol::Mqtt, Protocol::Mqtts];
        if let Some((i, l)) = self.listeners.iter().enumerate().find(|(_, l)| !served.contains(&l.protocol)) {
            return Err(invalid(
                format!("listeners[{i}].protocol"),
                format!("{} is not supported yet (only mqtt and mqtts)", l.protocol),
            ));
        }
        if let Some(i) = self.authorization.rules.iter().position(|r| matches!(r.principal, Principal::Cn(_))) {
            return Err(invalid(
                format!("authorization.rules[{i}].principal"),
                "cn: principals (client certificate names) are not supported yet",
            ));
        }
        Ok(())
    }
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
    use super::*;

    /// The example file from `docs/config-contract.md`, read from the document itself so the
    /// two cannot drift apart.
    fn contract_example() -> &'static str {
        const DOC: &str = include_str!("../../docs/config-contract.md");
        let start = DOC.find("```yaml\n").map(|i| i + 8).expect("yaml block");
        let len = DOC[start..].find("```").expect("end of yaml block");
        &DOC[start..start + len]
    }

    const MINIMAL: &str = "kafka:\n  bootstrapServers: kafka:9092\n";

    /// The error message for `yaml`, which must fail.
    fn error(yaml: &str) -> String {
        match Config::from_yaml_str(yaml) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// The error message for the minimal config with `extra` appended.
    fn error_with(extra: &str) -> String {
        error(&format!("{MINIMAL}{extra}"))
    }

    fn assert_starts_with(message: &str, prefix: &str) {
        assert!(message.starts_with(prefix), "{message:?} should start with {prefix:?}");
    }

    #[test]
    fn contract_example_parses() {
        let config = Config::from_yaml_str(contract_example()).expect("contract example");
        assert_eq!(config.listeners.len(), 2);
        assert_eq!(config.listeners[0].protocol, Protocol::Mqtt);
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
        assert_eq!(config.limits.max_packet_size, 268_435_455);
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
        assert_eq!(config.limits.max_packet_size, MAX_PACKET_SIZE);
    }

    #[test]
    fn serialized_config_parses_back() {
        let config = Config::from_yaml_str(contract_example()).expect("contract example");
        let text = serde_yaml::to_string(&config).expect("serialize");
        assert_eq!(Config::from_yaml_str(&text).expect("round trip"), config);
    }

    #[test]
    fn kafka_is_required() {
        assert_starts_with(&error(""), "missing field `kafka`");
        assert_starts_with(&error("kafka: {}"), "kafka: missing field `bootstrapServers`");
        assert_eq!(error("kafka: {bootstrapServers: ''}"), "kafka.bootstrapServers: must not be empty");
        assert_eq!(error("kafka: {bootstrapServers: '  '}"), "kafka.bootstrapServers: must not be empty");
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
        assert_eq!(
            error_with("authentication: {allowAnonymous: false}\n"),
            "authentication.allowAnonymous: false leaves no way in: set passwordFile, or a listener with tls.clientCaFile"
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
            "authorization.rules[1].principal: invalid principal \"bob\": expected `*`, `anonymous`, `user:<name>`, `client:<id>` or `cn:<name>`",
        );
        assert!(err.contains("line 6"), "{err}");
        assert_starts_with(
            &error_with(&rules("user:", "a")),
            "authorization.rules[1].principal: invalid principal \"user:\": the name after 'user:' must not be empty",
        );
        assert_starts_with(
            &error_with(&rules("group:x", "a")),
            "authorization.rules[1].principal: invalid principal \"group:x\"",
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
    fn env_overrides_set_kafka_properties() {
        let mut config = Config::from_yaml_str(
            "kafka:\n  bootstrapServers: k:9092\n  properties: {sasl.password: from-file, acks: all}\n",
        )
        .expect("config");
        let vars = [
            ("TRIBUTARY_KAFKA_SASL_PASSWORD", "s3cret"),
            ("TRIBUTARY_KAFKA_SASL_USERNAME", "broker"),
            ("TRIBUTARY_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("TRIBUTARY_KAFKA_", "ignored: no key"),
            ("TRIBUTARY_OTHER", "ignored"),
            ("PATH", "/usr/bin"),
            ("tributary_kafka_lower", "ignored: prefix is case-sensitive"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let set = config.apply_env_overrides(vars);
        assert_eq!(set, ["sasl.password", "sasl.username", "security.protocol"]);
        let expected: BTreeMap<String, String> = [
            ("acks", "all"),
            ("sasl.password", "s3cret"),
            ("sasl.username", "broker"),
            ("security.protocol", "SASL_SSL"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(config.kafka.properties, expected);
        assert_eq!(config.validate().map_err(|e| e.to_string()), Ok(()));
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

    #[test]
    fn overrides_apply_then_validate_and_refuse_unsupported() {
        let overrides = Overrides {
            listen: Some("127.0.0.1:1884".into()),
            kafka_bootstrap: Some("other:9092".into()),
            admin: Some("127.0.0.1:9091".into()),
        };
        let env = || [("TRIBUTARY_KAFKA_ACKS".to_owned(), "1".to_owned())].into_iter();
        let config = overrides.resolve_with_env(Config::from_yaml_str(MINIMAL).expect("config"), env()).expect("ok");
        assert_eq!(config.listeners[0].address, "127.0.0.1:1884".parse().expect("addr"));
        assert_eq!(config.kafka.bootstrap_servers, "other:9092");
        assert_eq!(config.admin.address.port(), 9091);
        assert_eq!(config.kafka.properties.get("acks").map(String::as_str), Some("1"));

        let bad = Overrides { listen: Some("nope".into()), ..Overrides::default() };
        let err = bad.resolve_with_env(Config::from_yaml_str(MINIMAL).expect("config"), env()).expect_err("bad");
        assert_starts_with(&err.to_string(), "--listen: invalid address \"nope\"");
        let empty = Overrides { kafka_bootstrap: Some(" ".into()), ..Overrides::default() };
        let err = empty.resolve_with_env(Config::from_yaml_str(MINIMAL).expect("config"), env()).expect_err("bad");
        assert_eq!(err.to_string(), "kafka.bootstrapServers: must not be empty");

        let acl = |principal: &str| {
            Config::from_yaml_str(&format!(
                "{MINIMAL}authorization:\n  rules:\n    - {{principal: '{principal}', action: all, topic: '#', effect: deny}}\n"
            ))
            .expect("config")
        };
        assert!(Overrides::default().resolve_with_env(acl("*"), env()).is_ok(), "rules are enforced");
        let err = Overrides::default().resolve_with_env(acl("cn:device"), env()).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "authorization.rules[0].principal: cn: principals (client certificate names) are not supported yet"
        );

        let tls =
            "listeners:\n  - {name: s, protocol: mqtts, address: '127.0.0.1:8883', tls: {certFile: c, keyFile: k}}\n";
        let mqtts = Config::from_yaml_str(&format!("{MINIMAL}{tls}")).expect("config");
        assert!(Overrides::default().resolve_with_env(mqtts, env()).is_ok(), "mqtts is served");
        let ws = "listeners:\n  - {name: w, protocol: ws, address: '127.0.0.1:80'}\n";
        let ws = Config::from_yaml_str(&format!("{MINIMAL}{ws}")).expect("config");
        let err = Overrides::default().resolve_with_env(ws, env()).expect_err("refused");
        assert_eq!(err.to_string(), "listeners[0].protocol: ws is not supported yet (only mqtt and mqtts)");
    }
}
