//! The sections of the configuration file: one type per YAML mapping, with the serde renames
//! and defaults that make the contract of `docs/config-contract.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::{DEFAULT_ADMIN_PORT, DEFAULT_MAX_PACKET_SIZE, DEFAULT_MAX_PENDING_BYTES};

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
    /// HTTP path of the WebSocket upgrade (`ws` and `wss` only; refused otherwise); see
    /// [`Listener::ws_path`] for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The HTTP path a WebSocket listener answers on when `path` is not set: what MQTT.js, paho
/// and most other WebSocket MQTT clients use.
pub const DEFAULT_WS_PATH: &str = "/mqtt";

impl Listener {
    /// The HTTP path of the WebSocket upgrade: `path`, or [`DEFAULT_WS_PATH`].
    pub fn ws_path(&self) -> &str {
        self.path.as_deref().unwrap_or(DEFAULT_WS_PATH)
    }
}

impl Default for Listener {
    /// Plain MQTT on all interfaces, port 1883 (the IANA port for MQTT).
    fn default() -> Self {
        Listener {
            name: "mqtt".to_owned(),
            protocol: Protocol::Mqtt,
            address: SocketAddr::from(([0, 0, 0, 0], 1883)),
            tls: None,
            path: None,
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
    /// Whether this protocol carries MQTT in WebSocket frames, and so has an HTTP `path`.
    pub fn uses_websocket(self) -> bool {
        matches!(self, Protocol::Ws | Protocol::Wss)
    }

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
    /// All interfaces, port [`DEFAULT_ADMIN_PORT`], so that kubelet probes and Prometheus can
    /// reach it.
    fn default() -> Self {
        Admin { address: SocketAddr::from(([0, 0, 0, 0], DEFAULT_ADMIN_PORT)) }
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
    /// Largest packet accepted, in bytes: 1..=268435455 (default 1 MiB, as Kafka's
    /// `message.max.bytes`). A larger one is refused at its fixed header, before its body is read.
    pub max_packet_size: u32,
    /// Bytes the process may hold in packets still being received, over all connections
    /// (default 64 MiB): a packet above 4 KiB reserves its size here until it is complete, and
    /// a connection finding no room is closed (MQTT 5: 0x97). At least `maxPacketSize`.
    pub max_pending_bytes: u64,
    /// Receive Maximum advertised to clients: unacknowledged QoS 1/2 publishes in flight.
    pub max_inflight: u16,
    /// Concurrent connections per broker; 0 means unlimited.
    pub max_connections: u32,
    /// Concurrent connections from one source IP address; 0 (the default) means unlimited,
    /// because fleets behind carrier-grade NAT share addresses. Over it, CONNACK 0x97.
    pub max_connections_per_address: u32,
    /// CONNECT packets accepted per second by this process (a bucket holding one second's
    /// worth); 0 means unlimited. Over it, CONNACK 0x9F (MQTT 3.1.1: 0x03): a reconnect storm
    /// is spread out instead of queueing on Kafka.
    pub max_connect_rate: u32,
    /// Subscriptions one session may hold (0: unlimited); a SUBSCRIBE beyond it gets 0x97 for
    /// that filter.
    pub max_subscriptions: u32,
    /// Longest topic name or filter in bytes (MQTT allows 65,535); longer ones are refused with
    /// 0x90 (names) or 0x8F (filters).
    pub max_topic_length: u16,
    /// Most `/`-separated levels in a topic name or filter, refused like `maxTopicLength`.
    pub max_topic_levels: u16,
    /// Messages queued for one connected client before new ones are dropped (QoS 0) or left
    /// to be read back from Kafka (QoS 1/2).
    pub max_queued_messages: u32,
    /// Upper bound on the client's keep-alive in seconds; 0 accepts the client's value.
    pub max_keep_alive: u16,
    /// Seconds without a heartbeat after which other brokers take a broker's sessions over
    /// (publish their Wills, start their expiry): 2..=3600.
    pub node_timeout: u16,
    /// Seconds over which a shutting-down broker closes its connections, each at its own
    /// moment, so the other pods see a steady trickle of reconnects rather than a storm:
    /// 0..=3600 (0: all at once). Pods need a termination grace period above it.
    pub drain_seconds: u16,
    /// Where MQTT 5 clients closed by the drain should reconnect (e.g. `mqtt.example.com:8883`):
    /// sent as the Server Reference of a DISCONNECT 0x9C (Use another server) instead of 0x8B.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_server_reference: Option<String>,
    /// How far back, in seconds, a SUBSCRIBE may ask to replay with the MQTT 5 user property
    /// `tributary-rewind`: 0 (the default) switches rewind off. A rewind asking further back is
    /// refused (SUBACK 0x83); each running rewind holds a Kafka consumer.
    pub max_rewind_seconds: u32,
    /// Shared subscriptions (`$share/{group}/{filter}`) this process serves at a time: each is a
    /// Kafka consumer of its own. A SUBSCRIBE for another one is refused (SUBACK 0x97).
    pub max_share_groups: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            max_inflight: 32,
            max_connections: 0,
            max_connections_per_address: 0,
            max_connect_rate: 1000,
            max_subscriptions: 1000,
            max_topic_length: 1024,
            max_topic_levels: 32,
            max_queued_messages: 1000,
            max_keep_alive: 0,
            node_timeout: 15,
            drain_seconds: 30,
            drain_server_reference: None,
            max_rewind_seconds: 0,
            max_share_groups: 100,
        }
    }
}

/// The log lines the broker writes (standard output).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Logging {
    /// `text` (the default) or `json`, one object per line; the environment variable
    /// `TRIBUTARY_LOG_FORMAT` overrides it.
    pub format: LogFormat,
}

