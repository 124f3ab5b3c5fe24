//! Fans records from the shared Kafka tailers out to local client mailboxes.
//!
//! Subscriptions live in a trie keyed by filter level, so matching a topic costs a walk of its
//! levels (plus the `+`/`#` branches) instead of a scan over every subscription of the pod.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::mailbox::{Mailbox, Pushed};
use super::{Delivery, Origin};
use crate::codec::SubscriptionOptions;
use crate::kafka::log::Log;
use crate::kafka::record::RecordRef;
use crate::kafka::tailer::{RecordSink, StartAt, Tailer, TailerError};
use crate::message::Message;
use crate::metrics::{DropReason, Metrics};
use crate::topic::hidden_from_wildcards;

/// One subscription of one local session.
#[derive(Clone)]
pub struct Subscriber {
    /// Connection-unique id of the session.
    pub session: u64,
    /// Client identifier (for No Local).
    pub client_id: Arc<str>,
    /// Where matching messages go.
    pub mailbox: Arc<Mailbox>,
    /// Options the client subscribed with (granted QoS in `qos`).
    pub options: SubscriptionOptions,
    /// MQTT 5 subscription identifier.
    pub id: Option<u32>,
}

#[derive(Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    /// Subscribers whose filter ends exactly here.
    exact: Vec<Subscriber>,
    /// Subscribers whose filter is this node's path followed by `/#`.
    hash: Vec<Subscriber>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.plus.is_none() && self.exact.is_empty() && self.hash.is_empty()
    }

    /// The subscriber list a filter's levels lead to, creating nodes on the way.
    fn slot_mut(&mut self, levels: &[&str]) -> &mut Vec<Subscriber> {
        match levels {
            [] => &mut self.exact,
            ["#"] => &mut self.hash,
            ["+", rest @ ..] => self.plus.get_or_insert_with(Default::default).slot_mut(rest),
            [level, rest @ ..] => self.children.entry((*level).into()).or_default().slot_mut(rest),
        }
    }

    /// Removes `session` from the filter's list, pruning empty nodes. Returns whether it was there.
    fn remove(&mut self, levels: &[&str], session: u64) -> bool {
        let retain = |v: &mut Vec<Subscriber>| {
            let before = v.len();
            v.retain(|s| s.session != session);
            before != v.len()
        };
        match levels {
            [] => retain(&mut self.exact),
            ["#"] => retain(&mut self.hash),
            ["+", rest @ ..] => {
                let Some(plus) = self.plus.as_mut() else { return false };
                let removed = plus.remove(rest, session);
                if plus.is_empty() {
                    self.plus = None;
                }
                removed
            }
            [level, rest @ ..] => {
                let Some(child) = self.children.get_mut(*level) else { return false };
                let removed = child.remove(rest, session);
                if child.is_empty() {
                    self.children.remove(*level);
                }
                removed
            }
        }
    }

    fn collect<'a>(&'a self, levels: &[&str], first: bool, dollar: bool, out: &mut Vec<&'a Subscriber>) {
        // MQTT-4.7.2-1: wildcards at the first level do not match `$` topics.
        let wildcards = !(first && dollar);
        if wildcards {
            out.extend(self.hash.iter());
        }
        let Some((level, rest)) = levels.split_first() else {
            out.extend(self.exact.iter());
            return;
        };
        if let Some(child) = self.children.get(*level) {
            child.collect(rest, false, dollar, out);
        }
        if let (true, Some(plus)) = (wildcards, self.plus.as_ref()) {
            plus.collect(rest, false, dollar, out);
        }
    }
}

/// The subscription index of this process plus the tailers that feed it.
pub struct Router {
    index: RwLock<Node>,
    tailers: tokio::sync::Mutex<HashMap<String, Tailer>>,
    log: Arc<dyn Log>,
    metrics: Arc<Metrics>,
}

