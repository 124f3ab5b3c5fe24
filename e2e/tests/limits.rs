//! `limits` that keep one client (or one address) from exhausting a pod, each answered with the
//! MQTT 5 reason code that says why: CONNECT rate (0x9F), connections per source address
//! (0x97), subscriptions per session (0x97), topic length and levels (0x90, 0x8F), the Receive
//! Maximum (0x93), each client's queue (`maxQueuedMessages`: QoS 1 messages beyond it read back from Kafka); and
//! failed authentications that slow down the next attempts from the same address.

use std::net::IpAddr;
use std::time::{Duration, Instant};
use tributary_broker::codec::{reason, Connect, Packet, ProtocolVersion, PubResp, Publish, QoS};
use tributary_e2e::procs::{password_line, BrokerOptions};
use tributary_e2e::raw::RawClient;
use tributary_e2e::{BrokerProcess, KafkaServer};

const T: Duration = Duration::from_secs(20);

/// Connects from `source` with `username`/`password`; returns the connection and the
/// CONNACK's reason code (3.1.1 return codes come back as their MQTT 5 equivalents).
fn connect(
    addr: &str,
    source: [u8; 4],
    version: ProtocolVersion,
    id: &str,
    creds: Option<(&str, &str)>,
) -> (RawClient, u8) {
    let mut c = RawClient::dial_from(addr, IpAddr::from(source), version).unwrap_or_else(|e| panic!("{e}"));
    c.send(&Packet::Connect(Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 0,
        client_id: id.into(),
        will: None,
        username: creds.map(|(u, _)| u.into()),
        password: creds.map(|(_, p)| bytes::Bytes::copy_from_slice(p.as_bytes())),
        properties: Default::default(),
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    match c.recv() {
        Ok(Packet::ConnAck(a)) => (c, a.reason),
        other => panic!("{id}: expected CONNACK, got {other:?}"),
    }
}

/// The SUBACK reason code of one filter.
fn subscribe(c: &mut RawClient, filter: &str) -> u8 {
    c.subscribe(filter, QoS::AtLeastOnce).unwrap_or_else(|e| panic!("{e}"))
}

fn publish(topic: &str, qos: QoS, packet_id: Option<u16>) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id,
        payload: bytes::Bytes::from_static(b"x"),
        properties: Default::default(),
    })
}

fn limits(entries: &[(&str, &str)]) -> BrokerOptions {
    BrokerOptions {
        limits: entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    }
}

#[test]
fn connections_per_address_and_the_connect_rate_are_refused_with_their_reason_codes() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start_with(&kafka, &limits(&[("maxConnectionsPerAddress", "2"), ("maxConnectRate", "5")]));
    let addr = b.addr();
    let v5 = ProtocolVersion::V5;
    let (_one, first) = connect(&addr, [127, 0, 0, 1], v5, "a-1", None);
    let (_two, second) = connect(&addr, [127, 0, 0, 1], v5, "a-2", None);
    assert_eq!((first, second), (reason::SUCCESS, reason::SUCCESS));
    let (_c, third) = connect(&addr, [127, 0, 0, 1], v5, "a-3", None);
    assert_eq!(third, reason::QUOTA_EXCEEDED, "a third connection from 127.0.0.1");
    let (_other, other) = connect(&addr, [127, 0, 0, 2], v5, "b-1", None);
    assert_eq!(other, reason::SUCCESS, "another address has its own count");

    // A burst well above 5 per second, from addresses of their own: the bucket (one second's
    // worth, mostly spent above) runs dry and the rest are told to come back later.
    let mut codes = Vec::new();
    let mut held = Vec::new();
    for i in 0..20u8 {
        let version = if i % 2 == 0 { v5 } else { ProtocolVersion::V311 };
        let (c, code) = connect(&addr, [127, 0, 1, i], version, &format!("burst-{i}"), None);
        codes.push((version, code));
        held.push(c);
    }
    let refused5 = codes.iter().filter(|(v, c)| *v == v5 && *c == reason::CONNECTION_RATE_EXCEEDED).count();
    let refused311 = codes.iter().filter(|(v, c)| *v != v5 && *c == reason::SERVER_UNAVAILABLE).count();
    let accepted = codes.iter().filter(|(_, c)| *c == reason::SUCCESS).count();
    assert!(refused5 >= 2 && refused311 >= 2, "0x9F for MQTT 5, return code 3 for 3.1.1: {codes:?}");
    assert!(accepted <= 10, "no more than the bucket held and refilled: {codes:?}");
    assert!(b
        .metrics()
        .lines()
        .any(|l| l.starts_with("tributary_connects_refused_by_limits_total ") && !l.ends_with(" 0")));
    // The bucket refills: a client that waits gets in.
    let deadline = Instant::now() + T;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if connect(&addr, [127, 0, 2, 1], v5, "later", None).1 == reason::SUCCESS {
            break;
        }
        assert!(Instant::now() < deadline, "the rate never let a client in again");
    }
}

