//! Point queries on Kafka the QoS 2 recovery needs: partition counts, high watermarks, and a
//! search of one partition for records with given header values (a [`RangeReader`]). All
//! blocking librdkafka calls run on the blocking pool.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::range::{RangeError, RangeReader, ReadFrom};
use crate::config::Kafka;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    /// Kafka refused or did not answer.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The search of a partition failed.
    #[error(transparent)]
    Range(#[from] RangeError),
    /// The topic has no partitions (does not exist).
    #[error("kafka topic {0} has no partitions")]
    NoPartitions(String),
    /// The blocking task was cancelled.
    #[error("kafka query task failed")]
    Join,
}

/// A shared client for metadata and watermark queries.
pub struct Offsets {
    consumer: BaseConsumer,
    kafka: Kafka,
    counts: Mutex<HashMap<String, usize>>,
    floors: Mutex<HashMap<(String, i32), (Instant, i64)>>,
}

/// How long a queried high watermark serves as a lower bound before it is asked again.
pub const WATERMARK_AGE: Duration = Duration::from_secs(5);

impl Offsets {
    /// Creates the client (no connection until the first query).
    pub fn new(kafka: &Kafka) -> Result<Arc<Self>, KafkaError> {
        let consumer =
            super::client_config(&kafka.bootstrap_servers, &kafka.properties, &[("group.id", "tributary-offsets")])
                .create()?;
        Ok(Arc::new(Offsets {
            consumer,
            kafka: kafka.clone(),
            counts: Mutex::new(HashMap::new()),
            floors: Mutex::new(HashMap::new()),
        }))
    }

    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Offsets) -> Result<T, OffsetsError> + Send + 'static,
    ) -> Result<T, OffsetsError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me)).await.map_err(|_| OffsetsError::Join)?
    }

    /// Number of partitions of `topic` (cached: partitions are only ever added, and the broker
    /// never adds them).
    pub async fn partition_count(self: &Arc<Self>, topic: &str) -> Result<usize, OffsetsError> {
        if let Some(n) = self.counts.lock().ok().and_then(|c| c.get(topic).copied()) {
            return Ok(n);
        }
        let topic = topic.to_owned();
        self.blocking(move |me| {
            let md = me.consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
            let n = md.topics().iter().filter(|t| t.error().is_none()).map(|t| t.partitions().len()).sum();
            if n == 0 {
                return Err(OffsetsError::NoPartitions(topic));
            }
            if let Ok(mut c) = me.counts.lock() {
                c.insert(topic, n);
            }
            Ok(n)
        })
        .await
    }

    /// A lower bound of the next offset of a partition: its high watermark, as queried at most
    /// [`WATERMARK_AGE`] ago (offsets only grow, so an older value is still a lower bound; it
    /// only makes a later search a little longer).
    pub async fn offset_floor(self: &Arc<Self>, topic: &str, partition: i32) -> Result<i64, OffsetsError> {
        let key = (topic.to_owned(), partition);
        if let Some((at, hw)) = self.floors.lock().ok().and_then(|f| f.get(&key).copied()) {
            if at.elapsed() < WATERMARK_AGE {
                return Ok(hw);
            }
        }
        self.blocking(move |me| {
            let hw = me.consumer.fetch_watermarks(&key.0, key.1, TIMEOUT)?.1;
            if let Ok(mut f) = me.floors.lock() {
                f.insert(key, (Instant::now(), hw));
            }
            Ok(hw)
        })
        .await
    }

    /// Which of `values` a record at or after `from` in the partition carries as header `name`.
    /// Reads once, up to the high watermark at the time of the call, and stops early once every
    /// value is found.
    pub async fn find_headers(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        name: &'static str,
        mut values: HashSet<String>,
    ) -> Result<HashSet<String>, OffsetsError> {
        let mut found = HashSet::new();
        if values.is_empty() {
            return Ok(found);
        }
        let plan = vec![ReadFrom { topic: topic.to_owned(), from: vec![(partition, from)] }];
        let mut reader = RangeReader::start(&self.kafka, plan, None);
        while let Some(record) = reader.next().await {
            let record = record?;
            for value in record.view().header(name).flatten() {
                if let Some(v) = std::str::from_utf8(value).ok().and_then(|v| values.take(v)) {
                    found.insert(v);
                }
            }
            if values.is_empty() {
                // Dropping the reader stops it.
                break;
            }
        }
        Ok(found)
    }
}
