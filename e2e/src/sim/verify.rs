//! The Kafka side of a run: every record of the devices' topic read back with rdkafka and held
//! against what the devices sent and had acknowledged.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::device::{parse_payload, Ledger};

/// What Kafka holds of a run.
#[derive(Debug, Default, serde::Serialize)]
pub struct Verdict {
    /// Distinct messages of the run found.
    pub found: u64,
    /// Records of a message found more than once (allowed at QoS 1, a fault at QoS 0).
    pub duplicates: u64,
    /// Acknowledged QoS 1 messages missing: a broken promise.
    pub acked_missing: u64,
    /// The first few of them, as (device, sequence number).
    pub acked_missing_examples: Vec<(u64, u64)>,
    /// Sent messages missing that no acknowledgement promised (QoS 0, or lost with the
    /// connection before the PUBACK).
    pub unpromised_missing: u64,
}

/// Reads `topic` from its beginning to its current end and checks it against `ledgers`
/// (device index → ledger) for run `run`. `acknowledged`: the devices published at QoS 1.
pub fn check(
    bootstrap: &str,
    topic: &str,
    run: u64,
    ledgers: &HashMap<u64, Ledger>,
    acknowledged: bool,
) -> anyhow::Result<Verdict> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "tributary-load-verify")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut ends = HashMap::new();
    let mut list = TopicPartitionList::new();
    for p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(10))?;
        if high > low {
            ends.insert(*p, high);
            list.add_partition_offset(topic, *p, Offset::Beginning)?;
        }
    }
    consumer.assign(&list)?;
    let mut seen: HashMap<(u64, u64), u32> = HashMap::new();
    let mut last_progress = Instant::now();
    while !ends.is_empty() && last_progress.elapsed() < Duration::from_secs(30) {
        let Some(read) = consumer.poll(Duration::from_millis(500)) else { continue };
        let m = read?;
        last_progress = Instant::now();
        if m.offset() + 1 >= ends.get(&m.partition()).copied().unwrap_or(0) {
            ends.remove(&m.partition());
        }
        if let Some(s) = m.payload().and_then(parse_payload).filter(|s| s.run == run) {
            if ledgers.get(&s.device).is_some_and(|l| s.seq < l.sent) {
                *seen.entry((s.device, s.seq)).or_default() += 1;
            }
        }
    }
    if !ends.is_empty() {
        anyhow::bail!("Kafka topic {topic}: partitions {:?} not read to their end in time", ends.keys());
    }
    let mut verdict = Verdict { found: seen.len() as u64, ..Verdict::default() };
    verdict.duplicates = seen.values().map(|n| u64::from(n - 1)).sum();
    for (device, ledger) in ledgers {
        let unacked: HashSet<u64> = ledger.unacked.iter().copied().collect();
        for seq in 0..ledger.sent {
            if seen.contains_key(&(*device, seq)) {
                continue;
            }
            if acknowledged && !unacked.contains(&seq) {
                verdict.acked_missing += 1;
                if verdict.acked_missing_examples.len() < 10 {
                    verdict.acked_missing_examples.push((*device, seq));
                }
            } else {
                verdict.unpromised_missing += 1;
            }
        }
    }
    Ok(verdict)
}
