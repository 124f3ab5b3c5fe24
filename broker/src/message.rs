//! The broker's in-memory form of an application message, and its Kafka record format: both
//! directions of the conversion live here, next to the header names, so that the producer and
//! every reader (router, retained store, offline delivery) agree on one format.
//!
//! This format is how Kafka applications talk to devices, so it is deliberately plain:
//! key = MQTT topic (UTF-8), value = payload, and MQTT metadata in headers named `mqtt.*` with
//! textual values. Every header that is not in the `mqtt.` namespace is an MQTT 5 user property;
//! a user property whose own name starts with `mqtt.` is stored as `mqtt.user.<name>` so it cannot
//! be mistaken for broker metadata.

use bytes::Bytes;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::codec::{Properties, QoS};
use crate::kafka::record::{RecordRef, ToRecord};

/// QoS the message was published with (`0`, `1`, `2`).
pub(crate) const HEADER_QOS: &str = "mqtt.qos";
/// `true` when the publisher set the RETAIN flag.
pub(crate) const HEADER_RETAIN: &str = "mqtt.retain";
/// Client identifier of the MQTT publisher (absent for records from Kafka producers).
pub(crate) const HEADER_CLIENT_ID: &str = "mqtt.client-id";
/// MQTT 5 Content Type.
pub(crate) const HEADER_CONTENT_TYPE: &str = "mqtt.content-type";
/// MQTT 5 Payload Format Indicator (`0` bytes, `1` UTF-8).
pub(crate) const HEADER_PAYLOAD_FORMAT: &str = "mqtt.payload-format";
/// MQTT 5 Response Topic.
pub(crate) const HEADER_RESPONSE_TOPIC: &str = "mqtt.response-topic";
/// MQTT 5 Correlation Data (raw bytes).
pub(crate) const HEADER_CORRELATION_DATA: &str = "mqtt.correlation-data";
/// Absolute expiry time of the message in Unix milliseconds (from MQTT 5 Message Expiry Interval).
pub(crate) const HEADER_EXPIRES_AT: &str = "mqtt.expires-at";
/// Unique id of a QoS 2 publication of a persistent session: lets a broker that takes the
/// session over find out whether a retransmitted PUBLISH is already in Kafka.
pub const HEADER_PUBLISH_ID: &str = "mqtt.publish-id";
/// Prefix under which user properties named `mqtt.*` are stored.
const USER_ESCAPE_PREFIX: &str = "mqtt.user.";
const RESERVED_PREFIX: &str = "mqtt.";

/// QoS applied to records that carry no `mqtt.qos` header (written by plain Kafka producers):
/// the record is durable in Kafka, so subscribers that asked for QoS 1 get at-least-once delivery.
pub(crate) const DEFAULT_KAFKA_QOS: QoS = QoS::AtLeastOnce;

/// MQTT 5 properties that travel with an application message end to end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageProperties {
    /// Payload Format Indicator.
    pub payload_format: Option<u8>,
    /// Content Type.
    pub content_type: Option<String>,
    /// Response Topic (request/response pattern).
    pub response_topic: Option<String>,
    /// Correlation Data (request/response pattern).
    pub correlation_data: Option<Bytes>,
    /// Absolute expiry in Unix milliseconds; absolute so that it stays right however long the
    /// message waits in Kafka.
    pub expires_at_ms: Option<u64>,
    /// User properties, in order.
    pub user: Vec<(String, String)>,
}

/// An application message as it flows between MQTT clients and Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// MQTT topic name (the Kafka record key).
    pub topic: String,
    /// Payload (the Kafka record value).
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// RETAIN flag as published.
    pub retain: bool,
    /// Client id of the MQTT publisher, if it came from MQTT (needed for No Local).
    pub publisher: Option<String>,
    /// Id of a QoS 2 publication of a persistent session (see [`HEADER_PUBLISH_ID`]).
    pub publish_id: Option<String>,
    /// MQTT 5 properties carried along.
    pub properties: MessageProperties,
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl MessageProperties {
    /// Takes the message-related properties of a PUBLISH (or Will), turning the relative expiry
    /// interval into an absolute time.
    pub fn from_publish(props: &Properties, now_ms: u64) -> Self {
        MessageProperties {
            payload_format: props.payload_format_indicator,
            content_type: props.content_type.clone(),
            response_topic: props.response_topic.clone(),
            correlation_data: props.correlation_data.clone(),
            expires_at_ms: props.message_expiry_interval.map(|secs| now_ms.saturating_add(u64::from(secs) * 1000)),
            user: props.user_properties.clone(),
        }
    }

    /// Builds the PUBLISH properties for delivery at `now_ms`; `None` when the message expired.
    pub fn to_publish(&self, now_ms: u64) -> Option<Properties> {
        let message_expiry_interval = match self.expires_at_ms {
            Some(at) if at <= now_ms => return None,
            // Round up so a message is never reported as expiring sooner than it does.
            Some(at) => Some(u32::try_from((at - now_ms).div_ceil(1000)).unwrap_or(u32::MAX)),
            None => None,
        };
        Some(Properties {
            payload_format_indicator: self.payload_format,
            content_type: self.content_type.clone(),
            response_topic: self.response_topic.clone(),
            correlation_data: self.correlation_data.clone(),
            message_expiry_interval,
            user_properties: self.user.clone(),
            ..Properties::default()
        })
    }
}

