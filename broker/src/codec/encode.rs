//! Packet encoding. Each packet body is built in a scratch buffer first so that the
//! remaining length is known and a failed encode leaves the output buffer untouched.

use bytes::{BufMut, BytesMut};

use super::decode::topic_name_rule;
use super::error::EncodeError;
use super::packet::{
    kind, ConnAck, Connect, Packet, ProtocolVersion, PubResp, Publish, QoS, SubAck, Subscribe, SubscriptionOptions,
    UnsubAck, Unsubscribe,
};
use super::properties::{Ctx, Properties};
use super::reason;
use super::wire::{put_binary, put_string, put_varint, varint_len, varint_value};

use ProtocolVersion::{V311, V5};

/// Encode `packet` for `version`, appending it to `buf`.
///
/// For MQTT 3.1.1, properties and reason codes the version lacks are dropped (CONNACK and
/// SUBACK codes are mapped to 3.1.1 return codes). Packets a strict peer would reject —
/// over-long fields, properties not allowed in the packet, reason codes outside the
/// packet's set, AUTH for 3.1.1 — are refused with an [`EncodeError`] and nothing is
/// appended.
pub fn encode(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let mut body = BytesMut::new();
    // PUBLISH payloads are appended straight from the caller's buffer, not copied twice.
    let mut payload: &[u8] = &[];
    let first = match packet {
        Packet::Connect(c) => {
            connect(c, version, &mut body)?;
            kind::CONNECT << 4
        }
        Packet::ConnAck(c) => {
            connack(c, version, &mut body)?;
            kind::CONNACK << 4
        }
        Packet::Publish(p) => {
            payload = &p.payload;
            publish(p, version, &mut body)?
        }
        Packet::PubAck(r) => pub_resp(r, version, Ctx::PUBACK, &mut body)?,
        Packet::PubRec(r) => pub_resp(r, version, Ctx::PUBREC, &mut body)?,
        Packet::PubRel(r) => pub_resp(r, version, Ctx::PUBREL, &mut body)? | 0b0010,
        Packet::PubComp(r) => pub_resp(r, version, Ctx::PUBCOMP, &mut body)?,
        Packet::Subscribe(s) => {
            subscribe(s, version, &mut body)?;
            kind::SUBSCRIBE << 4 | 0b0010
        }
        Packet::SubAck(s) => {
            suback(s, version, &mut body)?;
            kind::SUBACK << 4
        }
        Packet::Unsubscribe(u) => {
            unsubscribe(u, version, &mut body)?;
            kind::UNSUBSCRIBE << 4 | 0b0010
        }
        Packet::UnsubAck(u) => {
            unsuback(u, version, &mut body)?;
            kind::UNSUBACK << 4
        }
        Packet::PingReq => kind::PINGREQ << 4,
        Packet::PingResp => kind::PINGRESP << 4,
        Packet::Disconnect(d) => {
            if version == V5 {
                reason_tail(d.reason, &d.properties, Ctx::DISCONNECT, &mut body)?;
            }
            kind::DISCONNECT << 4
        }
        Packet::Auth(a) => {
            if version == V311 {
                return Err(EncodeError::UnsupportedInVersion("AUTH"));
            }
            reason_tail(a.reason, &a.properties, Ctx::AUTH, &mut body)?;
            kind::AUTH << 4
        }
    };
    let remaining = body.len() + payload.len();
    let remaining_value = varint_value(remaining)?;
    buf.reserve(1 + varint_len(remaining_value) + remaining);
    buf.put_u8(first);
    put_varint(buf, remaining_value);
    buf.put_slice(&body);
    buf.put_slice(payload);
    Ok(())
}

fn invalid(packet: &'static str, rule: &'static str) -> EncodeError {
    EncodeError::InvalidPacket { packet, rule }
}

fn write_props(p: &Properties, v: ProtocolVersion, ctx: Ctx, buf: &mut BytesMut) -> Result<(), EncodeError> {
    match v {
        V311 => Ok(()),
        V5 => p.encode(ctx, buf),
    }
}

