//! Bounded reads of partition ranges: every partition of a plan from a given offset up to its
//! high watermark as found when the read reaches its topic, then done. Offline delivery
//! (`crate::delivery::catchup`) and the QoS 2 publish-id search (`super::offsets`) read Kafka
//! this way; the tailers, which never end, share only the end-of-range rule ([`Ends`]).
//!
//! The reader runs its own consumer on the blocking pool and hands raw records over a bounded
//! channel: it waits while the channel is full (backpressure from whoever reads it) and stops
//! when the receiving side is dropped.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, SemaphorePermit};

use super::record::{Record, RecordRef};
use crate::config::Kafka;

/// What to read of one Kafka topic: partitions and the offset to start each at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFrom {
    /// Kafka topic.
    pub topic: String,
    /// Partitions and the offsets to start at.
    pub from: Vec<(i32, i64)>,
}

/// Why a range read reports an error.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    /// The read could not go on (consumer, watermarks, assignment): it ends after this.
    #[error("kafka range read failed: {0}")]
    Failed(KafkaError),
    /// A fetch failed; librdkafka retries by itself and the read goes on.
    #[error("kafka range read error: {0}")]
    Poll(KafkaError),
}

/// Records buffered between the reader's consumer and its user: little, since the user keeps
/// its own queue (offline delivery: one of deliveries) and librdkafka prefetches anyway.
const CHANNEL: usize = 32;
/// Bounds each watermark query.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long one poll waits before the reader checks positions and its receiver again.
const POLL: Duration = Duration::from_millis(200);

const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    // librdkafka needs a group id to build a consumer; we never join or commit to it.
    ("group.id", "tributary-range"),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    // A start older than the retention: read what is left.
    ("auto.offset.reset", "earliest"),
    // Nothing beyond the end of a range is wanted, so a fetch has no reason to wait for more.
    ("fetch.wait.max.ms", "10"),
];

/// A running range read: its records, in partition order, then the end of the channel.
pub struct RangeReader {
    rx: mpsc::Receiver<Result<Record, RangeError>>,
}

impl RangeReader {
    /// Starts reading `plan` from Kafka, topic after topic. `permit`, when given, is held until
    /// the reader's consumer is gone: a caller bounding the consumers open at once passes one.
    pub(crate) fn start_kafka(kafka: &Kafka, plan: Vec<ReadFrom>, permit: Option<SemaphorePermit<'static>>) -> Self {
        let (tx, reader) = RangeReader::channel();
        let kafka = kafka.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = read(&kafka, &plan, &tx) {
                // Nobody listening any more is fine: the read was not wanted.
                let _ = tx.blocking_send(Err(e));
            }
            drop(permit);
        });
        reader
    }

    /// A reader fed through the returned sender (closing it ends the read), for backends.
    pub(crate) fn channel() -> (mpsc::Sender<Result<Record, RangeError>>, RangeReader) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        (tx, RangeReader { rx })
    }

    /// The next record of the ranges (or an error); `None` once every range is read, or after
    /// a [`RangeError::Failed`].
    pub async fn next(&mut self) -> Option<Result<Record, RangeError>> {
        self.rx.recv().await
    }
}

fn read(kafka: &Kafka, plan: &[ReadFrom], tx: &mpsc::Sender<Result<Record, RangeError>>) -> Result<(), RangeError> {
    let failed = RangeError::Failed;
    let consumer: BaseConsumer = super::client_config(&kafka.bootstrap_servers, &kafka.properties, CONSUMER_DEFAULTS)
        .create()
        .map_err(failed)?;
    for step in plan {
        let topic: Arc<str> = step.topic.as_str().into();
        let mut ends = Ends::default();
        let mut tpl = TopicPartitionList::new();
        for &(p, from) in &step.from {
            let (_, high) = consumer.fetch_watermarks(&step.topic, p, TIMEOUT).map_err(failed)?;
            if ends.insert(p, from, high) {
                tpl.add_partition_offset(&step.topic, p, Offset::Offset(from)).map_err(failed)?;
            }
        }
        if ends.is_done() {
            continue;
        }
        consumer.assign(&tpl).map_err(failed)?;
        while !ends.is_done() {
            if tx.is_closed() {
                return Ok(());
            }
            let item = match consumer.poll(POLL) {
                Some(Ok(m)) => {
                    let record = RecordRef::of(&m);
                    if !ends.take(record.partition, record.offset) {
                        continue;
                    }
                    Ok(Record::copy(topic.clone(), record))
                }
                Some(Err(e)) => Err(RangeError::Poll(e)),
                None => {
                    ends.drop_reached(super::known_offsets(&consumer.position().map_err(failed)?));
                    continue;
                }
            };
            if tx.blocking_send(item).is_err() {
                return Ok(());
            }
        }
        consumer.unassign().map_err(failed)?;
    }
    Ok(())
}

