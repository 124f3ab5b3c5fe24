//! MQTT 5 properties (§2.2.2): the typed property set, which packets may carry which
//! property, and the value rules the specification makes protocol errors.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::packet::kind;
use super::wire::{self, put_binary, put_string, put_varint, Reader, MAX_VARINT};

/// All MQTT 5 properties of one packet (or of a will message). Empty by default; 3.1.1
/// packets always decode with empty properties and encode without them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// 0x01 Payload Format Indicator (0 = bytes, 1 = UTF-8).
    pub payload_format_indicator: Option<u8>,
    /// 0x02 Message Expiry Interval in seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x03 Content Type.
    pub content_type: Option<String>,
    /// 0x08 Response Topic.
    pub response_topic: Option<String>,
    /// 0x09 Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// 0x0B Subscription Identifier(s); several only in server-to-client PUBLISH.
    pub subscription_identifiers: Vec<u32>,
    /// 0x11 Session Expiry Interval in seconds.
    pub session_expiry_interval: Option<u32>,
    /// 0x12 Assigned Client Identifier.
    pub assigned_client_identifier: Option<String>,
    /// 0x13 Server Keep Alive in seconds.
    pub server_keep_alive: Option<u16>,
    /// 0x15 Authentication Method.
    pub authentication_method: Option<String>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
    /// 0x17 Request Problem Information (0 or 1).
    pub request_problem_information: Option<u8>,
    /// 0x18 Will Delay Interval in seconds.
    pub will_delay_interval: Option<u32>,
    /// 0x19 Request Response Information (0 or 1).
    pub request_response_information: Option<u8>,
    /// 0x1A Response Information.
    pub response_information: Option<String>,
    /// 0x1C Server Reference.
    pub server_reference: Option<String>,
    /// 0x1F Reason String.
    pub reason_string: Option<String>,
    /// 0x21 Receive Maximum (non-zero).
    pub receive_maximum: Option<u16>,
    /// 0x22 Topic Alias Maximum.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23 Topic Alias (non-zero).
    pub topic_alias: Option<u16>,
    /// 0x24 Maximum QoS (0 or 1).
    pub maximum_qos: Option<u8>,
    /// 0x25 Retain Available (0 or 1).
    pub retain_available: Option<u8>,
    /// 0x26 User Properties, in wire order; names may repeat.
    pub user_properties: Vec<(String, String)>,
    /// 0x27 Maximum Packet Size (non-zero).
    pub maximum_packet_size: Option<u32>,
    /// 0x28 Wildcard Subscription Available (0 or 1).
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29 Subscription Identifiers Available (0 or 1).
    pub subscription_identifiers_available: Option<u8>,
    /// 0x2A Shared Subscription Available (0 or 1).
    pub shared_subscription_available: Option<u8>,
}

impl Properties {
    /// True when no property is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

mod id {
    pub(super) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub(super) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub(super) const CONTENT_TYPE: u8 = 0x03;
    pub(super) const RESPONSE_TOPIC: u8 = 0x08;
    pub(super) const CORRELATION_DATA: u8 = 0x09;
    pub(super) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub(super) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub(super) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub(super) const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub(super) const AUTHENTICATION_METHOD: u8 = 0x15;
    pub(super) const AUTHENTICATION_DATA: u8 = 0x16;
    pub(super) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub(super) const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub(super) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub(super) const RESPONSE_INFORMATION: u8 = 0x1A;
    pub(super) const SERVER_REFERENCE: u8 = 0x1C;
    pub(super) const REASON_STRING: u8 = 0x1F;
    pub(super) const RECEIVE_MAXIMUM: u8 = 0x21;
    pub(super) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub(super) const TOPIC_ALIAS: u8 = 0x23;
    pub(super) const MAXIMUM_QOS: u8 = 0x24;
    pub(super) const RETAIN_AVAILABLE: u8 = 0x25;
    pub(super) const USER_PROPERTY: u8 = 0x26;
    pub(super) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub(super) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub(super) const SUBSCRIPTION_IDENTIFIERS_AVAILABLE: u8 = 0x29;
    pub(super) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}
use id::*;

/// Where a property block sits: selects the allowed-property column of §2.2.2.2 and the
/// reason-code set, and names the packet in errors.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ctx {
    bit: u16,
    /// Packet type number the reason code belongs to.
    pub(super) kind: u8,
    /// Name used in error messages.
    pub(super) name: &'static str,
}

