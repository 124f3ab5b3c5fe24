//! Test fixtures: one or more valid packets of every type, with every property a packet
//! may carry populated for MQTT 5.

use bytes::Bytes;

use super::packet::*;
use super::properties::Properties;
use super::reason;

fn users() -> Vec<(String, String)> {
    vec![("k".into(), "v".into()), ("k".into(), "ü €".into())]
}

pub(super) fn will_props() -> Properties {
    Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(3600),
        content_type: Some("text/plain".into()),
        response_topic: Some("reply/to".into()),
        correlation_data: Some(Bytes::from_static(&[0, 1, 2])),
        will_delay_interval: Some(30),
        user_properties: users(),
        ..Properties::default()
    }
}

pub(super) fn publish_props() -> Properties {
    Properties {
        payload_format_indicator: Some(0),
        message_expiry_interval: Some(u32::MAX),
        content_type: Some("application/json".into()),
        response_topic: Some("r".into()),
        correlation_data: Some(Bytes::from_static(b"corr")),
        subscription_identifiers: vec![1, 16_384, 268_435_455],
        topic_alias: Some(7),
        user_properties: users(),
        ..Properties::default()
    }
}

pub(super) fn connect_props() -> Properties {
    Properties {
        session_expiry_interval: Some(600),
        authentication_method: Some("SCRAM-SHA-256".into()),
        authentication_data: Some(Bytes::from_static(b"client-first")),
        request_problem_information: Some(0),
        request_response_information: Some(1),
        receive_maximum: Some(100),
        topic_alias_maximum: Some(10),
        user_properties: users(),
        maximum_packet_size: Some(1 << 20),
        ..Properties::default()
    }
}

pub(super) fn connack_props() -> Properties {
    Properties {
        session_expiry_interval: Some(0),
        assigned_client_identifier: Some("auto-1".into()),
        server_keep_alive: Some(30),
        authentication_method: Some("SCRAM-SHA-256".into()),
        authentication_data: Some(Bytes::from_static(b"server-final")),
        response_information: Some("resp/".into()),
        server_reference: Some("other:1883".into()),
        reason_string: Some("welcome".into()),
        receive_maximum: Some(65_535),
        topic_alias_maximum: Some(0),
        maximum_qos: Some(1),
        retain_available: Some(1),
        user_properties: users(),
        maximum_packet_size: Some(268_435_460),
        wildcard_subscription_available: Some(1),
        subscription_identifiers_available: Some(0),
        shared_subscription_available: Some(1),
        ..Properties::default()
    }
}

pub(super) fn disconnect_props() -> Properties {
    Properties {
        session_expiry_interval: Some(5),
        server_reference: Some("elsewhere".into()),
        reason_string: Some("bye".into()),
        user_properties: users(),
        ..Properties::default()
    }
}

pub(super) fn auth_props() -> Properties {
    Properties {
        authentication_method: Some("SCRAM-SHA-256".into()),
        authentication_data: Some(Bytes::from_static(b"challenge")),
        reason_string: Some("continue".into()),
        user_properties: users(),
        ..Properties::default()
    }
}

fn reason_props() -> Properties {
    Properties { reason_string: Some("why".into()), user_properties: users(), ..Properties::default() }
}

/// Valid packets of every type for `v`, in the form `decode` returns them (3.1.1: empty
/// properties, reason 0, 3.1.1-representable codes).
pub(super) fn packets(v: ProtocolVersion) -> Vec<Packet> {
    let v5 = v == ProtocolVersion::V5;
    let props = |f: fn() -> Properties| if v5 { f() } else { Properties::default() };
    let code = |c: u8| if v5 { c } else { reason::SUCCESS };
    let resp = |id, c| PubResp { packet_id: id, reason: code(c), properties: props(reason_props) };
    let opts = |qos, no_local, rap, rh| SubscriptionOptions {
        qos,
        no_local: v5 && no_local,
        retain_as_published: v5 && rap,
        retain_handling: if v5 { rh } else { 0 },
    };
    let mut out = vec![
        Packet::Connect(Connect {
            protocol: v,
            clean_start: true,
            keep_alive: 0,
            client_id: String::new(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        }),
        Packet::Connect(Connect {
            protocol: v,
            clean_start: false,
            keep_alive: 65_535,
            client_id: "client-ü".into(),
            will: Some(LastWill {
                topic: "will/topic".into(),
                payload: Bytes::from_static(b"gone"),
                qos: QoS::ExactlyOnce,
                retain: true,
                properties: props(will_props),
            }),
            username: Some("user".into()),
            password: Some(Bytes::from_static(&[0, 0xFF, 1])),
            properties: props(connect_props),
        }),
        Packet::ConnAck(ConnAck { session_present: true, reason: 0, properties: props(connack_props) }),
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason: reason::NOT_AUTHORIZED,
            properties: Properties::default(),
        }),
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: "a/b/c".into(),
            packet_id: None,
            properties: Properties::default(),
            payload: Bytes::new(),
        }),
        Packet::Publish(Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            retain: false,
            topic: if v5 { String::new() } else { "t".into() },
            packet_id: Some(65_535),
            properties: props(publish_props),
            payload: Bytes::from(vec![0xAB; 300]),
        }),
        Packet::PubAck(resp(1, reason::NO_MATCHING_SUBSCRIBERS)),
        Packet::PubAck(PubResp { packet_id: 2, reason: 0, properties: Properties::default() }),
        Packet::PubRec(resp(3, reason::QUOTA_EXCEEDED)),
        Packet::PubRel(resp(4, reason::PACKET_IDENTIFIER_NOT_FOUND)),
        Packet::PubComp(resp(5, reason::SUCCESS)),
        Packet::Subscribe(Subscribe {
            packet_id: 6,
            properties: if v5 {
                Properties { subscription_identifiers: vec![42], user_properties: users(), ..Properties::default() }
            } else {
                Properties::default()
            },
            filters: vec![
                ("a/+/c".into(), opts(QoS::AtMostOnce, true, false, 2)),
                ("#".into(), opts(QoS::ExactlyOnce, false, true, 1)),
                ("$share/g/x".into(), opts(QoS::AtLeastOnce, false, false, 0)),
            ],
        }),
        Packet::SubAck(SubAck {
            packet_id: 6,
            properties: props(reason_props),
            reasons: vec![0, 1, 2, if v5 { reason::QUOTA_EXCEEDED } else { 0x80 }],
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 7,
            properties: if v5 {
                Properties { user_properties: users(), ..Properties::default() }
            } else {
                Properties::default()
            },
            filters: vec!["a/+/c".into(), "#".into()],
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: 7,
            properties: props(reason_props),
            reasons: if v5 { vec![0, reason::NO_SUBSCRIPTION_EXISTED] } else { vec![] },
        }),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(Disconnect { reason: 0, properties: Properties::default() }),
        Packet::Disconnect(Disconnect { reason: code(reason::SERVER_MOVED), properties: props(disconnect_props) }),
    ];
    if v5 {
        out.push(Packet::Auth(Auth { reason: reason::CONTINUE_AUTHENTICATION, properties: auth_props() }));
        out.push(Packet::Auth(Auth { reason: 0, properties: Properties::default() }));
    }
    out
}
