//! Persistent sessions in the Kafka sessions topic: take-over across two brokers with the
//! subscriptions carried over, session expiry, and clean sessions leaving only their claim.

use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::QoS;
use std::time::{Duration, Instant};
use tributary_broker::codec::QoS as RawQoS;
use tributary_e2e::kafka::{read_topic, Record};
use tributary_e2e::mqtt::{options, Client};
use tributary_e2e::mqtt5::{filter, options5, Client5};
use tributary_e2e::raw::{RawClient, Receiver};
use tributary_e2e::{BrokerProcess, KafkaServer};

const T: Duration = Duration::from_secs(20);
const SESSIONS: &str = "mqtt-sessions";

/// Every record of the sessions topic (reads until `min` records or a quiet timeout).
async fn sessions_topic(kafka: &KafkaServer, min: usize) -> Vec<Record> {
    let bootstrap = kafka.bootstrap.clone();
    tokio::task::spawn_blocking(move || read_topic(&bootstrap, SESSIONS, min, Duration::from_secs(10)))
        .await
        .unwrap_or_else(|e| panic!("reader: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_over_across_brokers_carries_subscriptions_over() {
    let kafka = KafkaServer::start();
    let b1 = BrokerProcess::start(&kafka);
    let b2 = BrokerProcess::start(&kafka);

    // MQTT 3.1.1: subscriptions made on broker 1 are served on broker 2 after a take-over.
    let mut o = options(b1.port, "dev");
    o.set_clean_session(false);
    let mut first = Client::connect(o).await;
    assert!(!first.connack.session_present, "a new session");
    first.subscribe("t/#", QoS::AtLeastOnce).await;

    let mut o = options(b2.port, "dev");
    o.set_clean_session(false);
    let started = Instant::now();
    let mut second = Client::connect(o).await;
    assert!(second.connack.session_present, "the session is resumed on broker 2");
    assert!(first.closed(Duration::from_secs(5)).await, "broker 1 closed the old connection");
    let took = started.elapsed();
    println!("take-over across brokers (3.1.1): CONNACK + old connection closed in {took:?}");
    assert!(took < Duration::from_secs(5), "take-over took {took:?}");

    let publisher = Client::connect(options(b1.port, "pub")).await;
    publisher.client.publish("t/x", QoS::AtLeastOnce, false, "hello").await.unwrap_or_else(|e| panic!("{e}"));
    let got = second.publish_received(T).await;
    assert_eq!((got.topic.as_str(), &got.payload[..]), ("t/x", &b"hello"[..]));

    // MQTT 5: the old connection is told why (DISCONNECT 0x8E).
    let session5 = |port| {
        let mut o = options5(port, "dev5");
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(3600));
        o
    };
    let mut first5 = Client5::connect(session5(b1.port)).await;
    first5.subscribe(filter("t5/#", QoS5::AtLeastOnce, false, false), Some(4)).await;
    let started = Instant::now();
    let mut second5 = Client5::connect(session5(b2.port)).await;
    assert!(second5.connack.session_present);
    assert_eq!(first5.disconnected(Duration::from_secs(5)).await, DisconnectReasonCode::SessionTakenOver);
    println!("take-over across brokers (MQTT 5): DISCONNECT 0x8E after {:?}", started.elapsed());
    publisher.client.publish("t5/y", QoS::AtLeastOnce, false, "v5").await.unwrap_or_else(|e| panic!("{e}"));
    let got = second5.publish_received(T).await;
    assert_eq!(&got.payload[..], b"v5");
    assert_eq!(got.properties.map(|p| p.subscription_identifiers), Some(vec![4]), "identifier carried over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_are_tombstoned_and_not_resumed() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let opts = || {
        let mut o = options5(b.port, "short");
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(2));
        o
    };
    let mut c = Client5::connect(opts()).await;
    c.subscribe(filter("e/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, false), None).await;
    c.client.disconnect().await.unwrap_or_else(|e| panic!("{e}"));
    drop(c);

    // Resumed while it lives...
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = Client5::connect(opts()).await;
    assert!(c.connack.session_present, "resumed before it expired");
    c.client.disconnect().await.unwrap_or_else(|e| panic!("{e}"));
    drop(c);

    // ...gone after expiry plus one scan (5 s).
    tokio::time::sleep(Duration::from_secs(2 + 5 + 1)).await;
    let records = sessions_topic(&kafka, usize::MAX).await;
    let tombstoned = records.iter().any(|r| r.key_str() == "short" && r.value.is_none());
    assert!(tombstoned, "no tombstone for the expired session in {records:?}");
    let c = Client5::connect(opts()).await;
    assert!(!c.connack.session_present, "an expired session is not resumed");
}

/// Clean sessions write their claim (take-over across brokers needs it) and nothing else,
/// unless they have a Will: that is kept in a state record while connected, so that it is
/// published even if the broker dies, and removed at disconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_sessions_write_only_their_claim_and_their_will() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let mut c = Client::connect(options(b.port, "clean")).await;
    assert!(!c.connack.session_present);
    c.subscribe("c/#", QoS::AtLeastOnce).await;
    c.client.disconnect().await.unwrap_or_else(|e| panic!("{e}"));
    let mut c5 = Client5::connect(options5(b.port, "clean5")).await;
    c5.subscribe(filter("c/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, false), None).await;
    c5.client.disconnect().await.unwrap_or_else(|e| panic!("{e}"));
    let mut o = options(b.port, "clean-will");
    o.set_last_will(rumqttc::LastWill::new("c/status", "offline", QoS::AtLeastOnce, false));
    let w = Client::connect(o).await;
    let connected = sessions_topic(&kafka, usize::MAX).await;
    assert!(
        connected.iter().any(|r| r.key_str() == "clean-will" && r.value.is_some()),
        "the Will is stored while connected"
    );
    w.client.disconnect().await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let records = sessions_topic(&kafka, usize::MAX).await;
    // Broker heartbeats share the topic; they are not session records.
    let keys: Vec<String> = records.iter().map(Record::key_str).filter(|k| !k.ends_with("#node")).collect();
    assert_eq!(keys.iter().filter(|k| k.as_str() == "clean#claim").count(), 1, "{keys:?}");
    assert_eq!(keys.iter().filter(|k| k.as_str() == "clean5#claim").count(), 1, "{keys:?}");
    assert_eq!(keys.iter().filter(|k| k.as_str() == "clean-will#claim").count(), 1, "{keys:?}");
    let will_state: Vec<bool> =
        records.iter().filter(|r| r.key_str() == "clean-will").map(|r| r.value.is_some()).collect();
    assert_eq!(will_state, [true, false], "state with the Will, then its tombstone");
    assert_eq!(keys.len(), 5, "only the claims and the Will's state: {keys:?}");
    assert!(b.metrics().contains("\ntributary_sessions_stored 0\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_are_read_back_from_kafka_in_order_on_another_broker() {
    let kafka = KafkaServer::start();
    let b1 = BrokerProcess::start(&kafka);
    let b2 = BrokerProcess::start(&kafka);
    let persistent = |port| {
        let mut o = options(port, "offline");
        o.set_clean_session(false);
        o
    };
    let mut sub = Client::connect(persistent(b1.port)).await;
    sub.subscribe("off/#", QoS::AtLeastOnce).await;
    sub.client.disconnect().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(sub.closed(T).await);

    let mut publisher = Client::connect(options(b1.port, "off-pub")).await;
    let n = 1000;
    for i in 0..n {
        publisher.client.publish(format!("off/{}", i % 3), QoS::AtLeastOnce, false, format!("{i}")).await.unwrap();
    }
    for _ in 0..n {
        publisher.next(T, |e| matches!(e, rumqttc::Packet::PubAck(_)).then_some(())).await;
    }

    let mut sub = Client::connect(persistent(b2.port)).await;
    assert!(sub.connack.session_present);
    let mut last = [-1i64; 3];
    let mut seen = std::collections::HashSet::new();
    for _ in 0..n {
        let p = sub.publish_received(T).await;
        let i: i64 = String::from_utf8_lossy(&p.payload).parse().unwrap();
        let topic = (i % 3) as usize;
        assert_eq!(p.topic, format!("off/{topic}"));
        assert!(i > last[topic], "off/{topic}: {i} after {}", last[topic]);
        last[topic] = i;
        assert!(seen.insert(i), "{i} delivered twice");
    }
    assert_eq!(seen.len(), n as usize, "every message published while away");

    // Then live, without a gap or a duplicate at the seam.
    for i in n..n + 5 {
        publisher.client.publish("off/0", QoS::AtLeastOnce, false, format!("{i}")).await.unwrap();
    }
    for i in n..n + 5 {
        let p = sub.publish_received(T).await;
        assert_eq!(String::from_utf8_lossy(&p.payload), i.to_string());
    }
    assert!(tokio::time::timeout(Duration::from_secs(1), sub.publish_received(T)).await.is_err(), "duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_subscriber_loses_nothing_when_its_broker_is_killed() {
    let kafka = KafkaServer::start();
    let mut b1 = BrokerProcess::start(&kafka);
    let b2 = BrokerProcess::start(&kafka);
    let persistent = |port| {
        let mut o = options(port, "k9-sub");
        o.set_clean_session(false);
        o
    };
    let mut sub = Client::connect(persistent(b1.port)).await;
    sub.subscribe("k9/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(options(b2.port, "k9-pub")).await;
    let n: i64 = 2000;
    let send = tokio::spawn(async move {
        for i in 0..n {
            publisher.client.publish(format!("k9/{}", i % 4), QoS::AtLeastOnce, false, format!("{i}")).await.unwrap();
            if i % 100 == 99 {
                // Spread the stream over time so the kill lands in the middle of it.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        for _ in 0..n {
            publisher.next(T, |e| matches!(e, rumqttc::Packet::PubAck(_)).then_some(())).await;
        }
    });
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 500 {
        let p = sub.publish_received(T).await;
        seen.insert(String::from_utf8_lossy(&p.payload).parse::<i64>().unwrap());
    }
    b1.kill9();
    drop(sub);
    let mut sub = Client::connect(persistent(b2.port)).await;
    assert!(sub.connack.session_present, "the session survives its broker");
    let mut last = [-1i64; 4];
    while seen.len() < n as usize {
        let p = sub.publish_received(T).await;
        let i: i64 = String::from_utf8_lossy(&p.payload).parse().unwrap();
        let t = (i % 4) as usize;
        // At least once: a message may come again after the crash, but never out of order
        // relative to what this connection already got.
        assert!(i > last[t] || seen.contains(&i), "k9/{t}: new message {i} after {}", last[t]);
        last[t] = last[t].max(i);
        seen.insert(i);
    }
    send.await.unwrap();
    assert_eq!(seen.len(), n as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_persistent_subscriber_gets_everything_its_queue_could_not_hold() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let addr = b.addr();
    let mut slow = tokio::task::spawn_blocking(move || {
        let mut c = RawClient::connect(&addr, "slow", false)?;
        c.subscribe("slow/#", RawQoS::AtLeastOnce)?;
        std::io::Result::Ok(c)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e}"));
    // Far more than the 1,000-message queue plus the socket buffers, while it does not read.
    let n = 3000;
    let payload = |i: usize| format!("{i:08}{}", "x".repeat(8 * 1024));
    let mut publisher = Client::connect(options(b.port, "fast-pub")).await;
    for i in 0..n {
        publisher.client.publish("slow/x", QoS::AtLeastOnce, false, payload(i)).await.unwrap();
    }
    for _ in 0..n {
        publisher.next(T, |e| matches!(e, rumqttc::Packet::PubAck(_)).then_some(())).await;
    }
    let deferred = b.metric("tributary_deliveries_deferred_total").unwrap_or(0.0);
    assert!(deferred > 0.0, "the queue should have refused some");

    let got = tokio::task::spawn_blocking(move || {
        let mut receiver = Receiver::default();
        let mut got = Vec::new();
        while got.len() < n {
            let p = slow.recv().unwrap_or_else(|e| panic!("{e}"));
            if let Some(payload) = receiver.handle(&mut slow, p).unwrap_or_else(|e| panic!("{e}")) {
                got.push(String::from_utf8_lossy(&payload[..8]).parse::<usize>().unwrap());
            }
        }
        got
    })
    .await
    .unwrap();
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "every message, once, in order");
}