impl Logging {
    /// Whether this is the default section (which is not written out, so that files without it
    /// render the same).
    pub fn is_default(&self) -> bool {
        *self == Logging::default()
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {s:?}: expected `text` or `json`")),
        }
    }
}

/// Shedding connections when this broker holds well above the average of the live brokers
/// sharing its sessions topic (after a scale-out, new pods start empty while the old ones keep
/// their clients). Each broker's heartbeat carries its connection count, so every broker sees
/// the same picture without a coordinator. Hot-reloadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Rebalance {
    /// Off by default: moving clients costs them a reconnect.
    pub enabled: bool,
    /// How far above the average a broker may be before it sheds, in percent of the average:
    /// 1..=1000 (default 10). It then sheds down to that line, not below.
    pub tolerance_percent: u16,
    /// Connections closed per second at most while shedding: 1..=100000 (default 20). MQTT 5
    /// clients get DISCONNECT 0x9C (Use another server, with `limits.drainServerReference` when
    /// set); MQTT 3.1.1 clients see the socket close.
    pub per_second: u32,
}

impl Default for Rebalance {
    fn default() -> Self {
        Rebalance { enabled: false, tolerance_percent: 10, per_second: 20 }
    }
}

impl Rebalance {
    /// Whether this is the default section (which is not written out, so that files without it
    /// render the same).
    pub fn is_default(&self) -> bool {
        *self == Rebalance::default()
    }
}

/// Spans exported with OpenTelemetry over OTLP/HTTP. The standard `OTEL_*` environment
/// variables take precedence over these keys (see README, "Operations").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Tracing {
    /// Base URL of an OTLP/HTTP collector, such as `http://otel-collector:4318`; spans are
    /// posted to its `/v1/traces`. Unset (and no `OTEL_EXPORTER_OTLP_ENDPOINT`): no tracing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Share of traces recorded, 0 to 1 (default 1: all).
    pub sample_ratio: f64,
}

impl Default for Tracing {
    fn default() -> Self {
        Tracing { otlp_endpoint: None, sample_ratio: 1.0 }
    }
}

impl Tracing {
    /// Whether this is the default section (which is not written out, so that files without it
    /// render the same).
    pub fn is_default(&self) -> bool {
        *self == Tracing::default()
    }
}

/// Client authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Authentication {
    /// Accept clients that send no username.
    pub allow_anonymous: bool,
    /// File of `username:<argon2id PHC string>` lines (`tributary-broker hash-password`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// JSON Web Tokens as CONNECT passwords.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<Jwt>,
    /// Which name of a verified client certificate `cn:` principals match.
    pub certificate_name: CertificateName,
}

impl Default for Authentication {
    fn default() -> Self {
        Authentication {
            allow_anonymous: true,
            password_file: None,
            jwt: None,
            certificate_name: CertificateName::default(),
        }
    }
}

/// JSON Web Token authentication: a CONNECT password of the form `header.payload.signature` is
/// verified as a token signed with the configured key; its `usernameClaim` is the principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Jwt {
    /// The signature algorithm tokens must use (the token's own `alg` must be the same).
    pub algorithm: JwtAlgorithm,
    /// Shared secret of the HS algorithms (the file's bytes, trailing whitespace removed; at
    /// least 32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// PEM public key (RSA or EC) of the RS and ES algorithms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
    /// A JWKS document (`{"keys": [...]}`) of the RS and ES algorithms; the token's `kid`
    /// selects the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// Required `aud` (the token's `aud`, a string or a list, must hold it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Required `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The claim naming the user (`user:` principals); default `sub`.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// A claim listing the user's groups (`group:` principals): a string or a list of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
}

/// The claim naming the user when `usernameClaim` is not set.
pub const DEFAULT_USERNAME_CLAIM: &str = "sub";

fn default_username_claim() -> String {
    DEFAULT_USERNAME_CLAIM.to_owned()
}

/// Signature algorithms of [`Jwt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
}

impl JwtAlgorithm {
    /// Whether the key is a shared secret (`secretFile`) rather than a public key.
    pub fn is_hmac(self) -> bool {
        matches!(self, JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512)
    }
}

/// The name of a verified client certificate that `cn:` principals match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CertificateName {
    /// The subject's common name (CN).
    #[default]
    CommonName,
    /// The first DNS name of the subject alternative names.
    SanDns,
    /// The first URI of the subject alternative names (e.g. a SPIFFE ID).
    SanUri,
    /// The first e-mail address (RFC 822 name) of the subject alternative names.
    SanEmail,
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
/// `user:<username>`, `client:<client id>`, `cn:<X.509 certificate name>` or `group:<name>`.
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
    /// `group:<name>`: users whose token lists the group (`authentication.jwt.groupsClaim`).
    Group(String),
}

impl FromStr for Principal {
    type Err = String;

    /// Parses the configuration syntax; the error says which forms are accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "expected `*`, `anonymous`, `user:<name>`, `client:<id>`, `cn:<name>` or `group:<name>`";
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
            "group" => Ok(Principal::Group(name.to_owned())),
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
            Principal::Group(g) => write!(f, "group:{g}"),
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
                f.write_str(
                    "a principal: `*`, `anonymous`, `user:<name>`, `client:<id>`, `cn:<name>` or `group:<name>`",
                )
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
