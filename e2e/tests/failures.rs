//! Bad input and a Kafka outage: malformed packets close only their own connection with the
//! right reason code, and QoS 1 publishes wait out a Kafka outage without loss.

use rumqttc::QoS;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use tributary_e2e::kafka::read_topic;
use tributary_e2e::mqtt::{options, Client};
use tributary_e2e::procs::BrokerOptions;
use tributary_e2e::{BrokerProcess, KafkaServer};

const T: Duration = Duration::from_secs(20);

fn with_len(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first, body.len() as u8];
    p.extend_from_slice(body);
    p
}

fn connect(level: u8, id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', level, 0x02, 0, 60];
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    with_len(0x10, &body)
}

/// Sends `first` (usually a CONNECT), reads its answer, sends `bad`, and returns every byte the
/// server sent after that until it closed the connection.
fn exchange(addr: &str, first: Option<Vec<u8>>, bad: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if let Some(c) = first {
        s.write_all(&c).unwrap();
        let mut head = [0u8; 2];
        s.read_exact(&mut head).unwrap();
        assert_eq!(head[0], 0x20, "CONNACK expected");
        let mut rest = vec![0u8; head[1] as usize];
        s.read_exact(&mut rest).unwrap();
        assert_eq!(rest[1], 0, "connection accepted");
    }
    s.write_all(bad).unwrap();
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => out,
        Err(e) => panic!("server did not close the connection: {e} (got {out:?})"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_close_only_their_connection_with_the_reason_code() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start_with(
        &kafka,
        &BrokerOptions { limits: vec![("maxPacketSize".into(), "1024".into())], ..Default::default() },
    );
    let mut healthy = Client::connect(options(b.port, "healthy")).await;
    healthy.subscribe("ok/#", QoS::AtLeastOnce).await;

    // (case, protocol level of the CONNECT sent first, bad bytes, acceptable DISCONNECT reasons;
    // empty = the server just closes, as MQTT 3.1.1 has no DISCONNECT from the server)
    let v5_publish_qos3 = [0x36, 6, 0, 1, b'a', 0, 1, 0];
    let v5_wildcard_topic = with_len(0x30, &[0, 3, b'a', b'/', b'#', 0]);
    let v5_packet_id_zero = with_len(0x32, &[0, 1, b'a', 0, 0, 0]);
    let v5_subscribe_bad_flags = with_len(0x80, &[0, 1, 0, 0, 1, b'a', 1]);
    let v5_subscribe_no_filter = with_len(0x82, &[0, 1, 0]);
    let v5_bad_utf8 = with_len(0x30, &[0, 2, 0xc3, 0x28, 0]);
    let v5_remaining_length_too_long = [0x30, 0xff, 0xff, 0xff, 0xff, 0x7f];
    let v5_too_large = [0x30, 0xd0, 0x0f]; // declares 2,000 bytes > maxPacketSize 1,024
    let v5_pubrel_bad_flags = [0x60, 2, 0, 1];
    let v5_packet_type_0 = [0x00, 0];
    let v5_alias_out_of_range = with_len(0x30, &[0, 1, b'a', 3, 0x23, 0, 100]);
    let v5_property_not_allowed = with_len(0x30, &[0, 1, b'a', 5, 0x11, 0, 0, 0, 1]);
    let v5_second_connect = connect(5, "again");
    let v3_publish_qos0_dup = with_len(0x38, &[0, 1, b'a']);
    let v3_subscribe_bad_options = with_len(0x82, &[0, 1, 0, 1, b'a', 0x04]);
    let cases: Vec<(&str, u8, &[u8], &[u8])> = vec![
        ("v5 PUBLISH with QoS 3", 5, &v5_publish_qos3, &[0x81]),
        ("v5 PUBLISH topic with wildcard", 5, &v5_wildcard_topic, &[0x90]),
        ("v5 QoS 1 PUBLISH with packet id 0", 5, &v5_packet_id_zero, &[0x81, 0x82]),
        ("v5 SUBSCRIBE with reserved flags 0000", 5, &v5_subscribe_bad_flags, &[0x81]),
        ("v5 SUBSCRIBE without filters", 5, &v5_subscribe_no_filter, &[0x81, 0x82]),
        ("v5 PUBLISH topic not UTF-8", 5, &v5_bad_utf8, &[0x81]),
        ("v5 remaining length over 4 bytes", 5, &v5_remaining_length_too_long, &[0x81]),
        ("v5 packet over maximum packet size", 5, &v5_too_large, &[0x95]),
        ("v5 PUBREL with flags 0000", 5, &v5_pubrel_bad_flags, &[0x81]),
        ("v5 reserved packet type 0", 5, &v5_packet_type_0, &[0x81]),
        ("v5 topic alias above maximum", 5, &v5_alias_out_of_range, &[0x94]),
        ("v5 Session Expiry property in PUBLISH", 5, &v5_property_not_allowed, &[0x81, 0x82]),
        ("v5 second CONNECT", 5, &v5_second_connect, &[0x82]),
        ("v3.1.1 QoS 0 PUBLISH with DUP", 4, &v3_publish_qos0_dup, &[]),
        ("v3.1.1 SUBSCRIBE options with reserved bits", 4, &v3_subscribe_bad_options, &[]),
    ];
    let addr = b.addr();
    for (name, level, bad, reasons) in cases {
        let (addr, bad) = (addr.clone(), bad.to_vec());
        let out =
            tokio::task::spawn_blocking(move || exchange(&addr, Some(connect(level, "bad")), &bad)).await.unwrap();
        if reasons.is_empty() {
            assert!(out.is_empty(), "{name}: expected a plain close, got {out:?}");
        } else {
            assert!(out.len() >= 3 && out[0] == 0xE0, "{name}: expected DISCONNECT, got {out:?}");
            assert!(reasons.contains(&out[2]), "{name}: reason {:#04x} not in {reasons:02x?}", out[2]);
        }
    }

    // Before CONNECT: an unsupported protocol level gets "unsupported protocol version", in the
    // MQTT 5 format (0x84, with a Reason String) above level 5 and in the 3.1.1 format (return
    // code 1) below; anything else that is not a CONNECT is just closed.
    let a = addr.clone();
    let out = tokio::task::spawn_blocking(move || exchange(&a, None, &connect(6, "x"))).await.unwrap();
    assert!(out.len() > 5 && out[0] == 0x20 && out[2..4] == [0, 0x84], "level 6: {out:?}");
    let a = addr.clone();
    let out = tokio::task::spawn_blocking(move || exchange(&a, None, &connect(3, "x"))).await.unwrap();
    assert_eq!(out, [0x20, 2, 0, 1], "level 3");
    let a = addr.clone();
    let out = tokio::task::spawn_blocking(move || exchange(&a, None, &[0xC0, 0])).await.unwrap();
    assert!(out.is_empty(), "PINGREQ before CONNECT: expected a plain close, got {out:?}");

    // The healthy client never noticed.
    let publisher = Client::connect(options(b.port, "after")).await;
    publisher.client.publish("ok/1", QoS::AtLeastOnce, false, "still here").await.unwrap();
    assert_eq!(&healthy.publish_received(T).await.payload[..], b"still here");
    // 15 table rows + the two unsupported levels + the PINGREQ before CONNECT.
    assert!(b.metrics().contains("tributary_protocol_errors_total 18\n"), "{}", b.metrics());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_publishes_wait_out_a_kafka_outage_and_none_is_lost() {
    let mut kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let mut o = options(b.port, "outage");
    o.set_inflight(100);
    let mut p = Client::connect(o).await;
    let puback = |e| matches!(e, rumqttc::Packet::PubAck(_)).then_some(());
    for i in 0..10 {
        p.client.publish("out/a", QoS::AtLeastOnce, false, format!("{i}")).await.unwrap();
    }
    for _ in 0..10 {
        p.next(T, puback).await;
    }

    kafka.stop();
    for i in 10..20 {
        p.client.publish("out/a", QoS::AtLeastOnce, false, format!("{i}")).await.unwrap();
    }
    let early = tokio::time::timeout(Duration::from_secs(3), p.next(T, puback)).await;
    assert!(early.is_err(), "PUBACK while Kafka was down");

    kafka.restart();
    for _ in 10..20 {
        p.next(Duration::from_secs(90), puback).await;
    }
    let bootstrap = kafka.bootstrap.clone();
    let records = tokio::task::spawn_blocking(move || read_topic(&bootstrap, "mqtt-messages", 20, T)).await.unwrap();
    let mut payloads: Vec<u32> = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).parse().unwrap())
        .collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads, (0..20).collect::<Vec<_>>(), "every acknowledged message is in Kafka");
}

