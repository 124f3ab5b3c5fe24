//! Everything that talks to Kafka: client settings, topic creation, the shared producer and the
//! shared tailing consumers.

pub mod admin;
pub mod offsets;
pub mod partition;
pub mod producer;
pub mod tailer;

use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};

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

/// The partitions of `list` that are at an explicit offset, with that offset (logical ones such
/// as "beginning" or "not fetched yet" are left out).
pub fn known_offsets(list: &TopicPartitionList) -> impl Iterator<Item = (i32, i64)> + '_ {
    list.elements().into_iter().filter_map(|e| match e.offset() {
        Offset::Offset(o) => Some((e.partition(), o)),
        _ => None,
    })
}

/// Removes from `targets` (partition → offset to reach) every partition whose consumer
/// position has reached its target: the last records below a target may be missing (compacted,
/// or never delivered as records), so seeing them is not the only way to know a read is done.
pub fn drop_reached(targets: &mut HashMap<i32, i64>, positions: &TopicPartitionList) {
    for (p, o) in known_offsets(positions) {
        if targets.get(&p).is_some_and(|t| o >= *t) {
            targets.remove(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partitions_that_reached_their_target_are_dropped() {
        let mut positions = TopicPartitionList::new();
        positions.add_partition_offset("t", 0, Offset::Offset(10)).unwrap();
        positions.add_partition_offset("t", 1, Offset::Offset(4)).unwrap();
        positions.add_partition_offset("t", 2, Offset::Invalid).unwrap();
        assert_eq!(known_offsets(&positions).collect::<Vec<_>>(), [(0, 10), (1, 4)]);
        let mut targets = HashMap::from([(0, 10), (1, 5), (2, 0)]);
        drop_reached(&mut targets, &positions);
        assert_eq!(targets, HashMap::from([(1, 5), (2, 0)]), "an unknown position reaches nothing");
    }
}
