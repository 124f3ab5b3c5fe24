//! The publisher alone decides where a record lands, and a placed publication keeps its place:
//! a QoS 2 intent stores the Kafka topic and partition of its record before the record is
//! produced, and the exactly-once recovery searches exactly there. A mapping reload between the
//! intent and the produce must not send the record to the topic the new mapping names.

use bytes::Bytes;
use std::time::Duration;

use tributary_broker::codec::QoS;
use tributary_broker::config::Config;
use tributary_broker::Broker;
use tributary_broker::TopicMapping;
use tributary_broker::{Message, MessageProperties};
use tributary_e2e::kafka::{read_topic, record_count};
use tributary_e2e::KafkaServer;

const T: Duration = Duration::from_secs(20);

fn message(topic: &str) -> Message {
    Message {
        topic: topic.into(),
        payload: Bytes::from_static(b"placed"),
        qos: QoS::ExactlyOnce,
        retain: false,
        publisher: Some("placement-test".into()),
        publish_id: Some("placement-test:1:1".into()),
        properties: MessageProperties::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_publication_lands_where_it_was_placed_after_a_mapping_reload() {
    let kafka = KafkaServer::start();
    let yaml = format!(
        "kafka: {{ bootstrapServers: '{}', properties: {{ {} }} }}
topics:
  partitions: 3
  default: placed-default
  retained: placed-retained
  sessions: placed-sessions
  mappings:
    - {{ kafkaTopic: placed-cars, mqttTopics: ['cars/#'] }}",
        kafka.bootstrap,
        tributary_e2e::TANSU_FETCH
    );
    let config = Config::from_yaml_str(&yaml).expect("config");
    let broker = Broker::start(config).await.expect("broker starts");
    let publisher = &broker.publisher;
    let msg = message("cars/17/speed");

    let placement = publisher.place(&msg).await.expect("placed");
    assert_eq!(placement.topic, "placed-cars");

    // The reload: from now on `cars/#` goes to the default topic.
    publisher.set_mapping(TopicMapping::new(Vec::new(), "placed-default".into()).expect("mapping"));
    assert_eq!(publisher.place(&msg).await.expect("placed again").topic, "placed-default", "reload applied");

    let ack = publisher.publish_placed(msg, &placement).await.expect("enqueued");
    let delivered = tokio::time::timeout(T, ack).await.expect("acknowledged in time").expect("acknowledged");
    assert_eq!(delivered.partition, placement.partition, "the stored partition");

    let bootstrap = kafka.bootstrap.clone();
    let records = tokio::task::spawn_blocking(move || read_topic(&bootstrap, "placed-cars", 1, T)).await.expect("read");
    assert_eq!(records.len(), 1, "the record is in the topic the intent names");
    assert_eq!((records[0].partition, records[0].offset), (delivered.partition, delivered.offset));
    assert_eq!(records[0].header("mqtt.publish-id").as_deref(), Some("placement-test:1:1"));
    let bootstrap = kafka.bootstrap.clone();
    let stray = tokio::task::spawn_blocking(move || record_count(&bootstrap, "placed-default")).await.expect("count");
    assert_eq!(stray, 0, "nothing went where the new mapping points");
}