impl Message {
    /// True when the message has an expiry that has passed.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.properties.expires_at_ms.is_some_and(|at| at <= now_ms)
    }

    /// Kafka headers for this message.
    pub fn to_headers(&self) -> OwnedHeaders {
        let qos = (self.qos as u8).to_string();
        let mut headers = OwnedHeaders::new_with_capacity(4 + self.properties.user.len())
            .insert(Header { key: HEADER_QOS, value: Some(qos.as_bytes()) })
            .insert(Header { key: HEADER_RETAIN, value: Some(if self.retain { &b"true"[..] } else { &b"false"[..] }) });
        if let Some(id) = &self.publisher {
            headers = headers.insert(Header { key: HEADER_CLIENT_ID, value: Some(id.as_bytes()) });
        }
        if let Some(id) = &self.publish_id {
            headers = headers.insert(Header { key: HEADER_PUBLISH_ID, value: Some(id.as_bytes()) });
        }
        let p = &self.properties;
        if let Some(v) = &p.content_type {
            headers = headers.insert(Header { key: HEADER_CONTENT_TYPE, value: Some(v.as_bytes()) });
        }
        if let Some(v) = p.payload_format {
            let v = v.to_string();
            headers = headers.insert(Header { key: HEADER_PAYLOAD_FORMAT, value: Some(v.as_bytes()) });
        }
        if let Some(v) = &p.response_topic {
            headers = headers.insert(Header { key: HEADER_RESPONSE_TOPIC, value: Some(v.as_bytes()) });
        }
        if let Some(v) = &p.correlation_data {
            headers = headers.insert(Header { key: HEADER_CORRELATION_DATA, value: Some(v.as_ref()) });
        }
        if let Some(v) = p.expires_at_ms {
            let v = v.to_string();
            headers = headers.insert(Header { key: HEADER_EXPIRES_AT, value: Some(v.as_bytes()) });
        }
        for (name, value) in &p.user {
            let key =
                if name.starts_with(RESERVED_PREFIX) { format!("{USER_ESCAPE_PREFIX}{name}") } else { name.clone() };
            headers = headers.insert(Header { key: &key, value: Some(value.as_bytes()) });
        }
        headers
    }

    /// Rebuilds a message from a record of a topic a tailer reads; like [`Message::from_record`],
    /// but a record that is no message is reported: only once, as the tailer reads it.
    pub(crate) fn from_tailed(record: RecordRef<'_>) -> Option<Message> {
        let msg = Message::from_record(record);
        if msg.is_none() {
            let RecordRef { topic, partition, offset, .. } = record;
            tracing::warn!(%topic, partition, offset, "skipping record whose key is not an MQTT topic name");
        }
        msg
    }

    /// Rebuilds a message from a Kafka record (a null value reads as an empty payload). `None`
    /// when the key is not a valid MQTT topic name: such a record cannot be addressed to any
    /// subscriber.
    pub fn from_record(record: RecordRef<'_>) -> Option<Message> {
        let topic = std::str::from_utf8(record.key?).ok()?;
        crate::topic::validate_topic_name(topic).ok()?;
        let mut msg = Message {
            topic: topic.to_owned(),
            payload: Bytes::copy_from_slice(record.value.unwrap_or_default()),
            qos: DEFAULT_KAFKA_QOS,
            retain: false,
            publisher: None,
            publish_id: None,
            properties: MessageProperties::default(),
        };
        let Some(headers) = record.headers else { return Some(msg) };
        for h in headers.iter() {
            let raw = h.value.unwrap_or_default();
            let text = || std::str::from_utf8(raw).ok().map(str::to_owned);
            let p = &mut msg.properties;
            match h.key {
                HEADER_QOS => {
                    if let Some(q) = text().and_then(|t| t.parse::<u8>().ok()).and_then(|q| QoS::try_from(q).ok()) {
                        msg.qos = q;
                    }
                }
                HEADER_RETAIN => msg.retain = raw == b"true",
                HEADER_CLIENT_ID => msg.publisher = text(),
                HEADER_PUBLISH_ID => msg.publish_id = text(),
                HEADER_CONTENT_TYPE => p.content_type = text(),
                HEADER_PAYLOAD_FORMAT => p.payload_format = text().and_then(|t| t.parse().ok()),
                HEADER_RESPONSE_TOPIC => {
                    p.response_topic = text().filter(|t| crate::topic::validate_topic_name(t).is_ok())
                }
                HEADER_CORRELATION_DATA => p.correlation_data = Some(Bytes::copy_from_slice(raw)),
                HEADER_EXPIRES_AT => p.expires_at_ms = text().and_then(|t| t.parse().ok()),
                key => {
                    let name = match key.strip_prefix(USER_ESCAPE_PREFIX) {
                        Some(name) => name,
                        // Unknown names in our namespace are metadata of a newer broker: skip.
                        None if key.starts_with(RESERVED_PREFIX) => continue,
                        None => key,
                    };
                    if let Some(v) = text() {
                        p.user.push((name.to_owned(), v));
                    }
                }
            }
        }
        Some(msg)
    }
}