#[test]
fn subscriptions_and_topics_beyond_the_limits_are_refused() {
    let kafka = KafkaServer::start();
    let opts = limits(&[("maxSubscriptions", "2"), ("maxTopicLevels", "3"), ("maxTopicLength", "24")]);
    let b = BrokerProcess::start_with(&kafka, &opts);
    let (mut c, code) = connect(&b.addr(), [127, 0, 0, 1], ProtocolVersion::V5, "subs", None);
    assert_eq!(code, reason::SUCCESS);
    assert_eq!(subscribe(&mut c, "a/#"), 1);
    assert_eq!(subscribe(&mut c, "b/+"), 1);
    assert_eq!(subscribe(&mut c, "c"), reason::QUOTA_EXCEEDED, "a third subscription");
    assert_eq!(subscribe(&mut c, "a/#"), 1, "replacing one of the two is not a new one");
    assert_eq!(subscribe(&mut c, "a/b/c/d"), reason::TOPIC_FILTER_INVALID, "four levels");
    assert_eq!(subscribe(&mut c, "abcdefghijklmnopqrstuvwxyz"), reason::TOPIC_FILTER_INVALID, "26 bytes");

    c.send(&publish("a/b/c/d", QoS::AtLeastOnce, Some(7))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.recv().ok(),
        Some(Packet::PubAck(PubResp {
            packet_id: 7,
            reason: reason::TOPIC_NAME_INVALID,
            properties: Default::default()
        }))
    );
    // A topic none of its subscriptions matches: its own message must not come back first.
    c.send(&publish("x/y/z", QoS::AtLeastOnce, Some(8))).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(c.recv().ok(), Some(Packet::PubAck(PubResp { packet_id: 8, reason: 0, .. }))),
        "within the limits"
    );
    // QoS 0 has no acknowledgement to say it in: the connection is closed with the reason.
    c.send(&publish("a/b/c/d", QoS::AtMostOnce, None)).unwrap_or_else(|e| panic!("{e}"));
    match c.recv().ok() {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, reason::TOPIC_NAME_INVALID),
        other => panic!("expected DISCONNECT 0x90, got {other:?}"),
    }
    let exceeded = b.metrics();
    assert!(exceeded.lines().any(|l| l == "tributary_limits_exceeded_total 5"), "{exceeded}");
}

#[test]
fn failed_passwords_slow_down_the_next_attempts_from_that_address() {
    let kafka = KafkaServer::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let passwords = dir.path().join("passwords");
    std::fs::write(&passwords, format!("{}\n", password_line("dev", "s3cret"))).unwrap_or_else(|e| panic!("{e}"));
    let opts = BrokerOptions {
        authentication: Some(format!("{{ allowAnonymous: false, passwordFile: '{}' }}", passwords.display())),
        ..Default::default()
    };
    let b = BrokerProcess::start_with(&kafka, &opts);
    let addr = b.addr();
    let v5 = ProtocolVersion::V5;
    // Three failures are free; attempts 5, 6 and 7 wait 250 ms, 500 ms and 1 s after the
    // failure before them.
    let mut waits = Vec::new();
    for i in 0..7 {
        let started = Instant::now();
        let (_c, code) = connect(&addr, [127, 0, 3, 1], v5, &format!("guess-{i}"), Some(("dev", "guess")));
        assert_eq!(code, reason::BAD_USER_NAME_OR_PASSWORD);
        waits.push(started.elapsed());
    }
    let penalties: Duration = waits[4..].iter().sum();
    assert!(penalties >= Duration::from_millis(1750), "the delays grow with the failures: {waits:?}");
    assert!(waits[6] >= Duration::from_secs(1), "{waits:?}");
    // The right password from another address is not slowed by them.
    let started = Instant::now();
    let (_ok, code) = connect(&b.addr(), [127, 0, 3, 2], v5, "device", Some(("dev", "s3cret")));
    assert_eq!(code, reason::SUCCESS);
    assert!(started.elapsed() < waits[6], "another address waits for no penalty: {:?}", started.elapsed());
}

