//! A log in memory, for tests: the same contract as Kafka (partitions, offsets from 0, the
//! Java-compatible key partitioner, tailing, range reads), in one process, with no server. Every
//! broker started on one `MemoryLog` shares it, as pods share a Kafka cluster, so take-over and
//! resumption across brokers can be tested in-process.
//!
//! Topics exist once created (`ensure_topics`, as a broker does at start, or
//! [`MemoryLog::create_topic`]); an append to a missing topic fails as it does on a Kafka with
//! topic auto-creation off. A test can hold the appends to a topic ([`MemoryLog::hold`]) to stand
//! for a slow or unavailable partition: they wait, unacknowledged and invisible, until released.
//!
//! What it leaves out, being for tests: durability beyond the process, compaction (a compacted
//! topic keeps every record; readers see the latest per key last, as they would before Kafka
//! compacts), retention, and any bound on what it holds.

use futures::future::{self, BoxFuture, FutureExt};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, OwnedHeaders};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{oneshot, watch, SemaphorePermit};

use super::admin::AdminError;
use super::group::{GroupError, GroupMember, Progress, Read};
use super::log::{Ack, Log, OutRecord};
use super::offsets::OffsetsError;
use super::partition::partition_for_key;
use super::producer::{Delivered, ProduceError};
use super::range::{Ends, RangeReader, ReadFrom};
use super::record::{Record, RecordRef};
use super::tailer::{RecordSink, StartAt, Tail, Tailer, TailerError};
use crate::config::Config;

/// Records a tailer or reader copies out per turn, so that appends are not held up long.
const BATCH: usize = 64;

/// One stored record.
#[derive(Clone)]
struct Stored {
    key: Option<Arc<[u8]>>,
    value: Option<Arc<[u8]>>,
    headers: Option<OwnedHeaders>,
    /// When it was appended (Unix ms): its timestamp, for offsets-for-times.
    at_ms: i64,
}

impl Stored {
    fn view<'a>(&'a self, topic: &'a str, partition: i32, offset: i64) -> RecordRef<'a> {
        RecordRef {
            topic,
            partition,
            offset,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: self.headers.as_ref().map(OwnedHeaders::as_borrowed),
        }
    }
}

/// Committed offsets by (consumer group, topic, partition).
type Commits = HashMap<(String, Arc<str>, i32), i64>;

/// Topic → partitions → records (a record's offset is its index).
type Topics = HashMap<String, Vec<Vec<Stored>>>;

struct Shared {
    topics: Mutex<Topics>,
    /// Bumped after every append: tailers waiting for records look again.
    appended: watch::Sender<u64>,
    /// Topics whose appends wait (see [`MemoryLog::hold`]).
    held: watch::Sender<HashSet<String>>,
    /// Topics whose tailers read nothing (see [`MemoryLog::stall_tailers`]).
    stalled: watch::Sender<HashSet<String>>,
    /// Appends waiting for a held topic to be released.
    waiting: Mutex<HashMap<String, usize>>,
    /// Committed offsets per (consumer group, topic, partition).
    commits: Mutex<Commits>,
}

impl Shared {
    fn waiting(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `record`; its partition is the given one or that of its key.
    fn store(&self, topic: &str, partition: Option<i32>, mut record: Stored) -> Result<Delivered, ProduceError> {
        // Stamped when stored, as a broker stamps log-append time.
        record.at_ms = append_time_ms();
        let delivered = {
            let mut topics = self.topics();
            let Some(partitions) = topics.get_mut(topic) else {
                return Err(ProduceError::Kafka(KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopic)));
            };
            let partition = partition
                .unwrap_or_else(|| partition_for_key(record.key.as_deref().unwrap_or_default(), partitions.len()));
            let Some(records) = partitions.get_mut(partition as usize) else {
                return Err(ProduceError::Kafka(KafkaError::MessageProduction(RDKafkaErrorCode::UnknownPartition)));
            };
            records.push(record);
            Delivered { partition, offset: records.len() as i64 - 1 }
        };
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
        Ok(delivered)
    }

