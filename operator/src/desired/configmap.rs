//! The broker configuration file (docs/config-contract.md) and the ConfigMap holding it.
//!
//! The file is the broker's own [`Config`], built from the spec and serialized with the
//! broker's serde definitions: the contract has one definition, in `tributary_broker::config`,
//! and settings the spec leaves out take the broker's defaults. Every field is still written
//! out, so a running broker never depends on defaults of a different version. Secrets never
//! appear here: Kafka credentials arrive as environment variables, TLS material and passwords
//! as mounted files.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use k8s_openapi::api::core::v1::ConfigMap;
use tributary_broker::config::{
    Admin, Authentication, Authorization, AuthorizationRule, Config, Jwt, Kafka, Limits, Listener, Logging,
    MappingRule, Principal, Rebalance, Tls, Topics, Tracing, DEFAULT_USERNAME_CLAIM,
};

use super::Owner;
use crate::crd::{JwtSpec, ListenerSpec, MqttBrokerSpec, SecretKeyReference};
use crate::error::Error;
use crate::labels::{
    fnv1a64, tls_dir, ADMIN_PORT, CONFIG_DIR, CONFIG_KEY, JWT_JWKS, JWT_PUBLIC_KEY, JWT_SECRET, PASSWORD_FILE,
};

/// The listeners in effect: the spec's, or the broker's default listener.
pub fn effective_listeners(spec: &MqttBrokerSpec) -> Vec<ListenerSpec> {
    if !spec.listeners.is_empty() {
        return spec.listeners.clone();
    }
    let default = Listener::default();
    vec![ListenerSpec {
        protocol: default.protocol.into(),
        port: i32::from(default.address.port()),
        name: default.name,
        tls_secret_ref: None,
        require_client_cert: None,
        path: None,
    }]
}

/// Renders the broker configuration for a spec. Meant for validated specs; on others, integers
/// too large or too small for the contract's types saturate, so rendering never fails (the
/// validation that renders the spec has refused those values already).
pub fn broker_config(spec: &MqttBrokerSpec) -> Config {
    let topics = spec.topics.clone().unwrap_or_default();
    let limits = spec.limits.clone().unwrap_or_default();
    let authn = spec.authentication.clone().unwrap_or_default();
    let authz = spec.authorization.clone().unwrap_or_default();
    let tracing = spec.tracing.clone().unwrap_or_default();
    let rebalance = spec.rebalance.clone().unwrap_or_default();
    let (default_topics, default_limits, default_authn) =
        (Topics::default(), Limits::default(), Authentication::default());
    let (default_tracing, default_rebalance) = (Tracing::default(), Rebalance::default());
    Config {
        listeners: effective_listeners(spec).into_iter().map(listener).collect(),
        admin: Admin { address: any_address(ADMIN_PORT) },
        kafka: Kafka {
            bootstrap_servers: spec.kafka.bootstrap_servers.trim().to_string(),
            properties: spec.kafka.properties.clone(),
        },
        topics: Topics {
            mappings: topics
                .mappings
                .into_iter()
                .map(|m| MappingRule { kafka_topic: m.kafka_topic, mqtt_topics: m.mqtt_topics })
                .collect(),
            default: topics.default.unwrap_or(default_topics.default),
            retained: topics.retained.unwrap_or(default_topics.retained),
            sessions: topics.sessions.unwrap_or(default_topics.sessions),
            partitions: topics.partitions.unwrap_or(default_topics.partitions),
            replication_factor: topics.replication_factor.unwrap_or(default_topics.replication_factor),
        },
        limits: Limits {
            max_packet_size: limits.max_packet_size.map_or(default_limits.max_packet_size, saturate),
            max_pending_bytes: limits.max_pending_bytes.map_or(default_limits.max_pending_bytes, saturate),
            max_inflight: limits.max_inflight.map_or(default_limits.max_inflight, |v| saturate(v.into())),
            max_connections: limits.max_connections.map_or(default_limits.max_connections, saturate),
            max_keep_alive: limits.max_keep_alive.map_or(default_limits.max_keep_alive, |v| saturate(v.into())),
            node_timeout: limits.node_timeout.map_or(default_limits.node_timeout, |v| saturate(v.into())),
            max_connections_per_address: limits
                .max_connections_per_address
                .map_or(default_limits.max_connections_per_address, saturate),
            max_connect_rate: limits.max_connect_rate.map_or(default_limits.max_connect_rate, saturate),
            max_subscriptions: limits.max_subscriptions.map_or(default_limits.max_subscriptions, saturate),
            max_topic_length: limits.max_topic_length.map_or(default_limits.max_topic_length, |v| saturate(v.into())),
            max_topic_levels: limits.max_topic_levels.map_or(default_limits.max_topic_levels, |v| saturate(v.into())),
            max_queued_messages: limits.max_queued_messages.map_or(default_limits.max_queued_messages, saturate),
            drain_seconds: limits.drain_seconds.map_or(default_limits.drain_seconds, |v| saturate(v.into())),
            drain_server_reference: limits.drain_server_reference,
            max_rewind_seconds: limits.max_rewind_seconds.map_or(default_limits.max_rewind_seconds, saturate),
            max_share_groups: limits.max_share_groups.map_or(default_limits.max_share_groups, saturate),
        },
        authentication: Authentication {
            allow_anonymous: authn.allow_anonymous.unwrap_or(default_authn.allow_anonymous),
            password_file: authn.password_secret_ref.map(|_| PASSWORD_FILE.into()),
            jwt: authn.jwt.map(jwt),
            certificate_name: authn.certificate_name.map_or(default_authn.certificate_name, Into::into),
        },
        authorization: Authorization {
            default_effect: authz.default_effect.map_or_else(|| Authorization::default().default_effect, Into::into),
            rules: authz
                .rules
                .into_iter()
                .map(|r| AuthorizationRule {
                    // An invalid principal (refused by validation) renders as a user of that
                    // name rather than failing: rendering is total.
                    principal: r.principal.parse().unwrap_or(Principal::User(r.principal)),
                    action: r.action.into(),
                    topic: r.topic,
                    effect: r.effect.into(),
                })
                .collect(),
        },
        logging: Logging {
            format: spec.logging.as_ref().and_then(|l| l.format).map_or_else(Default::default, Into::into),
        },
        tracing: Tracing {
            otlp_endpoint: tracing.otlp_endpoint,
            sample_ratio: tracing.sample_ratio.unwrap_or(default_tracing.sample_ratio),
        },
        rebalance: Rebalance {
            enabled: rebalance.enabled.unwrap_or(default_rebalance.enabled),
            tolerance_percent: rebalance
                .tolerance_percent
                .map_or(default_rebalance.tolerance_percent, |v| saturate(v.into())),
            per_second: rebalance.per_second.map_or(default_rebalance.per_second, saturate),
        },
    }
}

