//! One message on its way to one client: the [`Delivery`], where it sits in Kafka
//! ([`Origin`]), and the per-subscriber decisions (QoS, RETAIN, No Local) that make it. Live
//! (router) and offline (catch-up) delivery both build deliveries here; the mailbox and the
//! connection only carry them.

use std::sync::Arc;

use super::share::Ticket;
use crate::codec::{QoS, SubscriptionOptions};
use crate::message::Message;

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
#[derive(Debug)]
pub struct Delivery {
    /// The shared message.
    pub msg: Arc<Message>,
    /// QoS to deliver with: min(published, granted).
    pub qos: QoS,
    /// RETAIN flag to deliver with.
    pub retain: bool,
    /// Identifiers of the matching subscriptions (MQTT 5).
    pub subscription_ids: Vec<u32>,
    /// Its Kafka position; `None` for retained messages, which are not part of the stream, and
    /// for shared subscriptions, whose position is their group's, not the session's.
    pub origin: Option<Origin>,
    /// A QoS 1/2 message of a shared subscription: settled when the client has it (boxed:
    /// almost no delivery has one).
    pub share: Option<Box<Ticket>>,
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
                share: None,
            });
            d.qos = d.qos.max(qos);
            d.retain |= retain;
            d.subscription_ids.extend(id);
        }
        delivery
    }
}

/// The QoS a subscriber receives: never more than it was published with.
pub(crate) fn delivered_qos(published: QoS, granted: QoS) -> QoS {
    published.min(granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_qos_is_min() {
        assert_eq!(delivered_qos(QoS::ExactlyOnce, QoS::AtLeastOnce), QoS::AtLeastOnce);
        assert_eq!(delivered_qos(QoS::AtMostOnce, QoS::ExactlyOnce), QoS::AtMostOnce);
    }
}