/// The producer's view of a message: key = MQTT topic, value = payload, `mqtt.*` headers.
impl ToRecord for Message {
    fn record_key(&self) -> &[u8] {
        self.topic.as_bytes()
    }

    fn record_value(&self) -> &[u8] {
        &self.payload
    }

    fn record_headers(&self) -> OwnedHeaders {
        self.to_headers()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(key: Option<&'a [u8]>, value: Option<&'a [u8]>, headers: Option<&'a OwnedHeaders>) -> RecordRef<'a> {
        RecordRef { topic: "t", partition: 0, offset: 0, key, value, headers: headers.map(OwnedHeaders::as_borrowed) }
    }

    fn sample() -> Message {
        Message {
            topic: "cars/speed/1".into(),
            payload: Bytes::from_static(b"88"),
            qos: QoS::ExactlyOnce,
            retain: true,
            publisher: Some("car-1".into()),
            publish_id: Some("car-1:7:1".into()),
            properties: MessageProperties {
                payload_format: Some(1),
                content_type: Some("text/plain".into()),
                response_topic: Some("replies/car-1".into()),
                correlation_data: Some(Bytes::from_static(&[0, 1, 2])),
                expires_at_ms: Some(1_900_000_000_000),
                user: vec![("trace".into(), "abc".into()), ("mqtt.qos".into(), "spoof".into())],
            },
        }
    }

    #[test]
    fn headers_round_trip_all_fields() {
        let msg = sample();
        let headers = msg.to_headers();
        let back = Message::from_record(record(Some(msg.topic.as_bytes()), Some(&msg.payload), Some(&headers)));
        assert_eq!(back, Some(msg));
    }

    #[test]
    fn user_property_in_reserved_namespace_is_escaped() {
        let headers = sample().to_headers();
        let keys: Vec<&str> = headers.iter().map(|h| h.key).collect();
        assert!(keys.contains(&"mqtt.user.mqtt.qos"));
        assert_eq!(keys.iter().filter(|k| **k == HEADER_QOS).count(), 1);
    }

    #[test]
    fn plain_kafka_record_gets_defaults() {
        let msg = Message::from_record(record(Some(b"a/b"), Some(b"x"), None)).unwrap();
        assert_eq!(msg.qos, DEFAULT_KAFKA_QOS);
        assert!(!msg.retain);
        assert_eq!(msg.publisher, None);
    }

    #[test]
    fn invalid_keys_are_rejected() {
        assert!(Message::from_record(record(None, Some(b"x"), None)).is_none());
        assert!(Message::from_record(record(Some(b"a/+"), Some(b"x"), None)).is_none());
        assert!(Message::from_record(record(Some(&[0xff]), Some(b"x"), None)).is_none());
    }

    #[test]
    fn expiry_is_absolute_and_counts_down() {
        let props = Properties { message_expiry_interval: Some(10), ..Properties::default() };
        let mp = MessageProperties::from_publish(&props, 1_000_000);
        assert_eq!(mp.expires_at_ms, Some(1_010_000));
        assert_eq!(mp.to_publish(1_004_500).and_then(|p| p.message_expiry_interval), Some(6));
        assert!(mp.to_publish(1_010_000).is_none());
    }
}
