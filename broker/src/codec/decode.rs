//! Packet decoding: fixed header framing plus one parser per packet type.

use bytes::{Buf, BytesMut};

use super::error::DecodeError;
use super::packet::{
    kind, kind_name, Auth, ConnAck, Connect, Disconnect, LastWill, Packet, ProtocolVersion, PubResp, Publish, QoS,
    SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use super::properties::{Ctx, Properties};
use super::reason;
use super::wire::{parse_varint, Reader};

use ProtocolVersion::{V311, V5};

/// Try to decode one packet from the front of `buf`.
///
/// `Ok(None)` means more bytes are needed; nothing is consumed. On `Ok(Some)` the packet's
/// bytes are consumed. `version` is `None` until CONNECT has been seen, and then only
/// CONNECT is accepted; once it is `Some`, a further CONNECT is a protocol error.
/// `max_packet_size` bounds the whole packet (fixed header included) and is enforced as
/// soon as the fixed header is complete, before the body arrives. After an error the
/// connection must be closed: the buffer may or may not still hold the offending packet.
pub fn decode(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (packet_kind, flags) = (first >> 4, first & 0x0F);
    check_fixed_header(packet_kind, flags, version)?;
    let Some((remaining, len_bytes)) = parse_varint(&buf[1..], "remaining length")? else {
        return Ok(None);
    };
    let size = 1 + len_bytes as u64 + u64::from(remaining);
    if size > u64::from(max_packet_size) {
        return Err(DecodeError::PacketTooLarge { size, max: max_packet_size });
    }
    let too_large = DecodeError::PacketTooLarge { size, max: max_packet_size };
    let size = usize::try_from(size).map_err(|_| too_large)?;
    if buf.len() < size {
        return Ok(None);
    }
    let mut frame = buf.split_to(size).freeze();
    frame.advance(1 + len_bytes);
    let r = Reader::new(frame);
    let packet = match version {
        None => Packet::Connect(connect(r)?),
        Some(v) => body(packet_kind, flags, v, r)?,
    };
    Ok(Some(packet))
}

/// Checks everything the first byte alone can tell, so junk is rejected before waiting
/// for a body that may never come.
fn check_fixed_header(packet_kind: u8, flags: u8, version: Option<ProtocolVersion>) -> Result<(), DecodeError> {
    let name = kind_name(packet_kind).ok_or(DecodeError::InvalidPacketType(packet_kind))?;
    match version {
        None if packet_kind != kind::CONNECT => return Err(DecodeError::ExpectedConnect(name)),
        Some(_) if packet_kind == kind::CONNECT => return Err(DecodeError::DuplicateConnect),
        Some(V311) if packet_kind == kind::AUTH => return Err(DecodeError::InvalidPacketType(packet_kind)),
        _ => {}
    }
    if packet_kind == kind::PUBLISH {
        let qos = QoS::try_from((flags >> 1) & 0b11)?;
        if qos == QoS::AtMostOnce && flags & 0b1000 != 0 {
            return Err(DecodeError::DupWithQoS0);
        }
        return Ok(());
    }
    let expected = match packet_kind {
        kind::PUBREL | kind::SUBSCRIBE | kind::UNSUBSCRIBE => 0b0010,
        _ => 0,
    };
    if flags != expected {
        return Err(DecodeError::InvalidHeaderFlags { packet: name, flags });
    }
    Ok(())
}

fn body(packet_kind: u8, flags: u8, v: ProtocolVersion, mut r: Reader) -> Result<Packet, DecodeError> {
    Ok(match packet_kind {
        kind::CONNACK => Packet::ConnAck(connack(r, v)?),
        kind::PUBLISH => Packet::Publish(publish(r, flags, v)?),
        kind::PUBACK => Packet::PubAck(pub_resp(r, v, Ctx::PUBACK)?),
        kind::PUBREC => Packet::PubRec(pub_resp(r, v, Ctx::PUBREC)?),
        kind::PUBREL => Packet::PubRel(pub_resp(r, v, Ctx::PUBREL)?),
        kind::PUBCOMP => Packet::PubComp(pub_resp(r, v, Ctx::PUBCOMP)?),
        kind::SUBSCRIBE => Packet::Subscribe(subscribe(r, v)?),
        kind::SUBACK => Packet::SubAck(suback(r, v)?),
        kind::UNSUBSCRIBE => Packet::Unsubscribe(unsubscribe(r, v)?),
        kind::UNSUBACK => Packet::UnsubAck(unsuback(r, v)?),
        kind::PINGREQ => {
            r.finish("PINGREQ")?;
            Packet::PingReq
        }
        kind::PINGRESP => {
            r.finish("PINGRESP")?;
            Packet::PingResp
        }
        kind::DISCONNECT => {
            let (reason, properties) = reason_tail(&mut r, v, Ctx::DISCONNECT)?;
            r.finish("DISCONNECT")?;
            Packet::Disconnect(Disconnect { reason, properties })
        }
        kind::AUTH => {
            let (reason, properties) = reason_tail(&mut r, v, Ctx::AUTH)?;
            r.finish("AUTH")?;
            Packet::Auth(Auth { reason, properties })
        }
        // CONNECT never gets here (check_fixed_header), type 0 neither.
        kind::CONNECT => return Err(DecodeError::DuplicateConnect),
        other => return Err(DecodeError::InvalidPacketType(other)),
    })
}

fn read_props(r: &mut Reader, v: ProtocolVersion, ctx: Ctx) -> Result<Properties, DecodeError> {
    match v {
        V311 => Ok(Properties::default()),
        V5 => Properties::decode(r, ctx),
    }
}

fn packet_id(r: &mut Reader, packet: &'static str) -> Result<u16, DecodeError> {
    match r.u16("packet identifier")? {
        0 => Err(DecodeError::ZeroPacketId(packet)),
        id => Ok(id),
    }
}

fn check_reason(ctx: Ctx, code: u8) -> Result<u8, DecodeError> {
    if reason::valid_for(ctx.kind, code) {
        Ok(code)
    } else {
        Err(DecodeError::InvalidReasonCode { packet: ctx.name, code })
    }
}

/// Topic names (PUBLISH, will) must be non-empty and wildcard-free; an empty name is only
/// legal when an MQTT 5 Topic Alias stands in for it.
pub(super) fn topic_name_rule(topic: &str, alias: bool) -> Option<&'static str> {
    if topic.is_empty() && !alias {
        Some("empty topic name without topic alias (MQTT-4.7.3-1)")
    } else if topic.contains(['+', '#']) {
        Some("wildcard character in topic name (MQTT-3.3.2-2)")
    } else {
        None
    }
}

