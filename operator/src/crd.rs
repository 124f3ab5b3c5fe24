//! The `MqttBroker` custom resource (`tributary.io/v1alpha1`): spec, status and schema.
//!
//! Field documentation becomes the CRD's OpenAPI descriptions (`kubectl explain mqtt.spec`).
//! Checks Kubernetes can do on its own live in the schema (`pattern`, ranges, enums, CEL
//! `x-kubernetes-validations`); everything else is checked by [`crate::validate`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tributary_broker::config as contract;

/// Regular expression (RE2 and ECMA compatible) for an MQTT topic filter: levels separated by
/// `/`, `+` only as a whole level, `#` only as the whole last level.
pub const TOPIC_FILTER_PATTERN: &str = r"^(([^+#/]*|\+)/)*([^+#/]*|\+|#)$";

/// Regular expression for a Kafka topic name.
pub const KAFKA_TOPIC_PATTERN: &str = r"^[a-zA-Z0-9._-]+$";

/// Regular expression for an ACL principal (`*`, `anonymous`, `user:`, `client:`, `cn:`).
pub const PRINCIPAL_PATTERN: &str = r"^(\*|anonymous|(user|client|cn|group):.+)$";

/// Regular expression for a listener name (also used as a port name and a path segment).
pub const LISTENER_NAME_PATTERN: &str = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$";

/// Desired state of a Tributary MQTT broker deployment.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "tributary.io",
    version = "v1alpha1",
    kind = "MqttBroker",
    plural = "mqttbrokers",
    shortname = "mqtt",
    namespaced,
    status = "MqttBrokerStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A Kafka-native MQTT broker managed by tributary-operator.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Connections","type":"integer","jsonPath":".status.connections"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.replicas) && has(self.autoscaling))",
        "message": "replicas and autoscaling are mutually exclusive: remove spec.replicas to autoscale"
    }
]))]
pub struct MqttBrokerSpec {
    /// Broker container image. Defaults to the operator's `--broker-image` (Helm value
    /// `brokerImage`), else `localhost/tributary-broker:<operator version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Fixed number of broker pods (default 1). Mutually exclusive with `autoscaling`.
    /// Target of the scale subresource (`kubectl scale mqtt/NAME --replicas=N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,

    /// Horizontal autoscaling on connections per pod (and optionally CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// The Kafka cluster that holds every message and piece of session state.
    pub kafka: KafkaSpec,

    /// How MQTT topics map onto Kafka topics, and the Kafka topics the broker keeps state in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<TopicsSpec>,

    /// Network listeners. Defaults to a single plain MQTT listener `mqtt` on port 1883.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(a, self.exists_one(b, b.name == a.name))", "message": "listener names must be unique"},
        {"rule": "self.all(a, self.exists_one(b, b.port == a.port))", "message": "listener ports must be unique"}
    ]))]
    pub listeners: Vec<ListenerSpec>,

    /// Protocol limits the broker enforces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,

    /// Who may connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthenticationSpec>,

    /// What connected clients may do (ordered ACL rules, first match wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<AuthorizationSpec>,

    /// Shedding connections from pods well above the average after a scale-out (off by
    /// default; applied without restarting the pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceSpec>,

    /// The broker's log lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingSpec>,

    /// Span export with OpenTelemetry (OTLP/HTTP), off unless an endpoint is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingSpec>,

    /// The Service exposing the listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,

    /// Compute resources of the broker container. Defaults to requests of 250m CPU / 256Mi memory
    /// and a 512Mi memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Overrides for the broker pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplateOverrides>,
}

/// Horizontal autoscaling settings (rendered as an `autoscaling/v2` HorizontalPodAutoscaler).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
        "message": "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas"
    }
]))]
pub struct AutoscalingSpec {
    /// Lower bound of pods (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: Option<i32>,
    /// Upper bound of pods.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average MQTT connections per pod the autoscaler aims for (default 1000). Needs the
    /// `tributary_connections` pod metric exposed through the custom metrics API
    /// (prometheus-adapter rule in the Helm chart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub target_connections_per_pod: Option<i64>,
    /// Optional average CPU utilization target in percent of the CPU request.
    #[serde(default, rename = "targetCPUUtilization", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization: Option<i32>,
}

/// Kafka connection settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSpec {
    /// Comma-separated `host:port` list of Kafka bootstrap servers.
    #[schemars(length(min = 1))]
    pub bootstrap_servers: String,
    /// librdkafka properties passed as given (e.g. `security.protocol: SASL_SSL`). Never put
    /// secrets here: they end up in a ConfigMap. Use `credentialsSecretRef`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// Secret whose keys become librdkafka properties through `TRIBUTARY_KAFKA_<KEY>` environment
    /// variables: key `SASL_PASSWORD` sets `sasl.password`, `SASL_USERNAME` sets `sasl.username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,
}