#[test]
fn a_client_beyond_the_receive_maximum_is_disconnected_with_0x93() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start_with(&kafka, &limits(&[("maxInflight", "2")]));
    let (mut c, code) = connect(&b.addr(), [127, 0, 0, 1], ProtocolVersion::V5, "eager", None);
    assert_eq!(code, reason::SUCCESS);
    // Two QoS 2 flows left open (PUBREC received, no PUBREL sent) fill the Receive Maximum.
    for id in [1, 2] {
        c.send(&publish("rm/t", QoS::ExactlyOnce, Some(id))).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(c.recv().ok(), Some(Packet::PubRec(PubResp { packet_id, reason: 0, .. })) if packet_id == id));
    }
    c.send(&publish("rm/t", QoS::ExactlyOnce, Some(3))).unwrap_or_else(|e| panic!("{e}"));
    match c.recv().ok() {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, reason::RECEIVE_MAXIMUM_EXCEEDED),
        other => panic!("expected DISCONNECT 0x93, got {other:?}"),
    }
}

/// The payload of a PUBLISH `p` (panics on anything else).
fn payload_of(p: std::io::Result<Packet>) -> (u16, String) {
    match p {
        Ok(Packet::Publish(p)) => (p.packet_id.unwrap_or(0), String::from_utf8_lossy(&p.payload).into_owned()),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

/// A clean session's QoS 1 messages beyond its queue are not lost: the queue refuses them,
/// and once the client took what was queued its connection reads them back from Kafka.
#[test]
fn messages_beyond_a_clean_sessions_queue_are_read_back_from_kafka() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start_with(&kafka, &limits(&[("maxInflight", "2"), ("maxQueuedMessages", "5")]));
    let (mut sub, code) = connect(&b.addr(), [127, 0, 0, 1], ProtocolVersion::V311, "slow-sub", None);
    assert_eq!(code, reason::SUCCESS);
    assert_eq!(subscribe(&mut sub, "queue/t"), 1);
    let (mut publisher, _) = connect(&b.addr(), [127, 0, 0, 1], ProtocolVersion::V311, "queue-pub", None);
    let mut send = |i: u16, body: &str| {
        let mut p = publish("queue/t", QoS::AtLeastOnce, Some(i));
        if let Packet::Publish(p) = &mut p {
            p.payload = bytes::Bytes::copy_from_slice(body.as_bytes());
        }
        publisher.send(&p).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(publisher.recv(), Ok(Packet::PubAck(_))));
    };
    for i in 1..=20 {
        send(i, &i.to_string());
    }
    // Two fill the window (not acknowledged), five wait in the queue, the rest are refused.
    let window: Vec<_> = (0..2).map(|_| payload_of(sub.recv())).collect();
    assert_eq!(window.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>(), ["1", "2"]);
    let deferred = || b.metric("tributary_deliveries_deferred_total").unwrap_or(0.0);
    let deadline = Instant::now() + T;
    while deferred() < 13.0 {
        assert!(Instant::now() < deadline, "at least 13 refusals expected, saw {}", deferred());
        std::thread::sleep(Duration::from_millis(50));
    }
    let ack = |c: &mut RawClient, id: u16| {
        let puback = Packet::PubAck(PubResp { packet_id: id, reason: 0, properties: Default::default() });
        c.send(&puback).unwrap_or_else(|e| panic!("{e}"));
    };
    for (id, _) in &window {
        ack(&mut sub, *id);
    }
    send(21, "after");
    let mut got = Vec::new();
    loop {
        let (id, m) = payload_of(sub.recv());
        ack(&mut sub, id);
        if m == "after" {
            break;
        }
        got.push(m.parse::<u16>().unwrap_or_else(|e| panic!("{m}: {e}")));
    }
    assert_eq!(got, (3..=20).collect::<Vec<_>>(), "every message once, in order, then the later one");
    assert_eq!(b.metric("tributary_dropped_total{reason=\"queue_full\"}").unwrap_or(0.0), 0.0, "nothing dropped");
}
