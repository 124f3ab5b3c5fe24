//! Point queries the QoS 2 recovery needs: partition counts, high watermarks, and a search of
//! one partition for records with given header values (a range read of the log).

use rdkafka::error::KafkaError;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::log::Log;
use super::range::{RangeError, ReadFrom};

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

/// Cached partition counts and watermark floors over the log, and the publish-id search.
pub struct Offsets {
    log: Arc<dyn Log>,
    counts: Mutex<HashMap<String, usize>>,
    floors: Mutex<HashMap<(String, i32), (Instant, i64)>>,
}

/// How long a queried high watermark serves as a lower bound before it is asked again.
pub(crate) const WATERMARK_AGE: Duration = Duration::from_secs(5);

impl Offsets {
    /// Queries over `log`.
    pub fn new(log: Arc<dyn Log>) -> Arc<Self> {
        Arc::new(Offsets { log, counts: Mutex::new(HashMap::new()), floors: Mutex::new(HashMap::new()) })
    }

    /// Number of partitions of `topic` (cached: partitions are only ever added, and the broker
    /// never adds them).
    pub async fn partition_count(&self, topic: &str) -> Result<usize, OffsetsError> {
        if let Some(n) = self.counts.lock().ok().and_then(|c| c.get(topic).copied()) {
            return Ok(n);
        }
        let n = self.log.partition_count(topic).await?;
        if let Ok(mut c) = self.counts.lock() {
            c.insert(topic.to_owned(), n);
        }
        Ok(n)
    }

    /// A lower bound of the next offset of a partition: its high watermark, as queried at most
    /// [`WATERMARK_AGE`] ago (offsets only grow, so an older value is still a lower bound; it
    /// only makes a later search a little longer).
    pub async fn offset_floor(&self, topic: &str, partition: i32) -> Result<i64, OffsetsError> {
        let key = (topic.to_owned(), partition);
        if let Some((at, hw)) = self.floors.lock().ok().and_then(|f| f.get(&key).copied()) {
            if at.elapsed() < WATERMARK_AGE {
                return Ok(hw);
            }
        }
        let hw = self.log.high_watermark(topic, partition).await?;
        if let Ok(mut f) = self.floors.lock() {
            f.insert(key, (Instant::now(), hw));
        }
        Ok(hw)
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
        let mut reader = self.log.read(plan, None);
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
