//! The log the broker keeps everything in, as the rest of the broker sees it: append a record,
//! learn partition counts and high watermarks, tail a topic, read partition ranges, create
//! missing topics. [`super::kafka_log::KafkaLog`] is Kafka (through librdkafka); the in-memory
//! [`super::memory::MemoryLog`] lets the client state machine, the QoS flows and take-over be
//! tested in-process, fast and deterministically, without a Kafka server.

use futures::future::BoxFuture;
use rdkafka::message::OwnedHeaders;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::SemaphorePermit;

use super::admin::AdminError;
use super::group::{GroupError, GroupMember};
use super::offsets::OffsetsError;
use super::producer::{Delivered, ProduceError};
use super::range::{RangeReader, ReadFrom};
use super::record::ToRecord;
use super::tailer::{RecordSink, StartAt, Tailer, TailerError};
use crate::config::Config;

/// Resolves when an appended record is durable (Kafka: acknowledged by every in-sync replica).
pub(crate) type Ack = BoxFuture<'static, Result<Delivered, ProduceError>>;

/// A record to append.
#[derive(Debug, Clone)]
pub struct OutRecord<'a> {
    /// Kafka topic.
    pub topic: &'a str,
    /// Partition; `None` lets the partitioner choose by key (Java-compatible murmur2).
    pub partition: Option<i32>,
    /// Key.
    pub key: &'a [u8],
    /// Value; `None` is a tombstone (deletes the key in a compacted topic).
    pub value: Option<&'a [u8]>,
    /// Headers.
    pub headers: Option<OwnedHeaders>,
}

impl<'a> OutRecord<'a> {
    /// The record of `value` for `topic` (a tombstone when `tombstone` is set).
    pub fn of(topic: &'a str, partition: Option<i32>, value: &'a impl ToRecord, tombstone: bool) -> Self {
        OutRecord {
            topic,
            partition,
            key: value.record_key(),
            value: (!tombstone).then(|| value.record_value()),
            headers: Some(value.record_headers()),
        }
    }
}

/// A partitioned, append-only log of keyed records: what the broker needs of Kafka.
pub trait Log: Send + Sync + 'static {
    /// Appends `record`. Waits while the backend's queue is full (backpressure); the returned
    /// [`Ack`] resolves once the record is durable.
    fn append<'a>(&'a self, record: OutRecord<'a>) -> BoxFuture<'a, Result<Ack, ProduceError>>;

    /// Loads what appending to `topic` needs ahead of the first record.
    fn warm_up<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, ()>;

    /// Waits up to `timeout` until every appended record is durable (used at shutdown).
    fn flush(&self, timeout: Duration) -> Result<(), ProduceError>;

    /// Number of partitions of `topic`.
    fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<usize, OffsetsError>>;

    /// The next offset a record appended to the partition will get (its high watermark).
    fn high_watermark<'a>(&'a self, topic: &'a str, partition: i32) -> BoxFuture<'a, Result<i64, OffsetsError>>;

    /// For every partition of `topic`, the offset of its first record appended at or after
    /// `at_ms` (Unix milliseconds, the record timestamp), or its high watermark when it has none:
    /// where a read of what arrived since `at_ms` starts (Kafka's offsets-for-times).
    fn offsets_for_time<'a>(
        &'a self,
        topic: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<(i32, i64)>, OffsetsError>>;

    /// Starts handing every record of `topic` from `start` on to `sink`, in partition order;
    /// returns once every partition's starting offset is fixed.
    fn tail<'a>(
        &'a self,
        topic: &'a str,
        start: StartAt,
        sink: Arc<dyn RecordSink>,
    ) -> BoxFuture<'a, Result<Tailer, TailerError>>;

    /// Joins consumer group `group` reading `topics`: this process is then one of the members
    /// Kafka spreads the topics' partitions over. Once this returns, every record appended to
    /// `topics` is read by some member of the group.
    fn join_group<'a>(&'a self, group: &'a str, topics: &'a [String])
        -> BoxFuture<'a, Result<GroupMember, GroupError>>;

    /// Reads `plan`: every partition from its offset up to the high watermark found when the
    /// read reaches its topic. `permit`, when given, is held until the read is over.
    fn read(&self, plan: Vec<ReadFrom>, permit: Option<SemaphorePermit<'static>>) -> RangeReader;

    /// Creates the topics `config` needs (`data_topics` with the `delete` policy, the retained
    /// and sessions topics compacted) that do not exist; returns those it created.
    fn ensure_topics<'a>(
        &'a self,
        config: &'a Config,
        data_topics: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, AdminError>>;
}