/// Optional reason code and properties at the end of PUBACK-like, DISCONNECT and AUTH
/// packets: MQTT 5 lets the sender stop early when they would be 0 / empty.
fn reason_tail(r: &mut Reader, v: ProtocolVersion, ctx: Ctx) -> Result<(u8, Properties), DecodeError> {
    if v == V311 || r.is_empty() {
        return Ok((reason::SUCCESS, Properties::default()));
    }
    let code = check_reason(ctx, r.u8("reason code")?)?;
    if r.is_empty() {
        return Ok((code, Properties::default()));
    }
    Ok((code, Properties::decode(r, ctx)?))
}

fn connect(mut r: Reader) -> Result<Connect, DecodeError> {
    let name = r.string("protocol name")?;
    let level = r.u8("protocol level")?;
    let protocol = match (name.as_str(), level) {
        ("MQTT", 4) => V311,
        ("MQTT", 5) => V5,
        ("MQTT" | "MQIsdp", _) => return Err(DecodeError::UnsupportedProtocolVersion(level)),
        _ => return Err(DecodeError::InvalidProtocolName(name)),
    };
    let flags = r.u8("connect flags")?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let clean_start = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0x20 != 0;
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(DecodeError::WillFlagsWithoutWill);
    }
    let will_qos = QoS::try_from(will_qos)?;
    if protocol == V311 && has_password && !has_username {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16("keep alive")?;
    let properties = read_props(&mut r, protocol, Ctx::CONNECT)?;
    let client_id = r.string("client identifier")?;
    if protocol == V311 && client_id.is_empty() && !clean_start {
        return Err(DecodeError::InvalidClientId {
            version: protocol,
            reason: "empty client identifier requires clean session (MQTT-3.1.3-8)",
        });
    }
    let will = if will_flag {
        let properties = read_props(&mut r, protocol, Ctx::WILL)?;
        let topic = r.string("will topic")?;
        if let Some(rule) = topic_name_rule(&topic, false) {
            return Err(DecodeError::InvalidTopicName(rule));
        }
        let payload = r.binary("will payload")?;
        Some(LastWill { topic, payload, qos: will_qos, retain: will_retain, properties })
    } else {
        None
    };
    let username = if has_username { Some(r.string("user name")?) } else { None };
    let password = if has_password { Some(r.binary("password")?) } else { None };
    r.finish("CONNECT")?;
    Ok(Connect { protocol, clean_start, keep_alive, client_id, will, username, password, properties })
}

