//! Delivery cursors of a persistent session: which Kafka records it has been given, so that a
//! later connection (on any pod) continues from there, and so that the records read back from
//! Kafka and those arriving live are each delivered once.

use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::mailbox::{Delivery, Origin};
use crate::session::catchup::CatchUp;
use crate::session::record::Cursors;

/// Cursor state of a persistent session's connection.
pub(super) struct Persist {
    /// Next offset to deliver per (Kafka topic, partition); everything below was delivered.
    next: HashMap<(Arc<str>, i32), i64>,
    /// Records read back from Kafka (offline delivery); while it is open, live deliveries wait.
    pub catchup: Option<mpsc::Receiver<Delivery>>,
    /// Cursors moved since the last save.
    pub dirty: bool,
    /// When the state was last saved.
    pub saved_at: Instant,
}

impl Persist {
    /// Starts from stored cursors.
    pub fn new(stored: &Cursors) -> Self {
        let next = stored
            .iter()
            .flat_map(|(topic, parts)| {
                let topic: Arc<str> = topic.as_str().into();
                parts.iter().map(move |(p, o)| ((topic.clone(), *p), *o))
            })
            .collect();
        Persist { next, catchup: None, dirty: false, saved_at: Instant::now() }
    }

    /// Whether a record at `origin` is still to be delivered; if so it counts as delivered now.
    pub fn admit(&mut self, origin: &Origin) -> bool {
        let next = self.next.entry((origin.topic.clone(), origin.partition)).or_insert(origin.offset);
        if origin.offset < *next {
            return false;
        }
        *next = origin.offset + 1;
        self.dirty = true;
        true
    }

    /// Sets the cursor of partitions that have none (a new subscription starts where the live
    /// tailer is, so that records arriving while the client is away are read back later).
    pub fn start_at(&mut self, topic: &str, positions: &[(i32, i64)]) {
        let topic: Arc<str> = topic.into();
        for &(p, o) in positions {
            self.next.entry((topic.clone(), p)).or_insert_with(|| {
                self.dirty = true;
                o
            });
        }
    }

    /// What to read back from Kafka for `topics`: every partition from its cursor.
    pub fn plan(&self, topics: &[String]) -> Vec<CatchUp> {
        topics
            .iter()
            .map(|t| CatchUp {
                topic: t.clone(),
                from: self.next.iter().filter(|((topic, _), _)| **topic == **t).map(|((_, p), o)| (*p, *o)).collect(),
            })
            .filter(|c| !c.from.is_empty())
            .collect()
    }

    /// The cursors to store: a message still unacknowledged (`in_flight`) is delivered again
    /// by the next connection, so its offset caps its partition's cursor.
    pub fn stored<'a>(&self, in_flight: impl Iterator<Item = &'a Origin>) -> Cursors {
        let mut cursors = Cursors::new();
        for ((topic, p), o) in &self.next {
            cursors.entry(topic.to_string()).or_default().insert(*p, *o);
        }
        for origin in in_flight {
            if let Some(c) = cursors.get_mut(&*origin.topic).and_then(|parts| parts.get_mut(&origin.partition)) {
                *c = (*c).min(origin.offset);
            }
        }
        cursors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(topic: &str, partition: i32, offset: i64) -> Origin {
        Origin { topic: topic.into(), partition, offset }
    }

    #[test]
    fn admits_each_offset_once_and_in_order() {
        let mut p = Persist::new(&Cursors::new());
        assert!(p.admit(&at("t", 0, 5)));
        assert!(!p.admit(&at("t", 0, 5)), "the seam: the same record from Kafka and live");
        assert!(!p.admit(&at("t", 0, 3)));
        assert!(p.admit(&at("t", 0, 6)));
        assert!(p.admit(&at("t", 1, 0)), "partitions are independent");
    }

    #[test]
    fn stored_cursors_resume_and_respect_unacknowledged_messages() {
        let mut p = Persist::new(&Cursors::new());
        p.start_at("t", &[(0, 10), (1, 20)]);
        p.start_at("t", &[(0, 99)]);
        assert!(p.admit(&at("t", 0, 12)));
        assert!(p.admit(&at("t", 0, 13)));
        let stored = p.stored([at("t", 0, 12)].iter());
        assert_eq!(stored["t"][&0], 12, "12 is not acknowledged yet");
        assert_eq!(stored["t"][&1], 20);
        let resumed = Persist::new(&stored);
        let plan = resumed.plan(&["t".to_string(), "other".to_string()]);
        assert_eq!(plan.len(), 1);
        let mut from = plan[0].from.clone();
        from.sort();
        assert_eq!(from, [(0, 12), (1, 20)]);
    }
}
