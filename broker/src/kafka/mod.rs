//! Everything that talks to Kafka: client settings, topic creation, the shared producer and the
//! shared tailing consumers.

pub mod admin;
pub mod offsets;
pub mod partition;
pub mod producer;
pub mod tailer;

use rdkafka::ClientConfig;
use std::collections::BTreeMap;

/// librdkafka settings common to every client of this process: the bootstrap servers, then the
/// user's `kafka.properties`, which win over our defaults.
pub fn client_config(
    bootstrap: &str,
    properties: &BTreeMap<String, String>,
    defaults: &[(&str, &str)],
) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    for (k, v) in defaults {
        cfg.set(*k, *v);
    }
    for (k, v) in properties {
        cfg.set(k, v);
    }
    cfg
}
