//! SUBSCRIBE and UNSUBSCRIBE: filter checks, the router index, tailing the Kafka topics a
//! filter needs before SUBACK, and retained messages after it.

use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

use super::rewind::RewindError;
use super::shared::is_shared;
use super::{Client, End};
use crate::acl::Request;
use crate::codec::{
    reason, Packet, Properties, ProtocolVersion, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use crate::delivery::router::Subscriber;
use crate::delivery::{delivered_qos, Delivery};
use crate::session::record::StoredSubscription;
use crate::topic::{parse_shared, validate_filter, within};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    pub(super) async fn on_subscribe(&mut self, s: Subscribe) -> Result<(), End> {
        let id = s.properties.subscription_identifiers.first().copied();
        // No Local on a shared subscription is a Protocol Error (MQTT-3.8.3-4).
        if s.filters.iter().any(|(f, o)| o.no_local && is_shared(f)) {
            return Err(End::Protocol(reason::PROTOCOL_ERROR));
        }
        // A refused rewind refuses the whole SUBSCRIBE: the client asked for the past too.
        let rewind = match self.rewind_request(&s.properties).transpose() {
            Ok(at) => at,
            Err(e) => return self.refuse_subscribe(s, &e),
        };
        let mut reasons = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        let mut rewound = Vec::new();
        for (filter, options) in s.filters {
            // A shared subscription's past is its group's, not this session's to replay.
            if rewind.is_some() && is_shared(&filter) {
                reasons.push(reason::IMPLEMENTATION_SPECIFIC_ERROR);
                continue;
            }
            // A rewind replays retained messages as they were published, not again from the store.
            let with_retained = rewind.is_none().then_some(&mut retained);
            let before = self.subscriptions.get(filter.as_str()).copied();
            let code = self.subscribe_one(&filter, options, id, with_retained).await;
            if code < 0x80 && !is_shared(&filter) {
                rewound.push((Box::<str>::from(filter), before));
            }
            reasons.push(code);
        }
        let mut properties = Properties::default();
        if let Some(at) = rewind.filter(|_| !rewound.is_empty()) {
            let filters: Vec<Box<str>> = rewound.iter().map(|(f, _)| f.clone()).collect();
            match self.rewind_plan(&filters, at).await {
                Ok(plan) => self.start_rewind(plan, filters),
                Err(e) => {
                    // Granted live, then taken back: the SUBACK refuses what it cannot replay,
                    // and a subscription it replaced is as it was.
                    for (f, before) in rewound {
                        match before {
                            Some((options, id)) => {
                                self.broker.router.subscribe(&f, self.subscriber(options, id));
                                self.subscriptions.insert(f, (options, id));
                            }
                            None => {
                                self.subscriptions.remove(&f);
                                self.broker.router.unsubscribe(&f, self.session);
                            }
                        }
                    }
                    for r in reasons.iter_mut().filter(|r| **r < 0x80) {
                        *r = reason::IMPLEMENTATION_SPECIFIC_ERROR;
                    }
                    tracing::warn!(client = %self.client_id, error = %e, "rewind refused");
                    properties.reason_string = Some(e.to_string());
                }
            }
        }
        // A persistent session's subscriptions are durable in Kafka before SUBACK.
        if let Err(e) = self.save_state(None).await {
            tracing::warn!(client = %self.client_id, error = %e, "subscriptions not stored");
        }
        self.send(&Packet::SubAck(SubAck { packet_id: s.packet_id, properties, reasons }))?;
        // Retained messages go through the mailbox so they follow the SUBACK (MQTT-3.8.4-?).
        self.mailbox.push_all(retained);
        Ok(())
    }

    /// Answers a SUBSCRIBE whose rewind cannot be done: every filter 0x83, the reason in the
    /// Reason String (rewind is MQTT 5 only: the request is a user property).
    fn refuse_subscribe(&mut self, s: Subscribe, why: &RewindError) -> Result<(), End> {
        tracing::debug!(client = %self.client_id, error = %why, "rewind refused");
        let reasons = vec![reason::IMPLEMENTATION_SPECIFIC_ERROR; s.filters.len()];
        let properties = Properties { reason_string: Some(why.to_string()), ..Properties::default() };
        self.send(&Packet::SubAck(SubAck { packet_id: s.packet_id, properties, reasons }))
    }

    /// Subscribes one filter; returns its SUBACK reason code.
    async fn subscribe_one(
        &mut self,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
        retained: Option<&mut Vec<Delivery>>,
    ) -> u8 {
        let v5 = self.version == ProtocolVersion::V5;
        let refuse = |code: u8| if v5 { code } else { reason::UNSPECIFIED_ERROR };
        let Ok(shared) = parse_shared(filter) else { return refuse(reason::TOPIC_FILTER_INVALID) };
        if shared.is_none() && validate_filter(filter).is_err() {
            return refuse(reason::TOPIC_FILTER_INVALID);
        }
        // A shared subscription's rights are those of the filter it shares.
        if let Err(code) = self.admissible(filter, shared.map_or(filter, |s| s.filter)) {
            return refuse(code);
        }
        if let Some(shared) = shared {
            return self.subscribe_shared(filter, shared, options, id, refuse).await;
        }
        // The mapping in force now decides which Kafka topics this subscription tails. A later
        // config reload does not revisit it: the client re-subscribes to pick up a new mapping.
        let topics = self.broker.publisher.mapping().kafka_topics_for_filter_cached(filter);
        let sub = self.subscriber(options, id);
        // Register first, then make sure the tailers run: a record produced after this point is
        // read by a tailer that already sees the subscription.
        let is_new = self.broker.router.subscribe(filter, sub);
        if let Err(e) = self.broker.router.ensure_tailing(&topics).await {
            tracing::warn!(client = %self.client_id, %filter, error = %e, "cannot consume kafka for subscription");
            self.broker.router.unsubscribe(filter, self.session);
            self.subscriptions.remove(filter);
            return reason::UNSPECIFIED_ERROR;
        }
        self.subscriptions.insert(filter.into(), (options, id));
        self.start_cursors(&topics).await;
        // Retain Handling: 0 always, 1 only for a new subscription, 2 never.
        let wanted = options.retain_handling == 0 || (options.retain_handling == 1 && is_new);
        if let Some(retained) = retained.filter(|_| wanted) {
            retained.extend(self.broker.retained.matching(filter).into_iter().map(|msg: Arc<_>| Delivery {
                qos: delivered_qos(msg.qos, options.qos),
                retain: true,
                subscription_ids: id.into_iter().collect(),
                origin: None,
                share: None,
                msg,
            }));
        }
        options.qos as u8
    }

    /// Whether the session may subscribe `filter` (its length and levels, the session's quota
    /// of subscriptions) and the rules allow it `acl_filter`; the refusal's reason code if not.
    fn admissible(&mut self, filter: &str, acl_filter: &str) -> Result<(), u8> {
        let limits = &self.broker.config.limits;
        if !within(filter, limits.max_topic_length, limits.max_topic_levels) {
            self.broker.metrics.limits_exceeded.inc();
            return Err(reason::TOPIC_FILTER_INVALID);
        }
        // A new filter beyond the session's quota (0: none); replacing one is always allowed.
        let max_subscriptions = usize::try_from(limits.max_subscriptions).unwrap_or(usize::MAX);
        let full = max_subscriptions > 0 && self.subscriptions.len() >= max_subscriptions;
        if full && !self.subscriptions.contains_key(filter) {
            self.broker.metrics.limits_exceeded.inc();
            return Err(reason::QUOTA_EXCEEDED);
        }
        if !self.allowed(Request::Subscribe, acl_filter) {
            return Err(reason::NOT_AUTHORIZED);
        }
        Ok(())
    }

    /// Puts a subscription of a resumed session back into the router, without retained
    /// messages (those come with SUBSCRIBE only, MQTT-3.3.1-6..).
    pub(super) async fn restore_subscription(&mut self, stored: &StoredSubscription) {
        let options = stored.options();
        if let Ok(Some(shared)) = parse_shared(&stored.filter) {
            // The rules may have changed while the client was away.
            if !self.allowed(Request::Subscribe, shared.filter) {
                return;
            }
            self.subscriptions.insert(stored.filter.as_str().into(), (options, stored.id));
            if let Err(e) = self.join_share(shared, options, stored.id).await {
                // Kept in the session: the next connection retries.
                tracing::warn!(client = %self.client_id, filter = %stored.filter, error = %e, "cannot join a resumed shared subscription");
            }
            return;
        }
        // The rules may have changed while the client was away.
        if !self.allowed(Request::Subscribe, &stored.filter) {
            return;
        }
        let topics = self.broker.publisher.mapping().kafka_topics_for_filter_cached(&stored.filter);
        self.broker.router.subscribe(&stored.filter, self.subscriber(options, stored.id));
        self.subscriptions.insert(stored.filter.as_str().into(), (options, stored.id));
        if let Err(e) = self.broker.router.ensure_tailing(&topics).await {
            // Kept in the session: the next connection retries.
            tracing::warn!(client = %self.client_id, filter = %stored.filter, error = %e, "cannot consume kafka for a resumed subscription");
        }
        self.start_cursors(&topics).await;
    }

    /// This connection as the router knows a subscriber of it.
    fn subscriber(&self, options: SubscriptionOptions, id: Option<u32>) -> Subscriber {
        Subscriber {
            session: self.session,
            client_id: self.client_id.clone(),
            mailbox: self.mailbox.clone(),
            options,
            id,
        }
    }

    /// A persistent session counts deliveries of newly read partitions from where the live
    /// tailer is now: what arrives after that and misses the client is read back later.
    async fn start_cursors(&mut self, topics: &[String]) {
        if self.persist.is_none() {
            return;
        }
        for topic in topics {
            let positions = self.broker.router.positions(topic).await;
            if let Some(p) = self.persist.as_mut() {
                p.start_at(topic, &positions);
            }
        }
    }

    pub(super) async fn on_unsubscribe(&mut self, u: Unsubscribe) -> Result<(), End> {
        let reasons: Vec<u8> = u
            .filters
            .iter()
            .map(|f| {
                self.subscriptions.remove(f.as_str());
                if let Some(r) = self.replays.as_mut() {
                    r.unsubscribed(f);
                }
                let existed = match self.leave_share(f) {
                    Some(was_member) => was_member,
                    None => self.broker.router.unsubscribe(f, self.session),
                };
                if existed {
                    reason::SUCCESS
                } else {
                    reason::NO_SUBSCRIPTION_EXISTED
                }
            })
            .collect();
        if let Err(e) = self.save_state(None).await {
            tracing::warn!(client = %self.client_id, error = %e, "unsubscription not stored");
        }
        self.send(&Packet::UnsubAck(UnsubAck { packet_id: u.packet_id, properties: Default::default(), reasons }))
    }
}