const B_CONNECT: u16 = 1 << 0;
const B_CONNACK: u16 = 1 << 1;
const B_PUBLISH: u16 = 1 << 2;
const B_WILL: u16 = 1 << 3;
const B_PUBRESP: u16 = 1 << 4;
const B_SUBSCRIBE: u16 = 1 << 5;
const B_SUBACK: u16 = 1 << 6;
const B_UNSUBSCRIBE: u16 = 1 << 7;
const B_UNSUBACK: u16 = 1 << 8;
const B_DISCONNECT: u16 = 1 << 9;
const B_AUTH: u16 = 1 << 10;

impl Ctx {
    const fn new(bit: u16, kind: u8, name: &'static str) -> Self {
        Self { bit, kind, name }
    }
    pub(super) const CONNECT: Ctx = Ctx::new(B_CONNECT, kind::CONNECT, "CONNECT");
    pub(super) const CONNACK: Ctx = Ctx::new(B_CONNACK, kind::CONNACK, "CONNACK");
    pub(super) const PUBLISH: Ctx = Ctx::new(B_PUBLISH, kind::PUBLISH, "PUBLISH");
    pub(super) const WILL: Ctx = Ctx::new(B_WILL, kind::CONNECT, "will properties");
    pub(super) const PUBACK: Ctx = Ctx::new(B_PUBRESP, kind::PUBACK, "PUBACK");
    pub(super) const PUBREC: Ctx = Ctx::new(B_PUBRESP, kind::PUBREC, "PUBREC");
    pub(super) const PUBREL: Ctx = Ctx::new(B_PUBRESP, kind::PUBREL, "PUBREL");
    pub(super) const PUBCOMP: Ctx = Ctx::new(B_PUBRESP, kind::PUBCOMP, "PUBCOMP");
    pub(super) const SUBSCRIBE: Ctx = Ctx::new(B_SUBSCRIBE, kind::SUBSCRIBE, "SUBSCRIBE");
    pub(super) const SUBACK: Ctx = Ctx::new(B_SUBACK, kind::SUBACK, "SUBACK");
    pub(super) const UNSUBSCRIBE: Ctx = Ctx::new(B_UNSUBSCRIBE, kind::UNSUBSCRIBE, "UNSUBSCRIBE");
    pub(super) const UNSUBACK: Ctx = Ctx::new(B_UNSUBACK, kind::UNSUBACK, "UNSUBACK");
    pub(super) const DISCONNECT: Ctx = Ctx::new(B_DISCONNECT, kind::DISCONNECT, "DISCONNECT");
    pub(super) const AUTH: Ctx = Ctx::new(B_AUTH, kind::AUTH, "AUTH");
}

/// Packets each property may appear in (MQTT 5 §2.2.2.2 table); `None` = undefined id.
fn allowed_in(prop: u8) -> Option<u16> {
    const MESSAGE: u16 = B_PUBLISH | B_WILL;
    const REASON_STRING_PACKETS: u16 = B_CONNACK | B_PUBRESP | B_SUBACK | B_UNSUBACK | B_DISCONNECT | B_AUTH;
    Some(match prop {
        PAYLOAD_FORMAT_INDICATOR | MESSAGE_EXPIRY_INTERVAL | CONTENT_TYPE | RESPONSE_TOPIC | CORRELATION_DATA => {
            MESSAGE
        }
        SUBSCRIPTION_IDENTIFIER => B_PUBLISH | B_SUBSCRIBE,
        SESSION_EXPIRY_INTERVAL => B_CONNECT | B_CONNACK | B_DISCONNECT,
        ASSIGNED_CLIENT_IDENTIFIER
        | SERVER_KEEP_ALIVE
        | RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIERS_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => B_CONNACK,
        AUTHENTICATION_METHOD | AUTHENTICATION_DATA => B_CONNECT | B_CONNACK | B_AUTH,
        REQUEST_PROBLEM_INFORMATION | REQUEST_RESPONSE_INFORMATION => B_CONNECT,
        WILL_DELAY_INTERVAL => B_WILL,
        SERVER_REFERENCE => B_CONNACK | B_DISCONNECT,
        REASON_STRING => REASON_STRING_PACKETS,
        RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | MAXIMUM_PACKET_SIZE => B_CONNECT | B_CONNACK,
        TOPIC_ALIAS => B_PUBLISH,
        USER_PROPERTY => u16::MAX,
        _ => return None,
    })
}

