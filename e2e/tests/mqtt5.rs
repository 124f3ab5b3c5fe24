//! MQTT 5 features end to end with a real MQTT 5 client (rumqttc v5): CONNACK properties,
//! assigned client ids, subscription identifiers, no-local, retain-as-published, topic aliases,
//! user properties and message expiry, in both directions through Kafka.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;
use std::time::Duration;
use tributary_e2e::kafka::{produce, read_topic};
use tributary_e2e::mqtt5::{filter, options5, Client5};
use tributary_e2e::procs::BrokerOptions;
use tributary_e2e::{BrokerProcess, KafkaServer};

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_announces_limits_and_assigns_a_client_id() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let c = Client5::connect(options5(b.port, "")).await;
    let props = c.connack.properties.clone().expect("CONNACK properties");
    assert!(props.assigned_client_identifier.is_some_and(|id| !id.is_empty()), "assigned client id");
    assert_eq!(props.receive_max, Some(32));
    assert_eq!(props.topic_alias_max, Some(16));
    assert_eq!(props.shared_subscription_available, Some(1));
    assert_eq!(props.subscription_identifiers_available, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_options_identifiers_and_properties_round_trip() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let mut sub = Client5::connect(options5(b.port, "s5")).await;
    sub.subscribe(filter("v5/#", QoS::AtLeastOnce, false, false), Some(7)).await;
    sub.subscribe(filter("v5/r/#", QoS::AtLeastOnce, false, true), Some(9)).await;
    let mut publisher = Client5::connect(options5(b.port, "p5")).await;

    let props = PublishProperties {
        content_type: Some("application/json".into()),
        response_topic: Some("replies/p5".into()),
        correlation_data: Some(Bytes::from_static(b"\x01\x02")),
        message_expiry_interval: Some(100),
        user_properties: vec![("k".into(), "v".into())],
        ..Default::default()
    };
    publisher.client.publish_with_properties("v5/t", QoS::AtLeastOnce, false, "{}", props).await.unwrap();
    publisher.puback().await;
    let got = sub.publish_received(T).await;
    let p = got.properties.expect("properties");
    assert_eq!(p.subscription_identifiers, [7]);
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(p.response_topic.as_deref(), Some("replies/p5"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"\x01\x02"[..]));
    assert_eq!(p.user_properties, [("k".to_string(), "v".to_string())]);
    assert!(p.message_expiry_interval.is_some_and(|e| (95..=100).contains(&e)), "{:?}", p.message_expiry_interval);

    // Two matching subscriptions: one delivery, both identifiers, and the RETAIN flag kept
    // because one of them asked for retain-as-published.
    publisher.client.publish("v5/r/1", QoS::AtLeastOnce, true, "kept").await.unwrap();
    let got = sub.publish_received(T).await;
    let mut ids = got.properties.expect("properties").subscription_identifiers;
    ids.sort();
    assert_eq!(ids, [7, 9]);
    assert!(got.retain, "retain-as-published");
    assert!(tokio::time::timeout(Duration::from_secs(1), sub.publish_received(T)).await.is_err(), "delivered twice");

    // Topic alias: the second PUBLISH carries only the alias.
    let alias = |n| PublishProperties { topic_alias: Some(n), ..Default::default() };
    publisher.client.publish_with_properties("v5/alias", QoS::AtLeastOnce, false, "1", alias(1)).await.unwrap();
    publisher.client.publish_with_properties("", QoS::AtLeastOnce, false, "2", alias(1)).await.unwrap();
    for n in ["1", "2"] {
        let got = sub.publish_received(T).await;
        assert_eq!((&got.topic[..], &got.payload[..]), (&b"v5/alias"[..], n.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_suppresses_only_the_subscribers_own_messages() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let mut me = Client5::connect(options5(b.port, "me")).await;
    me.subscribe(filter("chat/#", QoS::AtLeastOnce, true, false), None).await;
    let other = Client5::connect(options5(b.port, "other")).await;
    me.client.publish("chat/1", QoS::AtLeastOnce, false, "mine").await.unwrap();
    other.client.publish("chat/1", QoS::AtLeastOnce, false, "theirs").await.unwrap();
    let got = me.publish_received(T).await;
    assert_eq!(&got.payload[..], b"theirs");
    assert!(
        tokio::time::timeout(Duration::from_secs(1), me.publish_received(T)).await.is_err(),
        "own message came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_headers_become_properties_and_expired_records_are_not_delivered() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let mut sub = Client5::connect(options5(b.port, "k5")).await;
    sub.subscribe(filter("cmd/#", QoS::AtLeastOnce, false, false), None).await;
    produce(&kafka.bootstrap, "mqtt-messages", "cmd/old", b"stale", &[("mqtt.expires-at", "1000")]).await;
    produce(&kafka.bootstrap, "mqtt-messages", "cmd/new", b"go", &[("traceparent", "00-ab-cd-01"), ("mqtt.qos", "1")])
        .await;
    let got = sub.publish_received(T).await;
    assert_eq!(&got.topic[..], b"cmd/new", "the expired record must be skipped");
    let p = got.properties.expect("properties");
    assert_eq!(p.user_properties, [("traceparent".to_string(), "00-ab-cd-01".to_string())]);
    let bootstrap = kafka.bootstrap.clone();
    let both = tokio::task::spawn_blocking(move || read_topic(&bootstrap, "mqtt-messages", 2, T)).await.unwrap();
    assert_eq!(both.len(), 2, "both records are in Kafka; only delivery skips the expired one");
}

/// Publishes `payloads` to `topic` at QoS 1, each acknowledged (in Kafka) before the next.
async fn publish_acked(publisher: &mut Client5, topic: &str, payloads: impl IntoIterator<Item = String>) {
    for p in payloads {
        publisher.client.publish(topic, QoS::AtLeastOnce, false, p).await.unwrap();
        publisher.puback().await;
    }
}

/// The payloads of the next `n` PUBLISHes.
async fn received(c: &mut Client5, n: usize) -> Vec<String> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        got.push(String::from_utf8_lossy(&c.publish_received(T).await.payload).into_owned());
    }
    got
}

fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewinding_subscription_replays_from_a_time_then_goes_on_live_without_duplicates() {
    use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode;
    let kafka = KafkaServer::start();
    let opts = BrokerOptions { limits: vec![("maxRewindSeconds".into(), "3600".into())], ..Default::default() };
    let b = BrokerProcess::start_with(&kafka, &opts);
    let mut publisher = Client5::connect(options5(b.port, "rw-pub")).await;
    let batch = |name: &str, n: usize| (0..n).map(move |i| format!("{name}{i}")).collect::<Vec<_>>();
    // One MQTT topic: one Kafka partition, so one order to check.
    publish_acked(&mut publisher, "rw/t", batch("a", 5)).await;
    // Records stamped until now are before the rewind's time; the next ones after it.
    let between = now_ms();
    while now_ms() <= between {
        tokio::task::yield_now().await;
    }
    publish_acked(&mut publisher, "rw/t", batch("b", 5)).await;

    let rewind = |v: &str| vec![("tributary-rewind".to_string(), v.to_string())];
    let mut from_time = Client5::connect(options5(b.port, "rw-time")).await;
    let ack = from_time
        .subscribe_with(filter("rw/#", QoS::AtLeastOnce, false, false), rewind(&(between + 1).to_string()))
        .await;
    assert_eq!(ack.return_codes, [SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    // Live messages right behind the SUBACK: while the replay still runs, the mailbox holds
    // them, and what both the replay and the live tailer read is delivered once.
    publish_acked(&mut publisher, "rw/t", batch("c", 5)).await;
    let mut want = batch("b", 5);
    want.extend(batch("c", 5));
    assert_eq!(received(&mut from_time, 10).await, want, "replay from the time, in order, then live");

    // A duration back from now: everything above; then a marker shows nothing came twice.
    let mut from_duration = Client5::connect(options5(b.port, "rw-duration")).await;
    let ack = from_duration.subscribe_with(filter("rw/#", QoS::AtMostOnce, false, false), rewind("PT1H")).await;
    assert_eq!(ack.return_codes, [SubscribeReasonCode::Success(QoS::AtMostOnce)]);
    publish_acked(&mut publisher, "rw/t", ["end".to_string()]).await;
    let mut want = batch("a", 5);
    want.extend(batch("b", 5));
    want.extend(batch("c", 5));
    want.push("end".into());
    assert_eq!(received(&mut from_duration, 16).await, want, "PT1H replays everything, QoS 0 included");
    publish_acked(&mut publisher, "rw/t", ["after".to_string()]).await;
    let next = from_time.publish_received(T).await;
    assert_eq!(next.payload, "end", "the first subscriber got no duplicate");
    let next = from_duration.publish_received(T).await;
    assert_eq!(next.payload, "after", "the second subscriber got no duplicate");

    // Beyond the limit: refused with a reason, and no subscription made.
    let mut too_far = Client5::connect(options5(b.port, "rw-far")).await;
    let ack = too_far.subscribe_with(filter("rw/#", QoS::AtLeastOnce, false, false), rewind("PT2H")).await;
    assert_eq!(ack.return_codes, [SubscribeReasonCode::ImplementationSpecific]);
    let why = ack.properties.and_then(|p| p.reason_string).unwrap_or_default();
    assert!(why.contains("maxRewindSeconds"), "reason string names the limit: {why:?}");
    let ack = too_far.subscribe_with(filter("rw/#", QoS::AtLeastOnce, false, false), rewind("yesterday")).await;
    assert_eq!(ack.return_codes, [SubscribeReasonCode::ImplementationSpecific]);
}
