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
    let watermarks = |partitions: &[i32]| -> anyhow::Result<HashMap<i32, (i64, i64)>> {
        let mut w = HashMap::new();
        for p in partitions {
            w.insert(*p, consumer.fetch_watermarks(topic, *p, Duration::from_secs(10))?);
        }
        Ok(w)
    };
    let start = watermarks(&partitions)?;
    let mut list = TopicPartitionList::new();
    for p in &partitions {
        list.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    // Next offset to read per partition; the ends are asked again once reached, until they
    // stay put (a server may report a high watermark a moment behind its last write).
    let mut next: HashMap<i32, i64> = start.iter().map(|(p, (low, _))| (*p, *low)).collect();
    let mut ends: HashMap<i32, i64> = start.iter().map(|(p, (_, high))| (*p, *high)).collect();
    let mut seen: HashMap<(u64, u64), u32> = HashMap::new();
    let mut last_progress = Instant::now();
    loop {
        // At the ends as the server reports them, read on for a moment: it may report them a
        // record short or late (tansu's in-memory engine does); then ask again.
        let at_ends = ends.iter().all(|(p, end)| next.get(p).is_some_and(|n| n >= end));
        let wait = if at_ends { Duration::from_secs(2) } else { Duration::from_millis(500) };
        match consumer.poll(wait) {
            Some(read) => {
                let m = read?;
                last_progress = Instant::now();
                next.insert(m.partition(), m.offset() + 1);
                if let Some(s) = m.payload().and_then(parse_payload).filter(|s| s.run == run) {
                    if ledgers.get(&s.device).is_some_and(|l| s.seq < l.sent) {
                        *seen.entry((s.device, s.seq)).or_default() += 1;
                    }
                }
            }
            None if at_ends => {
                let again: HashMap<i32, i64> = watermarks(&partitions)?.into_iter().map(|(p, (_, h))| (p, h)).collect();
                if again == ends {
                    break;
                }
                ends = again;
            }
            None if last_progress.elapsed() >= Duration::from_secs(30) => {
                anyhow::bail!("Kafka topic {topic}: not read to its end in time (read {next:?} of {ends:?})");
            }
            None => {}
        }
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
