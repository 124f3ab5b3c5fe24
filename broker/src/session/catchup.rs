//! Offline delivery: reads a resumed session's Kafka topics from its cursors up to the end
//! offsets taken *after* its subscriptions went live again, and hands the matching QoS 1/2
//! messages to the connection.
//!
//! Everything below those end offsets comes from here; everything from the live tailer's
//! position on comes through the mailbox, held back until this reader is done. The tailer's
//! position is never above the end offsets, so the two ranges overlap rather than leave a gap,
//! and the connection drops the overlap by its cursors (no duplicate at the seam).

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

use crate::codec::{QoS, SubscriptionOptions};
use crate::config::Kafka;
use crate::kafka::drop_reached;
use crate::mailbox::{Delivery, Origin};
use crate::message::Message;
use crate::topic::matches;

/// Catch-up readers running at once per process: each holds a Kafka consumer, and a mass
/// reconnect after a pod failure must not open thousands of them.
const MAX_CONCURRENT: usize = 16;
static PERMITS: Semaphore = Semaphore::const_new(MAX_CONCURRENT);

/// Deliveries buffered between the reader and the connection.
pub const CHANNEL: usize = 256;

const TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(200);

/// What to read of one Kafka topic: (partition, first offset) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUp {
    /// Kafka topic.
    pub topic: String,
    /// Partitions and the offsets to start at.
    pub from: Vec<(i32, i64)>,
}

/// A subscription as the reader matches it.
pub type Sub = (String, SubscriptionOptions, Option<u32>);

/// Starts reading `plan` for `client_id`; matching messages arrive on the returned channel,
/// which closes when the reader is done (or gave up: the messages stay in Kafka and the next
/// connection of the session reads them again).
pub fn spawn(kafka: Kafka, plan: Vec<CatchUp>, subs: Vec<Sub>, client_id: Arc<str>) -> mpsc::Receiver<Delivery> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    tokio::spawn(async move {
        let Ok(_permit) = PERMITS.acquire().await else { return };
        let id = client_id.clone();
        let read = tokio::task::spawn_blocking(move || read(&kafka, &plan, &subs, &client_id, &tx)).await;
        match read {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(client = %id, error = %e, "offline delivery interrupted"),
            Err(e) => tracing::warn!(client = %id, error = %e, "offline delivery task failed"),
        }
    });
    rx
}

fn read(
    kafka: &Kafka,
    plan: &[CatchUp],
    subs: &[Sub],
    client_id: &str,
    tx: &mpsc::Sender<Delivery>,
) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = crate::kafka::client_config(
        &kafka.bootstrap_servers,
        &kafka.properties,
        &[
            ("group.id", "tributary-catchup"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            // A cursor older than the retention: deliver what is left.
            ("auto.offset.reset", "earliest"),
        ],
    )
    .create()?;
    for step in plan {
        let topic: Arc<str> = step.topic.as_str().into();
        // Where to stop, per partition: the end now, after the subscriptions went live.
        let mut targets: HashMap<i32, i64> = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for &(p, from) in &step.from {
            let (_, high) = consumer.fetch_watermarks(&step.topic, p, TIMEOUT)?;
            if from < high {
                targets.insert(p, high);
                tpl.add_partition_offset(&step.topic, p, Offset::Offset(from))?;
            }
        }
        if targets.is_empty() {
            continue;
        }
        consumer.assign(&tpl)?;
        while !targets.is_empty() {
            if tx.is_closed() {
                return Ok(());
            }
            match consumer.poll(POLL) {
                Some(Ok(m)) => {
                    let (p, o) = (m.partition(), m.offset());
                    let Some(&target) = targets.get(&p) else { continue };
                    if o < target {
                        if let Some(msg) = Message::from_record(m.key(), m.payload(), m.headers()) {
                            let msg = Arc::new(msg);
                            let matching = subs
                                .iter()
                                .filter(|(f, _, _)| matches(f, &msg.topic))
                                .map(|(_, opts, id)| (*opts, *id));
                            let origin = Origin { topic: topic.clone(), partition: p, offset: o };
                            let d = Delivery::for_subscriptions(&msg, client_id, matching, Some(origin));
                            // Offline queueing is for QoS 1 and 2 (QoS 0 may be lost).
                            if let Some(d) = d.filter(|d| d.qos != QoS::AtMostOnce) {
                                if tx.blocking_send(d).is_err() {
                                    return Ok(());
                                }
                            }
                        }
                    }
                    if o + 1 >= target {
                        targets.remove(&p);
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "offline delivery read error"),
                // Idle: see `drop_reached`.
                None => drop_reached(&mut targets, &consumer.position()?),
            }
        }
        consumer.unassign()?;
    }
    Ok(())
}
