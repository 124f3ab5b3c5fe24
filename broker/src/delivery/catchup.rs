//! Reading Kafka back for one connection. Offline delivery reads a resumed session's Kafka
//! topics from its cursors up to the end offsets taken *after* its subscriptions went live
//! again, and hands the matching QoS 1/2 messages to the connection. A rewind reads the same
//! way from the offsets of a time in the past, QoS 0 included (see `client::rewind`).
//!
//! Everything below those end offsets comes from here; everything from the live tailer's
//! position on comes through the mailbox, held back until this reader is done. The tailer's
//! position is never above the end offsets, so the two ranges overlap rather than leave a gap,
//! and the connection drops the overlap by its cursors (no duplicate at the seam).

use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tracing::Instrument as _;

use super::{Delivery, Origin};
use crate::codec::{QoS, SubscriptionOptions};
use crate::kafka::log::Log;
use crate::kafka::range::{RangeError, ReadFrom};
use crate::kafka::record::Record;
use crate::message::Message;
use crate::topic::matches;

/// Readers of each kind running at once per process: each holds a Kafka consumer, and a mass
/// reconnect after a pod failure must not open thousands of them. Rewinds have permits of
/// their own: a client that rewinds and never acknowledges holds one, and must not hold up
/// the offline delivery of resumed sessions.
const MAX_CONCURRENT: usize = 16;
static PERMITS: Semaphore = Semaphore::const_new(MAX_CONCURRENT);
static REWIND_PERMITS: Semaphore = Semaphore::const_new(MAX_CONCURRENT);

/// Deliveries buffered between the reader and the connection.
pub(crate) const CHANNEL: usize = 256;

/// What to read of one Kafka topic: the session's cursors, (partition, first offset) pairs.
pub(crate) type CatchUp = ReadFrom;

/// A subscription as the reader matches it.
pub(crate) type Sub = (String, SubscriptionOptions, Option<u32>);

/// Why a connection reads Kafka back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A persistent session's offline delivery: QoS 1/2 only (QoS 0 may be lost).
    Offline,
    /// A SUBSCRIBE rewinding to a time: the records these filters match, QoS 0 included,
    /// delivered as all the session's subscriptions would have had them.
    Rewind(Vec<String>),
}

/// Starts reading `plan` for `client_id`; matching messages arrive on the returned channel,
/// which closes when the reader is done (or gave up: the messages stay in Kafka and the next
/// connection of the session reads them again). `active` counts the readers reading now.
pub(crate) fn spawn(
    log: Arc<dyn Log>,
    plan: Vec<CatchUp>,
    subs: Vec<Sub>,
    client_id: Arc<str>,
    active: Gauge,
    kind: Kind,
) -> mpsc::Receiver<Delivery> {
    let (tx, rx) = mpsc::channel(CHANNEL);
    // A child of the connect (or subscribe) span that starts it; its reading may outlast it.
    let span = match &kind {
        Kind::Offline => tracing::info_span!("mqtt.catchup", client_id = %client_id, delivered = tracing::field::Empty),
        Kind::Rewind(_) => {
            tracing::info_span!("mqtt.rewind", client_id = %client_id, delivered = tracing::field::Empty)
        }
    };
    tokio::spawn(
        async move {
            let delivered = read_back(log, plan, subs, &client_id, active, tx, kind).await;
            tracing::Span::current().record("delivered", delivered);
        }
        .instrument(span),
    );
    rx
}

/// Reads `plan` into `tx` until the end offsets, the connection going away or an error; returns
/// the number of deliveries sent.
async fn read_back(
    log: Arc<dyn Log>,
    plan: Vec<CatchUp>,
    subs: Vec<Sub>,
    client_id: &str,
    active: Gauge,
    tx: mpsc::Sender<Delivery>,
    kind: Kind,
) -> u64 {
    let mut delivered = 0;
    let permits = if kind == Kind::Offline { &PERMITS } else { &REWIND_PERMITS };
    let Ok(permit) = permits.acquire().await else { return delivered };
    let _active = Active::new(active);
    // Each range ends at the high watermark taken as the reader reaches its topic: after the
    // subscriptions went live again.
    let mut records = log.read(plan, Some(permit));
    loop {
        let next = tokio::select! {
            // The connection is gone: stop reading even while no record matches.
            () = tx.closed() => return delivered,
            next = records.next() => next,
        };
        match next {
            None => return delivered,
            Some(Ok(record)) => {
                if let Some(d) = delivery(&record, &subs, client_id, &kind) {
                    if tx.send(d).await.is_err() {
                        return delivered;
                    }
                    delivered += 1;
                }
            }
            Some(Err(RangeError::Poll(e))) => tracing::debug!(error = %e, "offline delivery read error"),
            Some(Err(e)) => {
                tracing::warn!(client = %client_id, error = %e, "offline delivery interrupted");
                return delivered;
            }
        }
    }
}

/// One running reader in the `catchup_readers` gauge, for as long as it lives.
struct Active(Gauge);

impl Active {
    fn new(gauge: Gauge) -> Active {
        gauge.inc();
        Active(gauge)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The delivery of `record` to the session, if it is a message that its subscriptions match
/// (offline delivery: with QoS 1 or 2, queueing is for those, QoS 0 may be lost; a rewind: one
/// of the rewound filters must match).
fn delivery(record: &Record, subs: &[Sub], client_id: &str, kind: &Kind) -> Option<Delivery> {
    let msg = Arc::new(Message::from_record(record.view())?);
    if let Kind::Rewind(filters) = kind {
        if !filters.iter().any(|f| matches(f, &msg.topic)) {
            return None;
        }
    }
    let matching = subs.iter().filter(|(f, _, _)| matches(f, &msg.topic)).map(|(_, opts, id)| (*opts, *id));
    let origin = Origin { topic: record.topic.clone(), partition: record.partition, offset: record.offset };
    Delivery::for_subscriptions(&msg, client_id, matching, Some(origin))
        .filter(|d| *kind != Kind::Offline || d.qos != QoS::AtMostOnce)
}
