//! The broker configuration file (docs/config-contract.md) and the ConfigMap holding it.
//!
//! Every field of the contract is written out explicitly, so the file does not depend on the
//! broker's own defaults. Secrets never appear here: Kafka credentials arrive as environment
//! variables, TLS material and passwords as mounted files.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde::Serialize;

use super::Owner;
use crate::crd::{MqttBrokerSpec, Protocol};
use crate::error::Error;
use crate::labels::{fnv1a64, tls_dir, ADMIN_PORT, CONFIG_KEY, PASSWORD_FILE};

/// Kafka topic for unmapped MQTT messages when `topics.default` is not set.
pub const DEFAULT_TOPIC: &str = "mqtt-messages";
/// Compacted retained-message topic when `topics.retained` is not set.
pub const RETAINED_TOPIC: &str = "mqtt-retained";
/// Compacted session topic when `topics.sessions` is not set.
pub const SESSIONS_TOPIC: &str = "mqtt-sessions";
/// Partitions of broker-created topics when `topics.partitions` is not set.
pub const DEFAULT_PARTITIONS: i32 = 12;
/// Replication factor of broker-created topics when `topics.replicationFactor` is not set.
pub const DEFAULT_REPLICATION_FACTOR: i32 = 1;
/// Plain MQTT port of the default listener.
pub const DEFAULT_MQTT_PORT: i32 = 1883;

/// Root of `broker.yaml`.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BrokerConfig {
    /// Network listeners.
    pub listeners: Vec<ListenerConfig>,
    /// Admin HTTP endpoint.
    pub admin: AdminConfig,
    /// Kafka connection.
    pub kafka: KafkaConfig,
    /// Topic routing and state topics.
    pub topics: TopicsConfig,
    /// Protocol limits.
    pub limits: LimitsConfig,
    /// Client authentication.
    pub authentication: AuthenticationConfig,
    /// ACL rules.
    pub authorization: AuthorizationConfig,
}

/// `listeners[]`.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListenerConfig {
    /// Listener name.
    pub name: String,
    /// `mqtt`, `mqtts`, `ws` or `wss`.
    pub protocol: &'static str,
    /// Bind address.
    pub address: String,
    /// TLS files, only for mqtts/wss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// `listeners[].tls`.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsConfig {
    /// Server certificate chain.
    pub cert_file: String,
    /// Server private key.
    pub key_file: String,
    /// CA bundle for client certificates (mTLS only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<String>,
    /// Whether clients must present a certificate.
    pub require_client_cert: bool,
}

/// `admin`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Bind address of the admin HTTP server.
    pub address: String,
}

/// `kafka`.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaConfig {
    /// Bootstrap servers.
    pub bootstrap_servers: String,
    /// librdkafka properties.
    pub properties: BTreeMap<String, String>,
}

/// `topics`.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TopicsConfig {
    /// Ordered mappings, first match wins.
    pub mappings: Vec<MappingConfig>,
    /// Default message topic.
    pub default: String,
    /// Compacted retained topic.
    pub retained: String,
    /// Compacted sessions topic.
    pub sessions: String,
    /// Partitions of created topics.
    pub partitions: i32,
    /// Replication factor of created topics.
    pub replication_factor: i32,
}

/// `topics.mappings[]`.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MappingConfig {
    /// Destination Kafka topic.
    pub kafka_topic: String,
    /// MQTT filters routed to it.
    pub mqtt_topics: Vec<String>,
}

/// `limits`.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LimitsConfig {
    /// Largest packet in bytes.
    pub max_packet_size: i64,
    /// Receive Maximum.
    pub max_inflight: i32,
    /// Connections per pod, 0 = unlimited.
    pub max_connections: i64,
    /// Largest keep-alive, 0 = client's value.
    pub max_keep_alive: i32,
    /// Seconds of silence before a pod counts as dead.
    pub node_timeout: i32,
}

/// `authentication`.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationConfig {
    /// Accept clients without credentials.
    pub allow_anonymous: bool,
    /// Password file path, when a password Secret is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
}

/// `authorization`.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationConfig {
    /// Effect when no rule matches.
    pub default_effect: &'static str,
    /// Ordered rules.
    pub rules: Vec<RuleConfig>,
}

/// `authorization.rules[]`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct RuleConfig {
    /// Who the rule is about.
    pub principal: String,
    /// `publish`, `subscribe` or `all`.
    pub action: &'static str,
    /// MQTT topic filter.
    pub topic: String,
    /// `allow` or `deny`.
    pub effect: &'static str,
}

