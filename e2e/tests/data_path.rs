//! The data path through Kafka: two brokers, the record format, the topic mapping, and records
//! produced by plain Kafka producers reaching MQTT subscribers.

use rumqttc::QoS;
use std::time::Duration;
use tributary_e2e::kafka::{produce, read_topic};
use tributary_e2e::mqtt::{options, Client};
use tributary_e2e::procs::BrokerOptions;
use tributary_e2e::{BrokerProcess, KafkaServer};

const T: Duration = Duration::from_secs(20);

fn mapping_example() -> BrokerOptions {
    BrokerOptions {
        mappings: vec![("k1".into(), vec!["cars/speed/+".into()]), ("k2".into(), vec!["cars/#".into()])],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_on_broker_1_receives_what_a_publisher_on_broker_2_sent() {
    let kafka = KafkaServer::start();
    let b1 = BrokerProcess::start(&kafka);
    let b2 = BrokerProcess::start(&kafka);
    let mut sub = Client::connect(options(b1.port, "sub")).await;
    assert_eq!(sub.subscribe("sensors/+/temp", QoS::AtLeastOnce).await.len(), 1);
    let publisher = Client::connect(options(b2.port, "pub")).await;
    for i in 0..20 {
        publisher
            .client
            .publish(format!("sensors/{}/temp", i % 2), QoS::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    // Per-topic order is kept: each sensor's readings arrive in the order sent.
    let mut last = [-1i32; 2];
    for _ in 0..20 {
        let p = sub.publish_received(T).await;
        let sensor = if p.topic == "sensors/0/temp" { 0 } else { 1 };
        let n: i32 = String::from_utf8_lossy(&p.payload).parse().unwrap();
        assert!(n > last[sensor], "out of order: {n} after {}", last[sensor]);
        last[sensor] = n;
        assert_eq!(p.qos, QoS::AtLeastOnce);
    }
    assert_eq!(last, [18, 19]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_land_in_the_mapped_kafka_topics_with_key_value_and_headers() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start_with(&kafka, &mapping_example());
    let port = b.port.to_string();
    for topic in ["cars/speed/1", "cars/location/1", "cars/speed/1/2", "trains/speed/1"] {
        let status = std::process::Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                "mqttv5",
                "-q",
                "1",
                "-i",
                "car-7",
                "-t",
                topic,
                "-m",
                &format!("v-{topic}"),
            ])
            .args(["-D", "publish", "content-type", "text/plain"])
            .args(["-D", "publish", "user-property", "trace", "t-1"])
            .args(["-D", "publish", "response-topic", "replies/car-7"])
            .args(["-D", "publish", "correlation-data", "c0ffee"])
            .args(["-D", "publish", "message-expiry-interval", "3600"])
            .args(["-D", "publish", "payload-format-indicator", "1"])
            .status()
            .expect("mosquitto_pub (install mosquitto-clients)");
        assert!(status.success(), "mosquitto_pub failed for {topic}");
    }
    let bootstrap = kafka.bootstrap.clone();
    let (k1, k2, d) = tokio::task::spawn_blocking(move || {
        (
            read_topic(&bootstrap, "k1", 1, T),
            read_topic(&bootstrap, "k2", 2, T),
            read_topic(&bootstrap, "mqtt-messages", 1, T),
        )
    })
    .await
    .unwrap();
    let keys = |rs: &[tributary_e2e::kafka::Record]| {
        let mut k: Vec<String> = rs.iter().map(|r| r.key_str()).collect();
        k.sort();
        k
    };
    assert_eq!(keys(&k1), ["cars/speed/1"]);
    assert_eq!(keys(&k2), ["cars/location/1", "cars/speed/1/2"]);
    assert_eq!(keys(&d), ["trains/speed/1"]);
    let r = &k1[0];
    assert_eq!(r.value.as_deref(), Some(&b"v-cars/speed/1"[..]));
    assert_eq!(r.header("mqtt.qos").as_deref(), Some("1"));
    assert_eq!(r.header("mqtt.retain").as_deref(), Some("false"));
    assert_eq!(r.header("mqtt.client-id").as_deref(), Some("car-7"));
    assert_eq!(r.header("mqtt.content-type").as_deref(), Some("text/plain"));
    assert_eq!(r.header("mqtt.payload-format").as_deref(), Some("1"));
    assert_eq!(r.header("mqtt.response-topic").as_deref(), Some("replies/car-7"));
    assert_eq!(r.header("mqtt.correlation-data").as_deref(), Some("c0ffee"));
    assert_eq!(r.header("trace").as_deref(), Some("t-1"));
    let expires: u64 = r.header("mqtt.expires-at").and_then(|v| v.parse().ok()).expect("expiry header");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(expires > now + 3_500_000 && expires <= now + 3_600_000, "absolute expiry about an hour ahead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_produced_by_a_kafka_application_reach_mqtt_subscribers() {
    let kafka = KafkaServer::start();
    let b = BrokerProcess::start_with(&kafka, &mapping_example());
    let mut speed = Client::connect(options(b.port, "speed")).await;
    speed.subscribe("cars/speed/+", QoS::AtLeastOnce).await;
    let mut all = Client::connect(options(b.port, "all")).await;
    all.subscribe("cars/#", QoS::AtMostOnce).await;
    produce(&kafka.bootstrap, "k1", "cars/speed/9", b"120", &[("mqtt.qos", "1")]).await;
    produce(&kafka.bootstrap, "k2", "cars/door/9", b"open", &[]).await;
    let p = speed.publish_received(T).await;
    assert_eq!((p.topic.as_str(), &p.payload[..], p.qos), ("cars/speed/9", &b"120"[..], QoS::AtLeastOnce));
    let mut got = [all.publish_received(T).await, all.publish_received(T).await];
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_eq!(got[0].topic, "cars/door/9");
    assert_eq!(got[0].qos, QoS::AtMostOnce, "delivered QoS is min(published, granted)");
    assert_eq!(got[1].topic, "cars/speed/9");
}
