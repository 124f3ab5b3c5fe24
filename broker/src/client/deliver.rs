//! Messages from the mailbox (and, for a resumed persistent session, from Kafka) to the
//! client: packet ids, the client's Receive Maximum window, the QoS 1/2 acknowledgement flows,
//! and the delivery cursors of persistent sessions.

use std::collections::HashMap;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::aliases::Naming;
use super::persist::Persist;
use super::shared::is_shared;
use super::{Client, End};
use crate::codec::{reason, EncodeError, Packet, Properties, ProtocolVersion, PubResp, Publish, QoS};
use crate::delivery::catchup::{self, CatchUp};
use crate::delivery::share::Ticket;
use crate::delivery::{Delivery, Origin};
use crate::message::now_ms;
use crate::metrics::DropReason;
use crate::session::record::StoredFlight;

/// Deliveries written per loop turn before flushing, so a burst does not pile up in the buffer.
const BATCH: usize = 64;

/// Where an outbound QoS 1/2 message stands: the packet we wait for from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flight {
    /// QoS 1 sent, waiting for PUBACK.
    Ack,
    /// QoS 2 sent, waiting for PUBREC.
    Received,
    /// PUBREL sent, waiting for PUBCOMP.
    Complete,
}

/// One outbound QoS 1/2 message waiting for the client.
type InFlight = (Flight, Option<Origin>, Option<Box<Ticket>>);

/// Outbound in-flight state.
pub(super) struct Outbound {
    next_id: u16,
    /// In-flight messages with their Kafka position (kept for persistent sessions' cursors)
    /// or, for a shared subscription's, the ticket their acknowledgement settles.
    flights: HashMap<u16, InFlight>,
    /// The client's Receive Maximum.
    window: u16,
}

impl Outbound {
    /// State for a client accepting `window` unacknowledged QoS 1/2 messages.
    pub(super) fn new(window: u16) -> Self {
        Outbound { next_id: 0, flights: HashMap::new(), window: window.max(1) }
    }

    /// Drops the tickets of shared subscriptions' messages in flight (the connection is
    /// closed): their groups give them to other members.
    pub(super) fn drop_tickets(&mut self) {
        for (_, _, ticket) in self.flights.values_mut() {
            drop(ticket.take());
        }
    }

    /// The client's Receive Maximum.
    pub(super) fn window(&self) -> u16 {
        self.window
    }

    /// Whether the client's window allows another QoS 1/2 message.
    pub(super) fn has_room(&self) -> bool {
        self.flights.len() < usize::from(self.window)
    }

    fn state(&self, id: u16) -> Option<Flight> {
        self.flights.get(&id).map(|(f, _, _)| *f)
    }

    /// The in-flight messages that came from Kafka, as the session state stores them.
    pub(super) fn stored(&self) -> Vec<StoredFlight> {
        self.flights
            .iter()
            .filter_map(|(id, (flight, origin, _))| {
                let o = origin.as_ref()?;
                Some(StoredFlight {
                    topic: o.topic.to_string(),
                    partition: o.partition,
                    offset: o.offset,
                    packet_id: *id,
                    qos: if *flight == Flight::Ack { 1 } else { 2 },
                    released: *flight == Flight::Complete,
                })
            })
            .collect()
    }