/// Value rules whose violation MQTT 5 calls a Protocol Error (§3.1.2.11, §3.2.2.3,
/// §3.3.2.3, §3.8.2.1).
fn value_ok(prop: u8, value: u32) -> bool {
    match prop {
        PAYLOAD_FORMAT_INDICATOR
        | REQUEST_PROBLEM_INFORMATION
        | REQUEST_RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIERS_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => value <= 1,
        SUBSCRIPTION_IDENTIFIER => (1..=MAX_VARINT).contains(&value),
        RECEIVE_MAXIMUM | TOPIC_ALIAS | MAXIMUM_PACKET_SIZE => value != 0,
        _ => true,
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, prop: u8, ctx: Ctx) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty { packet: ctx.name, id: prop });
    }
    *slot = Some(value);
    Ok(())
}

fn checked(prop: u8, value: u32) -> Result<u32, DecodeError> {
    if value_ok(prop, value) {
        Ok(value)
    } else {
        Err(DecodeError::InvalidPropertyValue { id: prop, value })
    }
}

fn byte(r: &mut Reader, prop: u8) -> Result<u8, DecodeError> {
    let v = r.u8("property value")?;
    checked(prop, v.into())?;
    Ok(v)
}

fn two(r: &mut Reader, prop: u8) -> Result<u16, DecodeError> {
    let v = r.u16("property value")?;
    checked(prop, v.into())?;
    Ok(v)
}

fn four(r: &mut Reader, prop: u8) -> Result<u32, DecodeError> {
    let v = r.u32("property value")?;
    checked(prop, v)
}

fn string(r: &mut Reader, _prop: u8) -> Result<String, DecodeError> {
    r.string("property value")
}

fn binary(r: &mut Reader, _prop: u8) -> Result<Bytes, DecodeError> {
    r.binary("property value")
}

impl Properties {
    /// Reads a property length and the block it announces.
    pub(super) fn decode(r: &mut Reader, ctx: Ctx) -> Result<Self, DecodeError> {
        let len = r.varint("property length")?;
        let mut r = Reader::new(r.bytes(len as usize, "properties")?);
        let mut p = Self::default();
        while !r.is_empty() {
            let raw = r.varint("property identifier")?;
            let unknown = DecodeError::UnknownProperty { packet: ctx.name, id: raw };
            let prop = u8::try_from(raw).map_err(|_| unknown.clone())?;
            let mask = allowed_in(prop).ok_or(unknown)?;
            if mask & ctx.bit == 0 {
                return Err(DecodeError::PropertyNotAllowed { packet: ctx.name, id: prop });
            }
            macro_rules! once {
                ($field:ident, $read:ident) => {
                    set_once(&mut p.$field, $read(&mut r, prop)?, prop, ctx)?
                };
            }
            match prop {
                PAYLOAD_FORMAT_INDICATOR => once!(payload_format_indicator, byte),
                MESSAGE_EXPIRY_INTERVAL => once!(message_expiry_interval, four),
                CONTENT_TYPE => once!(content_type, string),
                RESPONSE_TOPIC => {
                    let topic = r.string("response topic")?;
                    // A topic name, so no wildcards (MQTT-3.3.2-14; a Will's is the PUBLISH's to be).
                    if topic.contains(['+', '#']) {
                        return Err(DecodeError::WildcardResponseTopic);
                    }
                    set_once(&mut p.response_topic, topic, prop, ctx)?
                }
                CORRELATION_DATA => once!(correlation_data, binary),
                SUBSCRIPTION_IDENTIFIER => {
                    let v = checked(prop, r.varint("subscription identifier")?)?;
                    // Only a forwarded PUBLISH can match several subscriptions (§3.3.2.3.8).
                    if ctx.kind != kind::PUBLISH && !p.subscription_identifiers.is_empty() {
                        return Err(DecodeError::DuplicateProperty { packet: ctx.name, id: prop });
                    }
                    p.subscription_identifiers.push(v);
                }
                SESSION_EXPIRY_INTERVAL => once!(session_expiry_interval, four),
                ASSIGNED_CLIENT_IDENTIFIER => once!(assigned_client_identifier, string),
                SERVER_KEEP_ALIVE => once!(server_keep_alive, two),
                AUTHENTICATION_METHOD => once!(authentication_method, string),
                AUTHENTICATION_DATA => once!(authentication_data, binary),
                REQUEST_PROBLEM_INFORMATION => once!(request_problem_information, byte),
                WILL_DELAY_INTERVAL => once!(will_delay_interval, four),
                REQUEST_RESPONSE_INFORMATION => once!(request_response_information, byte),
                RESPONSE_INFORMATION => once!(response_information, string),
                SERVER_REFERENCE => once!(server_reference, string),
                REASON_STRING => once!(reason_string, string),
                RECEIVE_MAXIMUM => once!(receive_maximum, two),
                TOPIC_ALIAS_MAXIMUM => once!(topic_alias_maximum, two),
                TOPIC_ALIAS => once!(topic_alias, two),
                MAXIMUM_QOS => once!(maximum_qos, byte),
                RETAIN_AVAILABLE => once!(retain_available, byte),
                USER_PROPERTY => {
                    let name = r.string("user property name")?;
                    let value = r.string("user property value")?;
                    p.user_properties.push((name, value));
                }
                MAXIMUM_PACKET_SIZE => once!(maximum_packet_size, four),
                WILDCARD_SUBSCRIPTION_AVAILABLE => once!(wildcard_subscription_available, byte),
                SUBSCRIPTION_IDENTIFIERS_AVAILABLE => {
                    once!(subscription_identifiers_available, byte)
                }
                SHARED_SUBSCRIPTION_AVAILABLE => once!(shared_subscription_available, byte),
                _ => return Err(DecodeError::UnknownProperty { packet: ctx.name, id: raw }),
            }
        }
        if p.authentication_data.is_some() && p.authentication_method.is_none() {
            return Err(DecodeError::AuthDataWithoutMethod);
        }
        Ok(p)
    }