fn connack(mut r: Reader, v: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let flags = r.u8("connect acknowledge flags")?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::ReservedBits("CONNACK acknowledge flags (MQTT-3.2.2-1)"));
    }
    let code = r.u8("connect reason code")?;
    let reason = match v {
        V311 => reason::from_v311_connack(code).ok_or(DecodeError::InvalidReasonCode { packet: "CONNACK", code })?,
        V5 => check_reason(Ctx::CONNACK, code)?,
    };
    let properties = read_props(&mut r, v, Ctx::CONNACK)?;
    r.finish("CONNACK")?;
    Ok(ConnAck { session_present: flags & 1 != 0, reason, properties })
}

fn publish(mut r: Reader, flags: u8, v: ProtocolVersion) -> Result<Publish, DecodeError> {
    let qos = QoS::try_from((flags >> 1) & 0b11)?;
    let topic = r.string("topic name")?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        _ => Some(packet_id(&mut r, "PUBLISH")?),
    };
    let properties = read_props(&mut r, v, Ctx::PUBLISH)?;
    if let Some(rule) = topic_name_rule(&topic, properties.topic_alias.is_some()) {
        return Err(DecodeError::InvalidTopicName(rule));
    }
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 1 != 0,
        topic,
        packet_id,
        properties,
        payload: r.rest(),
    })
}

fn pub_resp(mut r: Reader, v: ProtocolVersion, ctx: Ctx) -> Result<PubResp, DecodeError> {
    let packet_id = packet_id(&mut r, ctx.name)?;
    let (reason, properties) = reason_tail(&mut r, v, ctx)?;
    r.finish(ctx.name)?;
    Ok(PubResp { packet_id, reason, properties })
}

impl SubscriptionOptions {
    fn from_byte(b: u8, v: ProtocolVersion) -> Result<Self, DecodeError> {
        // 3.1.1 only defines the QoS bits; MQTT 5 adds four option bits below bit 6.
        let reserved = if v == V311 { 0xFC } else { 0xC0 };
        if b & reserved != 0 {
            return Err(DecodeError::ReservedBits("subscription options (MQTT-3.8.3-5)"));
        }
        let retain_handling = (b >> 4) & 0b11;
        // MQTT 5 §3.8.3.1 classifies Retain Handling 3 as a protocol error, not malformed.
        if retain_handling == 3 {
            return Err(DecodeError::InvalidRetainHandling);
        }
        Ok(Self {
            qos: QoS::try_from(b & 0b11)?,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling,
        })
    }
}

fn topic_filter(r: &mut Reader) -> Result<String, DecodeError> {
    let filter = r.string("topic filter")?;
    if filter.is_empty() {
        return Err(DecodeError::EmptyTopicFilter);
    }
    Ok(filter)
}

fn subscribe(mut r: Reader, v: ProtocolVersion) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(&mut r, "SUBSCRIBE")?;
    let properties = read_props(&mut r, v, Ctx::SUBSCRIBE)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = topic_filter(&mut r)?;
        let options = SubscriptionOptions::from_byte(r.u8("subscription options")?, v)?;
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptyPayload("SUBSCRIBE"));
    }
    Ok(Subscribe { packet_id, properties, filters })
}

fn suback(mut r: Reader, v: ProtocolVersion) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(&mut r, "SUBACK")?;
    let properties = read_props(&mut r, v, Ctx::SUBACK)?;
    let reasons = r.rest().to_vec();
    if reasons.is_empty() {
        return Err(DecodeError::EmptyPayload("SUBACK"));
    }
    for &code in &reasons {
        let ok = match v {
            V311 => matches!(code, 0 | 1 | 2 | 0x80),
            V5 => reason::valid_for(kind::SUBACK, code),
        };
        if !ok {
            return Err(DecodeError::InvalidReasonCode { packet: "SUBACK", code });
        }
    }
    Ok(SubAck { packet_id, properties, reasons })
}

