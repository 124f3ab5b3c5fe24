//! In-memory representation of the 15 MQTT control packets, shared by both versions.
//!
//! Reason codes are always MQTT 5 values; 3.1.1 packets decode with `reason` 0 (or the
//! MQTT 5 equivalent of a 3.1.1 return code) and empty properties.

use bytes::Bytes;

use super::error::DecodeError;
use super::properties::Properties;

/// Control packet type numbers (fixed header bits 7-4).
pub(super) mod kind {
    pub(crate) const CONNECT: u8 = 1;
    pub(crate) const CONNACK: u8 = 2;
    pub(crate) const PUBLISH: u8 = 3;
    pub(crate) const PUBACK: u8 = 4;
    pub(crate) const PUBREC: u8 = 5;
    pub(crate) const PUBREL: u8 = 6;
    pub(crate) const PUBCOMP: u8 = 7;
    pub(crate) const SUBSCRIBE: u8 = 8;
    pub(crate) const SUBACK: u8 = 9;
    pub(crate) const UNSUBSCRIBE: u8 = 10;
    pub(crate) const UNSUBACK: u8 = 11;
    pub(crate) const PINGREQ: u8 = 12;
    pub(crate) const PINGRESP: u8 = 13;
    pub(crate) const DISCONNECT: u8 = 14;
    pub(crate) const AUTH: u8 = 15;
}

/// Name of packet type `k`, or `None` for the reserved type 0 (and out-of-range values).
pub(super) fn kind_name(k: u8) -> Option<&'static str> {
    const NAMES: [&str; 15] = [
        "CONNECT",
        "CONNACK",
        "PUBLISH",
        "PUBACK",
        "PUBREC",
        "PUBREL",
        "PUBCOMP",
        "SUBSCRIBE",
        "SUBACK",
        "UNSUBSCRIBE",
        "UNSUBACK",
        "PINGREQ",
        "PINGRESP",
        "DISCONNECT",
        "AUTH",
    ];
    NAMES.get(usize::from(k).checked_sub(1)?).copied()
}

/// MQTT protocol revision, fixed by the CONNECT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

impl ProtocolVersion {
    /// Protocol level byte carried in CONNECT.
    pub fn level(self) -> u8 {
        match self {
            Self::V311 => 4,
            Self::V5 => 5,
        }
    }
}

/// Quality of Service level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QoS {
    /// At most once delivery.
    #[default]
    AtMostOnce = 0,
    /// At least once delivery.
    AtLeastOnce = 1,
    /// Exactly once delivery.
    ExactlyOnce = 2,
}

impl TryFrom<u8> for QoS {
    type Error = DecodeError;

    /// Fails with [`DecodeError::InvalidQoS`] for 3 and above.
    fn try_from(value: u8) -> Result<Self, DecodeError> {
        match value {
            0 => Ok(Self::AtMostOnce),
            1 => Ok(Self::AtLeastOnce),
            2 => Ok(Self::ExactlyOnce),
            v => Err(DecodeError::InvalidQoS(v)),
        }
    }
}

/// An MQTT control packet.
// CONNECT carries two property sets and dwarfs the other variants; boxing it would make
// every match on the broker's hot path uglier for a packet seen once per connection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT (client to server).
    Connect(Connect),
    /// CONNACK (server to client).
    ConnAck(ConnAck),
    /// PUBLISH (both directions).
    Publish(Publish),
    /// PUBACK (QoS 1 acknowledgement).
    PubAck(PubResp),
    /// PUBREC (QoS 2 step 1).
    PubRec(PubResp),
    /// PUBREL (QoS 2 step 2).
    PubRel(PubResp),
    /// PUBCOMP (QoS 2 step 3).
    PubComp(PubResp),
    /// SUBSCRIBE (client to server).
    Subscribe(Subscribe),
    /// SUBACK (server to client).
    SubAck(SubAck),
    /// UNSUBSCRIBE (client to server).
    Unsubscribe(Unsubscribe),
    /// UNSUBACK (server to client).
    UnsubAck(UnsubAck),
    /// PINGREQ (client to server).
    PingReq,
    /// PINGRESP (server to client).
    PingResp,
    /// DISCONNECT (both directions in MQTT 5).
    Disconnect(Disconnect),
    /// AUTH (MQTT 5 only).
    Auth(Auth),
}

