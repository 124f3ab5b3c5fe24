//! Retained messages, Last Will, keep-alive, and QoS 1/2 flows with rumqttc and mosquitto.

use rumqttc::{LastWill, QoS};
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};
use tributary_e2e::kafka::read_topic;
use tributary_e2e::mqtt::{options, Client};
use tributary_e2e::{BrokerProcess, KafkaServer};

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_survives_a_broker_restart_and_empty_payload_clears_it() {
    let kafka = KafkaServer::start();
    let mut b = BrokerProcess::start(&kafka);
    let mut p = Client::connect(options(b.port, "p")).await;
    p.client.publish("status/door", QoS::AtLeastOnce, true, "closed").await.unwrap();
    p.client.publish("status/window", QoS::AtLeastOnce, true, "open").await.unwrap();
    for _ in 0..2 {
        p.next(T, |e| matches!(e, rumqttc::Packet::PubAck(_)).then_some(())).await;
    }
    drop(p);
    b.restart();

    let mut s = Client::connect(options(b.port, "s")).await;
    s.subscribe("status/+", QoS::AtLeastOnce).await;
    let mut got = [s.publish_received(T).await, s.publish_received(T).await];
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!((got[0].topic.as_str(), &got[0].payload[..], got[0].retain), ("status/door", &b"closed"[..], true));
    assert_eq!((got[1].topic.as_str(), &got[1].payload[..], got[1].retain), ("status/window", &b"open"[..], true));

    let mut p = Client::connect(options(b.port, "p2")).await;
    p.client.publish("status/door", QoS::AtLeastOnce, true, "").await.unwrap();
    p.next(T, |e| matches!(e, rumqttc::Packet::PubAck(_)).then_some(())).await;
    let mut s2 = Client::connect(options(b.port, "s2")).await;
    s2.subscribe("status/+", QoS::AtLeastOnce).await;
    // The live delete itself may still be on its way through the shared tailer (it was published
    // just before this SUBACK); what must not come is a retained copy of the old message.
    let mut retained = Vec::new();
    while let Ok(p) = tokio::time::timeout(Duration::from_millis(1500), s2.publish_received(T)).await {
        if p.retain {
            retained.push((p.topic, p.payload));
        } else {
            assert!(p.payload.is_empty(), "unexpected live message {p:?}");
        }
    }
    assert_eq!(retained, [("status/window".to_string(), bytes::Bytes::from_static(b"open"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_will_fires_on_ungraceful_close_only() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let mut watcher = Client::connect(options(b.port, "watcher")).await;
    watcher.subscribe("devices/+/status", QoS::AtLeastOnce).await;

    let mut o = options(b.port, "dev-1");
    o.set_last_will(LastWill::new("devices/dev-1/status", "offline", QoS::AtLeastOnce, false));
    let dev = Client::connect(o).await;
    dev.abort();
    let will = watcher.publish_received(T).await;
    assert_eq!((will.topic.as_str(), &will.payload[..]), ("devices/dev-1/status", &b"offline"[..]));

    let mut o = options(b.port, "dev-2");
    o.set_last_will(LastWill::new("devices/dev-2/status", "offline", QoS::AtLeastOnce, false));
    let dev = Client::connect(o).await;
    dev.client.disconnect().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(2), watcher.publish_received(T)).await.is_err(),
        "will sent after DISCONNECT"
    );
}

/// A raw MQTT 3.1.1 CONNECT with keep-alive 1 s and a Will.
fn connect_packet(client_id: &str, keep_alive: u16, will: (&str, &str)) -> Vec<u8> {
    let mut vh = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0b0000_0110];
    vh.extend_from_slice(&keep_alive.to_be_bytes());
    for s in [client_id, will.0, will.1] {
        vh.extend_from_slice(&(s.len() as u16).to_be_bytes());
        vh.extend_from_slice(s.as_bytes());
    }
    let mut p = vec![0x10, vh.len() as u8];
    p.extend(vh);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_closed_after_one_and_a_half_keep_alives_and_its_will_fires() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let mut watcher = Client::connect(options(b.port, "watcher")).await;
    watcher.subscribe("ka/#", QoS::AtMostOnce).await;

    let addr = b.addr();
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(&connect_packet("silent", 1, ("ka/silent", "gone"))).unwrap();
        let mut connack = [0u8; 4];
        s.read_exact(&mut connack).unwrap();
        assert_eq!(connack, [0x20, 2, 0, 0]);
        let start = Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "expected the server to close the socket");
        start.elapsed()
    })
    .await
    .unwrap();
    assert!(
        closed_after >= Duration::from_millis(1400) && closed_after < Duration::from_millis(3000),
        "closed after {closed_after:?}"
    );
    let will = watcher.publish_received(T).await;
    assert_eq!(will.topic, "ka/silent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_and_qos2_flows_with_rumqttc_deliver_every_message_once() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let mut sub = Client::connect(options(b.port, "q-sub")).await;
    sub.subscribe("q/#", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(options(b.port, "q-pub")).await;
    let n: usize = 200;
    for i in 0..n {
        let qos = if i.is_multiple_of(2) { QoS::AtLeastOnce } else { QoS::ExactlyOnce };
        publisher.client.publish(format!("q/{}", i % 2), qos, false, format!("{i}")).await.unwrap();
    }
    let mut acks = 0;
    while acks < n {
        publisher
            .next(T, |e| matches!(e, rumqttc::Packet::PubAck(_) | rumqttc::Packet::PubComp(_)).then_some(()))
            .await;
        acks += 1;
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..n {
        let p = sub.publish_received(T).await;
        let i: usize = String::from_utf8_lossy(&p.payload).parse().unwrap();
        let expected = if i.is_multiple_of(2) { QoS::AtLeastOnce } else { QoS::ExactlyOnce };
        assert_eq!(p.qos, expected, "message {i}");
        assert!(seen.insert(i), "message {i} delivered twice");
    }
    assert!(tokio::time::timeout(Duration::from_secs(1), sub.publish_received(T)).await.is_err(), "extra delivery");
    let bootstrap = kafka.bootstrap.clone();
    let records =
        tokio::task::spawn_blocking(move || read_topic(&bootstrap, "mqtt-messages", n + 1, Duration::from_secs(5)))
            .await
            .unwrap();
    assert_eq!(records.len(), n, "each publish is one Kafka record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_interoperate_at_qos_1_and_2_in_both_protocol_versions() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let port = b.port.to_string();
    for (version, qos) in [("mqttv311", "1"), ("mqttv311", "2"), ("mqttv5", "1"), ("mqttv5", "2")] {
        let topic = format!("mq/{version}/{qos}");
        let sub = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port, "-V", version, "-q", qos, "-t", &topic, "-C", "3", "-W", "20", "-v"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("mosquitto_sub (install mosquitto-clients)");
        // mosquitto_sub has no "subscribed" signal; give it time to get its SUBACK.
        tokio::time::sleep(Duration::from_millis(700)).await;
        for i in 0..3 {
            let ok = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port, "-V", version, "-q", qos, "-t", &topic, "-m", &format!("m{i}")])
                .status()
                .unwrap()
                .success();
            assert!(ok, "mosquitto_pub {version} qos {qos}");
        }
        let out = tokio::task::spawn_blocking(move || sub.wait_with_output()).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let expected: Vec<String> = (0..3).map(|i| format!("{topic} m{i}")).collect();
        assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{version} qos {qos}");
    }
}
