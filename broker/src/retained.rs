//! The in-memory view of retained messages, kept by every broker process.
//!
//! The source of truth is the compacted retained topic (key = MQTT topic, empty value deletes).
//! Each process reads it from the beginning at start and then tails it, so retained messages set
//! through any broker, or through Kafka directly, are seen everywhere and survive restarts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::kafka::record::RecordRef;
use crate::kafka::tailer::RecordSink;
use crate::message::{now_ms, Message};
use crate::topic::matches;

struct Entry {
    /// `None` marks a deletion acknowledged locally that the tail has not reached yet: it keeps
    /// an older record still on its way through the tail from resurrecting the message.
    msg: Option<Arc<Message>>,
    partition: i32,
    offset: i64,
}

/// Retained messages by topic.
#[derive(Default)]
pub struct RetainedStore {
    map: RwLock<HashMap<String, Entry>>,
    /// Entries holding a message, kept beside the map so that counting (every metrics scrape)
    /// does not walk millions of entries under the lock publishers need.
    held: AtomicUsize,
}

impl RetainedStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a record of the retained topic at (partition, offset). `from_tail` tells records
    /// read from Kafka apart from our own acknowledged writes, which may overtake the tail.
    pub fn apply(&self, partition: i32, offset: i64, msg: Message, from_tail: bool) {
        let Ok(mut map) = self.map.write() else { return };
        if let Some(e) = map.get(&msg.topic) {
            // A key always lives in one partition, so offsets order its writes.
            if e.partition == partition && e.offset > offset {
                return;
            }
        }
        // A non-empty payload is held; an empty one deletes (or marks the deletion).
        let has = !msg.payload.is_empty();
        let before = if has {
            map.insert(msg.topic.clone(), Entry { msg: Some(Arc::new(msg)), partition, offset })
        } else if from_tail {
            map.remove(&msg.topic)
        } else {
            map.insert(msg.topic.clone(), Entry { msg: None, partition, offset })
        };
        let had = before.is_some_and(|e| e.msg.is_some());
        match (had, has) {
            (false, true) => {
                self.held.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.held.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Unexpired retained messages whose topic matches `filter`.
    pub fn matching(&self, filter: &str) -> Vec<Arc<Message>> {
        let now = now_ms();
        let Ok(map) = self.map.read() else { return Vec::new() };
        map.iter()
            .filter(|(topic, _)| matches(filter, topic))
            .filter_map(|(_, e)| e.msg.clone())
            .filter(|m| !m.is_expired(now))
            .collect()
    }

    /// Number of retained messages held (expired ones included until they are replaced).
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// True when no retained message is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RecordSink for RetainedStore {
    fn record(&self, record: RecordRef<'_>) {
        if let Some(msg) = Message::from_tailed(record) {
            self.apply(record.partition, record.offset, msg, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::QoS;
    use bytes::Bytes;

    fn m(topic: &str, payload: &'static [u8]) -> Message {
        Message {
            topic: topic.into(),
            payload: Bytes::from_static(payload),
            qos: QoS::AtLeastOnce,
            retain: true,
            publisher: None,
            publish_id: None,
            properties: Default::default(),
        }
    }

    #[test]
    fn set_match_delete() {
        let s = RetainedStore::new();
        s.apply(0, 1, m("a/b", b"1"), true);
        s.apply(0, 2, m("a/c", b"2"), true);
        s.apply(0, 3, m("$SYS/x", b"3"), true);
        assert_eq!(s.matching("a/+").len(), 2);
        assert_eq!(s.matching("#").len(), 2, "# does not match $ topics");
        s.apply(0, 4, m("a/b", b""), true);
        assert_eq!(s.matching("a/+").len(), 1);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn local_delete_is_not_undone_by_a_late_tail_record() {
        let s = RetainedStore::new();
        s.apply(0, 10, m("a", b""), false);
        s.apply(0, 5, m("a", b"old"), true);
        assert!(s.matching("a").is_empty());
        assert_eq!(s.len(), 0, "a marked deletion holds no message");
        s.apply(0, 10, m("a", b""), true);
        s.apply(0, 11, m("a", b"new"), true);
        s.apply(0, 12, m("a", b"newer"), true);
        assert_eq!(s.matching("a")[0].payload, Bytes::from_static(b"newer"));
        assert_eq!(s.len(), 1, "a replaced message counts once");
    }

    #[test]
    fn expired_messages_are_not_returned() {
        let s = RetainedStore::new();
        let mut msg = m("a", b"x");
        msg.properties.expires_at_ms = Some(1);
        s.apply(0, 1, msg, true);
        assert!(s.matching("a").is_empty());
    }
}