fn check_reason(ctx: Ctx, code: u8) -> Result<(), EncodeError> {
    if reason::valid_for(ctx.kind, code) {
        Ok(())
    } else {
        Err(EncodeError::InvalidReasonCode { packet: ctx.name, code })
    }
}

fn packet_id(id: u16, packet: &'static str, buf: &mut BytesMut) -> Result<(), EncodeError> {
    if id == 0 {
        return Err(invalid(packet, "packet identifier 0 (MQTT-2.3.1-1)"));
    }
    buf.put_u16(id);
    Ok(())
}

/// MQTT 5 reason code + properties, omitting trailing parts that are 0 / empty (§3.4.2.1,
/// §3.14.2.1, §3.15.2.1) to match what most peers send.
fn reason_tail(code: u8, props: &Properties, ctx: Ctx, buf: &mut BytesMut) -> Result<(), EncodeError> {
    check_reason(ctx, code)?;
    if props.is_empty() && code == reason::SUCCESS {
        return Ok(());
    }
    // A reason code is followed by an explicit (possibly empty) property block even though
    // MQTT 5 lets it be left out: some clients (rumqttc 0.25) cannot decode the 1-byte form.
    buf.put_u8(code);
    props.encode(ctx, buf)
}

fn connect(c: &Connect, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    const NAME: &str = "CONNECT";
    if c.protocol != v {
        return Err(invalid(NAME, "protocol differs from the encoding version"));
    }
    if v == V311 && c.password.is_some() && c.username.is_none() {
        return Err(invalid(NAME, "password without user name (MQTT-3.1.2-22)"));
    }
    if v == V311 && c.client_id.is_empty() && !c.clean_start {
        return Err(invalid(NAME, "empty client identifier requires clean session (MQTT-3.1.3-7)"));
    }
    let mut flags = u8::from(c.clean_start) << 1;
    if let Some(w) = &c.will {
        flags |= 0x04 | (w.qos as u8) << 3 | u8::from(w.retain) << 5;
    }
    flags |= u8::from(c.password.is_some()) << 6 | u8::from(c.username.is_some()) << 7;
    put_string(buf, "MQTT", "protocol name")?;
    buf.put_u8(v.level());
    buf.put_u8(flags);
    buf.put_u16(c.keep_alive);
    write_props(&c.properties, v, Ctx::CONNECT, buf)?;
    put_string(buf, &c.client_id, "client identifier")?;
    if let Some(w) = &c.will {
        write_props(&w.properties, v, Ctx::WILL, buf)?;
        if let Some(rule) = topic_name_rule(&w.topic, false) {
            return Err(invalid(NAME, rule));
        }
        put_string(buf, &w.topic, "will topic")?;
        put_binary(buf, &w.payload, "will payload")?;
    }
    if let Some(u) = &c.username {
        put_string(buf, u, "user name")?;
    }
    if let Some(p) = &c.password {
        put_binary(buf, p, "password")?;
    }
    Ok(())
}

fn connack(c: &ConnAck, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    check_reason(Ctx::CONNACK, c.reason)?;
    buf.put_u8(u8::from(c.session_present));
    buf.put_u8(match v {
        V311 => reason::v311_connack_return_code(c.reason),
        V5 => c.reason,
    });
    write_props(&c.properties, v, Ctx::CONNACK, buf)
}

