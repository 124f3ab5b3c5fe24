//! `/metrics`: the series operators read (connections by listener, CONNACKs by reason code,
//! messages by QoS, bytes, Kafka produce latency and consumer lag, subscriptions, retained
//! messages, take-overs) count what real clients did.

use rumqttc::QoS;
use std::time::Duration;
use tributary_broker::codec::ProtocolVersion;
use tributary_e2e::mqtt::{options, Client};
use tributary_e2e::raw::RawClient;
use tributary_e2e::{eventually, BrokerProcess, KafkaServer};

const T: Duration = Duration::from_secs(20);

/// Waits until `series` has `value` on `b`.
async fn until(b: &BrokerProcess, series: &str, value: f64) {
    eventually(&format!("{series} = {value}"), T, || (b.metric(series) == Some(value)).then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_messages_bytes_kafka_and_takeovers() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start(&kafka);
    let mut sub = Client::connect(options(b.port, "m-sub")).await;
    sub.subscribe("m/t", QoS::AtLeastOnce).await;
    let publisher = Client::connect(options(b.port, "m-pub")).await;
    publisher.client.publish("m/t", QoS::AtLeastOnce, true, "one").await.unwrap_or_else(|e| panic!("{e}"));
    publisher.client.publish("m/t", QoS::AtMostOnce, false, "two").await.unwrap_or_else(|e| panic!("{e}"));
    let got = [sub.publish_received(T).await, sub.publish_received(T).await];
    assert_eq!(got.iter().map(|p| p.qos).collect::<Vec<_>>(), [QoS::AtLeastOnce, QoS::AtMostOnce]);

    until(&b, "tributary_connections", 2.0).await;
    until(&b, "tributary_listener_connections{listener=\"mqtt\"}", 2.0).await;
    until(&b, "tributary_connects_total{code=\"0x00\"}", 2.0).await;
    until(&b, "tributary_messages_received_total{qos=\"1\"}", 1.0).await;
    until(&b, "tributary_messages_received_total{qos=\"0\"}", 1.0).await;
    until(&b, "tributary_messages_sent_total{qos=\"1\"}", 1.0).await;
    until(&b, "tributary_messages_sent_total{qos=\"0\"}", 1.0).await;
    until(&b, "tributary_subscriptions", 1.0).await;
    until(&b, "tributary_retained_messages", 1.0).await;
    let text = b.metrics();
    let value = |series: &str| tributary_e2e::procs::metric_value(&text, series).unwrap_or(0.0);
    assert!(value("tributary_bytes_received_total") > 0.0 && value("tributary_bytes_sent_total") > 0.0);
    assert!(value("tributary_kafka_produce_seconds_count") >= 1.0, "the QoS 1 publish was timed");
    assert!(value("tributary_kafka_produce_seconds_bucket{le=\"+Inf\"}") >= 1.0, "the histogram has buckets: {text}");
    let lags: Vec<&str> = text.lines().filter(|l| l.starts_with("tributary_kafka_consumer_lag{topic=")).collect();
    assert!(lags.len() >= 3, "the messages, retained and sessions topics report their lag: {lags:?}");

    // A refused CONNECT is counted by its reason code: protocol level 6 is answered with 0x84
    // (Unsupported Protocol Version).
    let mut raw = RawClient::dial(&b.addr(), ProtocolVersion::V5).unwrap_or_else(|e| panic!("{e}"));
    let level_6 = [0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 6, 2, 0, 60, 0, 0, 1, b'x'];
    raw.send_bytes(&level_6).unwrap_or_else(|e| panic!("{e}"));
    until(&b, "tributary_connects_total{code=\"0x84\"}", 1.0).await;

    // The same client id again takes the first connection over.
    let again = Client::connect(options(b.port, "m-sub")).await;
    until(&b, "tributary_takeovers_total", 1.0).await;

    // Every gauge of open things returns to zero once the clients are gone.
    publisher.abort();
    sub.abort();
    again.abort();
    drop(raw);
    until(&b, "tributary_connections", 0.0).await;
    until(&b, "tributary_listener_connections{listener=\"mqtt\"}", 0.0).await;
    until(&b, "tributary_subscriptions", 0.0).await;
}