/// Where a read of each partition ends (partition → first offset not to read), shrinking as
/// partitions reach their end. A partition is done when its last offset before the end was read,
/// or when the consumer's position reached the end: the last records below an end may be
/// missing (compacted away, or offsets that never hold a record), so seeing them is not the only
/// way to know a read is done.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Ends(HashMap<i32, i64>);

impl Ends {
    /// Adds `partition`, read from `from` up to `end`; returns false, adding nothing, when
    /// there is nothing to read.
    pub(crate) fn insert(&mut self, partition: i32, from: i64, end: i64) -> bool {
        let pending = from < end;
        if pending {
            self.0.insert(partition, end);
        }
        pending
    }

    /// Whether the record at `offset` of `partition` is inside a range still being read (not of
    /// a partition already done, not at or past its end); the partition is done once its last
    /// offset is read.
    pub(crate) fn take(&mut self, partition: i32, offset: i64) -> bool {
        let Some(&end) = self.0.get(&partition) else { return false };
        if offset + 1 >= end {
            self.0.remove(&partition);
        }
        offset < end
    }

    /// Drops every partition whose consumer position (partition, next offset) reached its end.
    pub(crate) fn drop_reached(&mut self, positions: impl IntoIterator<Item = (i32, i64)>) {
        for (p, o) in positions {
            if self.0.get(&p).is_some_and(|end| o >= *end) {
                self.0.remove(&p);
            }
        }
    }

    /// True when every partition has reached its end.
    pub(crate) fn is_done(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(of: &[(i32, i64, i64)]) -> Ends {
        let mut e = Ends::default();
        for &(p, from, end) in of {
            e.insert(p, from, end);
        }
        e
    }

    #[test]
    fn only_partitions_that_reached_their_target_are_dropped() {
        let mut positions = TopicPartitionList::new();
        positions.add_partition_offset("t", 0, Offset::Offset(10)).unwrap();
        positions.add_partition_offset("t", 1, Offset::Offset(4)).unwrap();
        positions.add_partition_offset("t", 2, Offset::Invalid).unwrap();
        assert_eq!(super::super::known_offsets(&positions).collect::<Vec<_>>(), [(0, 10), (1, 4)]);
        let mut targets = ends(&[(0, 0, 10), (1, 0, 5), (2, -1, 0)]);
        targets.drop_reached(super::super::known_offsets(&positions));
        assert_eq!(targets, ends(&[(1, 0, 5), (2, -1, 0)]), "an unknown position reaches nothing");
    }

    #[test]
    fn an_empty_range_is_not_read() {
        let mut e = Ends::default();
        assert!(!e.insert(0, 5, 5), "start at the end");
        assert!(!e.insert(1, 6, 5), "start past the end");
        assert!(e.is_done());
        assert!(e.insert(2, 4, 5));
        assert!(!e.is_done());
    }

    #[test]
    fn the_last_offset_before_the_end_finishes_a_partition() {
        let mut e = ends(&[(0, 0, 3), (1, 0, 1)]);
        assert!(e.take(0, 1));
        assert!(e.take(1, 0), "partition 1 read to its end");
        assert!(!e.take(1, 0), "partition 1 is done: a record read again is outside");
        assert!(e.take(0, 2));
        assert!(e.is_done());
    }

    #[test]
    fn records_at_or_past_the_end_are_outside_and_finish_the_partition() {
        let mut e = ends(&[(0, 0, 10), (1, 0, 10)]);
        // Offsets 8 and 9 were compacted away; a record produced since shows up instead.
        assert!(!e.take(0, 11));
        assert!(!e.take(7, 0), "a partition not in the plan");
        assert_eq!(e, ends(&[(1, 0, 10)]));
    }
}