impl Router {
    /// An empty router that will tail topics of `log`.
    pub fn new(log: Arc<dyn Log>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Router { index: RwLock::new(Node::default()), tailers: Default::default(), log, metrics })
    }

    /// Adds or replaces (same session and filter) a subscription. Returns true if it is new.
    pub fn subscribe(&self, filter: &str, sub: Subscriber) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let Ok(mut root) = self.index.write() else { return false };
        let slot = root.slot_mut(&levels);
        match slot.iter_mut().find(|s| s.session == sub.session) {
            Some(existing) => {
                *existing = sub;
                false
            }
            None => {
                slot.push(sub);
                self.metrics.subscriptions.inc();
                true
            }
        }
    }

    /// Removes a subscription; returns whether it existed.
    pub fn unsubscribe(&self, filter: &str, session: u64) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = match self.index.write() {
            Ok(mut root) => root.remove(&levels, session),
            Err(_) => false,
        };
        if removed {
            self.metrics.subscriptions.dec();
        }
        removed
    }

    /// Records behind the high watermark per tailed Kafka topic; `None` while a subscription
    /// is starting a tailer (that can wait on Kafka for seconds, and a scrape must not).
    pub fn lags(&self) -> Option<Vec<(String, i64)>> {
        let tailers = self.tailers.try_lock().ok()?;
        Some(tailers.iter().map(|(topic, t)| (topic.clone(), t.lag())).collect())
    }

    /// Makes sure every topic in `topics` is tailed from (at latest) now. Once this returns, any
    /// record produced to them afterwards reaches `dispatch`.
    pub async fn ensure_tailing(self: &Arc<Self>, topics: &[String]) -> Result<(), TailerError> {
        let mut tailers = self.tailers.lock().await;
        for topic in topics {
            if !tailers.contains_key(topic) {
                let sink: Arc<dyn RecordSink> =
                    Arc::new(TopicSink { router: self.clone(), topic: topic.as_str().into() });
                let tailer = self.log.tail(topic, StartAt::End, sink).await?;
                tailers.insert(topic.clone(), tailer);
            }
        }
        Ok(())
    }

    /// Queues `msg` for every local session with a matching subscription, once per session even
    /// when several of its subscriptions match (highest granted QoS, all their identifiers).
    pub fn dispatch(&self, msg: Arc<Message>, origin: Option<Origin>) {
        let Ok(root) = self.index.read() else { return };
        let levels: Vec<&str> = msg.topic.split('/').collect();
        let mut matched = Vec::new();
        root.collect(&levels, true, levels.first().is_some_and(|l| hidden_from_wildcards(l)), &mut matched);
        // Group by session; matches per message are few, so a linear scan beats hashing.
        let mut sessions: Vec<&Subscriber> = Vec::new();
        for sub in &matched {
            if !sessions.iter().any(|s| s.session == sub.session) {
                sessions.push(sub);
            }
        }
        let deliveries: Vec<(Arc<Mailbox>, Arc<str>, Delivery)> = sessions
            .into_iter()
            .filter_map(|first| {
                let of_session = matched.iter().filter(|s| s.session == first.session).map(|s| (s.options, s.id));
                let d = Delivery::for_subscriptions(&msg, &first.client_id, of_session, origin.clone())?;
                Some((first.mailbox.clone(), first.client_id.clone(), d))
            })
            .collect();
        drop(root);
        for (mailbox, client, d) in deliveries {
            match mailbox.push(d) {
                Pushed::Queued => tracing::trace!(%client, ?origin, "queued in the mailbox"),
                Pushed::Deferred => {
                    tracing::trace!(%client, ?origin, "mailbox full: read back from kafka later");
                    self.metrics.deferred.inc();
                }
                Pushed::Dropped => {
                    tracing::trace!(%client, ?origin, "mailbox full: delivery dropped");
                    self.metrics.dropped(DropReason::QueueFull);
                }
            }
        }
    }

    /// The next offset the tailer of `topic` will read, per partition: where a persistent
    /// session subscribing now starts counting its cursor.
    pub async fn positions(&self, topic: &str) -> Vec<(i32, i64)> {
        self.tailers.lock().await.get(topic).map(Tailer::positions).unwrap_or_default()
    }
}

/// Feeds one Kafka topic's records to the router as messages, tagged with where they came from.
struct TopicSink {
    router: Arc<Router>,
    topic: Arc<str>,
}

