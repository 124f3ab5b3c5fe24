//! The log on Kafka: the one shared producer, a metadata consumer for point queries, a
//! librdkafka consumer per tailed topic and per range read. Blocking librdkafka calls run on the
//! blocking pool.

use futures::future::{BoxFuture, FutureExt};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::SemaphorePermit;

use super::admin::{ensure_topics, AdminError};
use super::group::{join_kafka, GroupError, GroupMember};
use super::log::{Ack, Log, OutRecord};
use super::offsets::OffsetsError;
use super::producer::{ProduceError, Producer};
use super::range::{RangeReader, ReadFrom};
use super::tailer::{start_kafka, RecordSink, StartAt, Tailer, TailerError};
use crate::config::{Config, Kafka};

/// Bounds each metadata or watermark query.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Kafka, reached through librdkafka with the settings of `kafka`.
pub(crate) struct KafkaLog {
    kafka: Kafka,
    producer: Producer,
    metadata: Arc<BaseConsumer>,
}

impl KafkaLog {
    /// Creates the clients (no connection is made until the first request).
    pub(crate) fn new(kafka: &Kafka) -> Result<Self, KafkaError> {
        let metadata =
            super::client_config(&kafka.bootstrap_servers, &kafka.properties, &[("group.id", "tributary-offsets")])
                .create()?;
        Ok(KafkaLog { kafka: kafka.clone(), producer: Producer::new(kafka)?, metadata: Arc::new(metadata) })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&BaseConsumer) -> Result<T, OffsetsError> + Send + 'static,
    ) -> Result<T, OffsetsError> {
        let consumer = self.metadata.clone();
        tokio::task::spawn_blocking(move || f(&consumer)).await.map_err(|_| OffsetsError::Join)?
    }
}

impl Log for KafkaLog {
    fn append<'a>(&'a self, record: OutRecord<'a>) -> BoxFuture<'a, Result<Ack, ProduceError>> {
        self.producer.enqueue(record).boxed()
    }

    fn warm_up<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, ()> {
        self.producer.warm_up(topic).boxed()
    }

    fn flush(&self, timeout: Duration) -> Result<(), ProduceError> {
        Ok(self.producer.flush(timeout)?)
    }

    fn partition_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<usize, OffsetsError>> {
        let topic = topic.to_owned();
        self.blocking(move |consumer| {
            let md = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
            let n = md.topics().iter().filter(|t| t.error().is_none()).map(|t| t.partitions().len()).sum();
            if n == 0 {
                return Err(OffsetsError::NoPartitions(topic));
            }
            Ok(n)
        })
        .boxed()
    }

    fn high_watermark<'a>(&'a self, topic: &'a str, partition: i32) -> BoxFuture<'a, Result<i64, OffsetsError>> {
        let topic = topic.to_owned();
        self.blocking(move |consumer| Ok(consumer.fetch_watermarks(&topic, partition, TIMEOUT)?.1)).boxed()
    }

    fn offsets_for_time<'a>(
        &'a self,
        topic: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<(i32, i64)>, OffsetsError>> {
        let topic = topic.to_owned();
        self.blocking(move |consumer| {
            let md = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
            let mut query = TopicPartitionList::new();
            for t in md.topics().iter().filter(|t| t.error().is_none()) {
                for p in t.partitions() {
                    query.add_partition_offset(&topic, p.id(), Offset::Offset(at_ms))?;
                }
            }
            if query.count() == 0 {
                return Err(OffsetsError::NoPartitions(topic));
            }
            let found = consumer.offsets_for_times(query, TIMEOUT)?;
            let mut starts = Vec::with_capacity(found.count());
            for e in found.elements() {
                // A partition Kafka could not search fails the query: starting it at its end
                // would skip what the caller asked for.
                e.error()?;
                let start = match e.offset() {
                    Offset::Offset(o) => o,
                    // No record at or after the time: nothing to read but what comes next.
                    _ => consumer.fetch_watermarks(&topic, e.partition(), TIMEOUT)?.1,
                };
                starts.push((e.partition(), start));
            }
            Ok(starts)
        })
        .boxed()
    }

    fn tail<'a>(
        &'a self,
        topic: &'a str,
        start: StartAt,
        sink: Arc<dyn RecordSink>,
    ) -> BoxFuture<'a, Result<Tailer, TailerError>> {
        start_kafka(&self.kafka, topic, start, sink).boxed()
    }

    fn join_group<'a>(
        &'a self,
        group: &'a str,
        topics: &'a [String],
    ) -> BoxFuture<'a, Result<GroupMember, GroupError>> {
        join_kafka(&self.kafka, group, topics).boxed()
    }

    fn read(&self, plan: Vec<ReadFrom>, permit: Option<SemaphorePermit<'static>>) -> RangeReader {
        RangeReader::start_kafka(&self.kafka, plan, permit)
    }

    fn ensure_topics<'a>(
        &'a self,
        config: &'a Config,
        data_topics: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, AdminError>> {
        ensure_topics(config, data_topics).boxed()
    }
}
