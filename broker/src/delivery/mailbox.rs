//! The bounded queue between the shared Kafka tailers and one client connection.
//!
//! A `VecDeque` behind a mutex rather than a channel: an idle connection's queue then holds no
//! allocation at all, which matters at hundreds of thousands of connections per pod.
//!
//! A full queue does not stall the shared tailer (that would stall every other client of the
//! pod) and does not lose QoS 1/2 messages either: Kafka holds them. From the first refusal on
//! the queue refuses everything, so that what it holds stays in Kafka order ahead of what it
//! refused, and remembers per partition the first offset it refused: the [`Gap`]. The
//! connection delivers what is queued, then reads the gap back from Kafka and opens the queue
//! again. Only QoS 0 messages, which MQTT lets a broker drop, are lost while a queue refuses.

use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

use super::{Delivery, Origin};
use crate::codec::QoS;

/// What a full queue did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for the client.
    Queued,
    /// Refused, and in the gap: the session reads it back from Kafka.
    Deferred,
    /// Refused for good: a QoS 0 message, or one with no Kafka position to read it back from.
    Dropped,
}

/// The first offset a refusing queue refused, per Kafka partition: where the session's
/// read-back starts. Partitions absent from it lost nothing.
pub(crate) type Gap = Vec<Origin>;

#[derive(Default)]
struct Queue {
    deliveries: VecDeque<Delivery>,
    /// `Some` from the first refusal until the connection takes the gap (boxed: an idle
    /// connection's mailbox carries one pointer for it).
    refusing: Option<Box<Gap>>,
}

/// A client's inbound message queue.
pub struct Mailbox {
    queue: Mutex<Queue>,
    notify: Notify,
    capacity: usize,
}

impl Mailbox {
    /// A queue holding at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Mailbox { queue: Mutex::new(Queue::default()), notify: Notify::new(), capacity }
    }

    /// Adds a delivery if the queue has room and is not refusing; otherwise refuses it (see the
    /// module comment), so that one slow client cannot stall the shared consumer that feeds
    /// every other client.
    pub fn push(&self, d: Delivery) -> Pushed {
        let pushed = match self.queue.lock() {
            Ok(mut q) if q.refusing.is_none() && q.deliveries.len() < self.capacity => {
                q.deliveries.push_back(d);
                Pushed::Queued
            }
            Ok(mut q) => {
                let gap = q.refusing.get_or_insert_with(Box::default);
                match d.origin {
                    Some(origin) if d.qos != QoS::AtMostOnce => {
                        let first = gap.iter().any(|o| o.topic == origin.topic && o.partition == origin.partition);
                        if !first {
                            gap.push(origin);
                        }
                        Pushed::Deferred
                    }
                    _ => Pushed::Dropped,
                }
            }
            Err(_) => Pushed::Dropped,
        };
        // Woken on a refusal too: the connection must come and take the gap.
        self.notify.notify_one();
        pushed
    }

    /// Whether a shared subscription may queue another message here: it takes at most half
    /// the queue, so that the client's own subscriptions are not squeezed out.
    pub fn has_room_for_shared(&self) -> bool {
        self.queue.lock().is_ok_and(|q| q.refusing.is_none() && q.deliveries.len() < self.capacity.div_ceil(2))
    }

    /// Adds a shared subscription's delivery if the queue has room; gives it back if not. A
    /// refusal is not a gap: the group gives the message to another member, and the
    /// session's own stream lost nothing.
    pub fn offer(&self, d: Delivery) -> Result<(), Delivery> {
        match self.queue.lock() {
            Ok(mut q) if q.refusing.is_none() && q.deliveries.len() < self.capacity => q.deliveries.push_back(d),
            _ => return Err(d),
        }
        self.notify.notify_one();
        Ok(())
    }

    /// Adds deliveries regardless of capacity (retained messages for a new subscription, which
    /// are bounded by the subscription itself and are not part of any Kafka stream's order).
    pub fn push_all(&self, ds: impl IntoIterator<Item = Delivery>) {
        if let Ok(mut q) = self.queue.lock() {
            q.deliveries.extend(ds);
        }
        self.notify.notify_one();
    }

    /// Takes the oldest delivery.
    pub fn pop(&self) -> Option<Delivery> {
        let mut q = self.queue.lock().ok()?;
        let d = q.deliveries.pop_front();
        if q.deliveries.is_empty() && q.deliveries.capacity() > 64 {
            // Give back a burst's memory once the client has caught up.
            q.deliveries = VecDeque::new();
        }
        d
    }

    /// Once everything queued was taken and the queue refused something since the last call:
    /// what it refused, and the queue accepts again. The caller reads the gap back from Kafka
    /// before it delivers anything queued after this call.
    pub fn take_gap(&self) -> Option<Gap> {
        let mut q = self.queue.lock().ok()?;
        if !q.deliveries.is_empty() {
            return None;
        }
        q.refusing.take().map(|gap| *gap)
    }

    /// Resolves when something was pushed (or refused) since the last call.
    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use bytes::Bytes;
    use std::sync::Arc;

    fn delivery(qos: QoS, partition: i32, offset: i64) -> Delivery {
        Delivery {
            msg: Arc::new(Message {
                topic: "t".into(),
                payload: Bytes::from(offset.to_be_bytes().to_vec()),
                qos,
                retain: false,
                publisher: None,
                publish_id: None,
                properties: Default::default(),
            }),
            qos,
            retain: false,
            subscription_ids: vec![],
            origin: Some(Origin { topic: "k".into(), partition, offset }),
            share: None,
        }
    }

    fn offset(d: &Delivery) -> Option<i64> {
        d.origin.as_ref().map(|o| o.offset)
    }

    #[test]
    fn a_full_queue_keeps_what_it_holds_and_remembers_the_first_refused_offset_per_partition() {
        let m = Mailbox::new(2);
        assert_eq!(m.push(delivery(QoS::AtLeastOnce, 0, 1)), Pushed::Queued);
        assert_eq!(m.push(delivery(QoS::AtLeastOnce, 0, 2)), Pushed::Queued);
        assert_eq!(m.push(delivery(QoS::AtLeastOnce, 0, 3)), Pushed::Deferred);
        assert_eq!(m.push(delivery(QoS::AtMostOnce, 1, 7)), Pushed::Dropped, "QoS 0 is not read back");
        assert_eq!(m.take_gap(), None, "not before the queued deliveries are taken");
        assert_eq!(m.pop().as_ref().and_then(offset), Some(1));
        assert_eq!(m.push(delivery(QoS::AtLeastOnce, 0, 4)), Pushed::Deferred, "room again, still refusing");
        assert_eq!(m.push(delivery(QoS::ExactlyOnce, 1, 8)), Pushed::Deferred);
        assert!(m.offer(delivery(QoS::AtLeastOnce, 2, 0)).is_err(), "shared deliveries too");
        assert!(!m.has_room_for_shared());
        assert_eq!(m.pop().as_ref().and_then(offset), Some(2));
        assert!(m.pop().is_none());
        let gap = m.take_gap().map(|g| g.into_iter().map(|o| (o.partition, o.offset)).collect::<Vec<_>>());
        assert_eq!(gap, Some(vec![(0, 3), (1, 8)]));
        assert_eq!(m.take_gap(), None, "once");
        assert!(m.has_room_for_shared());
        assert_eq!(m.push(delivery(QoS::AtLeastOnce, 0, 9)), Pushed::Queued, "accepting again");
    }
}