/// JWT authentication with the key files where the Secrets are mounted.
fn jwt(j: JwtSpec) -> Jwt {
    let file = |r: &Option<SecretKeyReference>, path: &str| r.as_ref().map(|_| format!("{CONFIG_DIR}/{path}").into());
    Jwt {
        algorithm: j.algorithm.into(),
        secret_file: file(&j.secret_ref, JWT_SECRET),
        public_key_file: file(&j.public_key_ref, JWT_PUBLIC_KEY),
        jwks_file: file(&j.jwks_ref, JWT_JWKS),
        audience: j.audience,
        issuer: j.issuer,
        username_claim: j.username_claim.unwrap_or_else(|| DEFAULT_USERNAME_CLAIM.to_owned()),
        groups_claim: j.groups_claim,
    }
}

/// One listener: bound on all interfaces, with the TLS files where the Secret is mounted.
fn listener(l: ListenerSpec) -> Listener {
    let mtls = l.require_client_cert == Some(true);
    let dir = tls_dir(&l.name);
    Listener {
        protocol: l.protocol.into(),
        address: any_address(l.port),
        tls: l.protocol.is_tls().then(|| Tls {
            cert_file: format!("{dir}/tls.crt").into(),
            key_file: format!("{dir}/tls.key").into(),
            client_ca_file: mtls.then(|| format!("{dir}/ca.crt").into()),
            require_client_cert: mtls,
        }),
        path: l.path,
        name: l.name,
    }
}

/// `0.0.0.0:port`: pods listen on every interface, the Service picks the traffic.
fn any_address(port: i32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, saturate(port.into())))
}

/// Converts a CRD integer to the contract's narrower type, clamped to that type's range.
fn saturate<T: TryFrom<i64> + Bounded>(value: i64) -> T {
    T::try_from(value).unwrap_or(if value < 0 { T::MIN } else { T::MAX })
}

/// The bounds [`saturate`] clamps to.
trait Bounded: Sized {
    const MIN: Self;
    const MAX: Self;
}

impl Bounded for u16 {
    const MIN: Self = u16::MIN;
    const MAX: Self = u16::MAX;
}

impl Bounded for u32 {
    const MIN: Self = u32::MIN;
    const MAX: Self = u32::MAX;
}

impl Bounded for u64 {
    const MIN: Self = u64::MIN;
    const MAX: Self = u64::MAX;
}

/// Hash of the configuration the broker cannot hot-reload: [`Config::restart_relevant`], the
/// broker's own decision. A change rolls the Deployment through the pod template annotation.
pub fn restart_hash(config: &Config) -> Result<String, Error> {
    let bytes = serde_json::to_vec(&config.restart_relevant())?;
    Ok(format!("{:016x}", fnv1a64(&bytes)))
}

/// The ConfigMap with key `broker.yaml`.
pub fn config_map(owner: &Owner, config: &Config) -> Result<ConfigMap, Error> {
    Ok(ConfigMap {
        metadata: owner.meta(owner.name.clone()),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), serde_yaml::to_string(config)?)])),
        ..ConfigMap::default()
    })
}
