//! Editing the broker's config file while it runs: a new topic mapping reaches new publishes
//! without a restart, and an invalid edit is ignored (the broker keeps serving the previous one).

use rumqttc::{Packet, QoS};
use std::time::{Duration, Instant};
use tributary_broker::CONFIG_POLL_INTERVAL;
use tributary_e2e::kafka::{read_topic, Record};
use tributary_e2e::mqtt::{options, Client};
use tributary_e2e::procs::BrokerOptions;
use tributary_e2e::{BrokerProcess, KafkaServer};

const T: Duration = Duration::from_secs(20);

/// Publishes with QoS 1 and waits for the PUBACK: the record is then in Kafka.
async fn publish_acked(c: &mut Client, topic: &str, payload: &str) {
    c.client.publish(topic, QoS::AtLeastOnce, false, payload.to_owned()).await.unwrap();
    c.next(T, |p| matches!(p, Packet::PubAck(_)).then_some(())).await;
}

/// The keys of every record of `topic` that can be read within `timeout` (at most `expected`).
async fn keys(kafka: &KafkaServer, topic: &'static str, expected: usize, timeout: Duration) -> Vec<String> {
    let bootstrap = kafka.bootstrap.clone();
    let records = tokio::task::spawn_blocking(move || read_topic(&bootstrap, topic, expected, timeout)).await.unwrap();
    records.iter().map(Record::key_str).collect()
}

fn mapping(kafka_topic: &str, patterns: &[&str]) -> BrokerOptions {
    BrokerOptions {
        mappings: vec![(kafka_topic.into(), patterns.iter().map(|p| p.to_string()).collect())],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapping_edits_apply_without_restart_and_invalid_edits_are_ignored() {
    let kafka = KafkaServer::start();
    let broker = BrokerProcess::start(&kafka);
    let mut c = Client::connect(options(broker.port, "car")).await;

    publish_acked(&mut c, "cars/1", "before").await;
    assert_eq!(keys(&kafka, "mqtt-messages", 1, T).await, ["cars/1"]);

    // The broker polls the file; republish until a record shows up in the new topic.
    broker.rewrite_config(&mapping("cars", &["cars/#"]));
    let deadline = Instant::now() + T;
    loop {
        publish_acked(&mut c, "cars/2", "after").await;
        if keys(&kafka, "cars", 1, Duration::from_secs(1)).await == ["cars/2"] {
            break;
        }
        assert!(Instant::now() < deadline, "the new mapping was not applied within {T:?}");
    }

    // Invalid pattern: the whole file is refused, and `cars/#` keeps going to `cars` even
    // though the new file no longer maps it.
    broker.rewrite_config(&mapping("bad", &["a/#/b"]));
    tokio::time::sleep(CONFIG_POLL_INTERVAL * 2 + Duration::from_millis(500)).await;
    publish_acked(&mut c, "cars/3", "still mapped").await;
    let in_cars = keys(&kafka, "cars", usize::MAX, Duration::from_secs(5)).await;
    assert!(in_cars.iter().any(|k| k == "cars/3"), "cars/3 not in kafka topic cars: {in_cars:?}");
    let in_default = keys(&kafka, "mqtt-messages", usize::MAX, Duration::from_secs(3)).await;
    assert!(!in_default.iter().any(|k| k == "cars/3"), "cars/3 went to the default topic: {in_default:?}");

    // A client connecting now is served as usual.
    let mut late = Client::connect(options(broker.port, "late")).await;
    publish_acked(&mut late, "cars/4", "new client").await;
}