fn unsubscribe(mut r: Reader, v: ProtocolVersion) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(&mut r, "UNSUBSCRIBE")?;
    let properties = read_props(&mut r, v, Ctx::UNSUBSCRIBE)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(topic_filter(&mut r)?);
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptyPayload("UNSUBSCRIBE"));
    }
    Ok(Unsubscribe { packet_id, properties, filters })
}

fn unsuback(mut r: Reader, v: ProtocolVersion) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(&mut r, "UNSUBACK")?;
    if v == V311 {
        r.finish("UNSUBACK")?;
        return Ok(UnsubAck { packet_id, properties: Properties::default(), reasons: Vec::new() });
    }
    let properties = Properties::decode(&mut r, Ctx::UNSUBACK)?;
    let reasons = r.rest().to_vec();
    if reasons.is_empty() {
        return Err(DecodeError::EmptyPayload("UNSUBACK"));
    }
    for &code in &reasons {
        check_reason(Ctx::UNSUBACK, code)?;
    }
    Ok(UnsubAck { packet_id, properties, reasons })
}

#[cfg(test)]
mod tests {
    use super::super::encode::encode;
    use super::super::samples;
    use super::*;

    const MAX: u32 = 1 << 20;

    /// Builds a packet from its first byte and body, computing the remaining length.
    fn frame(first: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        let mut len = BytesMut::new();
        super::super::wire::put_varint(&mut len, body.len() as u32);
        out.extend_from_slice(&len);
        out.extend_from_slice(body);
        out
    }

    /// CONNECT body with the given protocol name, level and flags, then `rest`.
    fn connect_body(name: &str, level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
        let mut b = vec![0, name.len() as u8];
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(&[level, flags, 0, 60]);
        b.extend_from_slice(rest);
        b
    }

    fn dec(bytes: &[u8], v: Option<ProtocolVersion>) -> Result<Option<Packet>, DecodeError> {
        decode(&mut BytesMut::from(bytes), v, MAX)
    }

    fn code(bytes: &[u8], v: Option<ProtocolVersion>) -> u8 {
        match dec(bytes, v) {
            Err(e) => e.reason_code(),
            other => panic!("expected error, got {other:?}"),
        }
    }

    /// `code version "rule" bytes;` rows; a macro keeps each case on one line.
    macro_rules! table {
        ($($code:literal $v:ident $rule:literal $bytes:expr;)*) => {
            vec![$(($rule, $bytes, $v, $code)),*]
        };
    }

