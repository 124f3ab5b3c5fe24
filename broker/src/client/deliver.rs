//! Messages from the mailbox to the client: packet ids, the client's Receive Maximum window,
//! and the QoS 1/2 acknowledgement flows.

use std::collections::HashMap;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Client, End};
use crate::codec::{reason, EncodeError, Packet, Properties, ProtocolVersion, PubResp, Publish, QoS};
use crate::message::now_ms;
use crate::metrics::inc;

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

/// Outbound in-flight state.
pub(super) struct Outbound {
    next_id: u16,
    flights: HashMap<u16, Flight>,
    /// The client's Receive Maximum.
    window: u16,
}

impl Outbound {
    /// State for a client accepting `window` unacknowledged QoS 1/2 messages.
    pub(super) fn new(window: u16) -> Self {
        Outbound { next_id: 0, flights: HashMap::new(), window: window.max(1) }
    }

    fn has_room(&self) -> bool {
        self.flights.len() < usize::from(self.window)
    }

    /// The next free packet id; there is always one because the window is below 65,535 ids.
    fn allocate(&mut self) -> u16 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            if self.next_id != 0 && !self.flights.contains_key(&self.next_id) {
                return self.next_id;
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    /// Moves messages from the mailbox into the write buffer while the client's window allows.
    pub(super) fn drain_mailbox(&mut self) -> Result<(), EncodeError> {
        for _ in 0..BATCH {
            if !self.outbound.has_room() {
                return Ok(());
            }
            let Some(d) = self.mailbox.pop() else { return Ok(()) };
            let properties = match self.version {
                ProtocolVersion::V5 => match d.msg.properties.to_publish(now_ms()) {
                    Some(mut p) => {
                        p.subscription_identifiers = d.subscription_ids;
                        p
                    }
                    None => continue,
                },
                ProtocolVersion::V311 if d.msg.is_expired(now_ms()) => continue,
                ProtocolVersion::V311 => Properties::default(),
            };
            let packet_id = (d.qos != QoS::AtMostOnce).then(|| self.outbound.allocate());
            let publish = Packet::Publish(Publish {
                dup: false,
                qos: d.qos,
                retain: d.retain,
                topic: d.msg.topic.clone(),
                packet_id,
                properties,
                payload: d.msg.payload.clone(),
            });
            // A message larger than the client's Maximum Packet Size is dropped (MQTT-3.1.2-25).
            if self.conn.queue(&publish)? {
                inc(&self.broker.metrics.publish_sent);
                if let Some(id) = packet_id {
                    let flight = if d.qos == QoS::AtLeastOnce { Flight::Ack } else { Flight::Received };
                    self.outbound.flights.insert(id, flight);
                }
            }
        }
        Ok(())
    }

    pub(super) fn on_puback(&mut self, r: PubResp) -> Result<(), End> {
        if self.outbound.flights.get(&r.packet_id) == Some(&Flight::Ack) {
            self.outbound.flights.remove(&r.packet_id);
        }
        Ok(())
    }

    pub(super) fn on_pubrec(&mut self, r: PubResp) -> Result<(), End> {
        let code = match self.outbound.flights.get(&r.packet_id) {
            // MQTT 5: a PUBREC with an error code ends the flow (no PUBREL).
            Some(Flight::Received) if r.reason >= 0x80 => {
                self.outbound.flights.remove(&r.packet_id);
                return Ok(());
            }
            Some(Flight::Received) | Some(Flight::Complete) => {
                self.outbound.flights.insert(r.packet_id, Flight::Complete);
                reason::SUCCESS
            }
            _ => reason::PACKET_IDENTIFIER_NOT_FOUND,
        };
        self.send(&Packet::PubRel(PubResp { packet_id: r.packet_id, reason: code, properties: Properties::default() }))
    }

    pub(super) fn on_pubcomp(&mut self, r: PubResp) -> Result<(), End> {
        if self.outbound.flights.get(&r.packet_id) == Some(&Flight::Complete) {
            self.outbound.flights.remove(&r.packet_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_skip_zero_and_ids_in_flight() {
        let mut o = Outbound::new(3);
        o.next_id = u16::MAX - 1;
        let a = o.allocate();
        o.flights.insert(a, Flight::Ack);
        assert_eq!(a, u16::MAX);
        assert_eq!(o.allocate(), 1, "wraps past 0");
        o.next_id = u16::MAX - 1;
        assert_eq!(o.allocate(), 1, "skips an id in flight");
    }

    #[test]
    fn window_limits_flights() {
        let mut o = Outbound::new(1);
        assert!(o.has_room());
        let id = o.allocate();
        o.flights.insert(id, Flight::Received);
        assert!(!o.has_room());
    }
}