/// A v5 client connected to `addr`, having read its CONNACK.
fn connected_v5(addr: &str, id: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&connect(5, id)).unwrap();
    let mut head = [0u8; 2];
    s.read_exact(&mut head).unwrap();
    let mut rest = vec![0u8; head[1] as usize];
    s.read_exact(&mut rest).unwrap();
    assert_eq!((head[0], rest[1]), (0x20, 0), "{id}: CONNACK, accepted");
    s
}

/// The fixed header and topic `t` of a v5 QoS 0 PUBLISH with a `payload`-byte payload.
fn publish_head(payload: usize) -> Vec<u8> {
    let mut head = vec![0x30];
    let mut remaining = 4 + payload; // topic length, topic, property length, payload
    while remaining >= 128 {
        head.push((remaining % 128) as u8 | 0x80);
        remaining /= 128;
    }
    head.push(remaining as u8);
    head.extend_from_slice(&[0, 1, b't', 0]);
    head
}

/// Everything the server sends until it closes.
fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap_or_else(|e| panic!("server did not close the connection: {e} (got {out:?})"));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_make_the_broker_hold_large_packets_beyond_its_budget() {
    let kafka = KafkaServer::start();
    // Default limits: 1 MiB packets. The attack of the issue: 8 clients each start a 200 MiB
    // PUBLISH. Each is refused at its fixed header, before any of the body is read.
    let defaults = BrokerProcess::start(&kafka);
    let addr = defaults.addr();
    tokio::task::spawn_blocking(move || {
        for i in 0..8 {
            let mut s = connected_v5(&addr, &format!("big-{i}"));
            s.write_all(&publish_head(200 << 20)).unwrap();
            let out = until_closed(&mut s);
            assert!(out.len() >= 3 && out[0] == 0xE0 && out[2] == 0x95, "client {i}: DISCONNECT 0x95, got {out:?}");
        }
    })
    .await
    .unwrap();

    // Packets as large as the budget: eight clients each start a 60 MiB PUBLISH and send most
    // of it. One is held; the others are refused (0x97) as their headers arrive, so the pod
    // holds one packet, not eight (the attack took 1.6 GiB), and still serves others.
    let sixty = 60 << 20;
    let limits = vec![("maxPacketSize".into(), (64u32 << 20).to_string())];
    let b = BrokerProcess::start_with(&kafka, &BrokerOptions { limits, ..Default::default() });
    let addr = b.addr();
    let before = b.rss_kib();
    let refused = tokio::task::spawn_blocking(move || {
        let body = vec![b'x'; sixty - (1 << 20)];
        let mut refused = 0;
        let mut held = Vec::new();
        for i in 0..8 {
            let mut s = connected_v5(&addr, &format!("huge-{i}"));
            s.write_all(&publish_head(sixty)).unwrap();
            // A refused client's writes fail once the broker has closed: that is the point.
            let _ = s.write_all(&body);
            s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            let mut answer = [0u8; 3];
            if s.read_exact(&mut answer).is_ok() && answer[0] == 0xE0 && answer[2] == 0x97 {
                refused += 1;
            }
            held.push(s);
        }
        (refused, held)
    })
    .await
    .unwrap();
    let (refused, _held) = refused;
    let during = b.rss_kib();
    assert!(refused >= 6, "at most the budget's worth held: {refused} of 8 refused");
    assert!(
        during < before + (150 << 10),
        "RSS {before} KiB before, {during} KiB with eight 60 MiB packets started (budget 64 MiB)"
    );
    eprintln!("RSS: {before} KiB before, {during} KiB with 8 x 60 MiB PUBLISHes started");
    let addr = b.addr();
    tokio::task::spawn_blocking(move || {
        let mut other = connected_v5(&addr, "other");
        other.write_all(&[0xC0, 0]).unwrap();
        let mut answer = [0u8; 2];
        other.read_exact(&mut answer).unwrap();
        assert_eq!(answer, [0xD0, 0], "another client is served meanwhile");
    })
    .await
    .unwrap();
    drop(b);

    // A budget of two packets of the maximum size: two held, a third refused with 0x97, and
    // room again once one of them is complete.
    let limits = vec![("maxPacketSize".into(), "1048576".into()), ("maxPendingBytes".into(), "2097160".into())];
    let b = BrokerProcess::start_with(&kafka, &BrokerOptions { limits, ..Default::default() });
    let addr = b.addr();
    tokio::task::spawn_blocking(move || {
        let size = 1_048_000;
        let mut holders: Vec<TcpStream> = (0..2).map(|i| connected_v5(&addr, &format!("holder-{i}"))).collect();
        for h in &mut holders {
            h.write_all(&publish_head(size)).unwrap();
            h.write_all(&vec![b'x'; 1000]).unwrap();
        }
        // The third waits for nothing: it is told at once that the pod is at its quota.
        let deadline = std::time::Instant::now() + T;
        let refused = loop {
            let mut third = connected_v5(&addr, "third");
            third.write_all(&publish_head(size)).unwrap();
            let out = until_closed(&mut third);
            // The holders' headers may still be on their way to the broker: ask again.
            if out.len() >= 3 && out[2] == 0x97 {
                break out;
            }
            assert!(std::time::Instant::now() < deadline, "never refused: {out:?}");
        };
        assert_eq!(refused[0], 0xE0, "DISCONNECT");
        // One holder completes its packet: its reservation comes back.
        holders[0].write_all(&vec![b'x'; size - 1000]).unwrap();
        let deadline = std::time::Instant::now() + T;
        loop {
            let mut next = connected_v5(&addr, "next");
            next.write_all(&publish_head(size)).unwrap();
            next.write_all(&vec![b'x'; size]).unwrap();
            // PINGREQ after the PUBLISH: a PINGRESP means the PUBLISH was read whole.
            next.write_all(&[0xC0, 0]).unwrap();
            let mut answer = [0u8; 2];
            if next.read_exact(&mut answer).is_ok() && answer == [0xD0, 0] {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no room came back: {answer:?}");
        }
    })
    .await
    .unwrap();
}
