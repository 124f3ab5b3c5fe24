//! Tailers: one per Kafka topic a broker process needs, reading every partition without a
//! consumer group and handing each raw record to a sink, which decides what it means; and the
//! Kafka one, a librdkafka consumer of its own.
//!
//! Starting positions are resolved to explicit offsets (the high watermarks, or the beginning)
//! *before* `start` returns, so a caller that registers interest first and then starts (or
//! finds running) a tailer is guaranteed to see every record produced after that point.

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

use super::range::Ends;
use super::record::RecordRef;
use crate::config::Kafka;

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
    /// Called once per record, as read. It runs on the tailer's task: a sink must not wait.
    fn record(&self, record: RecordRef<'_>);
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

/// A running tailer; dropping it stops reading.
pub struct Tailer {
    inner: Box<dyn Tail>,
}

/// What a tailer of one backend exposes (see [`super::log::Log::tail`]).
pub(crate) trait Tail: Send + Sync {
    /// Number of partitions of the topic when the tailer started.
    fn partitions(&self) -> usize;
    /// The next offset the tailer will read, per partition.
    fn positions(&self) -> Vec<(i32, i64)>;
    /// Becomes true once every record that existed at the start was handed on.
    fn caught_up(&self) -> watch::Receiver<bool>;
    /// Records between the positions and the high watermarks last seen, over all partitions.
    fn lag(&self) -> i64;
}

impl Tailer {
    /// The tailer running as `inner`.
    pub(crate) fn new(inner: impl Tail + 'static) -> Self {
        Tailer { inner: Box::new(inner) }
    }

    /// Number of partitions of the topic when the tailer started.
    pub fn partitions(&self) -> usize {
        self.inner.partitions()
    }

    /// The next offset this tailer will read, per partition: its consumer's position, or the
    /// starting offset while the first fetch has not returned yet.
    pub fn positions(&self) -> Vec<(i32, i64)> {
        self.inner.positions()
    }

    /// Records not read yet, over all partitions: the distance from the positions to the high
    /// watermarks, as last measured (Kafka is asked every 15 s, not when this is called).
    pub fn lag(&self) -> i64 {
        self.inner.lag()
    }

    /// Resolves once the tailer has read every record that existed when it started.
    pub async fn caught_up(&self) {
        let mut rx = self.inner.caught_up();
        // An Err means the tailer task ended; nothing more will arrive either way.
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// A tailer reading Kafka with its own librdkafka consumer.
struct KafkaTail {
    _stop: oneshot::Sender<()>,
    /// Last measured distance to the high watermarks (see [`measure_lag`]).
    lag: Arc<AtomicI64>,
    consumer: Arc<StreamConsumer>,
    /// Explicit starting offsets per partition (for `StartAt::End`, the high watermarks).
    starts: Vec<(i32, i64)>,
    caught_up: watch::Receiver<bool>,
    partitions: usize,
}

/// Metadata calls block; this bounds how long a subscription (a tailer or a consumer group
/// joining) may wait for each of them.
pub(crate) const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// `fetch.wait.max.ms` is left at librdkafka's 500 ms: Kafka answers a waiting fetch as soon as
/// a record arrives, so a long poll costs no latency there and keeps an idle broker from
/// sending fetches in a tight loop. A test server that holds a fetch for its full wait (tansu)
/// is configured for that in the tests (`kafka.properties`), not here.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    // librdkafka needs a group id to build a consumer; we never join or commit to it.
    ("group.id", "tributary-tailer"),
];

/// Starts tailing Kafka topic `topic` from `start`, delivering to `sink`. Returns once every
/// partition's starting offset is fixed.
pub(crate) async fn start_kafka(
    kafka: &Kafka,
    topic: &str,
    start: StartAt,
    sink: Arc<dyn RecordSink>,
) -> Result<Tailer, TailerError> {
    let err = |source| TailerError::Kafka { topic: topic.to_owned(), source };
    let consumer: StreamConsumer =
        super::client_config(&kafka.bootstrap_servers, &kafka.properties, CONSUMER_DEFAULTS).create().map_err(err)?;
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
    let starts: Vec<(i32, i64)> = super::known_offsets(&assignment).collect();
    tracing::debug!(%topic, ?start, ?starts, "tailer assigned");
    let (caught_tx, caught_up) = watch::channel(pending.is_done());
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(run(consumer.clone(), topic.to_owned(), pending, caught_tx, sink, stopped));
    let lag = Arc::new(AtomicI64::new(0));
    let from = assignment
        .elements()
        .iter()
        .map(|e| (e.partition(), if let Offset::Offset(o) = e.offset() { Some(o) } else { None }))
        .collect();
    let lag_task = LagTask { consumer: Arc::downgrade(&consumer), topic: topic.to_owned(), from };
    tokio::spawn(lag_task.run(Arc::downgrade(&lag)));
    Ok(Tailer::new(KafkaTail { _stop: stop, lag, consumer, starts, caught_up, partitions }))
}

impl Tail for KafkaTail {
    fn partitions(&self) -> usize {
        self.partitions
    }

    fn positions(&self) -> Vec<(i32, i64)> {
        let current: HashMap<i32, i64> = match self.consumer.position() {
            Ok(list) => super::known_offsets(&list).collect(),
            Err(_) => HashMap::new(),
        };
        self.starts.iter().map(|&(p, start)| (p, current.get(&p).copied().unwrap_or(start).max(start))).collect()
    }

    fn caught_up(&self) -> watch::Receiver<bool> {
        self.caught_up.clone()
    }

    fn lag(&self) -> i64 {
        self.lag.load(Ordering::Relaxed)
    }
}

/// How often a catching-up tailer compares its positions with the targets: the last records of a
/// compacted topic may be gone, so seeing them is not the only way to know it is done.
const CATCH_UP_CHECK: Duration = Duration::from_millis(100);

/// Fixes the starting offset of every partition; returns the assignment and the partitions that
/// still hold records to read before the tailer is caught up, with the offset each must reach.
fn plan_assignment(
    consumer: &StreamConsumer,
    topic: &str,
    start: StartAt,
) -> Result<(TopicPartitionList, Ends), TailerError> {
    let err = |source| TailerError::Kafka { topic: topic.to_owned(), source };
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT).map_err(err)?;
    let partitions = super::partitions_of(&metadata, topic);
    if partitions.is_empty() {
        return Err(TailerError::NoPartitions(topic.to_owned()));
    }
    let mut list = TopicPartitionList::new();
    let mut pending = Ends::default();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, METADATA_TIMEOUT).map_err(err)?;
        let offset = match start {
            StartAt::End => Offset::Offset(high),
            StartAt::Beginning => {
                pending.insert(p, low, high);
                Offset::Beginning
            }
        };
        list.add_partition_offset(topic, p, offset).map_err(err)?;
    }
    Ok((list, pending))
}

