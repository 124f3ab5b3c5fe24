//! Everything that talks to Kafka, behind the [`log::Log`] trait (Kafka itself, or an in-memory
//! log for tests): client settings, topic creation, the shared producer, the tailers, consumer groups and
//! bounded range reads. It deals in records (key, value, headers)
//! and knows nothing of MQTT: what a record means is decided by its users.

pub(crate) mod admin;
pub(crate) mod group;
pub(crate) mod kafka_log;
pub(crate) mod log;
pub(crate) mod memory;
pub(crate) mod offsets;
pub(crate) mod partition;
pub(crate) mod producer;
pub(crate) mod range;
pub(crate) mod record;
pub(crate) mod tailer;

use rdkafka::metadata::Metadata;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::BTreeMap;

/// librdkafka settings common to every client of this process: the bootstrap servers, then the
/// user's `kafka.properties`, which win over our defaults.
pub(crate) fn client_config(
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

/// The partitions of `topic` as `metadata` lists them (none when Kafka reported an error).
pub(crate) fn partitions_of(metadata: &Metadata, topic: &str) -> Vec<i32> {
    metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect()
}

/// The partitions of `list` that are at an explicit offset, with that offset (logical ones such
/// as "beginning" or "not fetched yet" are left out).
pub(crate) fn known_offsets(list: &TopicPartitionList) -> impl Iterator<Item = (i32, i64)> + '_ {
    list.elements().into_iter().filter_map(|e| match e.offset() {
        Offset::Offset(o) => Some((e.partition(), o)),
        _ => None,
    })
}