impl Packet {
    /// Upper-case packet type name as used in the specification, for logs and metrics.
    pub fn packet_type_name(&self) -> &'static str {
        match self {
            Self::Connect(_) => "CONNECT",
            Self::ConnAck(_) => "CONNACK",
            Self::Publish(_) => "PUBLISH",
            Self::PubAck(_) => "PUBACK",
            Self::PubRec(_) => "PUBREC",
            Self::PubRel(_) => "PUBREL",
            Self::PubComp(_) => "PUBCOMP",
            Self::Subscribe(_) => "SUBSCRIBE",
            Self::SubAck(_) => "SUBACK",
            Self::Unsubscribe(_) => "UNSUBSCRIBE",
            Self::UnsubAck(_) => "UNSUBACK",
            Self::PingReq => "PINGREQ",
            Self::PingResp => "PINGRESP",
            Self::Disconnect(_) => "DISCONNECT",
            Self::Auth(_) => "AUTH",
        }
    }

    /// Removes the Reason String and User Properties, which a sender may leave out when the
    /// packet would otherwise exceed the receiver's Maximum Packet Size (MQTT-3.2.2-19/20 and
    /// their counterparts for every acknowledgement, DISCONNECT and AUTH); `false` when the
    /// packet has none to remove. A PUBLISH keeps its User Properties: they belong to the
    /// application message, and a PUBLISH too large is not sent at all (MQTT-3.1.2-25).
    pub fn strip_diagnostics(&mut self) -> bool {
        let props = match self {
            Self::ConnAck(c) => &mut c.properties,
            Self::PubAck(r) | Self::PubRec(r) | Self::PubRel(r) | Self::PubComp(r) => &mut r.properties,
            Self::SubAck(s) => &mut s.properties,
            Self::UnsubAck(u) => &mut u.properties,
            Self::Disconnect(d) => &mut d.properties,
            Self::Auth(a) => &mut a.properties,
            _ => return false,
        };
        let had = props.reason_string.is_some() || !props.user_properties.is_empty();
        props.reason_string = None;
        props.user_properties.clear();
        had
    }
}

/// CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol version requested by the client.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.1.1) / Clean Start (5).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// Client identifier; may be empty (3.1.1 only together with `clean_start`).
    pub client_id: String,
    /// Will message, if the Will Flag is set.
    pub will: Option<LastWill>,
    /// User name, if the User Name Flag is set.
    pub username: Option<String>,
    /// Password, if the Password Flag is set.
    pub password: Option<Bytes>,
    /// CONNECT properties (MQTT 5).
    pub properties: Properties,
}

/// Will message carried in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Will topic (a topic name: no wildcards, non-empty).
    pub topic: String,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
    /// Will properties (MQTT 5).
    pub properties: Properties,
}

/// CONNACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present flag.
    pub session_present: bool,
    /// MQTT 5 reason code; for 3.1.1 it is mapped to a return code with
    /// [`super::reason::v311_connack_return_code`] (and decoded back to its MQTT 5 equivalent).
    pub reason: u8,
    /// CONNACK properties (MQTT 5).
    pub properties: Properties,
}

/// PUBLISH packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP flag (only with QoS > 0).
    pub dup: bool,
    /// Delivery QoS.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name; empty only in MQTT 5 with a Topic Alias property.
    pub topic: String,
    /// Packet identifier, present exactly when `qos` > 0.
    pub packet_id: Option<u16>,
    /// PUBLISH properties (MQTT 5).
    pub properties: Properties,
    /// Application message.
    pub payload: Bytes,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP, which share one layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubResp {
    /// Packet identifier being acknowledged.
    pub packet_id: u16,
    /// MQTT 5 reason code (always 0 in 3.1.1).
    pub reason: u8,
    /// Properties (MQTT 5).
    pub properties: Properties,
}

/// SUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier (non-zero).
    pub packet_id: u16,
    /// SUBSCRIBE properties (MQTT 5).
    pub properties: Properties,
    /// Topic filters with their options; never empty.
    pub filters: Vec<(String, SubscriptionOptions)>,
}

/// Subscription options byte (3.1.1 only has the QoS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local (MQTT 5).
    pub no_local: bool,
    /// Retain As Published (MQTT 5).
    pub retain_as_published: bool,
    /// Retain Handling 0, 1 or 2 (MQTT 5).
    pub retain_handling: u8,
}

/// SUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: u16,
    /// SUBACK properties (MQTT 5).
    pub properties: Properties,
    /// One reason code per filter (3.1.1: 0, 1, 2 or 0x80).
    pub reasons: Vec<u8>,
}

/// UNSUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier (non-zero).
    pub packet_id: u16,
    /// UNSUBSCRIBE properties (MQTT 5).
    pub properties: Properties,
    /// Topic filters; never empty.
    pub filters: Vec<String>,
}

/// UNSUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub packet_id: u16,
    /// UNSUBACK properties (MQTT 5).
    pub properties: Properties,
    /// One reason code per filter (MQTT 5); 3.1.1 UNSUBACK has no payload.
    pub reasons: Vec<u8>,
}

/// DISCONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// MQTT 5 reason code (always 0 in 3.1.1).
    pub reason: u8,
    /// DISCONNECT properties (MQTT 5).
    pub properties: Properties,
}

/// AUTH packet (MQTT 5 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Reason code: 0x00, 0x18 or 0x19.
    pub reason: u8,
    /// AUTH properties.
    pub properties: Properties,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_try_from() {
        assert_eq!(QoS::try_from(2), Ok(QoS::ExactlyOnce));
        assert_eq!(QoS::try_from(3), Err(DecodeError::InvalidQoS(3)));
    }

    #[test]
    fn kind_names_match_packet_names() {
        assert_eq!(kind_name(0), None);
        assert_eq!(kind_name(16), None);
        assert_eq!(kind_name(kind::AUTH), Some("AUTH"));
        assert_eq!(kind_name(kind::PINGREQ), Some(Packet::PingReq.packet_type_name()));
    }
}