    #[test]
    fn malformed_inputs_table() {
        let (s3, s5, no) = (Some(V311), Some(V5), None);
        let cid: &[u8] = &[0, 1, b'c'];
        let c4 = |flags, rest: &[u8]| frame(0x10, &connect_body("MQTT", 4, flags, rest));
        let c5 = |flags, rest: &[u8]| frame(0x10, &connect_body("MQTT", 5, flags, rest));
        let table: Vec<(&str, Vec<u8>, Option<ProtocolVersion>, u8)> = table! {
            0x81 s3 "MQTT-2.2.3 remaining length > 4 bytes" vec![0xC0, 0x80, 0x80, 0x80, 0x80, 0x01];
            0x81 s5 "MQTT-1.5.5-1 non-minimal remaining length" vec![0xC0, 0x80, 0x00];
            0x81 s5 "MQTT-2.2.1 packet type 0 is reserved" vec![0x00, 0x00];
            0x81 s3 "MQTT-2.2.1 AUTH is not a 3.1.1 packet" vec![0xF0, 0x00];
            0x81 s3 "MQTT-2.2.2-2 PINGREQ flags" vec![0xC1, 0x00];
            0x81 s3 "MQTT-3.6.1-1 PUBREL flags must be 0010" vec![0x60, 0x02, 0, 1];
            0x81 s3 "MQTT-3.8.1-1 SUBSCRIBE flags must be 0010" frame(0x80, &[0, 1, 0, 1, b'a', 0]);
            0x81 s3 "MQTT-3.10.1-1 UNSUBSCRIBE flags" frame(0xA0, &[0, 1, 0, 1, b'a']);
            0x81 s5 "MQTT-2.2.2-2 DISCONNECT flags" vec![0xE2, 0x00];
            0x81 s3 "MQTT-3.3.1-4 PUBLISH QoS 3" frame(0x36, &[0, 1, b'a', 0, 1]);
            0x81 s3 "MQTT-3.3.1-2 DUP with QoS 0" frame(0x38, &[0, 1, b'a']);
            0x81 s3 "MQTT-3.12.4 PINGREQ with a trailing byte" vec![0xC0, 0x01, 0x00];
            0x81 s5 "PUBACK with garbage after properties" vec![0x40, 0x05, 0, 1, 0, 0, 0xFF];
            0x81 s3 "3.1.1 PUBACK with a reason byte" vec![0x40, 0x03, 0, 1, 0];
            0x81 s3 "3.1.1 DISCONNECT with a payload" vec![0xE0, 0x01, 0];
            0x81 s5 "PUBACK truncated packet id" vec![0x40, 0x01, 0];
            0x82 no "MQTT-3.1.0-1 first packet not CONNECT" vec![0xC0, 0x00];
            0x82 s3 "MQTT-3.1.0-2 second CONNECT" c4(2, cid);
            0x84 no "MQTT-3.1.2-1 bad protocol name" frame(0x10, &connect_body("MQTX", 4, 2, cid));
            0x84 no "MQTT-3.1.2-2 MQIsdp level 3" frame(0x10, &connect_body("MQIsdp", 3, 2, cid));
            0x84 no "MQTT-3.1.2-2 level 6" frame(0x10, &connect_body("MQTT", 6, 2, cid));
            0x81 no "MQTT-3.1.2-3 reserved connect flag" c4(3, cid);
            0x81 no "MQTT-3.1.2-13 will QoS without will flag" c4(0x0A, cid);
            0x81 no "MQTT-3.1.2-15 will retain without will flag" c5(0x22, &[0, 0, 1, b'c']);
            0x81 no "MQTT-3.1.2-14 will QoS 3" c4(0x1E, &[0, 1, b'c', 0, 1, b't', 0, 0]);
            0x81 no "MQTT-3.1.2-22 password without user name" c4(0x42, &[0, 1, b'c', 0, 0]);
            0x85 no "MQTT-3.1.3-8 empty client id, no clean session" c4(0, &[0, 0]);
            0x81 no "MQTT-3.1.3-4 client id not UTF-8" c4(2, &[0, 1, 0xFF]);
            0x81 no "MQTT-1.5.3-2 client id with U+0000" c4(2, &[0, 1, 0]);
            0x81 no "CONNECT with trailing bytes" c4(2, &[0, 1, b'c', 9]);
            0x81 no "CONNECT truncated keep alive" frame(0x10, &[0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0]);
            0x90 no "MQTT-3.1.3-11 will topic with wildcard" c4(6, &[0, 1, b'c', 0, 1, b'#', 0, 0]);
            0x82 no "3.1.2.11.10 auth data without method" c5(2, &[4, 0x16, 0, 1, 7, 0, 0]);
            0x90 s3 "MQTT-3.3.2-2 topic with +" frame(0x30, &[0, 3, b'a', b'/', b'+']);
            0x90 s5 "MQTT-3.3.2-2 topic with #" frame(0x30, &[0, 1, b'#', 0]);
            0x90 s3 "MQTT-4.7.3-1 empty topic in 3.1.1" frame(0x30, &[0, 0]);
            0x90 s5 "MQTT-3.3.2-1 empty topic without alias" frame(0x30, &[0, 0, 0]);
            0x82 s3 "MQTT-2.3.1-1 PUBLISH QoS 1 packet id 0" frame(0x32, &[0, 1, b'a', 0, 0]);
            0x82 s3 "MQTT-3.8.3-3 SUBSCRIBE without filters" frame(0x82, &[0, 1]);
            0x82 s5 "MQTT-3.8.3-3 v5 SUBSCRIBE without filters" frame(0x82, &[0, 1, 0]);
            0x82 s3 "MQTT-2.3.1-1 SUBSCRIBE packet id 0" frame(0x82, &[0, 0, 0, 1, b'a', 0]);
            0x81 s3 "MQTT-3.8.3-4 3.1.1 options upper bits" frame(0x82, &[0, 1, 0, 1, b'a', 4]);
            0x81 s5 "MQTT-3.8.3-5 v5 options reserved bits" frame(0x82, &[0, 1, 0, 0, 1, b'a', 0x40]);
            0x82 s5 "3.8.3.1 retain handling 3" frame(0x82, &[0, 1, 0, 0, 1, b'a', 0x30]);
            0x81 s3 "MQTT-3.8.3-4 subscription QoS 3" frame(0x82, &[0, 1, 0, 1, b'a', 3]);
            0x8F s3 "MQTT-4.7.3-1 empty topic filter" frame(0x82, &[0, 1, 0, 0, 0]);
            0x81 s3 "SUBSCRIBE filter without options" frame(0x82, &[0, 1, 0, 1, b'a']);
            0x82 s3 "MQTT-3.10.3-2 UNSUBSCRIBE without filters" frame(0xA2, &[0, 1]);
            0x82 s3 "MQTT-2.3.1-1 UNSUBSCRIBE packet id 0" frame(0xA2, &[0, 0, 0, 1, b'a']);
            0x8F s3 "MQTT-4.7.3-1 UNSUBSCRIBE empty filter" frame(0xA2, &[0, 1, 0, 0]);
            0x81 s5 "2.2.2.2 topic alias not allowed in SUBSCRIBE" frame(0x82, &[0, 1, 3, 0x23, 0, 1, 0, 1, b'a', 0]);
            0x82 s5 "2.2.2.2 duplicate reason string" frame(0x40, &[0, 1, 0, 6, 0x1F, 0, 0, 0x1F, 0, 0]);
            0x81 s5 "2.2.2.2 property length past packet end" frame(0x40, &[0, 1, 0, 9, 0x1F, 0, 0]);
            0x82 s5 "MQTT-3.3.2-8 topic alias 0" frame(0x30, &[0, 1, b'a', 3, 0x23, 0, 0]);
            0x82 s5 "MQTT-3.4.2-1 PUBACK reason outside PUBACK set" vec![0x40, 0x03, 0, 1, 0x05];
            0x82 s5 "MQTT-3.6.2-1 PUBREL reason outside PUBREL set" vec![0x62, 0x03, 0, 1, 0x10];
            0x82 s3 "MQTT-2.3.1-1 PUBACK packet id 0" vec![0x40, 0x02, 0, 0];
            0x81 s3 "MQTT-3.2.2-1 CONNACK reserved flags" vec![0x20, 0x02, 0x02, 0x00];
            0x82 s3 "3.1.1 CONNACK return code 6" vec![0x20, 0x02, 0x00, 0x06];
            0x82 s3 "3.1.1 SUBACK return code 3" vec![0x90, 0x03, 0, 1, 3];
            0x82 s3 "MQTT-3.9.3-1 SUBACK without return codes" vec![0x90, 0x02, 0, 1];
            0x81 s3 "3.1.1 UNSUBACK with a payload" vec![0xB0, 0x03, 0, 1, 0];
            0x82 s5 "MQTT-3.15.2-1 AUTH reason outside AUTH set" vec![0xF0, 0x01, 0x80];
            0x82 s5 "MQTT-3.14.2-1 DISCONNECT reason 0x01" vec![0xE0, 0x01, 0x01];
        };
        for (rule, bytes, version, expected) in table {
            let got = dec(&bytes, version);
            let got_code = got.as_ref().map_err(DecodeError::reason_code);
            assert_eq!(got_code.err(), Some(expected), "{rule}: {got:?}");
        }
    }

