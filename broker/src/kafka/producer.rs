//! The one Kafka producer a broker process shares between all its connections.
//!
//! It is idempotent with `acks=all`, so an acknowledged record is durable and retries inside
//! librdkafka never duplicate it. Its queue is bounded: when full, `enqueue` waits, which stops
//! the publishing connection from reading more packets (backpressure instead of memory growth).

use futures::FutureExt;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use std::time::Duration;

use super::log::{Ack, OutRecord};
use crate::config::Kafka;

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Kafka partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
}

/// A produce that failed after it was handed to the producer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProduceError {
    /// Kafka (or librdkafka) refused or timed out the record.
    #[error("kafka produce failed: {0}")]
    Kafka(#[from] KafkaError),
    /// The producer was dropped before answering (process shutting down).
    #[error("producer closed before the delivery report")]
    Closed,
}

/// Our producer defaults; `kafka.properties` overrides any of them.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("acks", "all"),
    ("enable.idempotence", "true"),
    // 0 = never give up: while Kafka is away QoS 1/2 publishes stay unacknowledged instead of
    // failing, and go through once it is back.
    ("message.timeout.ms", "0"),
    ("linger.ms", "2"),
    // The Java client's default: see `kafka::partition`.
    ("partitioner", "murmur2_random"),
    // Bounds the memory held for records Kafka has not taken yet.
    ("queue.buffering.max.kbytes", "65536"),
    ("queue.buffering.max.messages", "100000"),
];

/// How long to wait before retrying an enqueue into a full producer queue.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(5);

/// Shared, cheaply clonable Kafka producer.
#[derive(Clone)]
pub(crate) struct Producer {
    inner: FutureProducer,
}

impl Producer {
    /// Creates the producer (no connection is made until the first record).
    pub(crate) fn new(kafka: &Kafka) -> Result<Self, KafkaError> {
        let inner = super::client_config(&kafka.bootstrap_servers, &kafka.properties, PRODUCER_DEFAULTS).create()?;
        Ok(Producer { inner })
    }

    /// Enqueues `record` and returns a future of its delivery. Waits while the queue is full.
    pub(crate) async fn enqueue(&self, record: OutRecord<'_>) -> Result<Ack, ProduceError> {
        loop {
            let mut r: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(record.topic).key(record.key);
            if let Some(p) = record.partition {
                r = r.partition(p);
            }
            if let Some(v) = record.value {
                r = r.payload(v);
            }
            if let Some(h) = &record.headers {
                r = r.headers(h.clone());
            }
            match self.inner.send_result(r) {
                Ok(delivery) => return Ok(delivery.map(delivered).boxed()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((e, _)) => return Err(ProduceError::Kafka(e)),
            }
        }
    }

    /// Loads `topic`'s metadata into the producer ahead of its first record, so that the first
    /// record does not wait for a metadata round trip (the first CONNECT after start would).
    pub(crate) async fn warm_up(&self, topic: &str) {
        let (inner, topic) = (self.inner.clone(), topic.to_owned());
        let fetched =
            tokio::task::spawn_blocking(move || inner.client().fetch_metadata(Some(&topic), Duration::from_secs(10)))
                .await;
        if !matches!(fetched, Ok(Ok(_))) {
            tracing::debug!("producer metadata warm-up failed; the first record will fetch it");
        }
    }

    /// Waits up to `timeout` for queued records to be delivered (used at shutdown).
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner.flush(timeout)
    }
}

/// Turns librdkafka's delivery report into ours.
fn delivered(
    r: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
) -> Result<Delivered, ProduceError> {
    match r {
        Ok(Ok(d)) => Ok(Delivered { partition: d.partition, offset: d.offset }),
        Ok(Err((e, _))) => Err(ProduceError::Kafka(e)),
        Err(_) => Err(ProduceError::Closed),
    }
}