/// How often a tailer asks Kafka for its partitions' high watermarks to report its lag: about
/// a Prometheus scrape interval, a few small requests per tailed topic.
const LAG_INTERVAL: Duration = Duration::from_secs(15);

/// What measures one tailer's lag; holds nothing that keeps the tailer alive.
struct LagTask {
    consumer: Weak<StreamConsumer>,
    topic: String,
    /// Every partition with the tailer's starting offset (`None`: the beginning): the
    /// position of a partition nothing was read from yet.
    from: Vec<(i32, Option<i64>)>,
}

impl LagTask {
    /// Measures the lag every [`LAG_INTERVAL`] into `lag` until the tailer is dropped.
    /// librdkafka's watermark query blocks, so it runs on the blocking pool, never on the
    /// tailer's own task. A round that fails keeps the previous value.
    async fn run(self, lag: Weak<AtomicI64>) {
        let task = Arc::new(self);
        let mut every = tokio::time::interval(LAG_INTERVAL);
        // A slow Kafka makes rounds long; they must not then run back to back.
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let t = task.clone();
            let measured = tokio::task::spawn_blocking(move || t.behind()).await;
            let Some(lag) = lag.upgrade() else { return };
            match measured {
                Ok(Some(v)) => lag.store(v, Ordering::Relaxed),
                Ok(None) => {}
                Err(_) => return,
            }
        }
    }

    /// Records between the consumer's positions and the high watermarks, over all partitions;
    /// `None` when the tailer is gone or Kafka did not answer.
    fn behind(&self) -> Option<i64> {
        let consumer = self.consumer.upgrade()?;
        let read: HashMap<i32, i64> =
            consumer.position().map(|l| super::known_offsets(&l).collect()).unwrap_or_default();
        let mut total = 0;
        for &(partition, start) in &self.from {
            let (low, high) = consumer.fetch_watermarks(&self.topic, partition, LAG_TIMEOUT).ok()?;
            let start = start.unwrap_or(low);
            let position = read.get(&partition).copied().unwrap_or(start).max(start);
            total += (high - position).max(0);
        }
        Some(total)
    }
}

/// A lag that cannot be measured quickly is reported at the next round.
const LAG_TIMEOUT: Duration = Duration::from_secs(2);

async fn run(
    consumer: Arc<StreamConsumer>,
    topic: String,
    mut pending: Ends,
    caught_up: watch::Sender<bool>,
    sink: Arc<dyn RecordSink>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut check = tokio::time::interval(CATCH_UP_CHECK);
    loop {
        let read = tokio::select! {
            _ = &mut stop => return,
            _ = check.tick(), if !pending.is_done() => {
                if let Ok(positions) = consumer.position() {
                    pending.drop_reached(super::known_offsets(&positions));
                }
                if pending.is_done() {
                    caught_up.send_replace(true);
                }
                continue;
            }
            r = consumer.recv() => r,
        };
        match read {
            Ok(m) => {
                let record = RecordRef::of(&m);
                sink.record(record);
                if !pending.is_done() {
                    // Whether the record was below its partition's target does not matter here:
                    // it is delivered either way; only the progress counts.
                    pending.take(record.partition, record.offset);
                    if pending.is_done() {
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
