//! Delivery cursors of a persistent session: which Kafka records it has been given, so that a
//! later connection (on any pod) continues from there, and so that the records read back from
//! Kafka and those arriving live are each delivered once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::intents::Intents;
use crate::codec::QoS;
use crate::delivery::catchup::CatchUp;
use crate::delivery::{Delivery, Origin};
use crate::message::Message;
use crate::publisher::Placement;
use crate::session::record::{Cursors, StoredFlight, StoredIntent};

/// Cursor state of a persistent session's connection.
pub(super) struct Persist {
    /// Next offset to deliver per (Kafka topic, partition); everything below was delivered.
    next: HashMap<(Arc<str>, i32), i64>,
    /// Records read back from Kafka (offline delivery); while it is open, live deliveries wait.
    catchup: Option<mpsc::Receiver<Delivery>>,
    /// Cursors moved since the last save.
    dirty: bool,
    /// When the state was last saved.
    saved_at: Instant,
    /// The state must reach Kafka before anything queued for the client is flushed: packet ids
    /// of outbound QoS 2 messages, released flows, inbound QoS 2 intents and their release.
    unsaved: bool,
    /// Messages the previous connection sent and the client did not acknowledge: sent again
    /// with the same packet id when the offline reader reaches them.
    redeliver: HashMap<(Arc<str>, i32, i64), (u16, QoS)>,
    /// Inbound QoS 2 publications between PUBLISH and PUBREL.
    intents: Intents,
    /// A record from the offline reader waiting for room in the client's window.
    held: Option<Delivery>,
    /// The cursors came with the session (persistent, or resumed): inbound QoS 2 then goes
    /// through stored intents. A clean session's cursors for reading a gap back have none.
    durable: bool,
}

impl Persist {
    /// Starts from the stored state.
    pub(super) fn new(stored: &Cursors, in_flight: &[StoredFlight], intents: &[StoredIntent]) -> Self {
        let redeliver = in_flight
            .iter()
            .filter(|f| !f.released)
            .map(|f| {
                let qos = QoS::try_from(f.qos).unwrap_or(QoS::AtLeastOnce);
                ((f.topic.as_str().into(), f.partition, f.offset), (f.packet_id, qos))
            })
            .collect();
        let next = stored
            .iter()
            .flat_map(|(topic, parts)| {
                let topic: Arc<str> = topic.as_str().into();
                parts.iter().map(move |(p, o)| ((topic.clone(), *p), *o))
            })
            .collect();
        Persist {
            next,
            catchup: None,
            dirty: false,
            saved_at: Instant::now(),
            unsaved: false,
            redeliver,
            intents: Intents::new(intents),
            held: None,
            durable: true,
        }
    }

    /// Cursors for a clean session whose mailbox refused deliveries: they exist to read the
    /// gap back from Kafka and drop the overlap with live deliveries, and are never saved
    /// (the session's expiry is 0).
    pub(super) fn for_gap() -> Self {
        Persist { durable: false, ..Persist::new(&Cursors::new(), &[], &[]) }
    }

    /// Whether the cursors came with the session: its inbound QoS 2 publications go through
    /// stored intents, exactly once across connections.
    pub(super) fn durable(&self) -> bool {
        self.durable
    }

    /// Starts the cursor of each partition in `gap` that has none at its first refused offset
    /// (a partition with a cursor is read back from there anyway).
    pub(super) fn resume_at(&mut self, gap: &[Origin]) {
        for o in gap {
            self.next.entry((o.topic.clone(), o.partition)).or_insert(o.offset);
        }
    }

    /// Something the client is about to see (or the broker is about to produce) must be in the
    /// session state first: the next loop turn saves before it flushes.
    pub(super) fn write_ahead(&mut self) {
        self.unsaved = true;
    }

    /// Whether a write-ahead save is due before the next flush.
    pub(super) fn needs_write_ahead(&self) -> bool {
        self.unsaved
    }

    /// Whether the cursors moved and the last save is older than `interval`.
    pub(super) fn checkpoint_due(&self, interval: std::time::Duration) -> bool {
        self.dirty && self.saved_at.elapsed() >= interval
    }

    /// A flow completed: the stored cursor may move at the next checkpoint.
    pub(super) fn moved(&mut self) {
        self.dirty = true;
    }