/// A reference to a Secret in the MqttBroker's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A reference to one key of a Secret in the MqttBroker's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret (default: `passwords` for the password file, `secret`, `key.pem`
    /// and `jwks.json` for the JWT keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Topic routing and the Kafka topics the broker keeps state in.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicsSpec {
    /// Ordered MQTT → Kafka topic mappings, first match wins. Hot-reloaded by running brokers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mappings: Vec<TopicMapping>,
    /// Kafka topic for MQTT messages no mapping matches (default `mqtt-messages`). Hot-reloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), pattern(KAFKA_TOPIC_PATTERN))]
    pub default: Option<String>,
    /// Compacted Kafka topic holding retained messages (default `mqtt-retained`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), pattern(KAFKA_TOPIC_PATTERN))]
    pub retained: Option<String>,
    /// Compacted Kafka topic holding session state (default `mqtt-sessions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), pattern(KAFKA_TOPIC_PATTERN))]
    pub sessions: Option<String>,
    /// Partitions of topics the broker creates when missing (default 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub partitions: Option<i32>,
    /// Replication factor of topics the broker creates when missing (default 1; use 3 in production).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32767))]
    pub replication_factor: Option<i32>,
}

/// Routes MQTT topics matching any of `mqttTopics` to one Kafka topic.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicMapping {
    /// Destination Kafka topic.
    #[schemars(length(min = 1, max = 249), pattern(KAFKA_TOPIC_PATTERN))]
    pub kafka_topic: String,
    /// MQTT topic filters (`+` single level, `#` trailing multi level).
    #[schemars(length(min = 1))]
    #[schemars(inner(length(min = 1, max = 65535), pattern(TOPIC_FILTER_PATTERN)))]
    pub mqtt_topics: Vec<String>,
}

/// Transport protocol of a listener.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// MQTT over TCP.
    #[default]
    Mqtt,
    /// MQTT over TLS.
    Mqtts,
    /// MQTT over WebSocket.
    Ws,
    /// MQTT over WebSocket over TLS.
    Wss,
}

impl Protocol {
    /// The lower-case name used in the broker config and in endpoint URLs (the broker's).
    pub fn as_str(self) -> &'static str {
        contract::Protocol::from(self).as_str()
    }

    /// Whether the protocol runs over TLS and so needs a certificate (the broker's decision).
    pub fn is_tls(self) -> bool {
        contract::Protocol::from(self).uses_tls()
    }
}

// The CRD has its own enums because they carry the schema (`JsonSchema`); these conversions
// are the only place the two spellings meet.
impl From<Protocol> for contract::Protocol {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Mqtt => contract::Protocol::Mqtt,
            Protocol::Mqtts => contract::Protocol::Mqtts,
            Protocol::Ws => contract::Protocol::Ws,
            Protocol::Wss => contract::Protocol::Wss,
        }
    }
}

impl From<contract::Protocol> for Protocol {
    fn from(p: contract::Protocol) -> Self {
        match p {
            contract::Protocol::Mqtt => Protocol::Mqtt,
            contract::Protocol::Mqtts => Protocol::Mqtts,
            contract::Protocol::Ws => Protocol::Ws,
            contract::Protocol::Wss => Protocol::Wss,
        }
    }
}

/// One network listener of the broker.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(self.protocol == 'mqtts' || self.protocol == 'wss') == has(self.tlsSecretRef)",
        "message": "tlsSecretRef is required for mqtts/wss listeners and not allowed for mqtt/ws"
    },
    {
        "rule": "!has(self.path) || self.protocol == 'ws' || self.protocol == 'wss'",
        "message": "path is only for ws/wss listeners"
    }
]))]
pub struct ListenerSpec {
    /// Unique name (`[a-z0-9-]`), used as the Service port name and the TLS mount directory.
    #[schemars(length(min = 1, max = 15), pattern(LISTENER_NAME_PATTERN))]
    pub name: String,
    /// `mqtt`, `mqtts`, `ws` or `wss`.
    pub protocol: Protocol,
    /// Container and Service port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`, optionally `ca.crt`) for mqtts/wss,
    /// mounted at `/etc/tributary/tls/<name>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_ref: Option<SecretReference>,
    /// Require and verify client certificates against the Secret's `ca.crt` (mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_client_cert: Option<bool>,
    /// HTTP path of the WebSocket upgrade for ws/wss listeners (the broker's default: `/mqtt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/[!-~]*$"))]
    pub path: Option<String>,
}

