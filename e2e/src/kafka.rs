//! Reading and writing Kafka directly with rdkafka, the way a Kafka application would, plus a
//! tiny HTTP GET for the admin endpoint.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A record as read back from Kafka.
#[derive(Debug, Clone)]
pub struct Record {
    /// Key (the MQTT topic).
    pub key: Option<Vec<u8>>,
    /// Value (the payload).
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

impl Record {
    /// The first header named `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The key as text.
    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Reads `topic` from the beginning until `expected` records were seen or `timeout` passed,
/// returning what it read. Blocking: call from `spawn_blocking` in async tests.
pub fn read_topic(bootstrap: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "e2e-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap_or_else(|e| panic!("consumer: {e}"));
    let start = Instant::now();
    // The topic may not exist yet; retry metadata until it does.
    let partitions = loop {
        if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            let ps: Vec<i32> = md
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if !ps.is_empty() {
                break ps;
            }
        }
        if start.elapsed() > timeout {
            return Vec::new();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap_or_else(|e| panic!("assign: {e}"));
    }
    consumer.assign(&tpl).unwrap_or_else(|e| panic!("assign: {e}"));
    let mut out = Vec::new();
    while out.len() < expected && start.elapsed() < timeout {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
                .unwrap_or_default();
            out.push(Record {
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
                partition: m.partition(),
                offset: m.offset(),
            });
        }
    }
    out
}

/// Number of records in `topic`: the sum of its partitions' high watermarks (exact for a topic
/// that is not compacted). Blocking.
pub fn record_count(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap_or_else(|e| panic!("consumer: {e}"));
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap_or_else(|e| panic!("metadata: {e}"));
    md.topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("watermarks: {e}"))
                .1
        })
        .sum()
}

/// Produces one record the way a Kafka application would.
pub async fn produce(bootstrap: &str, topic: &str, key: &str, value: &[u8], headers: &[(&str, &str)]) {
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap_or_else(|e| panic!("producer: {e}"));
    let mut h = OwnedHeaders::new();
    for (k, v) in headers {
        h = h.insert(Header { key: k, value: Some(*v) });
    }
    producer
        .send(FutureRecord::to(topic).key(key).payload(value).headers(h), Duration::from_secs(10))
        .await
        .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
}

/// `GET path` over HTTP/1.0; returns the body.
pub fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}
