//! The bounded queue between the shared Kafka tailers and one client connection.
//!
//! A `VecDeque` behind a mutex rather than a channel: an idle connection's queue then holds no
//! allocation at all, which matters at hundreds of thousands of connections per pod.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tokio::sync::Notify;

use super::Delivery;

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

    /// Whether a shared subscription may queue another message here: it takes at most half
    /// the queue, so that the client's own subscriptions are not squeezed out.
    pub fn has_room_for_shared(&self) -> bool {
        self.queue.lock().is_ok_and(|q| q.len() < self.capacity.div_ceil(2))
    }

    /// Adds a shared subscription's delivery if the queue has room; gives it back if not. A
    /// refusal is not an overflow: the group gives the message to another member, and the
    /// session's own stream lost nothing.
    pub fn offer(&self, d: Delivery) -> Result<(), Delivery> {
        match self.queue.lock() {
            Ok(mut q) if q.len() < self.capacity => q.push_back(d),
            _ => return Err(d),
        }
        self.notify.notify_one();
        Ok(())
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
            // Dropped outside the lock: a shared subscription's delivery settles its ticket,
            // which takes its group's lock, and the group looks at mailboxes under that lock.
            let dropped = self.queue.lock().map(|mut q| std::mem::take(&mut *q));
            drop(dropped);
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
    use crate::codec::QoS;
    use crate::message::Message;
    use bytes::Bytes;
    use std::sync::Arc;

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
            share: None,
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
