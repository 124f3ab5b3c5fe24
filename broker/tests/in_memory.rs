//! The client state machine, QoS flows, offline delivery and take-over, tested in-process: real
//! brokers on one in-memory log (as pods on one Kafka cluster), MQTT packets through the broker's
//! own codec over in-memory streams. Fast and deterministic; the same behaviour is tested against
//! a Kafka-protocol server in `e2e/`.

use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use tributary_broker::codec::{
    decode, encode, reason, ConnAck, Connect, Disconnect, Packet, ProtocolVersion, PubResp, Publish, QoS, Subscribe,
    SubscriptionOptions,
};
use tributary_broker::config::Config;
use tributary_broker::Broker;
use tributary_broker::{shutdown_channel, Shutdown, ShutdownTrigger};
use tributary_broker::{MemoryLog, TopicMapping};

const T: Duration = Duration::from_secs(10);
const MESSAGES: &str = "mqtt-messages";

/// A broker process on a shared log.
struct Pod {
    broker: Arc<Broker>,
    shutdown: Shutdown,
    _trigger: ShutdownTrigger,
}

async fn pod(log: &MemoryLog) -> Pod {
    pod_with(log, "").await
}

/// A broker whose `topics` section also has `topics` (YAML lines indented by four spaces).
async fn pod_with(log: &MemoryLog, topics: &str) -> Pod {
    let yaml = format!("kafka: {{ bootstrapServers: 'in-memory:9092' }}\ntopics:\n    partitions: 2\n{topics}");
    let config = Config::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("config: {e}"));
    let broker = Broker::start_on(config, Arc::new(log.clone())).await.unwrap_or_else(|e| panic!("start: {e}"));
    let (trigger, shutdown) = shutdown_channel();
    Pod { broker, shutdown, _trigger: trigger }
}

/// An MQTT 3.1.1 client on an in-memory stream to a broker's connection task.
struct TestClient {
    io: DuplexStream,
    buf: BytesMut,
}

