//! Decode and encode errors.

use super::packet::ProtocolVersion;
use super::reason;

/// Why a received packet was rejected. Every variant names the rule that was broken so
/// that a log line is enough to tell a buggy client from a hostile one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A Variable Byte Integer is longer than 4 bytes or not minimally encoded.
    #[error("malformed variable byte integer in {0} (MQTT-1.5.5-1, max 4 bytes, minimal encoding)")]
    InvalidVarInt(&'static str),
    /// The whole packet (fixed header included) exceeds the configured maximum size.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// Size announced by the fixed header.
        size: u64,
        /// Configured limit.
        max: u32,
    },
    /// Packet type 0 (reserved) or AUTH (15) on an MQTT 3.1.1 connection.
    #[error("packet type {0} is reserved for this protocol version")]
    InvalidPacketType(u8),
    /// Fixed-header flag bits differ from the values the specification fixes.
    #[error("invalid fixed header flags {flags:#06b} for {packet} (MQTT-2.2.2-1, MQTT-2.2.2-2)")]
    InvalidHeaderFlags {
        /// Packet type name.
        packet: &'static str,
        /// The four flag bits received.
        flags: u8,
    },
    /// The first packet on a connection was not CONNECT.
    #[error("first packet must be CONNECT, got {0} (MQTT-3.1.0-1)")]
    ExpectedConnect(&'static str),
    /// A CONNECT arrived after the connection was already established.
    #[error("second CONNECT on an established connection (MQTT-3.1.0-2)")]
    DuplicateConnect,
    /// A QoS field (PUBLISH header, will QoS, subscription options) holds 3.
    #[error("invalid QoS value {0} (MQTT-3.3.1-4, MQTT-3.1.2-14, MQTT-3.8.3-4)")]
    InvalidQoS(u8),
    /// PUBLISH with QoS 0 and DUP set.
    #[error("PUBLISH with QoS 0 must not set DUP (MQTT-3.3.1-2)")]
    DupWithQoS0,
    /// A field runs past the end of the packet (or of the property block).
    #[error("{0} extends past the end of the packet")]
    Truncated(&'static str),
    /// Bytes left over after the last field of a packet.
    #[error("{count} unexpected trailing byte(s) at the end of {packet}")]
    TrailingBytes {
        /// Packet type name.
        packet: &'static str,
        /// Number of surplus bytes.
        count: usize,
    },
    /// A UTF-8 Encoded String is not valid UTF-8.
    #[error("{0} is not valid UTF-8 (MQTT-1.5.3-1)")]
    InvalidUtf8(&'static str),
    /// A UTF-8 Encoded String contains U+0000.
    #[error("{0} contains U+0000 (MQTT-1.5.3-2)")]
    NullCharacter(&'static str),
    /// CONNECT protocol name is neither "MQTT" nor the legacy "MQIsdp".
    #[error("invalid protocol name {0:?} (MQTT-3.1.2-1)")]
    InvalidProtocolName(String),
    /// CONNECT protocol level other than 4 or 5 (includes MQIsdp level 3).
    #[error("unsupported protocol level {0} (MQTT-3.1.2-2)")]
    UnsupportedProtocolVersion(u8),
    /// CONNECT flags bit 0 is set.
    #[error("CONNECT reserved flag is set (MQTT-3.1.2-3)")]
    ConnectReservedFlag,
    /// Will QoS or Will Retain is set while the Will Flag is 0.
    #[error("will QoS/retain set without the will flag (MQTT-3.1.2-13, MQTT-3.1.2-15)")]
    WillFlagsWithoutWill,
    /// MQTT 3.1.1 CONNECT with the password flag but no user name flag.
    #[error("password flag set without user name flag (MQTT-3.1.2-22)")]
    PasswordWithoutUsername,
    /// The client identifier must be rejected with CONNACK 0x85 (3.1.1: return code 2).
    #[error("client identifier rejected: {reason}")]
    InvalidClientId {
        /// Version of the CONNECT, so the CONNACK can be encoded in the client's format.
        version: ProtocolVersion,
        /// Rule that was broken.
        reason: &'static str,
    },
    /// Bits the specification reserves are set.
    #[error("reserved bits set in {0}")]
    ReservedBits(&'static str),
    /// PUBLISH or will topic name is empty or contains wildcards.
    #[error("invalid topic name: {0}")]
    InvalidTopicName(&'static str),
    /// A topic filter in SUBSCRIBE or UNSUBSCRIBE is empty.
    #[error("empty topic filter (MQTT-4.7.3-1)")]
    EmptyTopicFilter,
    /// A packet identifier is 0.
    #[error("{0} has packet identifier 0 (MQTT-2.3.1-1)")]
    ZeroPacketId(&'static str),
    /// SUBSCRIBE/UNSUBSCRIBE without topic filters, or SUBACK/UNSUBACK without reason codes.
    #[error("{0} has an empty payload (MQTT-3.8.3-3, MQTT-3.10.3-2)")]
    EmptyPayload(&'static str),
    /// Subscription option Retain Handling is 3.
    #[error("retain handling 3 in subscription options (MQTT 5 §3.8.3.1)")]
    InvalidRetainHandling,
    /// A reason code not listed for this packet type.
    #[error("reason code {code:#04x} is not valid in {packet}")]
    InvalidReasonCode {
        /// Packet type name.
        packet: &'static str,
        /// The code received.
        code: u8,
    },
    /// A property identifier MQTT 5 does not define.
    #[error("unknown property identifier {id:#04x} in {packet} (MQTT 5 §2.2.2.2)")]
    UnknownProperty {
        /// Packet type name (or "will properties").
        packet: &'static str,
        /// Identifier received.
        id: u32,
    },
    /// A defined property that is not valid in this packet type.
    #[error("property {id:#04x} is not allowed in {packet} (MQTT 5 §2.2.2.2)")]
    PropertyNotAllowed {
        /// Packet type name (or "will properties").
        packet: &'static str,
        /// Property identifier.
        id: u8,
    },
    /// A property that may appear only once appeared again.
    #[error("property {id:#04x} appears more than once in {packet} (MQTT 5 §2.2.2.2)")]
    DuplicateProperty {
        /// Packet type name (or "will properties").
        packet: &'static str,
        /// Property identifier.
        id: u8,
    },
    /// A property value the specification calls a protocol error (e.g. Receive Maximum 0).
    #[error("property {id:#04x} has invalid value {value}")]
    InvalidPropertyValue {
        /// Property identifier.
        id: u8,
        /// Value received.
        value: u32,
    },
    /// A Response Topic holding `+` or `#`.
    #[error("wildcard character in response topic (MQTT-3.3.2-14)")]
    WildcardResponseTopic,
    /// Authentication Data without Authentication Method.
    #[error("authentication data without authentication method (MQTT 5 §3.1.2.11.10)")]
    AuthDataWithoutMethod,
}

impl DecodeError {
    /// MQTT 5 reason code to put in the CONNACK or DISCONNECT that reports this error.
    pub fn reason_code(&self) -> u8 {
        match self {
            Self::PacketTooLarge { .. } => reason::PACKET_TOO_LARGE,
            Self::InvalidTopicName(_) => reason::TOPIC_NAME_INVALID,
            Self::EmptyTopicFilter => reason::TOPIC_FILTER_INVALID,
            Self::InvalidProtocolName(_) | Self::UnsupportedProtocolVersion(_) => reason::UNSUPPORTED_PROTOCOL_VERSION,
            Self::InvalidClientId { .. } => reason::CLIENT_IDENTIFIER_NOT_VALID,
            Self::ExpectedConnect(_)
            | Self::DuplicateConnect
            | Self::ZeroPacketId(_)
            | Self::EmptyPayload(_)
            | Self::InvalidRetainHandling
            | Self::InvalidReasonCode { .. }
            | Self::DuplicateProperty { .. }
            | Self::InvalidPropertyValue { .. }
            | Self::AuthDataWithoutMethod
            | Self::WildcardResponseTopic => reason::PROTOCOL_ERROR,
            Self::InvalidVarInt(_)
            | Self::InvalidPacketType(_)
            | Self::InvalidHeaderFlags { .. }
            | Self::InvalidQoS(_)
            | Self::DupWithQoS0
            | Self::Truncated(_)
            | Self::TrailingBytes { .. }
            | Self::InvalidUtf8(_)
            | Self::NullCharacter(_)
            | Self::ConnectReservedFlag
            | Self::WillFlagsWithoutWill
            | Self::PasswordWithoutUsername
            | Self::ReservedBits(_)
            | Self::UnknownProperty { .. }
            | Self::PropertyNotAllowed { .. } => reason::MALFORMED_PACKET,
        }
    }
}

/// Why a packet could not be encoded. These are caller bugs: the codec refuses to emit
/// bytes that a strict peer would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A string or binary field is longer than 65,535 bytes.
    #[error("{field} is {len} bytes, longer than 65535")]
    TooLong {
        /// Field name.
        field: &'static str,
        /// Actual length.
        len: usize,
    },
    /// A string field contains U+0000, which receivers must reject (MQTT-1.5.3-2).
    #[error("{0} contains U+0000 (MQTT-1.5.3-2)")]
    NullCharacter(&'static str),
    /// Remaining length (or property length) exceeds 268,435,455.
    #[error("length {0} exceeds the variable byte integer maximum 268435455")]
    PacketTooLarge(usize),
    /// The packet type does not exist in the requested protocol version.
    #[error("{0} cannot be encoded for MQTT 3.1.1")]
    UnsupportedInVersion(&'static str),
    /// A reason code not listed for this packet type.
    #[error("reason code {code:#04x} is not valid in {packet}")]
    InvalidReasonCode {
        /// Packet type name.
        packet: &'static str,
        /// Offending code.
        code: u8,
    },
    /// A property that is not valid in this packet type.
    #[error("property {id:#04x} is not allowed in {packet}")]
    PropertyNotAllowed {
        /// Packet type name (or "will properties").
        packet: &'static str,
        /// Property identifier.
        id: u8,
    },
    /// A property value that is a protocol error, or a repeated single-use property.
    #[error("property {id:#04x} has invalid value {value} (or is repeated) in {packet}")]
    InvalidPropertyValue {
        /// Packet type name (or "will properties").
        packet: &'static str,
        /// Property identifier.
        id: u8,
        /// Offending value.
        value: u32,
    },
    /// The packet breaks a structural rule of the specification.
    #[error("invalid {packet}: {rule}")]
    InvalidPacket {
        /// Packet type name.
        packet: &'static str,
        /// Rule that was broken.
        rule: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_map_to_mqtt5_values() {
        assert_eq!(DecodeError::DupWithQoS0.reason_code(), 0x81);
        assert_eq!(DecodeError::DuplicateConnect.reason_code(), 0x82);
        let big = DecodeError::PacketTooLarge { size: 10, max: 5 };
        assert_eq!(big.reason_code(), 0x95);
        assert_eq!(DecodeError::InvalidTopicName("x").reason_code(), 0x90);
        assert_eq!(DecodeError::UnsupportedProtocolVersion(3).reason_code(), 0x84);
        let id = DecodeError::InvalidClientId { version: ProtocolVersion::V311, reason: "x" };
        assert_eq!(id.reason_code(), 0x85);
    }

    #[test]
    fn messages_name_the_rule() {
        let msg = DecodeError::ConnectReservedFlag.to_string();
        assert!(msg.contains("MQTT-3.1.2-3"), "{msg}");
    }
}