    /// Writes the property length followed by the properties, in identifier order.
    pub(super) fn encode(&self, ctx: Ctx, buf: &mut BytesMut) -> Result<(), EncodeError> {
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(EncodeError::InvalidPacket {
                packet: ctx.name,
                rule: "authentication data without authentication method",
            });
        }
        let mut w = Writer { buf: BytesMut::new(), ctx };
        if let Some(v) = self.payload_format_indicator {
            w.start(PAYLOAD_FORMAT_INDICATOR, v.into())?.put_u8(v);
        }
        if let Some(v) = self.message_expiry_interval {
            w.start(MESSAGE_EXPIRY_INTERVAL, v)?.put_u32(v);
        }
        w.string(CONTENT_TYPE, &self.content_type)?;
        w.string(RESPONSE_TOPIC, &self.response_topic)?;
        w.binary(CORRELATION_DATA, &self.correlation_data)?;
        if ctx.kind != kind::PUBLISH && self.subscription_identifiers.len() > 1 {
            return Err(EncodeError::InvalidPropertyValue {
                packet: ctx.name,
                id: SUBSCRIPTION_IDENTIFIER,
                value: self.subscription_identifiers[1],
            });
        }
        for &v in &self.subscription_identifiers {
            put_varint(w.start(SUBSCRIPTION_IDENTIFIER, v)?, v);
        }
        if let Some(v) = self.session_expiry_interval {
            w.start(SESSION_EXPIRY_INTERVAL, v)?.put_u32(v);
        }
        w.string(ASSIGNED_CLIENT_IDENTIFIER, &self.assigned_client_identifier)?;
        if let Some(v) = self.server_keep_alive {
            w.start(SERVER_KEEP_ALIVE, v.into())?.put_u16(v);
        }
        w.string(AUTHENTICATION_METHOD, &self.authentication_method)?;
        w.binary(AUTHENTICATION_DATA, &self.authentication_data)?;
        w.byte(REQUEST_PROBLEM_INFORMATION, self.request_problem_information)?;
        if let Some(v) = self.will_delay_interval {
            w.start(WILL_DELAY_INTERVAL, v)?.put_u32(v);
        }
        w.byte(REQUEST_RESPONSE_INFORMATION, self.request_response_information)?;
        w.string(RESPONSE_INFORMATION, &self.response_information)?;
        w.string(SERVER_REFERENCE, &self.server_reference)?;
        w.string(REASON_STRING, &self.reason_string)?;
        w.two(RECEIVE_MAXIMUM, self.receive_maximum)?;
        w.two(TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum)?;
        w.two(TOPIC_ALIAS, self.topic_alias)?;
        w.byte(MAXIMUM_QOS, self.maximum_qos)?;
        w.byte(RETAIN_AVAILABLE, self.retain_available)?;
        for (name, value) in &self.user_properties {
            let b = w.start(USER_PROPERTY, 0)?;
            put_string(b, name, "user property name")?;
            put_string(b, value, "user property value")?;
        }
        if let Some(v) = self.maximum_packet_size {
            w.start(MAXIMUM_PACKET_SIZE, v)?.put_u32(v);
        }
        w.byte(WILDCARD_SUBSCRIPTION_AVAILABLE, self.wildcard_subscription_available)?;
        w.byte(SUBSCRIPTION_IDENTIFIERS_AVAILABLE, self.subscription_identifiers_available)?;
        w.byte(SHARED_SUBSCRIPTION_AVAILABLE, self.shared_subscription_available)?;
        put_varint(buf, wire::varint_value(w.buf.len())?);
        buf.put_slice(&w.buf);
        Ok(())
    }
}