    /// The next free packet id, skipping those in flight and `reserved` ones; there is always
    /// one because the window and the reservations stay far below 65,535 ids.
    fn allocate(&mut self, reserved: impl Fn(u16) -> bool) -> u16 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            if self.next_id != 0 && !self.flights.contains_key(&self.next_id) && !reserved(self.next_id) {
                return self.next_id;
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    /// Moves messages from the mailbox into the write buffer while the client's window allows.
    /// A session reading back from Kafka takes nothing live until it is done; one whose
    /// mailbox refused deliveries reads them back from Kafka instead of losing them.
    pub(super) fn drain_mailbox(&mut self) -> Result<(), EncodeError> {
        // A rewinding subscription's replay comes first; live messages wait behind it.
        if self.drain_replay()? {
            return Ok(());
        }
        if self.outbound.has_room() {
            if let Some(d) = self.persist.as_mut().and_then(|p| p.take_held()) {
                self.deliver(d)?;
            }
        }
        if let Some(p) = &self.persist {
            if p.reading_back() {
                tracing::trace!(client = %self.client_id, held = p.has_held(), "live deliveries wait for the read-back");
                return Ok(());
            }
        }
        for _ in 0..BATCH {
            if !self.outbound.has_room() {
                return Ok(());
            }
            match self.mailbox.pop() {
                Some(d) => self.deliver(d)?,
                None => {
                    if let Some(gap) = self.mailbox.take_gap() {
                        self.read_back_gap(&gap);
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The mailbox refused QoS 1/2 deliveries and everything it queued before them is
    /// delivered: reads them back from Kafka, from the first refused offset of each partition
    /// on (or the session's cursor). A clean session gets cursors for this, never saved.
    fn read_back_gap(&mut self, gap: &[Origin]) {
        tracing::debug!(client = %self.client_id, ?gap, "mailbox refused deliveries: reading them back from kafka");
        self.persist.get_or_insert_with(|| Box::new(Persist::for_gap())).resume_at(gap);
        self.start_catchup();
    }

    /// Starts reading the session's Kafka topics back from its cursors (offline delivery).
    pub(super) fn start_catchup(&mut self) {
        let Some(p) = self.persist.as_ref() else { return };
        let own = self.subscriptions.keys().map(AsRef::as_ref).filter(|f| !is_shared(f));
        let plan = p.plan(&self.kafka_topics(own));
        if plan.is_empty() {
            tracing::debug!(client = %self.client_id, "nothing to read back from kafka");
            // Nothing to read back: stored in-flight messages of topics no longer read are gone.
            if let Some(p) = self.persist.as_mut() {
                p.read_back_done();
            }
        } else {
            tracing::debug!(client = %self.client_id, ?plan, "reading back from kafka");
            let reader = self.spawn_reader(plan, catchup::Kind::Offline);
            if let Some(p) = self.persist.as_mut() {
                p.read_back(reader);
            }
        }
    }

    /// The Kafka topics that can hold messages matching `filters`, each once, by the mapping in
    /// force now.
    pub(super) fn kafka_topics<'a>(&self, filters: impl Iterator<Item = &'a str>) -> Vec<String> {
        let mapping = self.broker.publisher.mapping();
        let mut topics: Vec<String> =
            filters.flat_map(|f| mapping.kafka_topics_for_filter_cached(f).to_vec()).collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// Starts reading `plan` back from Kafka for this session, matching its subscriptions as
    /// they are now (see `catchup::spawn`).
    pub(super) fn spawn_reader(&self, plan: Vec<CatchUp>, kind: catchup::Kind) -> mpsc::Receiver<Delivery> {
        let subs = self
            .subscriptions
            .iter()
            .filter(|(f, _)| !is_shared(f))
            .map(|(f, (o, id))| (f.to_string(), *o, *id))
            .collect();
        let active = self.broker.metrics.catchup_readers.clone();
        let (log, client_id) = (self.broker.log.clone(), self.client_id.clone());
        catchup::spawn(log, plan, subs, client_id, active, kind)
    }

    /// Delivers what the offline reader sent (`Some`), or notes that it is done (`None`). A
    /// record that needs room the client's window does not have waits in `held`; the reader is
    /// not polled again until it is out (stored in-flight messages it brings take no new room).
    pub(super) fn on_catchup(&mut self, d: Option<Delivery>) -> Result<(), EncodeError> {
        match d {
            Some(d) => {
                let redelivery = matches!((&self.persist, &d.origin), (Some(p), Some(o)) if p.is_redelivery(o));
                if redelivery || self.outbound.has_room() {
                    self.deliver(d)
                } else {
                    tracing::trace!(client = %self.client_id, origin = ?d.origin, "read back, waits for room in the window");
                    if let Some(p) = self.persist.as_mut() {
                        p.hold(d);
                    }
                    Ok(())
                }
            }
            None => {
                tracing::debug!(client = %self.client_id, "read back from kafka");
                if let Some(p) = self.persist.as_mut() {
                    p.read_back_done();
                }
                Ok(())
            }
        }
    }

    /// Writes one delivery to the client, unless it expired, a persistent session already had
    /// it, or it is too large for the client (MQTT-3.1.2-25: dropped).
    fn deliver(&mut self, d: Delivery) -> Result<(), EncodeError> {
        self.deliver_from(d, false)
    }

    /// `deliver`, for a delivery from a rewind's replay (`replay`) or from anywhere else: only
    /// the latter can be one the replay already gave.
    pub(super) fn deliver_from(&mut self, mut d: Delivery, replay: bool) -> Result<(), EncodeError> {
        // One per message and subscriber, so at DEBUG: off unless `RUST_LOG` asks for it, and
        // then only a check at this call site (no span, no field formatted) when not exported.
        let _span = tracing::debug_span!("mqtt.deliver", topic = %d.msg.topic, qos = d.qos as u8).entered();
        let mut resent = None;
        // A shared subscription's message is settled once the client has it or never will.
        let mut ticket = d.share.take();
        if let (Some(p), Some(origin)) = (self.persist.as_mut(), &d.origin) {
            // Sent by the previous connection and not acknowledged: again, same packet id, DUP.
            match p.take_redelivery(origin) {
                Some((id, qos)) => {
                    resent = Some(id);
                    d.qos = qos;
                }
                None if !p.admit(origin) => {
                    tracing::trace!(client = %self.client_id, ?origin, "already delivered");
                    return Ok(());
                }
                None => {}
            }
        }
        if !replay && resent.is_none() && self.replayed(&d) {
            tracing::trace!(client = %self.client_id, origin = ?d.origin, "replayed by a rewind");
            return Ok(());
        }
        let properties = match self.version {
            ProtocolVersion::V5 => match d.msg.properties.to_publish(now_ms()) {
                Some(mut p) => {
                    p.subscription_identifiers = d.subscription_ids;
                    p
                }
                None => {
                    self.broker.metrics.dropped(DropReason::Expired);
                    settle(ticket);
                    return Ok(());
                }
            },
            ProtocolVersion::V311 if d.msg.is_expired(now_ms()) => {
                self.broker.metrics.dropped(DropReason::Expired);
                settle(ticket);
                return Ok(());
            }
            ProtocolVersion::V311 => Properties::default(),
        };
        let persist = &self.persist;
        let reserved = |id| persist.as_ref().is_some_and(|p| p.is_reserved(id));
        let packet_id = resent.or_else(|| (d.qos != QoS::AtMostOnce).then(|| self.outbound.allocate(reserved)));
        let naming = self.out_aliases.choose(&d.msg.topic);
        let (topic, topic_alias) = match naming {
            Naming::Plain => (d.msg.topic.clone(), None),
            Naming::Announce(alias) => (d.msg.topic.clone(), Some(alias)),
            Naming::Alias(alias) => (String::new(), Some(alias)),
        };
        let publish = Packet::Publish(Publish {
            dup: resent.is_some(),
            qos: d.qos,
            retain: d.retain,
            topic,
            packet_id,
            properties: Properties { topic_alias, ..properties },
            payload: d.msg.payload.clone(),
        });
        if self.conn.queue(&publish)? {
            tracing::trace!(client = %self.client_id, ?packet_id, dup = resent.is_some(), origin = ?d.origin, "delivery written");
            self.out_aliases.sent(&d.msg.topic, naming);
            self.broker.metrics.sent(d.qos as u8);
            if let Some(id) = packet_id {
                let flight = if d.qos == QoS::AtLeastOnce { Flight::Ack } else { Flight::Received };
                // QoS 2 is exactly once only if the packet id is saved before the client sees it.
                if let (Flight::Received, Some(p), Some(_)) = (flight, self.persist.as_mut(), &d.origin) {
                    p.write_ahead();
                }
                if let (Flight::Received, Some(t)) = (flight, ticket.as_mut()) {
                    t.delivering_qos2();
                }
                self.outbound.flights.insert(id, (flight, d.origin, ticket));
            } else {
                settle(ticket);
            }
        } else {
            self.broker.metrics.dropped(DropReason::TooLarge);
            settle(ticket);
        }
        Ok(())
    }

    /// Takes over the previous connection's unacknowledged messages: released QoS 2 flows get
    /// their PUBREL again at once; the others keep their packet ids reserved in `Persist`,
    /// outside the window (waiting on them while the window is full of later messages would
    /// deadlock), and are sent again when the offline reader reaches them.
    pub(super) fn resume_in_flight(&mut self, stored: &[StoredFlight]) {
        for f in stored.iter().filter(|f| f.released) {
            let origin = Origin { topic: f.topic.as_str().into(), partition: f.partition, offset: f.offset };
            let rel = PubResp { packet_id: f.packet_id, reason: reason::SUCCESS, properties: Properties::default() };
            // Encoding a PUBREL cannot fail; if it did, the client would ask again.
            let _ = self.conn.queue(&Packet::PubRel(rel));
            self.outbound.flights.insert(f.packet_id, (Flight::Complete, Some(origin), None));
        }
    }

    /// An acknowledgement completed a flow: a persistent session's stored cursor may move.
    fn completed(&mut self, id: u16) {
        if let Some((_, _, Some(ticket))) = self.outbound.flights.remove(&id) {
            ticket.settle();
        }
        if let Some(p) = self.persist.as_mut() {
            p.moved();
        }
    }

    pub(super) fn on_puback(&mut self, r: PubResp) -> Result<(), End> {
        if self.outbound.state(r.packet_id) == Some(Flight::Ack) {
            self.completed(r.packet_id);
        }
        Ok(())
    }

    pub(super) fn on_pubrec(&mut self, r: PubResp) -> Result<(), End> {
        let state = self.outbound.state(r.packet_id);
        tracing::trace!(client = %self.client_id, id = r.packet_id, ?state, "pubrec");
        let code = match state {
            // MQTT 5: a PUBREC with an error code ends the flow (no PUBREL).
            Some(Flight::Received) if r.reason >= 0x80 => {
                self.completed(r.packet_id);
                return Ok(());
            }
            Some(Flight::Received) | Some(Flight::Complete) => {
                if let Some(f) = self.outbound.flights.get_mut(&r.packet_id) {
                    f.0 = Flight::Complete;
                    // The client has a QoS 2 message at PUBREC: no other member may get it. Its
                    // position is kept, so that a resumed session sends PUBREL again.
                    if let Some(ticket) = f.2.take() {
                        f.1.get_or_insert_with(|| ticket.origin().clone());
                        ticket.settle();
                    }
                }
                // Saved before PUBREL leaves: after PUBREL the client may forget the message,
                // so a resumed session must send PUBREL again, never the message.
                if let Some(p) = self.persist.as_mut() {
                    p.write_ahead();
                }
                reason::SUCCESS
            }
            _ => reason::PACKET_IDENTIFIER_NOT_FOUND,
        };
        self.send(&Packet::PubRel(PubResp { packet_id: r.packet_id, reason: code, properties: Properties::default() }))
    }

    pub(super) fn on_pubcomp(&mut self, r: PubResp) -> Result<(), End> {
        let state = self.outbound.state(r.packet_id);
        tracing::trace!(client = %self.client_id, id = r.packet_id, ?state, in_flight = self.outbound.flights.len(), "pubcomp");
        if state == Some(Flight::Complete) {
            self.completed(r.packet_id);
        }
        Ok(())
    }
}

/// Settles a shared subscription's ticket, if the delivery had one.
fn settle(ticket: Option<Box<Ticket>>) {
    if let Some(t) = ticket {
        t.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_skip_zero_and_ids_in_flight() {
        let mut o = Outbound::new(3);
        o.next_id = u16::MAX - 1;
        let a = o.allocate(|_| false);
        o.flights.insert(a, (Flight::Ack, None, None));
        assert_eq!(a, u16::MAX);
        assert_eq!(o.allocate(|_| false), 1, "wraps past 0");
        o.next_id = u16::MAX - 1;
        assert_eq!(o.allocate(|_| false), 1, "skips an id in flight");
        o.next_id = u16::MAX - 1;
        assert_eq!(o.allocate(|id| id == 1), 2, "skips a reserved id");
    }

    #[test]
    fn window_limits_flights() {
        let mut o = Outbound::new(1);
        assert!(o.has_room());
        let id = o.allocate(|_| false);
        o.flights.insert(id, (Flight::Received, None, None));
        assert!(!o.has_room());
    }
}