/// Protocol limits (see the broker configuration contract).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Largest MQTT packet accepted, in bytes (default 1048576, Kafka's default
    /// `message.max.bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 268435455))]
    pub max_packet_size: Option<i64>,
    /// Bytes a pod may hold in packets still being received, over all connections (default
    /// 67108864); at least `maxPacketSize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_pending_bytes: Option<i64>,
    /// Receive Maximum advertised to clients (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub max_inflight: Option<i32>,
    /// Connections per pod, 0 for unlimited (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_connections: Option<i64>,
    /// Largest keep-alive in seconds, 0 to accept the client's value (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub max_keep_alive: Option<i32>,
    /// Seconds without a heartbeat after which the other pods take a pod's sessions over:
    /// publish their Wills, start their expiry (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 3600))]
    pub node_timeout: Option<i32>,
    /// Connections from one source address per pod, 0 for unlimited (default 0: fleets behind
    /// NAT share addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_connections_per_address: Option<i64>,
    /// CONNECTs per second per pod, 0 for unlimited (default 1000); over it CONNACK 0x9F.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_connect_rate: Option<i64>,
    /// Subscriptions per session (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_subscriptions: Option<i64>,
    /// Longest topic name or filter in bytes (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub max_topic_length: Option<i32>,
    /// Most levels of a topic name or filter (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub max_topic_levels: Option<i32>,
    /// Seconds over which a terminating pod closes its connections, spread out (default 30);
    /// the pod's termination grace period is this plus 30 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub drain_seconds: Option<i32>,
    /// Where MQTT 5 clients closed by the drain should reconnect (`host[:port]`): they get
    /// DISCONNECT 0x9C (Use another server) with this Server Reference instead of 0x8B.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65535))]
    pub drain_server_reference: Option<String>,
    /// Seconds back a rewinding SUBSCRIBE (MQTT 5 user property `tributary-rewind`) may replay
    /// from Kafka; 0 (the default) switches rewind off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_rewind_seconds: Option<i64>,
    /// Shared subscriptions each pod serves at a time, each a Kafka consumer (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_share_groups: Option<i64>,
    /// Messages queued per connected client (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_queued_messages: Option<i64>,
}

/// Rebalancing: a pod holding more than the average of the live pods plus `tolerancePercent`
/// closes connections at `perSecond` (MQTT 5: DISCONNECT 0x9C, Use another server) until it is
/// back under that line. Each pod reads the others' connection counts from their heartbeats in
/// the sessions topic.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceSpec {
    /// Turn rebalancing on (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How far above the average a pod may be, in percent of the average (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub tolerance_percent: Option<i32>,
    /// Connections a pod closes per second at most while above the line (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub per_second: Option<i64>,
}

/// Log output of the broker pods.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggingSpec {
    /// `text` (default) or `json` (one object per line, for log collectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormat> for contract::LogFormat {
    fn from(f: LogFormat) -> Self {
        match f {
            LogFormat::Text => contract::LogFormat::Text,
            LogFormat::Json => contract::LogFormat::Json,
        }
    }
}

/// OpenTelemetry span export of the broker pods.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TracingSpec {
    /// Base URL of an OTLP/HTTP collector, e.g. `http://otel-collector.observability:4318`
    /// (spans are posted to its `/v1/traces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub otlp_endpoint: Option<String>,
    /// Share of traces recorded, 0 to 1 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sample_ratio: Option<f64>,
}

/// Client authentication.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationSpec {
    /// Accept clients without credentials (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_anonymous: Option<bool>,
    /// Secret key holding lines `username:<argon2id PHC string>` (`tributary-broker
    /// hash-password`), mounted at `/etc/tributary/auth/passwords`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyReference>,
    /// JSON Web Tokens as CONNECT passwords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSpec>,
    /// Which name of a verified client certificate `cn:` rules match (default `commonName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_name: Option<CertificateName>,
}

/// JWT authentication: the key comes from a Secret, mounted under `/etc/tributary/auth/`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtSpec {
    /// Signature algorithm tokens must use.
    pub algorithm: JwtAlgorithm,
    /// The shared secret of HS algorithms (at least 32 bytes; key default `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyReference>,
    /// PEM public key of RS and ES algorithms (key default `key.pem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_ref: Option<SecretKeyReference>,
    /// JWKS document of RS and ES algorithms (key default `jwks.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_ref: Option<SecretKeyReference>,
    /// Required `aud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Required `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Claim naming the user (default `sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_claim: Option<String>,
    /// Claim listing the user's groups, for `group:` rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
}

/// JWT signature algorithms.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum JwtAlgorithm {
    /// HMAC SHA-256.
    #[default]
    HS256,
    /// HMAC SHA-384.
    HS384,
    /// HMAC SHA-512.
    HS512,
    /// RSA PKCS#1 v1.5 SHA-256.
    RS256,
    /// RSA PKCS#1 v1.5 SHA-384.
    RS384,
    /// RSA PKCS#1 v1.5 SHA-512.
    RS512,
    /// ECDSA P-256 SHA-256.
    ES256,
    /// ECDSA P-384 SHA-384.
    ES384,
}