impl TestClient {
    async fn connect(pod: &Pod, id: &str, clean: bool) -> (TestClient, ConnAck) {
        let (io, server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(tributary_broker::serve(server, Box::default(), pod.broker.clone(), pod.shutdown.clone()));
        let mut c = TestClient { io, buf: BytesMut::new() };
        c.send(&Packet::Connect(Connect {
            protocol: ProtocolVersion::V311,
            clean_start: clean,
            keep_alive: 0,
            client_id: id.into(),
            will: None,
            username: None,
            password: None,
            properties: Default::default(),
        }))
        .await;
        match c.recv().await {
            Some(Packet::ConnAck(ack)) => (c, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    async fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        encode(p, ProtocolVersion::V311, &mut out).unwrap_or_else(|e| panic!("encode: {e}"));
        self.io.write_all(&out).await.unwrap_or_else(|e| panic!("write: {e}"));
    }

    /// The next packet, or `None` when the broker closed the connection.
    async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(T, async {
            loop {
                if let Some(p) = decode(&mut self.buf, Some(ProtocolVersion::V311), u32::MAX)
                    .unwrap_or_else(|e| panic!("decode: {e}"))
                {
                    return Some(p);
                }
                let mut chunk = [0u8; 4096];
                match self.io.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no packet within {T:?}"))
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        let options = SubscriptionOptions { qos, ..Default::default() };
        let filters = vec![(filter.into(), options)];
        self.send(&Packet::Subscribe(Subscribe { packet_id: 1, properties: Default::default(), filters })).await;
        assert!(matches!(self.recv().await, Some(Packet::SubAck(_))), "SUBACK");
    }

    async fn publish(&mut self, topic: &str, payload: &'static [u8], qos: QoS, packet_id: Option<u16>, dup: bool) {
        self.send(&Packet::Publish(Publish {
            dup,
            qos,
            retain: false,
            topic: topic.into(),
            packet_id,
            properties: Default::default(),
            payload: Bytes::from_static(payload),
        }))
        .await;
    }

    /// The next PUBLISH, acknowledged when QoS 1.
    async fn received(&mut self) -> Publish {
        match self.recv().await {
            Some(Packet::Publish(p)) => {
                if let (QoS::AtLeastOnce, Some(id)) = (p.qos, p.packet_id) {
                    self.send(&Packet::PubAck(ack(id))).await;
                }
                p
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}

fn ack(packet_id: u16) -> PubResp {
    PubResp { packet_id, reason: reason::SUCCESS, properties: Default::default() }
}

#[tokio::test]
async fn qos1_is_acknowledged_once_the_log_has_it_and_reaches_subscribers() {
    let log = MemoryLog::new();
    let pod = pod(&log).await;
    let (mut sub, _) = TestClient::connect(&pod, "sub", true).await;
    sub.subscribe("cars/#", QoS::AtLeastOnce).await;
    let (mut publisher, _) = TestClient::connect(&pod, "pub", true).await;
    publisher.publish("cars/7/speed", b"88", QoS::AtLeastOnce, Some(7), false).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubAck(r)) if r.packet_id == 7));
    let records = log.records(MESSAGES);
    assert_eq!(records.len(), 1, "in the log before PUBACK");
    assert_eq!(records[0].key.as_deref(), Some(&b"cars/7/speed"[..]), "key = MQTT topic");
    let got = sub.received().await;
    assert_eq!((got.topic.as_str(), &got.payload[..], got.qos), ("cars/7/speed", &b"88"[..], QoS::AtLeastOnce));
}

#[tokio::test]
async fn a_qos2_retransmission_is_answered_without_a_second_record() {
    let log = MemoryLog::new();
    let pod = pod(&log).await;
    let (mut c, _) = TestClient::connect(&pod, "q2", true).await;
    c.publish("m/1", b"once", QoS::ExactlyOnce, Some(3), false).await;
    assert!(matches!(c.recv().await, Some(Packet::PubRec(r)) if r.packet_id == 3));
    c.publish("m/1", b"once", QoS::ExactlyOnce, Some(3), true).await;
    assert!(matches!(c.recv().await, Some(Packet::PubRec(r)) if r.packet_id == 3), "PUBREC again");
    c.send(&Packet::PubRel(ack(3))).await;
    assert!(matches!(c.recv().await, Some(Packet::PubComp(r)) if r.packet_id == 3 && r.reason == reason::SUCCESS));
    assert_eq!(log.records(MESSAGES).len(), 1, "exactly once in the log");
    // After PUBCOMP the packet id is free: the same id is a new message.
    c.publish("m/1", b"twice", QoS::ExactlyOnce, Some(3), false).await;
    assert!(matches!(c.recv().await, Some(Packet::PubRec(r)) if r.packet_id == 3));
    assert_eq!(log.records(MESSAGES).len(), 2);
}

#[tokio::test]
async fn a_session_taken_over_on_another_broker_keeps_its_subscriptions() {
    let log = MemoryLog::new();
    let (a, b) = (pod(&log).await, pod(&log).await);
    let (mut first, ack) = TestClient::connect(&a, "truck-1", false).await;
    assert!(!ack.session_present);
    first.subscribe("fleet/#", QoS::AtLeastOnce).await;
    let (mut second, ack) = TestClient::connect(&b, "truck-1", false).await;
    assert!(ack.session_present, "the session moved to the second broker");
    assert!(first.recv().await.is_none(), "the first connection is closed (3.1.1: no DISCONNECT)");
    let (mut publisher, _) = TestClient::connect(&a, "dispatcher", true).await;
    publisher.publish("fleet/route", b"north", QoS::AtLeastOnce, Some(1), false).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
    assert_eq!(&second.received().await.payload[..], b"north", "delivered on the new broker");
}

#[tokio::test]
async fn messages_published_while_a_persistent_session_was_away_arrive_in_order() {
    let log = MemoryLog::new();
    let (a, b) = (pod(&log).await, pod(&log).await);
    let (mut c, _) = TestClient::connect(&a, "sensor-9", false).await;
    c.subscribe("alerts/+", QoS::AtLeastOnce).await;
    c.send(&Packet::Disconnect(Disconnect { reason: reason::SUCCESS, properties: Default::default() })).await;
    assert!(c.recv().await.is_none());
    let (mut publisher, _) = TestClient::connect(&a, "alarm", true).await;
    for (i, payload) in [&b"1"[..], b"2", b"3"].into_iter().enumerate() {
        let id = u16::try_from(i + 1).unwrap_or(1);
        publisher
            .send(&Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: "alerts/fire".into(),
                packet_id: Some(id),
                properties: Default::default(),
                payload: Bytes::copy_from_slice(payload),
            }))
            .await;
        assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
    }
    let (mut back, ack) = TestClient::connect(&b, "sensor-9", false).await;
    assert!(ack.session_present);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(back.received().await.payload.to_vec());
    }
    assert_eq!(got, [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()], "read back from the log, in order");
}

#[tokio::test]
async fn a_qos2_publication_moved_to_another_broker_mid_flow_is_produced_once() {
    let log = MemoryLog::new();
    let (a, b) = (pod(&log).await, pod(&log).await);
    let (mut c, _) = TestClient::connect(&a, "meter-4", false).await;
    c.publish("meters/4", b"kWh", QoS::ExactlyOnce, Some(5), false).await;
    assert!(matches!(c.recv().await, Some(Packet::PubRec(r)) if r.packet_id == 5));
    // The client never saw PUBREC (say) and retransmits to another broker after a take-over.
    let (mut moved, connack) = TestClient::connect(&b, "meter-4", false).await;
    assert!(connack.session_present);
    moved.publish("meters/4", b"kWh", QoS::ExactlyOnce, Some(5), true).await;
    assert!(matches!(moved.recv().await, Some(Packet::PubRec(r)) if r.packet_id == 5), "found in the log");
    moved.send(&Packet::PubRel(ack(5))).await;
    assert!(matches!(moved.recv().await, Some(Packet::PubComp(r)) if r.reason == reason::SUCCESS));
    let records = log.records(MESSAGES);
    assert_eq!(records.len(), 1, "exactly once across the move");
    assert!(records[0].headers.iter().any(|(k, _)| k == "mqtt.publish-id"), "found by its publish id");
}

#[tokio::test]
async fn a_mapping_reload_between_a_qos2_intent_and_its_produce_does_not_move_the_record() {
    let log = MemoryLog::new();
    let rules = "    mappings:\n      - { kafkaTopic: cars, mqttTopics: ['cars/#'] }\n";
    let pod = pod_with(&log, rules).await;
    let (mut c, _) = TestClient::connect(&pod, "car-2", false).await;
    // The session state write that carries the intent waits: the record is placed, not produced.
    log.hold("mqtt-sessions");
    c.publish("cars/2/speed", b"90", QoS::ExactlyOnce, Some(11), false).await;
    tokio::time::timeout(T, async {
        while log.held_appends("mqtt-sessions") == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the intent was never saved"));
    // The reload: `cars/#` now goes to the default topic.
    pod.broker.publisher.set_mapping(TopicMapping::new(Vec::new(), MESSAGES.into()).unwrap_or_else(|e| panic!("{e}")));
    log.release("mqtt-sessions");
    assert!(matches!(c.recv().await, Some(Packet::PubRec(r)) if r.packet_id == 11));
    assert_eq!(log.records("cars").len(), 1, "produced where the stored intent says");
    assert!(log.records(MESSAGES).is_empty(), "not where the new mapping points");
}
