//! The one place that decides where an MQTT message goes in Kafka: the mapping in force picks
//! the Kafka topic, the key (the MQTT topic) picks the partition, and a retained message also
//! goes to the retained topic. Client publishes and Wills (of live and of dead connections)
//! all come through here.
//!
//! A publication that must be found again later (QoS 2 exactly once) is *placed* first: the
//! caller stores the [`Placement`] in its intent and produces to exactly that place, so a
//! mapping reload between the intent and the produce cannot send the record somewhere the
//! stored intent does not name.

use arc_swap::ArcSwap;
use futures::future::{self, BoxFuture, FutureExt};
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::kafka::log::{Ack, Log, OutRecord};
use crate::kafka::offsets::{Offsets, OffsetsError};
use crate::kafka::partition::partition_for_key;
use crate::kafka::producer::{Delivered, ProduceError};
use crate::mapping::TopicMapping;
use crate::message::Message;
use crate::metrics::Metrics;
use crate::retained::RetainedStore;

/// Resolves when a publish is durable in Kafka.
pub(crate) type PublishAck = BoxFuture<'static, Result<Delivered, ProduceError>>;

/// Where a record will land: chosen once, before anything about it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The Kafka topic the mapping chose.
    pub topic: String,
    /// The partition of the record's key (Java-compatible murmur2, see `kafka::partition`).
    pub partition: i32,
}

/// Mapping, producer and retained store: everything a publish needs.
pub struct Publisher {
    /// MQTT topic → Kafka topic rules in force. An `ArcSwap` (the `arc-swap` crate) because
    /// every publish reads it and a reload replaces it: reads are lock-free and never wait for
    /// a writer, and a replacement is one atomic pointer swap.
    mapping: ArcSwap<TopicMapping>,
    log: Arc<dyn Log>,
    /// The compacted topic of retained messages.
    retained_topic: String,
    retained: Arc<RetainedStore>,
    offsets: Arc<Offsets>,
    metrics: Arc<Metrics>,
}

impl Publisher {
    /// A publisher over `log` with the mapping `mapping`; retained messages go to
    /// `config.topics.retained` and into `retained` once Kafka has them.
    pub fn new(
        config: &Config,
        mapping: TopicMapping,
        log: Arc<dyn Log>,
        retained: Arc<RetainedStore>,
        offsets: Arc<Offsets>,
        metrics: Arc<Metrics>,
    ) -> Publisher {
        Publisher {
            mapping: ArcSwap::from_pointee(mapping),
            log,
            retained_topic: config.topics.retained.clone(),
            retained,
            offsets,
            metrics,
        }
    }

    /// The topic mapping in force now. Costs one reference-count increment; hold it for the
    /// duration of one operation, so the operation sees one mapping throughout.
    pub fn mapping(&self) -> Arc<TopicMapping> {
        self.mapping.load_full()
    }

    /// Makes `mapping` the one new publishes use. Existing subscriptions keep tailing the Kafka
    /// topics chosen when they were made (a client re-subscribes to pick up the new mapping);
    /// publications already placed keep their place. The caller creates the new mapping's
    /// Kafka topics first.
    pub fn set_mapping(&self, mapping: TopicMapping) {
        self.mapping.store(Arc::new(mapping));
    }

    /// Where `msg` would land now: the mapping's Kafka topic and the partition of its key.
    pub async fn place(&self, msg: &Message) -> Result<Placement, OffsetsError> {
        let topic = self.mapping().kafka_topic_for(&msg.topic).to_owned();
        let partitions = self.offsets.partition_count(&topic).await?;
        let partition = partition_for_key(msg.topic.as_bytes(), partitions);
        Ok(Placement { topic, partition })
    }

    /// A lower bound of the offset a record produced to `placement` from now on will get.
    pub async fn offset_floor(&self, placement: &Placement) -> Result<i64, OffsetsError> {
        self.offsets.offset_floor(&placement.topic, placement.partition).await
    }

    /// Produces `msg` to its mapped Kafka topic (and, when retained, to the retained topic).
    /// Waits while the producer queue is full; the returned future resolves once Kafka has
    /// acknowledged every record.
    pub async fn publish(&self, msg: Message) -> Result<PublishAck, ProduceError> {
        // An owned `Arc`, not an `arc_swap::Guard`: `Log::append` may wait on a full queue, and
        // guards are meant to be short-lived.
        let mapping = self.mapping();
        let started = Instant::now();
        let main = self.log.append(OutRecord::of(mapping.kafka_topic_for(&msg.topic), None, &msg, false)).await?;
        self.with_retained(started, main, msg).await
    }

    /// Produces `msg` to exactly `placement` (and, when retained, to the retained topic),
    /// whatever the mapping says now.
    pub async fn publish_placed(&self, msg: Message, placement: &Placement) -> Result<PublishAck, ProduceError> {
        let started = Instant::now();
        let main = self.log.append(OutRecord::of(&placement.topic, Some(placement.partition), &msg, false)).await?;
        self.with_retained(started, main, msg).await
    }

    /// Publishes the Last Will of `client_id` and waits until Kafka has it.
    pub async fn publish_will(&self, client_id: &str, msg: Message) -> Result<(), ProduceError> {
        let result = match self.publish(msg).await {
            Ok(ack) => ack.await.map(|_| ()),
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.metrics.produce_failed.inc();
        } else {
            self.metrics.wills_published.inc();
            tracing::debug!(client = %client_id, "last will published");
        }
        result
    }

    /// Waits until queued records are delivered, at most `timeout` (used at shutdown).
    pub fn flush(&self, timeout: std::time::Duration) -> Result<(), ProduceError> {
        self.log.flush(timeout)
    }

    /// Adds the retained-topic record of a retained `msg` to the acknowledgement of its main
    /// record, and times the main record from `started` (queue wait included) to Kafka's answer.
    async fn with_retained(&self, started: Instant, main: Ack, msg: Message) -> Result<PublishAck, ProduceError> {
        let latency = self.metrics.kafka_produce_seconds.clone();
        let main = main
            .inspect(move |r| {
                if r.is_ok() {
                    latency.observe(started.elapsed().as_secs_f64());
                }
            })
            .boxed();
        if !msg.retain {
            return Ok(main);
        }
        // An empty retained payload deletes: a null value is a tombstone for compaction. The
        // retained topic is compacted by key, so its partition is the producer's choice.
        let retained_ack =
            self.log.append(OutRecord::of(&self.retained_topic, None, &msg, msg.payload.is_empty())).await?;
        let store = self.retained.clone();
        Ok(async move {
            let (main, retained) = future::join(main, retained_ack).await;
            let r = retained?;
            // Our own write is visible to local subscribers at once, before the tail sees it.
            store.apply(r.partition, r.offset, msg, false);
            main
        }
        .boxed())
    }
}
