//! Kafka: are the bootstrap servers reachable, and do the topics the brokers need exist.
//!
//! Topics are created with the broker's own `ensure_topics`, from the very `broker.yaml` the
//! operator renders, so the operator and a broker started by hand create identical topics:
//! mapped and default topics with the `delete` policy, the retained and sessions topics
//! compacted, `topics.partitions` partitions and `topics.replicationFactor` replicas. Existing
//! topics are never altered and no topic is ever deleted. Brokers still create missing topics
//! at start, so a cluster whose Kafka ACLs forbid the operator to create topics works with
//! `--no-create-topics`.

use std::time::Duration;

use tokio::net::TcpStream;
use tributary_broker::config::{Config, KAFKA_ENV_PREFIX};
use tributary_broker::ensure_topics;

use crate::validate::parse_host_port;

/// Outcome of checking Kafka, for the `KafkaReachable` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaCheck {
    /// At least one bootstrap server accepted a TCP connection.
    pub reachable: bool,
    /// Whether the brokers' topics exist: `None` when topic creation is disabled or Kafka is
    /// unreachable, `Some(false)` when creating them failed.
    pub topics_ready: Option<bool>,
    /// What was tried and what failed.
    pub message: String,
}

impl KafkaCheck {
    /// Kafka is usable by the brokers as far as the operator can tell.
    pub fn healthy(&self) -> bool {
        self.reachable && self.topics_ready != Some(false)
    }
}

/// Connects to every server of a comma-separated `host:port` list, each within `timeout`.
pub async fn check_bootstrap(bootstrap_servers: &str, timeout: Duration) -> KafkaCheck {
    let mut reached = Vec::new();
    let mut failed = Vec::new();
    for server in bootstrap_servers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let outcome = match parse_host_port(server) {
            Err(e) => Err(e.to_string()),
            Ok((host, port)) => match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {}s", timeout.as_secs_f32())),
            },
        };
        match outcome {
            Ok(()) => reached.push(server.to_string()),
            Err(e) => failed.push(format!("{server} ({e})")),
        }
    }
    if reached.is_empty() {
        return KafkaCheck {
            reachable: false,
            topics_ready: None,
            message: format!("no bootstrap server reachable: {}", failed.join(", ")),
        };
    }
    let mut message = format!("reached {}", reached.join(", "));
    if !failed.is_empty() {
        message.push_str(&format!("; unreachable: {}", failed.join(", ")));
    }
    KafkaCheck { reachable: true, topics_ready: None, message }
}

/// The Kafka side of the configuration the brokers will run with: the rendered `broker.yaml`
/// plus the credentials Secret's keys, applied the way the broker applies the
/// `TRIBUTARY_KAFKA_*` variables the Deployment derives from that Secret.
pub fn broker_config(broker_yaml: &str, credentials: impl Iterator<Item = (String, String)>) -> Result<Config, String> {
    let mut config =
        Config::from_yaml_str(broker_yaml).map_err(|e| format!("rendered broker.yaml is not valid: {e}"))?;
    config.apply_env_overrides(credentials.map(|(key, value)| (format!("{KAFKA_ENV_PREFIX}{key}"), value)));
    Ok(config)
}

/// Checks reachability (each server within `connect_timeout`), then creates the missing topics
/// `config` names within `topics_timeout`.
pub async fn prepare(config: &Config, connect_timeout: Duration, topics_timeout: Duration) -> KafkaCheck {
    let mut check = check_bootstrap(&config.kafka.bootstrap_servers, connect_timeout).await;
    if !check.reachable {
        return check;
    }
    let data_topics = match config.mapping() {
        Ok(mapping) => mapping.all_kafka_topics(),
        Err(e) => return topics_failed(check, &e.to_string()),
    };
    match tokio::time::timeout(topics_timeout, ensure_topics(config, &data_topics)).await {
        Err(_) => topics_failed(check, &format!("kafka did not answer within {}s", topics_timeout.as_secs_f32())),
        Ok(Err(e)) => topics_failed(check, &e.to_string()),
        Ok(Ok(created)) => {
            let mut all = data_topics;
            all.extend([config.topics.retained.clone(), config.topics.sessions.clone()]);
            check.message.push_str(&format!("; topics ready: {}", all.join(", ")));
            if !created.is_empty() {
                check.message.push_str(&format!(" (created {})", created.join(", ")));
            }
            check.topics_ready = Some(true);
            check
        }
    }
}

fn topics_failed(mut check: KafkaCheck, why: &str) -> KafkaCheck {
    check.topics_ready = Some(false);
    check.message.push_str(&format!("; cannot create topics: {why}"));
    check
}
