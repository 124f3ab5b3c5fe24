//! The bounded queue between the shared Kafka tailers and one client connection.
//!
//! A `VecDeque` behind a mutex rather than a channel: an idle connection's queue then holds no
//! allocation at all, which matters at hundreds of thousands of connections per pod.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

use crate::codec::{QoS, SubscriptionOptions};
use crate::message::Message;
use crate::router::delivered_qos;

/// Where a message sits in Kafka: what a persistent session's delivery cursor counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Kafka topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// One message on its way to one client, with the per-subscriber delivery decisions made.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The shared message.
    pub msg: Arc<Message>,
    /// QoS to deliver with: min(published, granted).
    pub qos: QoS,
    /// RETAIN flag to deliver with.
    pub retain: bool,
    /// Identifiers of the matching subscriptions (MQTT 5).
    pub subscription_ids: Vec<u32>,
    /// Its Kafka position; `None` for retained messages, which are not part of the stream.
    pub origin: Option<Origin>,
}

impl Delivery {
    /// The delivery of `msg` to a client whose subscriptions `matching` (options, identifier)
    /// match it: once, with the highest granted QoS and every identifier; `None` when No Local
    /// removes them all.
    pub fn for_subscriptions(
        msg: &Arc<Message>,
        client_id: &str,
        matching: impl IntoIterator<Item = (SubscriptionOptions, Option<u32>)>,
        origin: Option<Origin>,
    ) -> Option<Delivery> {
        let mut delivery: Option<Delivery> = None;
        for (options, id) in matching {
            if options.no_local && msg.publisher.as_deref() == Some(client_id) {
                continue;
            }
            let qos = delivered_qos(msg.qos, options.qos);
            let retain = options.retain_as_published && msg.retain;
            let d = delivery.get_or_insert_with(|| Delivery {
                msg: msg.clone(),
                qos,
                retain,
                subscription_ids: Vec::new(),
                origin: origin.clone(),
            });
            d.qos = d.qos.max(qos);
            d.retain |= retain;
            d.subscription_ids.extend(id);
        }
        delivery
    }
}

/// A client's inbound message queue.
pub struct Mailbox {
    queue: Mutex<VecDeque<Delivery>>,
    notify: Notify,
    capacity: usize,
    /// Set when a delivery was refused: a persistent session then re-reads Kafka from its cursor.
    overflowed: AtomicBool,
}

impl Mailbox {
    /// A queue holding at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Mailbox {
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            capacity,
            overflowed: AtomicBool::new(false),
        }
    }

    /// Adds a delivery; when the queue is full the message is dropped (the caller counts it), so
    /// one slow client cannot stall the shared consumer that feeds every other client. Returns
    /// whether it was queued.
    pub fn push(&self, d: Delivery) -> bool {
        let queued = match self.queue.lock() {
            Ok(mut q) if q.len() < self.capacity => {
                q.push_back(d);
                true
            }
            _ => false,
        };
        if queued {
            self.notify.notify_one();
        } else {
            self.overflowed.store(true, Ordering::Relaxed);
        }
        queued
    }

    /// Adds deliveries regardless of capacity (retained messages for a new subscription, which
    /// are bounded by the subscription itself).
    pub fn push_all(&self, ds: impl IntoIterator<Item = Delivery>) {
        if let Ok(mut q) = self.queue.lock() {
            q.extend(ds);
        }
        self.notify.notify_one();
    }

    /// Takes the oldest delivery.
    pub fn pop(&self) -> Option<Delivery> {
        let mut q = self.queue.lock().ok()?;
        let d = q.pop_front();
        if q.is_empty() && q.capacity() > 64 {
            // Give back a burst's memory once the client has caught up.
            *q = VecDeque::new();
        }
        d
    }

    /// Whether a delivery was refused since the last call; empties the queue when so, because
    /// the caller then re-reads everything from Kafka anyway.
    pub fn take_overflow(&self) -> bool {
        let overflowed = self.overflowed.swap(false, Ordering::Relaxed);
        if overflowed {
            if let Ok(mut q) = self.queue.lock() {
                *q = VecDeque::new();
            }
        }
        overflowed
    }

    /// Resolves when something was pushed since the last call.
    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn delivery(n: u8) -> Delivery {
        Delivery {
            msg: Arc::new(Message {
                topic: "t".into(),
                payload: Bytes::from(vec![n]),
                qos: QoS::AtMostOnce,
                retain: false,
                publisher: None,
                publish_id: None,
                properties: Default::default(),
            }),
            qos: QoS::AtMostOnce,
            retain: false,
            subscription_ids: vec![],
            origin: None,
        }
    }

    #[test]
    fn bounded_fifo_refuses_when_full() {
        let m = Mailbox::new(2);
        assert!(m.push(delivery(1)));
        assert!(m.push(delivery(2)));
        assert!(!m.push(delivery(3)));
        assert!(m.take_overflow(), "the refusal is remembered");
        assert!(m.pop().is_none(), "and the queue emptied for a re-read from Kafka");
        assert!(!m.take_overflow());
        assert!(m.push(delivery(1)));
        assert!(m.push(delivery(2)));
        assert_eq!(m.pop().map(|d| d.msg.payload[0]), Some(1));
        assert_eq!(m.pop().map(|d| d.msg.payload[0]), Some(2));
        assert!(m.pop().is_none());
    }
}