    fn topics(&self) -> MutexGuard<'_, Topics> {
        // The map holds no invariant a panic could break.
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Up to [`BATCH`] records of `topic` from `offset` on in `partition`, copied.
    fn records_from(&self, topic: &str, partition: i32, offset: i64, end: Option<i64>) -> Vec<(i64, Stored)> {
        let topics = self.topics();
        let Some(records) = topics.get(topic).and_then(|t| t.get(partition as usize)) else { return Vec::new() };
        let start = offset.max(0) as usize;
        let stop = end.map_or(records.len(), |e| (e.max(0) as usize).min(records.len()));
        records
            .iter()
            .enumerate()
            .skip(start)
            .take(stop.saturating_sub(start).min(BATCH))
            .map(|(o, r)| (o as i64, r.clone()))
            .collect()
    }

    /// High watermark of every partition of `topic`, or `None` when it does not exist.
    /// Per partition of `topic`, the offset of the first record stored at or after `at_ms`.
    fn offsets_for_time(&self, topic: &str, at_ms: i64) -> Option<Vec<(i32, i64)>> {
        let topics = self.topics();
        let partitions = topics.get(topic)?;
        // Timestamps only grow within a partition (one clock), so the first one is found by halving.
        let first = |records: &[Stored]| records.partition_point(|r| r.at_ms < at_ms) as i64;
        Some(partitions.iter().enumerate().map(|(p, records)| (p as i32, first(records))).collect())
    }

    fn watermarks(&self, topic: &str) -> Option<Vec<i64>> {
        self.topics().get(topic).map(|t| t.iter().map(|p| p.len() as i64).collect())
    }
}

/// A record as [`MemoryLog::records`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value (`None`: a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// An in-memory log shared by the brokers of one test.
#[derive(Clone)]
pub struct MemoryLog {
    shared: Arc<Shared>,
}