/// Returns the first header byte, which carries the PUBLISH flags.
fn publish(p: &Publish, v: ProtocolVersion, buf: &mut BytesMut) -> Result<u8, EncodeError> {
    const NAME: &str = "PUBLISH";
    if p.qos == QoS::AtMostOnce && p.dup {
        return Err(invalid(NAME, "DUP with QoS 0 (MQTT-3.3.1-2)"));
    }
    // 3.1.1 has no topic alias, so it cannot stand in for an empty topic there.
    let alias = v == V5 && p.properties.topic_alias.is_some();
    if let Some(rule) = topic_name_rule(&p.topic, alias) {
        return Err(invalid(NAME, rule));
    }
    put_string(buf, &p.topic, "topic name")?;
    match (p.qos, p.packet_id) {
        (QoS::AtMostOnce, None) => {}
        (QoS::AtMostOnce, Some(_)) => return Err(invalid(NAME, "QoS 0 with a packet identifier (MQTT-2.2.1-2)")),
        (_, None) => return Err(invalid(NAME, "QoS > 0 without a packet identifier (MQTT-2.2.1-3)")),
        (_, Some(id)) => packet_id(id, NAME, buf)?,
    }
    write_props(&p.properties, v, Ctx::PUBLISH, buf)?;
    Ok(kind::PUBLISH << 4 | u8::from(p.dup) << 3 | (p.qos as u8) << 1 | u8::from(p.retain))
}

/// Returns the first header byte without flags.
fn pub_resp(r: &PubResp, v: ProtocolVersion, ctx: Ctx, buf: &mut BytesMut) -> Result<u8, EncodeError> {
    packet_id(r.packet_id, ctx.name, buf)?;
    if v == V5 {
        reason_tail(r.reason, &r.properties, ctx, buf)?;
    }
    Ok(ctx.kind << 4)
}

impl SubscriptionOptions {
    fn to_byte(self, v: ProtocolVersion) -> Result<u8, EncodeError> {
        if self.retain_handling > 2 {
            return Err(invalid("SUBSCRIBE", "retain handling above 2 (MQTT 5 §3.8.3.1)"));
        }
        let qos = self.qos as u8;
        Ok(match v {
            V311 => qos,
            V5 => {
                qos | u8::from(self.no_local) << 2 | u8::from(self.retain_as_published) << 3 | self.retain_handling << 4
            }
        })
    }
}

fn filter(f: &str, packet: &'static str, buf: &mut BytesMut) -> Result<(), EncodeError> {
    if f.is_empty() {
        return Err(invalid(packet, "empty topic filter (MQTT-4.7.3-1)"));
    }
    put_string(buf, f, "topic filter")
}

fn subscribe(s: &Subscribe, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    const NAME: &str = "SUBSCRIBE";
    packet_id(s.packet_id, NAME, buf)?;
    write_props(&s.properties, v, Ctx::SUBSCRIBE, buf)?;
    if s.filters.is_empty() {
        return Err(invalid(NAME, "no topic filters (MQTT-3.8.3-3)"));
    }
    for (f, options) in &s.filters {
        filter(f, NAME, buf)?;
        buf.put_u8(options.to_byte(v)?);
    }
    Ok(())
}

fn suback(s: &SubAck, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    packet_id(s.packet_id, "SUBACK", buf)?;
    write_props(&s.properties, v, Ctx::SUBACK, buf)?;
    if s.reasons.is_empty() {
        return Err(invalid("SUBACK", "no reason codes (MQTT-3.9.3-1)"));
    }
    for &code in &s.reasons {
        check_reason(Ctx::SUBACK, code)?;
        buf.put_u8(match v {
            V311 => reason::v311_suback_code(code).ok_or(EncodeError::InvalidReasonCode { packet: "SUBACK", code })?,
            V5 => code,
        });
    }
    Ok(())
}

fn unsubscribe(u: &Unsubscribe, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    const NAME: &str = "UNSUBSCRIBE";
    packet_id(u.packet_id, NAME, buf)?;
    write_props(&u.properties, v, Ctx::UNSUBSCRIBE, buf)?;
    if u.filters.is_empty() {
        return Err(invalid(NAME, "no topic filters (MQTT-3.10.3-2)"));
    }
    for f in &u.filters {
        filter(f, NAME, buf)?;
    }
    Ok(())
}