    /// What a save stores (cursors, messages to send again, open intents) and counts the
    /// state as saved.
    pub(super) fn take_for_save(&mut self) -> (Cursors, Vec<StoredFlight>, Vec<StoredIntent>) {
        self.dirty = false;
        self.unsaved = false;
        self.saved_at = Instant::now();
        (self.stored(), self.stored_redeliveries().collect(), self.intents.stored())
    }

    /// The inbound QoS 2 publications of the session.
    pub(super) fn intents(&self) -> &Intents {
        &self.intents
    }

    /// Records an inbound QoS 2 publication before it is produced (see [`Intents::park`]).
    pub(super) fn park(&mut self, intent: StoredIntent, msg: Message, placement: Placement) {
        self.intents.park(intent, msg, placement);
        self.unsaved = true;
    }

    /// The parked publications, now that their intents are saved.
    pub(super) fn take_parked(&mut self) -> Vec<(u16, Message, Placement)> {
        self.intents.take_parked()
    }

    /// A PUBREL released packet id `id`: whether it had an intent (the release is then saved
    /// before PUBCOMP leaves).
    pub(super) fn release(&mut self, id: u16) -> bool {
        let had = self.intents.release(id);
        self.unsaved |= had;
        had
    }

    /// Notes which stored intents have their record in Kafka (their publish ids in `found`).
    pub(super) fn recovered(&mut self, found: &HashSet<String>) {
        self.intents.recovered(found);
    }

    /// A new, unique publish id for an inbound QoS 2 publication.
    pub(super) fn publish_id(&mut self, client_id: &str, epoch: i64) -> String {
        self.intents.publish_id(client_id, epoch)
    }

    /// Starts the offline reader.
    pub(super) fn read_back(&mut self, reader: mpsc::Receiver<Delivery>) {
        self.catchup = Some(reader);
    }

    /// The offline reader, while it runs.
    pub(super) fn reader(&mut self) -> Option<&mut mpsc::Receiver<Delivery>> {
        self.catchup.as_mut()
    }

    /// The offline reader is done: stored in-flight messages it did not bring are gone from
    /// Kafka (retention), so their packet ids are free again.
    pub(super) fn read_back_done(&mut self) {
        self.catchup = None;
        self.redeliver.clear();
    }

    /// Whether the offline reader can hand over its next record (it runs, none waits for room).
    pub(super) fn reader_ready(&self) -> bool {
        self.catchup.is_some() && self.held.is_none()
    }

    /// Whether live deliveries must wait: the session is still reading back from Kafka.
    pub(super) fn reading_back(&self) -> bool {
        self.catchup.is_some() || self.held.is_some()
    }

    /// Keeps a record of the offline reader until the client's window has room.
    pub(super) fn hold(&mut self, d: Delivery) {
        self.held = Some(d);
    }

    /// Whether a record of the offline reader waits for room.
    pub(super) fn has_held(&self) -> bool {
        self.held.is_some()
    }

    /// The record waiting for room, if any.
    pub(super) fn take_held(&mut self) -> Option<Delivery> {
        self.held.take()
    }

    /// The packet id and QoS a stored in-flight message at `origin` was sent with, once.
    pub(super) fn take_redelivery(&mut self, origin: &Origin) -> Option<(u16, QoS)> {
        self.redeliver.remove(&(origin.topic.clone(), origin.partition, origin.offset))
    }

    /// Whether `origin` is a stored in-flight message to send again (it needs no new room in
    /// the client's window: the client still counts it as unacknowledged).
    pub(super) fn is_redelivery(&self, origin: &Origin) -> bool {
        self.redeliver.contains_key(&(origin.topic.clone(), origin.partition, origin.offset))
    }