impl From<JwtAlgorithm> for contract::JwtAlgorithm {
    fn from(a: JwtAlgorithm) -> Self {
        match a {
            JwtAlgorithm::HS256 => contract::JwtAlgorithm::HS256,
            JwtAlgorithm::HS384 => contract::JwtAlgorithm::HS384,
            JwtAlgorithm::HS512 => contract::JwtAlgorithm::HS512,
            JwtAlgorithm::RS256 => contract::JwtAlgorithm::RS256,
            JwtAlgorithm::RS384 => contract::JwtAlgorithm::RS384,
            JwtAlgorithm::RS512 => contract::JwtAlgorithm::RS512,
            JwtAlgorithm::ES256 => contract::JwtAlgorithm::ES256,
            JwtAlgorithm::ES384 => contract::JwtAlgorithm::ES384,
        }
    }
}

/// The name of a client certificate that `cn:` rules match.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CertificateName {
    /// The subject common name.
    #[default]
    CommonName,
    /// The first DNS subject alternative name.
    SanDns,
    /// The first URI subject alternative name (e.g. a SPIFFE ID).
    SanUri,
    /// The first e-mail subject alternative name.
    SanEmail,
}

impl From<CertificateName> for contract::CertificateName {
    fn from(c: CertificateName) -> Self {
        match c {
            CertificateName::CommonName => contract::CertificateName::CommonName,
            CertificateName::SanDns => contract::CertificateName::SanDns,
            CertificateName::SanUri => contract::CertificateName::SanUri,
            CertificateName::SanEmail => contract::CertificateName::SanEmail,
        }
    }
}

/// Whether a rule allows or denies.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Permit the operation.
    #[default]
    Allow,
    /// Refuse the operation.
    Deny,
}

impl From<Effect> for contract::Effect {
    fn from(e: Effect) -> Self {
        match e {
            Effect::Allow => contract::Effect::Allow,
            Effect::Deny => contract::Effect::Deny,
        }
    }
}

/// The MQTT operation an ACL rule applies to.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// PUBLISH packets.
    Publish,
    /// SUBSCRIBE packets.
    Subscribe,
    /// Both.
    #[default]
    All,
}

impl From<Action> for contract::Action {
    fn from(a: Action) -> Self {
        match a {
            Action::Publish => contract::Action::Publish,
            Action::Subscribe => contract::Action::Subscribe,
            Action::All => contract::Action::All,
        }
    }
}

/// Client authorization: ordered ACL rules, first match wins. Hot-reloaded by running brokers.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationSpec {
    /// Effect when no rule matches (default `allow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_effect: Option<Effect>,
    /// Ordered rules, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<AclRule>,
}

/// One ACL rule.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AclRule {
    /// `*`, `anonymous`, `user:<name>`, `client:<client id>`, `cn:<certificate name>` or
    /// `group:<token group>`.
    #[schemars(pattern(PRINCIPAL_PATTERN))]
    pub principal: String,
    /// `publish`, `subscribe` or `all`.
    pub action: Action,
    /// MQTT topic filter the rule covers.
    #[schemars(length(min = 1, max = 65535), pattern(TOPIC_FILTER_PATTERN))]
    pub topic: String,
    /// `allow` or `deny`.
    pub effect: Effect,
}

/// Kubernetes Service type for the listeners.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    /// An external load balancer (default).
    #[default]
    LoadBalancer,
    /// A port on every node.
    NodePort,
    /// Cluster-internal only.
    ClusterIP,
}

impl ServiceType {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::LoadBalancer => "LoadBalancer",
            ServiceType::NodePort => "NodePort",
            ServiceType::ClusterIP => "ClusterIP",
        }
    }
}

/// How the listeners are exposed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `LoadBalancer` (default), `NodePort` or `ClusterIP`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    /// Annotations for the Service (cloud load balancer settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Load balancer implementation class (`spec.loadBalancerClass`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
}

/// Overrides applied to the broker pod template.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Extra pod labels (the standard `app.kubernetes.io/*` labels always win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Node selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity; replaces the default preferred anti-affinity across nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Topology spread constraints; replace the default zone spread.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
}

/// Observed state, following Strimzi conventions.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttBrokerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `KafkaReachable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Broker pods that exist (scale subresource `statusReplicasPath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Broker pods that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Label selector of the broker pods (scale subresource `labelSelectorPath`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Open MQTT connections summed over the ready pods' `tributary_connections` metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<i64>,
    /// Client endpoints from the Service's load balancer, e.g. `mqtt://203.0.113.7:1883`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
}