    #[test]
    fn packet_too_large_detected_from_fixed_header_alone() {
        // Remaining length 2,097,151 announced, no body bytes present.
        let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0x7F][..]);
        let err = decode(&mut buf, Some(V5), 1024).unwrap_err();
        assert_eq!(err, DecodeError::PacketTooLarge { size: 2_097_155, max: 1024 });
        assert_eq!(err.reason_code(), 0x95);
        assert_eq!(buf.len(), 4, "nothing consumed");
        // The limit includes the fixed header: a 4-byte PUBACK fits 4, not 3.
        let puback = [0x40, 0x02, 0, 1];
        assert!(decode(&mut BytesMut::from(&puback[..]), Some(V5), 4).unwrap().is_some());
        assert!(decode(&mut BytesMut::from(&puback[..]), Some(V5), 3).is_err());
    }

    #[test]
    fn every_prefix_of_every_packet_needs_more_bytes() {
        for v in [V311, V5] {
            for p in samples::packets(v) {
                let mut full = BytesMut::new();
                encode(&p, v, &mut full).unwrap();
                let version = if matches!(p, Packet::Connect(_)) { None } else { Some(v) };
                for n in 0..full.len() {
                    let mut buf = BytesMut::from(&full[..n]);
                    let got = decode(&mut buf, version, MAX);
                    assert_eq!(got, Ok(None), "{} prefix {n}", p.packet_type_name());
                    assert_eq!(buf.len(), n, "prefix must not be consumed");
                }
            }
        }
    }

    #[test]
    fn decodes_back_to_back_packets_and_leaves_the_rest() {
        let mut buf = BytesMut::from(&[0xC0, 0x00, 0xD0, 0x00, 0x40][..]);
        assert_eq!(decode(&mut buf, Some(V311), MAX), Ok(Some(Packet::PingReq)));
        assert_eq!(decode(&mut buf, Some(V311), MAX), Ok(Some(Packet::PingResp)));
        assert_eq!(decode(&mut buf, Some(V311), MAX), Ok(None));
        assert_eq!(&buf[..], &[0x40]);
    }

    #[test]
    fn v5_short_forms_of_acks_disconnect_and_auth() {
        let ack = |bytes: &[u8]| match dec(bytes, Some(V5)) {
            Ok(Some(Packet::PubComp(r))) => r,
            other => panic!("{other:?}"),
        };
        let r = ack(&[0x70, 0x02, 0, 7]);
        assert_eq!((r.packet_id, r.reason, r.properties.is_empty()), (7, 0, true));
        let r = ack(&[0x70, 0x03, 0, 7, 0x92]);
        assert_eq!((r.reason, r.properties.is_empty()), (0x92, true));
        let disconnect = Packet::Disconnect(Disconnect { reason: 0, properties: Properties::default() });
        assert_eq!(dec(&[0xE0, 0x00], Some(V5)), Ok(Some(disconnect)));
        let auth = Packet::Auth(Auth { reason: 0x18, properties: Properties::default() });
        assert_eq!(dec(&[0xF0, 0x01, 0x18], Some(V5)), Ok(Some(auth)));
    }

    #[test]
    fn password_without_username_allowed_in_v5_mqtt_3_1_2_22() {
        let bytes = frame(0x10, &connect_body("MQTT", 5, 0x42, &[0, 0, 1, b'c', 0, 1, b'p']));
        match dec(&bytes, None) {
            Ok(Some(Packet::Connect(c))) => {
                assert_eq!(c.username, None);
                assert_eq!(c.password.as_deref(), Some(&b"p"[..]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_topic_with_alias_is_valid_in_v5_mqtt_3_3_2_1() {
        let bytes = frame(0x30, &[0, 0, 3, 0x23, 0, 5, b'x']);
        match dec(&bytes, Some(V5)) {
            Ok(Some(Packet::Publish(p))) => {
                assert_eq!((p.topic.as_str(), p.properties.topic_alias), ("", Some(5)));
                assert_eq!(&p.payload[..], b"x");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v311_connack_return_codes_decode_to_v5_equivalents() {
        let got = dec(&[0x20, 0x02, 0x00, 0x05], Some(V311));
        let expected = ConnAck { session_present: false, reason: 0x87, properties: Properties::default() };
        assert_eq!(got, Ok(Some(Packet::ConnAck(expected))));
    }

    #[test]
    fn control_characters_in_strings_are_accepted_mqtt_1_5_3() {
        let bytes = frame(0x30, &[0, 2, b'a', 0x01]);
        assert!(matches!(dec(&bytes, Some(V311)), Ok(Some(Packet::Publish(_)))));
        assert_eq!(code(&frame(0x30, &[0, 2, b'a', 0x00]), Some(V311)), 0x81);
    }
}
