//! Shared tailing consumers: one per Kafka topic a broker process needs, reading every partition
//! without a consumer group and handing each record to a sink.
//!
//! Starting positions are resolved to explicit offsets (the high watermarks, or the beginning)
//! *before* `start` returns, so a caller that registers interest first and then starts (or
//! finds running) a tailer is guaranteed to see every record produced after that point.

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

use crate::config::Kafka;
use crate::message::Message;

/// Where a new tailer starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// At the live end: only records produced from now on.
    End,
    /// At the beginning: the whole (compacted) topic, then live.
    Beginning,
}

/// Receives the records of a tailed topic, in partition order.
pub trait RecordSink: Send + Sync + 'static {
    /// Called once per record that has a valid MQTT topic as key.
    fn deliver(&self, partition: i32, offset: i64, msg: Message);

    /// Called first with every record as read. A sink whose keys are not MQTT topics (the
    /// sessions topic: `client-id#claim`) takes records here and returns true; then `deliver`
    /// is not called. The default declines.
    fn deliver_raw(&self, _partition: i32, _offset: i64, _key: Option<&[u8]>, _value: Option<&[u8]>) -> bool {
        false
    }
}

/// Why a tailer could not start.
#[derive(Debug, thiserror::Error)]
pub enum TailerError {
    /// Kafka refused or did not answer.
    #[error("kafka consumer for topic {topic}: {source}")]
    Kafka {
        /// Topic being tailed.
        topic: String,
        /// Underlying error.
        source: KafkaError,
    },
    /// The topic does not exist (or has no partitions).
    #[error("kafka topic {0} has no partitions")]
    NoPartitions(String),
    /// The blocking metadata call was cancelled.
    #[error("kafka metadata task failed")]
    Join,
}

/// A running tailer; dropping it stops the consumer.
pub struct Tailer {
    _stop: oneshot::Sender<()>,
    consumer: Arc<StreamConsumer>,
    /// Explicit starting offsets per partition (for `StartAt::End`, the high watermarks).
    starts: Vec<(i32, i64)>,
    caught_up: watch::Receiver<bool>,
    partitions: usize,
}

/// Metadata calls block; this bounds how long a subscription may wait for them.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    // Low: a CONNECT waits for its own claim to come back through the sessions tailer, and
    // live deliveries wait for the next fetch (tansu holds an empty fetch for the full wait).
    ("fetch.wait.max.ms", "10"),
    // librdkafka needs a group id to build a consumer; we never join or commit to it.
    ("group.id", "tributary-tailer"),
];

impl Tailer {
    /// Starts tailing `topic` from `start`, delivering to `sink`. Returns once every partition's
    /// starting offset is fixed.
    pub async fn start(
        kafka: &Kafka,
        topic: &str,
        start: StartAt,
        sink: Arc<dyn RecordSink>,
    ) -> Result<Tailer, TailerError> {
        let err = |source| TailerError::Kafka { topic: topic.to_owned(), source };
        let consumer: StreamConsumer =
            super::client_config(&kafka.bootstrap_servers, &kafka.properties, CONSUMER_DEFAULTS)
                .create()
                .map_err(err)?;
        let consumer = Arc::new(consumer);
        let (assignment, pending) = {
            let consumer = consumer.clone();
            let topic = topic.to_owned();
            tokio::task::spawn_blocking(move || plan_assignment(&consumer, &topic, start))
                .await
                .map_err(|_| TailerError::Join)??
        };
        consumer.assign(&assignment).map_err(err)?;
        let partitions = assignment.count();
        let starts = super::known_offsets(&assignment).collect();
        let (caught_tx, caught_up) = watch::channel(pending.is_empty());
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(run(consumer.clone(), topic.to_owned(), pending, caught_tx, sink, stopped));
        Ok(Tailer { _stop: stop, consumer, starts, caught_up, partitions })
    }

    /// Number of partitions of the topic when the tailer started.
    pub fn partitions(&self) -> usize {
        self.partitions
    }

    /// The next offset this tailer will read, per partition: its consumer's position, or the
    /// starting offset while the first fetch has not returned yet.
    pub fn positions(&self) -> Vec<(i32, i64)> {
        let current: HashMap<i32, i64> = match self.consumer.position() {
            Ok(list) => super::known_offsets(&list).collect(),
            Err(_) => HashMap::new(),
        };
        self.starts.iter().map(|&(p, start)| (p, current.get(&p).copied().unwrap_or(start).max(start))).collect()
    }

    /// Resolves once the tailer has read every record that existed when it started.
    pub async fn caught_up(&self) {
        let mut rx = self.caught_up.clone();
        // An Err means the tailer task ended; nothing more will arrive either way.
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// Partitions still to read before a tailer has caught up, with the offset it must reach.
type Pending = HashMap<i32, i64>;

/// How often a catching-up tailer compares its positions with the targets: the last records of a
/// compacted topic may be gone, so seeing them is not the only way to know it is done.
const CATCH_UP_CHECK: Duration = Duration::from_millis(100);

/// Fixes the starting offset of every partition; returns the assignment and the partitions that
/// still hold records to read before the tailer is caught up.
fn plan_assignment(
    consumer: &StreamConsumer,
    topic: &str,
    start: StartAt,
) -> Result<(TopicPartitionList, Pending), TailerError> {
    let err = |source| TailerError::Kafka { topic: topic.to_owned(), source };
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT).map_err(err)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(TailerError::NoPartitions(topic.to_owned()));
    }
    let mut list = TopicPartitionList::new();
    let mut pending = Pending::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, METADATA_TIMEOUT).map_err(err)?;
        let offset = match start {
            StartAt::End => Offset::Offset(high),
            StartAt::Beginning => {
                if high > low {
                    pending.insert(p, high);
                }
                Offset::Beginning
            }
        };
        list.add_partition_offset(topic, p, offset).map_err(err)?;
    }
    Ok((list, pending))
}

async fn run(
    consumer: Arc<StreamConsumer>,
    topic: String,
    mut pending: Pending,
    caught_up: watch::Sender<bool>,
    sink: Arc<dyn RecordSink>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut check = tokio::time::interval(CATCH_UP_CHECK);
    loop {
        let record = tokio::select! {
            _ = &mut stop => return,
            _ = check.tick(), if !pending.is_empty() => {
                if let Ok(positions) = consumer.position() {
                    super::drop_reached(&mut pending, &positions);
                }
                if pending.is_empty() {
                    caught_up.send_replace(true);
                }
                continue;
            }
            r = consumer.recv() => r,
        };
        match record {
            Ok(m) => {
                let partition = m.partition();
                let offset = m.offset();
                if !sink.deliver_raw(partition, offset, m.key(), m.payload()) {
                    match Message::from_record(m.key(), m.payload(), m.headers()) {
                        Some(msg) => sink.deliver(partition, offset, msg),
                        None => {
                            tracing::warn!(%topic, partition, offset, "skipping record whose key is not an MQTT topic name")
                        }
                    }
                }
                if pending.get(&partition).is_some_and(|target| offset + 1 >= *target) {
                    pending.remove(&partition);
                    if pending.is_empty() {
                        caught_up.send_replace(true);
                    }
                }
            }
            // librdkafka reconnects by itself; report and keep reading.
            Err(e) => {
                tracing::warn!(%topic, error = %e, "kafka consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