impl Default for MemoryLog {
    fn default() -> Self {
        MemoryLog::new()
    }
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        MemoryLog {
            shared: Arc::new(Shared {
                topics: Mutex::new(HashMap::new()),
                appended: watch::channel(0).0,
                held: watch::channel(HashSet::new()).0,
                stalled: watch::channel(HashSet::new()).0,
                waiting: Mutex::new(HashMap::new()),
                commits: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Creates `topic` with `partitions` partitions unless it exists; whether it was created.
    pub fn create_topic(&self, topic: &str, partitions: usize) -> bool {
        let mut topics = self.shared.topics();
        if topics.contains_key(topic) {
            return false;
        }
        topics.insert(topic.to_owned(), vec![Vec::new(); partitions.max(1)]);
        true
    }

    /// Holds the appends to `topic`: they wait, neither stored nor acknowledged, until
    /// [`release`](Self::release) (a slow or unavailable partition).
    pub fn hold(&self, topic: &str) {
        self.shared.held.send_modify(|held| {
            held.insert(topic.to_owned());
        });
    }

    /// Lets the held appends to `topic` through, in the order they were made, and new ones at once.
    pub fn release(&self, topic: &str) {
        self.shared.held.send_modify(|held| {
            held.remove(topic);
        });
    }

    /// Stops the tailers of `topic` from reading, as a Kafka fetch that has not returned yet,
    /// until [`resume_tailers`](Self::resume_tailers); appends still go through.
    pub fn stall_tailers(&self, topic: &str) {
        self.shared.stalled.send_modify(|stalled| {
            stalled.insert(topic.to_owned());
        });
    }

    /// Lets the tailers of `topic` read again.
    pub fn resume_tailers(&self, topic: &str) {
        self.shared.stalled.send_modify(|stalled| {
            stalled.remove(topic);
        });
    }

    /// Appends to `topic` waiting for it to be released.
    pub fn held_appends(&self, topic: &str) -> usize {
        self.shared.waiting().get(topic).copied().unwrap_or(0)
    }

    /// The offset consumer group `group` committed for a partition, if any.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let commits = self.shared.commits.lock().unwrap_or_else(PoisonError::into_inner);
        commits.get(&(group.to_owned(), topic.into(), partition)).copied()
    }

    /// Every record of `topic`, in partition then offset order: what a test checks the log for.
    pub fn records(&self, topic: &str) -> Vec<Logged> {
        let topics = self.shared.topics();
        let Some(partitions) = topics.get(topic) else { return Vec::new() };
        let mut out = Vec::new();
        for (p, records) in partitions.iter().enumerate() {
            for (o, r) in records.iter().enumerate() {
                let view = r.view(topic, p as i32, o as i64);
                out.push(Logged {
                    partition: p as i32,
                    offset: o as i64,
                    key: view.key.map(<[u8]>::to_vec),
                    value: view.value.map(<[u8]>::to_vec),
                    headers: view
                        .headers
                        .into_iter()
                        .flat_map(|h| h.iter())
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect(),
                });
            }
        }
        out
    }
}

impl Log for MemoryLog {
    fn append<'a>(&'a self, record: OutRecord<'a>) -> BoxFuture<'a, Result<Ack, ProduceError>> {
        let stored = Stored {
            key: Some(record.key.into()),
            value: record.value.map(Into::into),
            headers: record.headers,
            at_ms: 0,
        };
        let (topic, partition) = (record.topic.to_owned(), record.partition);
        if !self.shared.held.borrow().contains(&topic) {
            let delivered = self.shared.store(&topic, partition, stored);
            return future::ready(delivered.map(|d| future::ready(Ok(d)).boxed())).boxed();
        }
        // Held: stored and acknowledged once released, like a record waiting in the producer.
        *self.shared.waiting().entry(topic.clone()).or_default() += 1;
        let shared = self.shared.clone();
        let mut held = self.shared.held.subscribe();
        let ack = async move {
            // An error means the log is gone: nothing will ever store the record.
            let released = held.wait_for(|h| !h.contains(&topic)).await.is_ok();
            if let Some(n) = shared.waiting().get_mut(&topic) {
                *n = n.saturating_sub(1);
            }
            if !released {
                return Err(ProduceError::Closed);
            }
            shared.store(&topic, partition, stored)
        };
        future::ready(Ok(ack.boxed())).boxed()
    }

    fn warm_up<'a>(&'a self, _topic: &'a str) -> BoxFuture<'a, ()> {
        future::ready(()).boxed()
    }

    fn flush(&self, _timeout: Duration) -> Result<(), ProduceError> {
        Ok(())
    }

    fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<usize, OffsetsError>> {
        let n = self.shared.watermarks(topic).map(|w| w.len()).ok_or_else(|| OffsetsError::NoPartitions(topic.into()));
        future::ready(n).boxed()
    }

    fn high_watermark<'a>(&'a self, topic: &'a str, partition: i32) -> BoxFuture<'a, Result<i64, OffsetsError>> {
        let hw = self
            .shared
            .watermarks(topic)
            .and_then(|w| w.get(partition as usize).copied())
            .ok_or_else(|| OffsetsError::NoPartitions(topic.into()));
        future::ready(hw).boxed()
    }

    fn offsets_for_time<'a>(
        &'a self,
        topic: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<(i32, i64)>, OffsetsError>> {
        let starts = self.shared.offsets_for_time(topic, at_ms).ok_or_else(|| OffsetsError::NoPartitions(topic.into()));
        future::ready(starts).boxed()
    }

    fn tail<'a>(
        &'a self,
        topic: &'a str,
        start: StartAt,
        sink: Arc<dyn RecordSink>,
    ) -> BoxFuture<'a, Result<Tailer, TailerError>> {
        let started = self.shared.watermarks(topic).ok_or_else(|| TailerError::NoPartitions(topic.into())).map(|hw| {
            let mut ends = Ends::default();
            let positions: Vec<(i32, i64)> = hw
                .iter()
                .enumerate()
                .map(|(p, &high)| match start {
                    StartAt::End => (p as i32, high),
                    StartAt::Beginning => {
                        ends.insert(p as i32, 0, high);
                        (p as i32, 0)
                    }
                })
                .collect();
            let (caught_tx, caught_up) = watch::channel(ends.is_done());
            let (stop, stopped) = oneshot::channel();
            let positions = Arc::new(Mutex::new(positions));
            let tail = MemoryTail {
                _stop: stop,
                shared: self.shared.clone(),
                topic: topic.to_owned(),
                positions: positions.clone(),
                caught_up,
                partitions: hw.len(),
            };
            let task =
                TailTask { shared: self.shared.clone(), topic: topic.to_owned(), positions, ends, caught_tx, sink };
            tokio::spawn(task.run(stopped));
            Tailer::new(tail)
        });
        future::ready(started).boxed()
    }