    /// Messages still to be sent again, as the session state stores them (a save before the
    /// offline reader reaches them must not lose them).
    fn stored_redeliveries(&self) -> impl Iterator<Item = StoredFlight> + '_ {
        self.redeliver.iter().map(|((topic, partition, offset), (packet_id, qos))| StoredFlight {
            topic: topic.to_string(),
            partition: *partition,
            offset: *offset,
            packet_id: *packet_id,
            qos: *qos as u8,
            released: false,
        })
    }

    /// Whether packet id `id` is reserved for a message to send again.
    pub(super) fn is_reserved(&self, id: u16) -> bool {
        self.redeliver.values().any(|(reserved, _)| *reserved == id)
    }

    /// Whether a record at `origin` is still to be delivered; if so it counts as delivered now.
    pub(super) fn admit(&mut self, origin: &Origin) -> bool {
        let next = self.next.entry((origin.topic.clone(), origin.partition)).or_insert(origin.offset);
        if origin.offset < *next {
            return false;
        }
        *next = origin.offset + 1;
        self.dirty = true;
        true
    }

    /// Whether a record at `origin` is at or past its partition's cursor: one the session is
    /// owed (a partition without a cursor owes nothing).
    pub(super) fn owes(&self, origin: &Origin) -> bool {
        self.next.get(&(origin.topic.clone(), origin.partition)).is_some_and(|next| origin.offset >= *next)
    }

    /// Sets the cursor of partitions that have none (a new subscription starts where the live
    /// tailer is, so that records arriving while the client is away are read back later).
    pub(super) fn start_at(&mut self, topic: &str, positions: &[(i32, i64)]) {
        let topic: Arc<str> = topic.into();
        for &(p, o) in positions {
            self.next.entry((topic.clone(), p)).or_insert_with(|| {
                self.dirty = true;
                o
            });
        }
    }

    /// What to read back from Kafka for `topics`: every partition from its cursor, or from an
    /// earlier message still to be sent again.
    pub(super) fn plan(&self, topics: &[String]) -> Vec<CatchUp> {
        topics
            .iter()
            .map(|t| {
                let mut from: HashMap<i32, i64> =
                    self.next.iter().filter(|((topic, _), _)| **topic == **t).map(|((_, p), o)| (*p, *o)).collect();
                for (topic, p, o) in self.redeliver.keys() {
                    if **topic == **t {
                        let f = from.entry(*p).or_insert(*o);
                        *f = (*f).min(*o);
                    }
                }
                CatchUp { topic: t.clone(), from: from.into_iter().collect() }
            })
            .filter(|c| !c.from.is_empty())
            .collect()
    }

    /// The cursors to store (unacknowledged messages are stored apart, as in-flight).
    fn stored(&self) -> Cursors {
        let mut cursors = Cursors::new();
        for ((topic, p), o) in &self.next {
            cursors.entry(topic.to_string()).or_default().insert(*p, *o);
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
        let mut p = Persist::new(&Cursors::new(), &[], &[]);
        assert!(p.admit(&at("t", 0, 5)));
        assert!(!p.admit(&at("t", 0, 5)), "the seam: the same record from Kafka and live");
        assert!(!p.admit(&at("t", 0, 3)));
        assert!(p.admit(&at("t", 0, 6)));
        assert!(p.admit(&at("t", 1, 0)), "partitions are independent");
    }

    #[test]
    fn stored_cursors_resume_and_unacknowledged_messages_are_read_again() {
        let mut p = Persist::new(&Cursors::new(), &[], &[]);
        p.start_at("t", &[(0, 10), (1, 20)]);
        p.start_at("t", &[(0, 99)]);
        assert!(p.admit(&at("t", 0, 12)));
        assert!(p.admit(&at("t", 0, 13)));
        let stored = p.stored();
        assert_eq!(stored["t"][&0], 14);
        assert_eq!(stored["t"][&1], 20);
        let flight =
            StoredFlight { topic: "t".into(), partition: 0, offset: 12, packet_id: 7, qos: 2, released: false };
        let mut resumed = Persist::new(&stored, std::slice::from_ref(&flight), &[]);
        assert_eq!(resumed.stored_redeliveries().collect::<Vec<_>>(), [flight], "kept across saves until sent");
        let plan = resumed.plan(&["t".to_string(), "other".to_string()]);
        assert_eq!(plan.len(), 1);
        let mut from = plan[0].from.clone();
        from.sort();
        assert_eq!(from, [(0, 12), (1, 20)], "partition 0 from the unacknowledged message");
        assert_eq!(resumed.take_redelivery(&at("t", 0, 12)), Some((7, QoS::ExactlyOnce)));
        assert_eq!(resumed.take_redelivery(&at("t", 0, 12)), None, "once");
        assert_eq!(resumed.stored_redeliveries().count(), 0);
        assert!(!resumed.admit(&at("t", 0, 13)), "delivered before, not in flight");
        assert!(resumed.admit(&at("t", 0, 14)));
    }
}