/// The listeners in effect: the spec's, or a single plain MQTT listener on 1883.
pub fn effective_listeners(spec: &MqttBrokerSpec) -> Vec<crate::crd::ListenerSpec> {
    if spec.listeners.is_empty() {
        vec![crate::crd::ListenerSpec {
            name: "mqtt".to_string(),
            protocol: Protocol::Mqtt,
            port: DEFAULT_MQTT_PORT,
            tls_secret_ref: None,
            require_client_cert: None,
        }]
    } else {
        spec.listeners.clone()
    }
}

/// Renders the broker configuration for a (validated) spec.
pub fn broker_config(spec: &MqttBrokerSpec) -> BrokerConfig {
    let listeners = effective_listeners(spec)
        .into_iter()
        .map(|l| {
            let mtls = l.require_client_cert == Some(true);
            let dir = tls_dir(&l.name);
            ListenerConfig {
                protocol: l.protocol.as_str(),
                address: format!("0.0.0.0:{}", l.port),
                tls: l.protocol.is_tls().then(|| TlsConfig {
                    cert_file: format!("{dir}/tls.crt"),
                    key_file: format!("{dir}/tls.key"),
                    client_ca_file: mtls.then(|| format!("{dir}/ca.crt")),
                    require_client_cert: mtls,
                }),
                name: l.name,
            }
        })
        .collect();
    let topics = spec.topics.clone().unwrap_or_default();
    let limits = spec.limits.clone().unwrap_or_default();
    let authn = spec.authentication.clone().unwrap_or_default();
    let authz = spec.authorization.clone().unwrap_or_default();
    BrokerConfig {
        listeners,
        admin: AdminConfig { address: format!("0.0.0.0:{ADMIN_PORT}") },
        kafka: KafkaConfig {
            bootstrap_servers: spec.kafka.bootstrap_servers.trim().to_string(),
            properties: spec.kafka.properties.clone(),
        },
        topics: TopicsConfig {
            mappings: topics
                .mappings
                .into_iter()
                .map(|m| MappingConfig { kafka_topic: m.kafka_topic, mqtt_topics: m.mqtt_topics })
                .collect(),
            default: topics.default.unwrap_or_else(|| DEFAULT_TOPIC.to_string()),
            retained: topics.retained.unwrap_or_else(|| RETAINED_TOPIC.to_string()),
            sessions: topics.sessions.unwrap_or_else(|| SESSIONS_TOPIC.to_string()),
            partitions: topics.partitions.unwrap_or(DEFAULT_PARTITIONS),
            replication_factor: topics.replication_factor.unwrap_or(DEFAULT_REPLICATION_FACTOR),
        },
        limits: LimitsConfig {
            max_packet_size: limits.max_packet_size.unwrap_or(268_435_455),
            max_inflight: limits.max_inflight.unwrap_or(32),
            max_connections: limits.max_connections.unwrap_or(0),
            max_keep_alive: limits.max_keep_alive.unwrap_or(0),
            node_timeout: limits.node_timeout.unwrap_or(15),
        },
        authentication: AuthenticationConfig {
            allow_anonymous: authn.allow_anonymous.unwrap_or(true),
            password_file: authn.password_secret_ref.map(|_| PASSWORD_FILE.to_string()),
        },
        authorization: AuthorizationConfig {
            default_effect: authz.default_effect.unwrap_or_default().as_str(),
            rules: authz
                .rules
                .into_iter()
                .map(|r| RuleConfig {
                    principal: r.principal,
                    action: r.action.as_str(),
                    topic: r.topic,
                    effect: r.effect.as_str(),
                })
                .collect(),
        },
    }
}

/// Hash of the configuration the broker cannot hot-reload: everything except topic mappings
/// and ACL rules. A change rolls the Deployment through the pod template annotation.
pub fn restart_hash(config: &BrokerConfig) -> Result<String, Error> {
    let mut restart_relevant = config.clone();
    restart_relevant.topics.mappings.clear();
    restart_relevant.authorization.rules.clear();
    restart_relevant.authorization.default_effect = "";
    let bytes = serde_json::to_vec(&restart_relevant)?;
    Ok(format!("{:016x}", fnv1a64(&bytes)))
}

/// The ConfigMap with key `broker.yaml`.
pub fn config_map(owner: &Owner, config: &BrokerConfig) -> Result<ConfigMap, Error> {
    Ok(ConfigMap {
        metadata: owner.meta(owner.name.clone()),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), serde_yaml::to_string(config)?)])),
        ..ConfigMap::default()
    })
}