    /// One member per group: each join is assigned every partition (in one process, a group
    /// has one member, as it has one per broker process on Kafka).
    fn join_group<'a>(
        &'a self,
        group: &'a str,
        topics: &'a [String],
    ) -> BoxFuture<'a, Result<GroupMember, GroupError>> {
        let joined = (|| {
            let mut positions = Vec::new();
            let mut commits = self.shared.commits.lock().unwrap_or_else(PoisonError::into_inner);
            for topic in topics {
                let hw = self.shared.watermarks(topic).ok_or_else(|| GroupError::NoPartitions(topic.clone()))?;
                let name: Arc<str> = topic.as_str().into();
                for (p, high) in hw.into_iter().enumerate() {
                    let p = p as i32;
                    let at = *commits.entry((group.to_owned(), name.clone(), p)).or_insert(high);
                    positions.push((name.clone(), p, at));
                }
            }
            let progress = Arc::new(Progress::default());
            let member = MemoryMember {
                shared: self.shared.clone(),
                group: group.to_owned(),
                positions: Mutex::new(positions),
                progress: progress.clone(),
                paused: Default::default(),
            };
            Ok(GroupMember::new(member, progress))
        })();
        future::ready(joined).boxed()
    }

    fn read(&self, plan: Vec<ReadFrom>, permit: Option<SemaphorePermit<'static>>) -> RangeReader {
        let (tx, reader) = RangeReader::channel();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            for step in plan {
                let topic: Arc<str> = step.topic.as_str().into();
                let Some(hw) = shared.watermarks(&step.topic) else { continue };
                for (p, from) in step.from {
                    let end = hw.get(p as usize).copied().unwrap_or(0);
                    let mut next = from.max(0);
                    while next < end {
                        let batch = shared.records_from(&topic, p, next, Some(end));
                        let Some((last, _)) = batch.last() else { break };
                        next = last + 1;
                        for (o, r) in batch {
                            if tx.send(Ok(Record::copy(topic.clone(), r.view(&topic, p, o)))).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            drop(permit);
        });
        reader
    }

    fn ensure_topics<'a>(
        &'a self,
        config: &'a Config,
        data_topics: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, AdminError>> {
        let partitions = usize::try_from(config.topics.partitions).unwrap_or(1);
        let state = [&config.topics.retained, &config.topics.sessions];
        let created =
            data_topics.iter().chain(state).filter(|t| self.create_topic(t, partitions)).cloned().collect::<Vec<_>>();
        future::ready(Ok(created)).boxed()
    }
}

/// The handle of a tailer of a [`MemoryLog`].
struct MemoryTail {
    _stop: oneshot::Sender<()>,
    shared: Arc<Shared>,
    topic: String,
    positions: Arc<Mutex<Vec<(i32, i64)>>>,
    caught_up: watch::Receiver<bool>,
    partitions: usize,
}

impl Tail for MemoryTail {
    fn partitions(&self) -> usize {
        self.partitions
    }

    fn positions(&self) -> Vec<(i32, i64)> {
        self.positions.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn caught_up(&self) -> watch::Receiver<bool> {
        self.caught_up.clone()
    }

    fn lag(&self) -> i64 {
        let highs = self.shared.watermarks(&self.topic).unwrap_or_default();
        self.positions().iter().zip(highs).map(|(&(_, position), high)| (high - position).max(0)).sum()
    }
}

/// The task of one tailer: hands records on as they are appended.
struct TailTask {
    shared: Arc<Shared>,
    topic: String,
    positions: Arc<Mutex<Vec<(i32, i64)>>>,
    /// What must be read before the tailer is caught up.
    ends: Ends,
    caught_tx: watch::Sender<bool>,
    sink: Arc<dyn RecordSink>,
}

impl TailTask {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut appended = self.shared.appended.subscribe();
        let mut stalled = self.shared.stalled.subscribe();
        loop {
            let topic = &self.topic;
            tokio::select! {
                _ = &mut stop => return,
                open = stalled.wait_for(|s| !s.contains(topic)) => if open.is_err() { return },
            }
            let at: Vec<(i32, i64)> = self.positions.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let mut read_any = false;
            for (p, from) in at {
                let batch = self.shared.records_from(&self.topic, p, from, None);
                for (o, r) in &batch {
                    // Outside every lock: the sink may take its own.
                    self.sink.record(r.view(&self.topic, p, *o));
                    self.ends.take(p, *o);
                }
                if let Some((last, _)) = batch.last() {
                    read_any = true;
                    let mut positions = self.positions.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(entry) = positions.iter_mut().find(|(q, _)| *q == p) {
                        entry.1 = last + 1;
                    }
                }
            }
            if self.ends.is_done() && !*self.caught_tx.borrow() {
                self.caught_tx.send_replace(true);
            }
            if read_any {
                // Let other tasks (and a stop) in while records keep coming.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = &mut stop => return,
                changed = appended.changed() => if changed.is_err() { return },
            }
        }
    }
}

/// A consumer group member of a `MemoryLog`: reads its partitions in turn from their positions
/// and commits its progress whenever it reads.
struct MemoryMember {
    shared: Arc<Shared>,
    group: String,
    positions: Mutex<Vec<(Arc<str>, i32, i64)>>,
    progress: Arc<Progress>,
    paused: std::sync::atomic::AtomicBool,
}

impl MemoryMember {
    fn commit(&self, all: bool) {
        let done = self.progress.take(all);
        let mut commits = self.shared.commits.lock().unwrap_or_else(PoisonError::into_inner);
        for (topic, p, o) in done {
            commits.insert((self.group.clone(), topic, p), o);
        }
    }

    /// The next record at a position, moving past it.
    fn take_next(&self) -> Option<Record> {
        let mut positions = self.positions.lock().unwrap_or_else(PoisonError::into_inner);
        for (topic, p, at) in positions.iter_mut() {
            if let Some((o, r)) = self.shared.records_from(topic, *p, *at, None).into_iter().next() {
                *at = o + 1;
                return Some(Record::copy(topic.clone(), r.view(topic, *p, o)));
            }
        }
        None
    }
}

impl Read for MemoryMember {
    fn next(&self) -> BoxFuture<'_, Result<Record, GroupError>> {
        Box::pin(async move {
            loop {
                self.commit(false);
                if self.paused.load(std::sync::atomic::Ordering::Relaxed) {
                    // Nothing comes while paused; the caller stops waiting when it resumes.
                    return future::pending().await;
                }
                // Subscribed before looking, so that an append in between is not missed.
                let mut appended = self.shared.appended.subscribe();
                if let Some(record) = self.take_next() {
                    return Ok(record);
                }
                if appended.changed().await.is_err() {
                    return Err(GroupError::Join);
                }
            }
        })
    }

    fn pause(&self, paused: bool) {
        self.paused.store(paused, std::sync::atomic::Ordering::Relaxed);
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        self.commit(true);
        future::ready(()).boxed()
    }
}