fn unsuback(u: &UnsubAck, v: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    packet_id(u.packet_id, "UNSUBACK", buf)?;
    if v == V311 {
        return Ok(());
    }
    u.properties.encode(Ctx::UNSUBACK, buf)?;
    if u.reasons.is_empty() {
        return Err(invalid("UNSUBACK", "no reason codes (MQTT-3.11.3-1)"));
    }
    for &code in &u.reasons {
        check_reason(Ctx::UNSUBACK, code)?;
        buf.put_u8(code);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::decode::decode;
    use super::super::packet::{Auth, Disconnect, LastWill};
    use super::super::samples;
    use super::*;

    fn enc(p: &Packet, v: ProtocolVersion) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode(p, v, &mut b).unwrap();
        b.to_vec()
    }

    fn dec(bytes: &[u8], p: &Packet, v: ProtocolVersion) -> Packet {
        let version = if matches!(p, Packet::Connect(_)) { None } else { Some(v) };
        let mut buf = BytesMut::from(bytes);
        let got = decode(&mut buf, version, u32::MAX).unwrap().unwrap();
        assert!(buf.is_empty(), "{} left bytes", p.packet_type_name());
        got
    }

    #[test]
    fn round_trip_every_packet_type_both_versions() {
        for v in [V311, V5] {
            let packets = samples::packets(v);
            let mut names: Vec<_> = packets.iter().map(Packet::packet_type_name).collect();
            names.dedup();
            assert_eq!(names.len(), if v == V5 { 15 } else { 14 });
            for p in packets {
                let bytes = enc(&p, v);
                assert_eq!(dec(&bytes, &p, v), p, "{v:?} {}", p.packet_type_name());
            }
        }
    }

    #[test]
    fn v5_samples_populate_every_property() {
        let mut seen = Properties::default();
        for p in samples::packets(V5) {
            let mut props = vec![];
            match &p {
                Packet::Connect(c) => {
                    props.push(c.properties.clone());
                    props.extend(c.will.iter().map(|w| w.properties.clone()));
                }
                Packet::ConnAck(c) => props.push(c.properties.clone()),
                Packet::Publish(x) => props.push(x.properties.clone()),
                _ => {}
            }
            for q in props {
                macro_rules! merge {
                    ($($f:ident),*) => { $( if q.$f.is_some() { seen.$f = q.$f.clone(); } )* };
                }
                merge!(
                    payload_format_indicator,
                    message_expiry_interval,
                    content_type,
                    response_topic,
                    correlation_data,
                    session_expiry_interval,
                    assigned_client_identifier,
                    server_keep_alive,
                    authentication_method,
                    authentication_data,
                    request_problem_information,
                    will_delay_interval,
                    request_response_information,
                    response_information,
                    server_reference,
                    reason_string,
                    receive_maximum,
                    topic_alias_maximum,
                    topic_alias,
                    maximum_qos,
                    retain_available,
                    maximum_packet_size,
                    wildcard_subscription_available,
                    subscription_identifiers_available,
                    shared_subscription_available
                );
                seen.subscription_identifiers.extend(q.subscription_identifiers);
                seen.user_properties.extend(q.user_properties);
            }
        }
        let dbg = format!("{seen:?}");
        assert!(!dbg.contains("None") && !dbg.contains("[]"), "{dbg}");
    }

    #[test]
    fn v311_drops_v5_only_fields() {
        for p in samples::packets(V5) {
            if matches!(p, Packet::Auth(_) | Packet::Connect(_) | Packet::PingReq | Packet::PingResp) {
                continue;
            }
            let mut b = BytesMut::new();
            if let Packet::Publish(x) = &p {
                if x.topic.is_empty() {
                    // Without a topic alias in 3.1.1 an empty topic cannot be expressed.
                    assert!(encode(&p, V311, &mut b).is_err());
                    continue;
                }
            }
            encode(&p, V311, &mut b).unwrap();
            let got = decode(&mut b, Some(V311), u32::MAX).unwrap().unwrap();
            assert_eq!(got.packet_type_name(), p.packet_type_name());
            let (props, code) = match &got {
                Packet::ConnAck(c) => (&c.properties, 0),
                Packet::Publish(x) => (&x.properties, 0),
                Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
                    (&r.properties, r.reason)
                }
                Packet::Subscribe(x) => (&x.properties, 0),
                Packet::SubAck(x) => (&x.properties, 0),
                Packet::Unsubscribe(x) => (&x.properties, 0),
                Packet::UnsubAck(x) => (&x.properties, x.reasons.len() as u8),
                Packet::Disconnect(d) => (&d.properties, d.reason),
                other => panic!("unexpected {other:?}"),
            };
            assert!(props.is_empty() && code == 0, "{got:?}");
        }
    }

    #[test]
    fn known_encoding_connect_v311() {
        let c = Connect {
            protocol: V311,
            clean_start: true,
            keep_alive: 60,
            client_id: "abc".into(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        };
        let bytes =
            [0x10, 0x0F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x03, b'a', b'b', b'c'];
        assert_eq!(enc(&Packet::Connect(c.clone()), V311), bytes);
        assert_eq!(dec(&bytes, &Packet::Connect(c.clone()), V311), Packet::Connect(c));
    }

    #[test]
    fn known_encoding_connect_with_will_and_credentials() {
        let c = Connect {
            protocol: V311,
            clean_start: false,
            keep_alive: 10,
            client_id: "c".into(),
            will: Some(LastWill {
                topic: "w".into(),
                payload: Bytes::from_static(b"x"),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: Properties::default(),
            }),
            username: Some("u".into()),
            password: Some(Bytes::from_static(b"p")),
            properties: Properties::default(),
        };
        // Flags: user 0x80 | password 0x40 | will retain 0x20 | will QoS 1 0x08 | will 0x04.
        let bytes = [
            0x10, 0x19, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xEC, 0, 10, 0, 1, b'c', 0, 1, b'w', 0, 1, b'x', 0, 1, b'u',
            0, 1, b'p',
        ];
        assert_eq!(enc(&Packet::Connect(c), V311), bytes);
    }

    #[test]
    fn known_encoding_publish_qos1() {
        let p = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "a/b".into(),
            packet_id: Some(10),
            properties: Properties::default(),
            payload: Bytes::from_static(b"hi"),
        };
        let p = Packet::Publish(p);
        assert_eq!(enc(&p, V311), [0x32, 0x09, 0, 3, b'a', b'/', b'b', 0, 0x0A, b'h', b'i']);
        assert_eq!(enc(&p, V5), [0x32, 0x0A, 0, 3, b'a', b'/', b'b', 0, 0x0A, 0, b'h', b'i']);
    }

    #[test]
    fn known_encodings_small_packets() {
        let sub = Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            filters: vec![("a/b".into(), SubscriptionOptions { qos: QoS::AtLeastOnce, ..Default::default() })],
        };
        assert_eq!(enc(&Packet::Subscribe(sub), V311), [0x82, 0x08, 0, 1, 0, 3, b'a', b'/', b'b', 1]);
        let ok = ConnAck { session_present: true, reason: 0, properties: Properties::default() };
        assert_eq!(enc(&Packet::ConnAck(ok.clone()), V311), [0x20, 0x02, 0x01, 0x00]);
        assert_eq!(enc(&Packet::ConnAck(ok), V5), [0x20, 0x03, 0x01, 0x00, 0x00]);
        assert_eq!(enc(&Packet::PingReq, V311), [0xC0, 0x00]);
        assert_eq!(enc(&Packet::PingResp, V5), [0xD0, 0x00]);
    }

    #[test]
    fn short_form_only_for_success_without_properties() {
        let ack = |reason| PubResp { packet_id: 10, reason, properties: Properties::default() };
        assert_eq!(enc(&Packet::PubAck(ack(0)), V5), [0x40, 0x02, 0, 10]);
        assert_eq!(enc(&Packet::PubAck(ack(0x10)), V5), [0x40, 0x04, 0, 10, 0x10, 0]);
        assert_eq!(enc(&Packet::PubRel(ack(0)), V5), [0x62, 0x02, 0, 10]);
        assert_eq!(enc(&Packet::PubAck(ack(0x10)), V311), [0x40, 0x02, 0, 10]);
        let d = Disconnect { reason: 0, properties: Properties::default() };
        assert_eq!(enc(&Packet::Disconnect(d), V5), [0xE0, 0x00]);
        let moved = Properties { server_reference: Some("b:1".into()), ..Properties::default() };
        let d = Disconnect { reason: reason::USE_ANOTHER_SERVER, properties: moved };
        assert_eq!(enc(&Packet::Disconnect(d), V5), [0xE0, 0x08, 0x9C, 0x06, 0x1C, 0x00, 0x03, b'b', b':', b'1']);
        let d = Disconnect { reason: reason::SERVER_SHUTTING_DOWN, properties: Properties::default() };
        assert_eq!(enc(&Packet::Disconnect(d.clone()), V5), [0xE0, 0x02, 0x8B, 0x00]);
        assert_eq!(enc(&Packet::Disconnect(d), V311), [0xE0, 0x00]);
        let a = Auth { reason: 0, properties: Properties::default() };
        assert_eq!(enc(&Packet::Auth(a), V5), [0xF0, 0x00]);
    }

    #[test]
    fn v311_connack_and_suback_codes_are_mapped() {
        let c = ConnAck {
            session_present: false,
            reason: reason::BAD_USER_NAME_OR_PASSWORD,
            properties: Properties::default(),
        };
        assert_eq!(enc(&Packet::ConnAck(c), V311), [0x20, 0x02, 0x00, 0x04]);
        let s = SubAck { packet_id: 3, properties: Properties::default(), reasons: vec![1, reason::NOT_AUTHORIZED] };
        assert_eq!(enc(&Packet::SubAck(s), V311), [0x90, 0x04, 0, 3, 1, 0x80]);
    }

    #[test]
    fn encode_errors_leave_buffer_untouched() {
        let mut buf = BytesMut::from(&b"keep"[..]);
        let long = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t".repeat(70_000),
            packet_id: None,
            properties: Properties::default(),
            payload: Bytes::new(),
        };
        let err = encode(&Packet::Publish(long.clone()), V5, &mut buf).unwrap_err();
        assert!(matches!(err, EncodeError::TooLong { len: 70_000, .. }), "{err}");
        assert_eq!(&buf[..], b"keep");
        let huge = Publish { topic: "t".into(), payload: Bytes::from(vec![0; 268_435_455]), ..long };
        let err = encode(&Packet::Publish(huge), V311, &mut buf).unwrap_err();
        assert_eq!(err, EncodeError::PacketTooLarge(268_435_455 + 3));
        assert_eq!(&buf[..], b"keep");
    }

    #[test]
    fn encode_refuses_what_a_strict_decoder_rejects() {
        let auth = Packet::Auth(Auth { reason: 0, properties: Properties::default() });
        let mut b = BytesMut::new();
        assert_eq!(encode(&auth, V311, &mut b), Err(EncodeError::UnsupportedInVersion("AUTH")));
        let publish = |qos, dup, packet_id, topic: &str| {
            Packet::Publish(Publish {
                dup,
                qos,
                retain: false,
                topic: topic.into(),
                packet_id,
                properties: Properties::default(),
                payload: Bytes::new(),
            })
        };
        for bad in [
            publish(QoS::AtMostOnce, true, None, "t"),
            publish(QoS::AtMostOnce, false, Some(1), "t"),
            publish(QoS::AtLeastOnce, false, None, "t"),
            publish(QoS::AtLeastOnce, false, Some(0), "t"),
            publish(QoS::AtMostOnce, false, None, "a/+"),
            publish(QoS::AtMostOnce, false, None, ""),
            Packet::PubRec(PubResp { packet_id: 1, reason: 0x92, properties: Properties::default() }),
            Packet::Subscribe(Subscribe { packet_id: 1, properties: Properties::default(), filters: vec![] }),
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 1,
                properties: Properties::default(),
                filters: vec![String::new()],
            }),
        ] {
            assert!(encode(&bad, V5, &mut b).is_err(), "{bad:?}");
        }
        assert!(b.is_empty());
    }
}
