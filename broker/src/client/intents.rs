//! Inbound QoS 2 publications of a persistent session between PUBLISH and PUBREL: the
//! write-ahead intents that make them exactly once across a move to another broker (see
//! docs/design.md, "QoS 2 exactly once across a pod failure").

use std::collections::{HashMap, HashSet};

use crate::message::Message;
use crate::publisher::Placement;
use crate::session::record::StoredIntent;

/// The intents of one connection.
pub(super) struct Intents {
    /// Publications between PUBLISH and PUBREL, by packet id.
    open: HashMap<u16, StoredIntent>,
    /// Publications produced, to the place their intent names, once the intent is saved.
    parked: Vec<(u16, Message, Placement)>,
    /// For intents of the previous connection: whether their record was found in Kafka when
    /// the session resumed.
    recovered: HashMap<u16, bool>,
    /// Numbers this connection's publish ids.
    publications: u64,
}

/// One partition to search for the records of stored intents: from the lowest bound, the
/// publish ids to look for.
pub(super) struct Search {
    pub topic: String,
    pub partition: i32,
    pub from: i64,
    pub publish_ids: HashSet<String>,
}

impl Intents {
    /// The intents of a resumed session.
    pub(super) fn new(stored: &[StoredIntent]) -> Self {
        Intents {
            open: stored.iter().map(|i| (i.packet_id, i.clone())).collect(),
            parked: Vec::new(),
            recovered: HashMap::new(),
            publications: 0,
        }
    }

    /// The stored intent of packet id `id` and, for one of the previous connection, whether its
    /// record was found in Kafka.
    pub(super) fn get(&self, id: u16) -> Option<(&StoredIntent, Option<bool>)> {
        self.open.get(&id).map(|i| (i, self.recovered.get(&id).copied()))
    }

    /// One search per partition holding records of open intents.
    pub(super) fn searches(&self) -> Vec<Search> {
        let mut by_partition: HashMap<(&str, i32), Search> = HashMap::new();
        for i in self.open.values() {
            let s = by_partition.entry((&i.topic, i.partition)).or_insert_with(|| Search {
                topic: i.topic.clone(),
                partition: i.partition,
                from: i.from,
                publish_ids: HashSet::new(),
            });
            s.from = s.from.min(i.from);
            s.publish_ids.insert(i.publish_id.clone());
        }
        by_partition.into_values().collect()
    }

    /// Notes which open intents have their record in Kafka (their publish ids in `found`).
    pub(super) fn recovered(&mut self, found: &HashSet<String>) {
        self.recovered = self.open.iter().map(|(id, i)| (*id, found.contains(&i.publish_id))).collect();
    }

    /// Records a new publication: its intent is saved, then the message is produced to
    /// `placement`, exactly where the intent says it is.
    pub(super) fn park(&mut self, intent: StoredIntent, msg: Message, placement: Placement) {
        let id = intent.packet_id;
        self.open.insert(id, intent);
        self.parked.push((id, msg, placement));
    }

    /// The parked publications, now that their intents are saved.
    pub(super) fn take_parked(&mut self) -> Vec<(u16, Message, Placement)> {
        std::mem::take(&mut self.parked)
    }

    /// Removes the intent of `id` (PUBREL); whether there was one.
    pub(super) fn release(&mut self, id: u16) -> bool {
        self.open.remove(&id).is_some()
    }

    /// The open intents, as the session state stores them.
    pub(super) fn stored(&self) -> Vec<StoredIntent> {
        self.open.values().cloned().collect()
    }

    /// A new, unique publish id for an inbound QoS 2 publication.
    pub(super) fn publish_id(&mut self, client_id: &str, epoch: i64) -> String {
        self.publications += 1;
        format!("{client_id}:{epoch}:{}", self.publications)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(packet_id: u16, partition: i32, from: i64) -> StoredIntent {
        StoredIntent { packet_id, publish_id: format!("c:1:{packet_id}"), topic: "t".into(), partition, from }
    }

    #[test]
    fn one_search_per_partition_from_the_lowest_bound() {
        let intents = Intents::new(&[intent(1, 0, 10), intent(2, 0, 4), intent(3, 1, 7)]);
        let mut searches: Vec<(i32, i64, usize)> =
            intents.searches().iter().map(|s| (s.partition, s.from, s.publish_ids.len())).collect();
        searches.sort();
        assert_eq!(searches, [(0, 4, 2), (1, 7, 1)]);
    }

    #[test]
    fn recovered_intents_are_known_by_packet_id_until_released() {
        let mut intents = Intents::new(&[intent(1, 0, 10), intent(2, 0, 4)]);
        intents.recovered(&HashSet::from(["c:1:2".to_string()]));
        assert_eq!(intents.get(1).map(|(_, found)| found), Some(Some(false)));
        assert_eq!(intents.get(2).map(|(_, found)| found), Some(Some(true)));
        assert!(intents.release(2));
        assert!(!intents.release(2), "released once");
        assert_eq!(intents.stored().len(), 1);
        assert_ne!(intents.publish_id("c", 5), intents.publish_id("c", 5), "publish ids are unique");
    }
}