/// Accumulates encoded properties, checking each against the packet it is written to.
struct Writer {
    buf: BytesMut,
    ctx: Ctx,
}

impl Writer {
    /// Validates property `prop` with `value` and writes its identifier.
    fn start(&mut self, prop: u8, value: u32) -> Result<&mut BytesMut, EncodeError> {
        let packet = self.ctx.name;
        if allowed_in(prop).unwrap_or(0) & self.ctx.bit == 0 {
            return Err(EncodeError::PropertyNotAllowed { packet, id: prop });
        }
        if !value_ok(prop, value) {
            return Err(EncodeError::InvalidPropertyValue { packet, id: prop, value });
        }
        self.buf.put_u8(prop);
        Ok(&mut self.buf)
    }

    fn byte(&mut self, prop: u8, v: Option<u8>) -> Result<(), EncodeError> {
        if let Some(v) = v {
            self.start(prop, v.into())?.put_u8(v);
        }
        Ok(())
    }

    fn two(&mut self, prop: u8, v: Option<u16>) -> Result<(), EncodeError> {
        if let Some(v) = v {
            self.start(prop, v.into())?.put_u16(v);
        }
        Ok(())
    }

    fn string(&mut self, prop: u8, v: &Option<String>) -> Result<(), EncodeError> {
        if let Some(v) = v {
            put_string(self.start(prop, 0)?, v, "string property")?;
        }
        Ok(())
    }

    fn binary(&mut self, prop: u8, v: &Option<Bytes>) -> Result<(), EncodeError> {
        if let Some(v) = v {
            put_binary(self.start(prop, 0)?, v, "binary property")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8], ctx: Ctx) -> Result<Properties, DecodeError> {
        let mut r = Reader::new(Bytes::copy_from_slice(bytes));
        let p = Properties::decode(&mut r, ctx)?;
        r.finish("test")?;
        Ok(p)
    }

    fn code(bytes: &[u8], ctx: Ctx) -> u8 {
        decode(bytes, ctx).unwrap_err().reason_code()
    }

    #[test]
    fn every_property_round_trips_in_its_packets() {
        let cases = [
            (Ctx::PUBLISH, super::super::samples::publish_props()),
            (Ctx::WILL, super::super::samples::will_props()),
            (Ctx::CONNECT, super::super::samples::connect_props()),
            (Ctx::CONNACK, super::super::samples::connack_props()),
            (Ctx::DISCONNECT, super::super::samples::disconnect_props()),
            (Ctx::AUTH, super::super::samples::auth_props()),
        ];
        for (ctx, props) in cases {
            let mut b = BytesMut::new();
            props.encode(ctx, &mut b).unwrap();
            assert_eq!(decode(&b, ctx).unwrap(), props, "{}", ctx.name);
        }
    }

    #[test]
    fn property_not_allowed_in_packet_is_malformed_2_2_2_2() {
        // Topic Alias (0x23) inside SUBSCRIBE.
        assert_eq!(code(&[3, 0x23, 0, 1], Ctx::SUBSCRIBE), 0x81);
        // Will Delay Interval in CONNECT itself rather than in the will properties.
        assert_eq!(code(&[5, 0x18, 0, 0, 0, 1], Ctx::CONNECT), 0x81);
        let mut b = BytesMut::new();
        let p = Properties { topic_alias: Some(1), ..Properties::default() };
        assert!(matches!(p.encode(Ctx::CONNACK, &mut b), Err(EncodeError::PropertyNotAllowed { .. })));
    }