/// The record timestamp Kafka stamps at append (`LogAppendTime`), in Unix milliseconds.
fn append_time_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Mutex<Vec<(i32, i64, Vec<u8>)>>);

    impl RecordSink for Collect {
        fn record(&self, r: RecordRef<'_>) {
            let value = r.value.map(<[u8]>::to_vec).unwrap_or_default();
            self.0.lock().unwrap_or_else(PoisonError::into_inner).push((r.partition, r.offset, value));
        }
    }

    fn out<'a>(topic: &'a str, key: &'a [u8], value: &'a [u8]) -> OutRecord<'a> {
        OutRecord { topic, partition: None, key, value: Some(value), headers: None }
    }

    async fn append(log: &MemoryLog, topic: &str, key: &str, value: &str) -> Delivered {
        let ack = log.append(out(topic, key.as_bytes(), value.as_bytes())).await;
        ack.unwrap_or_else(|e| panic!("{e}")).await.unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn offsets_grow_per_partition_and_keys_keep_their_partition() {
        let log = MemoryLog::new();
        log.create_topic("t", 3);
        let a = append(&log, "t", "k1", "a").await;
        let b = append(&log, "t", "k1", "b").await;
        assert_eq!(a.partition, b.partition, "one key, one partition");
        assert_eq!((a.offset, b.offset), (0, 1));
        assert_eq!(a.partition, partition_for_key(b"k1", 3), "the Java client's partitioner");
        assert_eq!(log.high_watermark("t", a.partition).await.ok(), Some(2));
        assert_eq!(log.partition_count("t").await.ok(), Some(3));
        assert!(log.partition_count("missing").await.is_err());
        assert!(log.append(out("missing", b"k", b"v")).await.is_err(), "no topic is created by an append");
    }

    /// Waits until the clock reads past `t`: records appended after this carry a later stamp.
    async fn clock_past(t: i64) -> i64 {
        while append_time_ms() <= t {
            tokio::task::yield_now().await;
        }
        append_time_ms()
    }

    #[tokio::test]
    async fn offsets_for_a_time_are_the_first_records_stamped_since() {
        let log = MemoryLog::new();
        log.create_topic("t", 1);
        let before = append_time_ms();
        append(&log, "t", "k", "old").await;
        let between = clock_past(append_time_ms()).await;
        append(&log, "t", "k", "new").await;
        let after = clock_past(append_time_ms()).await;
        let starts = |t| log.offsets_for_time("t", t);
        assert_eq!(starts(before).await.ok(), Some(vec![(0, 0)]), "everything since before the first");
        assert_eq!(starts(between).await.ok(), Some(vec![(0, 1)]), "only the second");
        assert_eq!(starts(after).await.ok(), Some(vec![(0, 2)]), "nothing yet: the high watermark");
        assert!(log.offsets_for_time("missing", 0).await.is_err());
    }

    #[tokio::test]
    async fn a_tailer_from_the_beginning_catches_up_then_follows() {
        let log = MemoryLog::new();
        log.create_topic("t", 1);
        append(&log, "t", "k", "old").await;
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        let tailer = log.tail("t", StartAt::Beginning, sink.clone()).await.unwrap_or_else(|e| panic!("{e}"));
        tailer.caught_up().await;
        append(&log, "t", "k", "new").await;
        let seen = || sink.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
        while seen().len() < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(seen(), [(0, 0, b"old".to_vec()), (0, 1, b"new".to_vec())]);
        let at_end = log.tail("t", StartAt::End, sink).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(at_end.positions(), [(0, 2)], "a tailer at the end starts at the high watermark");
    }

    #[tokio::test]
    async fn held_appends_wait_unstored_until_released() {
        let log = MemoryLog::new();
        log.create_topic("t", 1);
        log.hold("t");
        let ack = log.append(out("t", b"k", b"v")).await.unwrap_or_else(|e| panic!("{e}"));
        let waiting = tokio::spawn(ack);
        while log.held_appends("t") == 0 {
            tokio::task::yield_now().await;
        }
        assert!(log.records("t").is_empty(), "not stored while held");
        log.release("t");
        let delivered = waiting.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((delivered.partition, delivered.offset), (0, 0));
        assert_eq!(log.records("t").len(), 1);
        assert_eq!(log.held_appends("t"), 0);
    }

    #[tokio::test]
    async fn a_range_read_ends_at_the_high_watermark() {
        let log = MemoryLog::new();
        log.create_topic("t", 1);
        for v in ["a", "b", "c"] {
            append(&log, "t", "k", v).await;
        }
        let mut reader = log.read(vec![ReadFrom { topic: "t".into(), from: vec![(0, 1)] }], None);
        let mut offsets = Vec::new();
        while let Some(record) = reader.next().await {
            offsets.push(record.map(|r| r.offset).unwrap_or(-1));
        }
        assert_eq!(offsets, [1, 2]);
    }
}