impl RecordSink for TopicSink {
    fn record(&self, record: RecordRef<'_>) {
        let Some(msg) = Message::from_tailed(record) else { return };
        let origin = Origin { topic: self.topic.clone(), partition: record.partition, offset: record.offset };
        tracing::trace!(topic = %self.topic, partition = record.partition, offset = record.offset, "tailed record");
        self.router.dispatch(Arc::new(msg), Some(origin));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;
    use bytes::Bytes;

    fn router() -> Arc<Router> {
        Router::new(Arc::new(crate::kafka::memory::MemoryLog::new()), Arc::default())
    }

    fn sub(session: u64, mailbox: &Arc<Mailbox>, qos: QoS, id: Option<u32>) -> Subscriber {
        Subscriber {
            session,
            client_id: format!("c{session}").into(),
            mailbox: mailbox.clone(),
            options: SubscriptionOptions { qos, no_local: false, retain_as_published: false, retain_handling: 0 },
            id,
        }
    }

    fn msg(topic: &str, qos: QoS, publisher: Option<&str>) -> Arc<Message> {
        Arc::new(Message {
            topic: topic.into(),
            payload: Bytes::from_static(b"p"),
            qos,
            retain: true,
            publisher: publisher.map(Into::into),
            publish_id: None,
            properties: Default::default(),
        })
    }

    fn drain(m: &Mailbox) -> Vec<Delivery> {
        std::iter::from_fn(|| m.pop()).collect()
    }

    #[test]
    fn matches_wildcards_and_dollar_topics() {
        let r = router();
        let m = Arc::new(Mailbox::new(100));
        for (i, f) in ["a/+", "a/#", "#", "+/b", "$SYS/#", "a/b"].iter().enumerate() {
            r.subscribe(f, sub(i as u64, &m, QoS::AtMostOnce, None));
        }
        r.dispatch(msg("a/b", QoS::AtMostOnce, None), None);
        assert_eq!(drain(&m).len(), 5, "a/+, a/#, #, +/b, a/b");
        r.dispatch(msg("a", QoS::AtMostOnce, None), None);
        assert_eq!(drain(&m).len(), 2, "a/# matches its parent, and #");
        r.dispatch(msg("$SYS/x", QoS::AtMostOnce, None), None);
        assert_eq!(drain(&m).len(), 1, "only $SYS/#, not #");
    }

    /// The trie is the fast matcher; `topic::matches` is the definition. They agree on every
    /// filter of up to three levels and every topic of up to three levels over an alphabet with
    /// a `$` level and an empty level.
    #[test]
    fn the_trie_agrees_with_the_topic_algebra() {
        let levels = |alphabet: &[&str], depth: usize| {
            let mut all: Vec<String> = Vec::new();
            let mut layer: Vec<String> = alphabet.iter().map(|l| l.to_string()).collect();
            for _ in 0..depth {
                all.extend(layer.iter().cloned());
                layer = layer.iter().flat_map(|t| alphabet.iter().map(move |l| format!("{t}/{l}"))).collect();
            }
            all
        };
        let filters: Vec<String> = levels(&["a", "$x", "", "+", "#"], 3)
            .into_iter()
            .filter(|f| crate::topic::validate_filter(f).is_ok())
            .collect();
        let topics: Vec<String> = levels(&["a", "b", "$x", ""], 3).into_iter().filter(|t| !t.is_empty()).collect();
        let r = router();
        let m = Arc::new(Mailbox::new(filters.len() + 1));
        for (i, f) in filters.iter().enumerate() {
            r.subscribe(f, sub(i as u64, &m, QoS::AtMostOnce, Some(i as u32)));
        }
        for topic in &topics {
            r.dispatch(msg(topic, QoS::AtMostOnce, None), None);
            let mut got: Vec<u32> = drain(&m).into_iter().flat_map(|d| d.subscription_ids).collect();
            got.sort_unstable();
            let expected: Vec<u32> =
                (0..filters.len()).filter(|&i| crate::topic::matches(&filters[i], topic)).map(|i| i as u32).collect();
            assert_eq!(got, expected, "topic {topic:?}");
        }
    }

    #[test]
    fn overlapping_subscriptions_deliver_once_with_max_qos_and_all_ids() {
        let r = router();
        let m = Arc::new(Mailbox::new(100));
        r.subscribe("a/+", sub(1, &m, QoS::AtMostOnce, Some(7)));
        r.subscribe("a/#", sub(1, &m, QoS::ExactlyOnce, Some(9)));
        r.dispatch(msg("a/b", QoS::AtLeastOnce, None), None);
        let got = drain(&m);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].qos, QoS::AtLeastOnce, "min(published 1, granted 2)");
        let mut ids = got[0].subscription_ids.clone();
        ids.sort();
        assert_eq!(ids, vec![7, 9]);
        assert!(!got[0].retain, "retain is cleared unless retain-as-published");
    }

    #[test]
    fn no_local_and_unsubscribe() {
        let r = router();
        let m = Arc::new(Mailbox::new(100));
        let mut s = sub(1, &m, QoS::AtLeastOnce, None);
        s.options.no_local = true;
        r.subscribe("t", s);
        r.dispatch(msg("t", QoS::AtLeastOnce, Some("c1")), None);
        assert!(drain(&m).is_empty());
        r.dispatch(msg("t", QoS::AtLeastOnce, Some("other")), None);
        assert_eq!(drain(&m).len(), 1);
        assert!(r.unsubscribe("t", 1));
        assert!(!r.unsubscribe("t", 1));
        r.dispatch(msg("t", QoS::AtLeastOnce, Some("other")), None);
        assert!(drain(&m).is_empty());
        assert!(r.index.read().map(|n| n.is_empty()).unwrap_or(false), "empty nodes are pruned");
    }
}