    #[test]
    fn unknown_property_is_malformed_2_2_2_2() {
        assert_eq!(code(&[2, 0x05, 0], Ctx::PUBLISH), 0x81);
        // Identifier as a two-byte variable byte integer (0x80 0x01 = 128).
        assert_eq!(code(&[3, 0x80, 0x01, 0], Ctx::PUBLISH), 0x81);
    }

    #[test]
    fn duplicate_single_property_is_protocol_error_2_2_2_2() {
        assert_eq!(code(&[6, 0x23, 0, 1, 0x23, 0, 2], Ctx::PUBLISH), 0x82);
        // Subscription Identifier twice in SUBSCRIBE.
        assert_eq!(code(&[4, 0x0B, 1, 0x0B, 2], Ctx::SUBSCRIBE), 0x82);
        // ...but several in PUBLISH, and user properties anywhere, are fine.
        let p = decode(&[4, 0x0B, 1, 0x0B, 2], Ctx::PUBLISH).unwrap();
        assert_eq!(p.subscription_identifiers, vec![1, 2]);
        let p = decode(&[11, 0x26, 0, 1, b'k', 0, 0, 0x26, 0, 0, 0, 0], Ctx::PUBACK).unwrap();
        assert_eq!(p.user_properties.len(), 2);
    }

    #[test]
    fn zero_and_out_of_range_values_are_protocol_errors() {
        assert_eq!(code(&[2, 0x0B, 0], Ctx::SUBSCRIBE), 0x82, "sub id 0, §3.8.2.1.2");
        assert_eq!(code(&[3, 0x21, 0, 0], Ctx::CONNECT), 0x82, "receive max 0, §3.1.2.11.3");
        assert_eq!(code(&[5, 0x27, 0, 0, 0, 0], Ctx::CONNECT), 0x82, "max packet 0, §3.1.2.11.4");
        assert_eq!(code(&[3, 0x23, 0, 0], Ctx::PUBLISH), 0x82, "topic alias 0, MQTT-3.3.2-8");
        assert_eq!(code(&[2, 0x01, 2], Ctx::PUBLISH), 0x82, "payload format 2, §3.3.2.3.2");
        assert_eq!(code(&[2, 0x17, 2], Ctx::CONNECT), 0x82, "request problem 2, §3.1.2.11.7");
        assert_eq!(code(&[2, 0x19, 2], Ctx::CONNECT), 0x82, "request response 2, §3.1.2.11.6");
        assert_eq!(code(&[2, 0x24, 2], Ctx::CONNACK), 0x82, "maximum QoS 2, §3.2.2.3.4");
        let mut b = BytesMut::new();
        let p = Properties { receive_maximum: Some(0), ..Properties::default() };
        assert!(matches!(p.encode(Ctx::CONNECT, &mut b), Err(EncodeError::InvalidPropertyValue { .. })));
    }

    #[test]
    fn subscription_identifier_varint_limits() {
        let max = decode(&[5, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F], Ctx::SUBSCRIBE).unwrap();
        assert_eq!(max.subscription_identifiers, vec![MAX_VARINT]);
        assert_eq!(code(&[6, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], Ctx::SUBSCRIBE), 0x81);
        let mut b = BytesMut::new();
        let p = Properties { subscription_identifiers: vec![MAX_VARINT + 1], ..Properties::default() };
        assert!(p.encode(Ctx::PUBLISH, &mut b).is_err());
    }

    #[test]
    fn property_length_beyond_packet_is_malformed() {
        assert_eq!(decode(&[9, 0x23, 0, 1], Ctx::PUBLISH), Err(DecodeError::Truncated("properties")));
        // Value cut off by the declared property length.
        assert_eq!(code(&[2, 0x23, 0, 1], Ctx::PUBLISH), 0x81);
    }

    #[test]
    fn response_topic_with_wildcards_is_a_protocol_error_3_3_2_14() {
        assert_eq!(code(&[6, 0x08, 0, 3, b'a', b'/', b'#'], Ctx::PUBLISH), 0x82);
        assert_eq!(code(&[6, 0x08, 0, 3, b'+', b'/', b'a'], Ctx::WILL), 0x82);
        let p = decode(&[6, 0x08, 0, 3, b'a', b'/', b'b'], Ctx::PUBLISH).unwrap();
        assert_eq!(p.response_topic.as_deref(), Some("a/b"));
    }

    #[test]
    fn auth_data_requires_method_3_1_2_11_10() {
        assert_eq!(code(&[4, 0x16, 0, 1, 9], Ctx::CONNECT), 0x82);
    }
}
