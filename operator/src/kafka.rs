//! Kafka reachability: a TCP connect to each bootstrap server.
//!
//! The operator deliberately does not link a Kafka client. Missing topics (the compacted state
//! topics included) are created by the broker at start from `topics.partitions` and
//! `topics.replicationFactor` in its configuration; the operator never creates or deletes topics.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::validate::parse_host_port;

/// Outcome of probing the bootstrap servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaCheck {
    /// At least one bootstrap server accepted a TCP connection.
    pub reachable: bool,
    /// What was tried and what failed, for the `KafkaReachable` condition.
    pub message: String,
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
    let topics_note = "missing topics are created by the broker at start";
    if reached.is_empty() {
        KafkaCheck { reachable: false, message: format!("no bootstrap server reachable: {}", failed.join(", ")) }
    } else if failed.is_empty() {
        KafkaCheck { reachable: true, message: format!("reached {}; {topics_note}", reached.join(", ")) }
    } else {
        KafkaCheck {
            reachable: true,
            message: format!("reached {}; unreachable: {}; {topics_note}", reached.join(", "), failed.join(", ")),
        }
    }
}
