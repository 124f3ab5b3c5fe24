//! The records of the sessions topic: keys, versioned JSON values, and the partition a client's
//! records go to.
//!
//! Two keys per client, both in the same partition (chosen by us, see [`partition_for`]):
//! `<client-id>#claim` ([`ClaimRecord`]: whose connection it is; the record's offset is the
//! epoch) and `<client-id>` ([`SessionState`]). One key per broker process, `<node>#node`
//! ([`NodeRecord`]): its heartbeat, so that others notice when it dies. A null value is a
//! tombstone. Values are JSON with
//! a version field `v`; fields added later carry `#[serde(default)]`, and unknown fields are
//! ignored, so older and newer brokers can share the topic during a rolling upgrade.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::codec::{QoS, SubscriptionOptions};
use crate::message::{Message, MessageProperties};

/// Suffix of claim keys. Client ids ending with it are refused at CONNECT, so that a state key
/// can never be mistaken for a claim key.
pub const CLAIM_SUFFIX: &str = "#claim";

/// Suffix of broker heartbeat keys; refused at the end of client ids for the same reason.
pub const NODE_SUFFIX: &str = "#node";

/// Version written in every value this broker produces.
pub const VERSION: u32 = 1;

/// Session Expiry Interval meaning "never" (MQTT 5 0xFFFFFFFF; MQTT 3.1.1 persistent sessions).
pub const NEVER_EXPIRES: u32 = u32::MAX;

/// Value of `<client-id>#claim`: a connection took the session. Its offset is the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    /// Format version.
    pub v: u32,
    /// The broker process that claimed (for operators; fencing uses the offset only).
    pub node: String,
    /// When, in Unix milliseconds (claims of sessions without state are removed after a while).
    pub at_ms: u64,
}

/// Value of `<node>#node`: a broker process is alive (written periodically) or has stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Format version.
    pub v: u32,
    /// When it was written, in Unix milliseconds.
    pub at_ms: u64,
    /// The process shut down cleanly: others take its sessions over at once.
    #[serde(default)]
    pub stopped: bool,
    /// Clients connected to the process when it was written (absent from older brokers), for
    /// rebalancing (see `crate::rebalance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
}

/// A Last Will as the session state stores it, so that it is published even when the broker
/// holding the connection dies, and after its Will Delay Interval on any broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredWill {
    /// Will topic.
    pub topic: String,
    /// Will payload (base64 in JSON).
    #[serde(with = "base64_bytes")]
    pub payload: Bytes,
    /// Will QoS (0, 1, 2).
    pub qos: u8,
    /// Will retain flag.
    #[serde(default)]
    pub retain: bool,
    /// MQTT 5 Will Delay Interval in seconds.
    #[serde(default)]
    pub delay_secs: u32,
    /// MQTT 5 Will properties other than the delay; the Message Expiry Interval counts from
    /// when the Will is published.
    #[serde(default, skip_serializing_if = "WillProperties::is_empty")]
    pub properties: WillProperties,
}

/// The MQTT 5 properties a Will message carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WillProperties {
    /// Payload Format Indicator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_format: Option<u8>,
    /// Message Expiry Interval in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_expiry_secs: Option<u32>,
    /// Content Type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Response Topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_topic: Option<String>,
    /// Correlation Data (base64 in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "base64_opt")]
    pub correlation_data: Option<Bytes>,
    /// User Properties, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user: Vec<(String, String)>,
}

impl WillProperties {
    /// True when no property is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl StoredWill {
    /// The stored form of a CONNECT's Will.
    pub fn from_connect(will: &crate::codec::LastWill) -> Self {
        let p = &will.properties;
        StoredWill {
            topic: will.topic.clone(),
            payload: will.payload.clone(),
            qos: will.qos as u8,
            retain: will.retain,
            delay_secs: p.will_delay_interval.unwrap_or(0),
            properties: WillProperties {
                payload_format: p.payload_format_indicator,
                message_expiry_secs: p.message_expiry_interval,
                content_type: p.content_type.clone(),
                response_topic: p.response_topic.clone(),
                correlation_data: p.correlation_data.clone(),
                user: p.user_properties.clone(),
            },
        }
    }

    /// The Will as a message published at `now_ms` by `client_id`; an unknown QoS (only a
    /// foreign writer produces one) reads as 0.
    pub fn to_message(&self, client_id: &str, now_ms: u64) -> Message {
        let p = &self.properties;
        Message {
            topic: self.topic.clone(),
            payload: self.payload.clone(),
            qos: QoS::try_from(self.qos).unwrap_or_default(),
            retain: self.retain,
            publisher: Some(client_id.to_owned()),
            publish_id: None,
            properties: MessageProperties {
                payload_format: p.payload_format,
                content_type: p.content_type.clone(),
                response_topic: p.response_topic.clone(),
                correlation_data: p.correlation_data.clone(),
                expires_at_ms: p.message_expiry_secs.map(|secs| now_ms.saturating_add(u64::from(secs) * 1000)),
                user: p.user.clone(),
            },
        }
    }
}

/// Serde for payload bytes as base64 text (JSON has no bytes).
mod base64_bytes {
    use base64::Engine;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map(Bytes::from).map_err(serde::de::Error::custom)
    }
}

/// [`base64_bytes`] for an optional value.
mod base64_opt {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => super::base64_bytes::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::base64_bytes")] Bytes);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(b)| b))
    }
}

/// Value of `<client-id>`: the persistent part of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// Format version.
    pub v: u32,
    /// Epoch (claim offset) of the connection that wrote it; older than the newest claim means
    /// a fenced-off writer, and the record is ignored.
    pub epoch: i64,
    /// Session Expiry Interval in seconds, counted from `disconnected_at_ms`;
    /// [`NEVER_EXPIRES`] never expires.
    pub expiry_secs: u32,
    /// Set when the owning connection ended; absent while it is connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected_at_ms: Option<u64>,
    /// Subscriptions with their options and identifiers.
    #[serde(default)]
    pub subscriptions: Vec<StoredSubscription>,
    /// Delivery cursors: Kafka topic → partition → first offset not yet delivered and
    /// acknowledged. A resumed session reads Kafka from here (offline delivery).
    #[serde(default, skip_serializing_if = "Cursors::is_empty")]
    pub cursors: Cursors,
    /// Outbound QoS 1/2 messages sent and not yet acknowledged, with their packet ids: a resumed
    /// session sends them again with the same ids (DUP), so the client recognises them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<StoredFlight>,
    /// Inbound QoS 2 publications not yet released (PUBREL), written before they are produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound_qos2: Vec<StoredIntent>,
    /// The Last Will: while connected, the one to publish if the connection (or its broker)
    /// dies; once disconnected, a Will waiting for its delay. Sessions that end with their
    /// connection (expiry 0) store a state only for this.
    /// Boxed: most sessions have none, and every broker holds every session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will: Option<Box<StoredWill>>,
}

/// An outbound message the client has not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFlight {
    /// Kafka topic of the message.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Packet id it was sent with.
    pub packet_id: u16,
    /// QoS it was sent with.
    pub qos: u8,
    /// QoS 2: PUBREC received and PUBREL sent (only PUBREL is sent again).
    #[serde(default)]
    pub released: bool,
}

/// An inbound QoS 2 publication between its PUBLISH and its PUBREL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredIntent {
    /// The client's packet id.
    pub packet_id: u16,
    /// Value of the record's `mqtt.publish-id` header.
    pub publish_id: String,
    /// Kafka topic the record goes to.
    pub topic: String,
    /// Its partition (the producer's murmur2 partitioner, computed in advance).
    pub partition: i32,
    /// The partition's high watermark before the record was produced: where a search starts.
    pub from: i64,
}

/// Kafka topic → partition → next offset to deliver.
pub type Cursors = BTreeMap<String, BTreeMap<i32, i64>>;

/// One subscription of a stored session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSubscription {
    /// Topic filter.
    pub filter: String,
    /// Granted QoS (0, 1, 2).
    pub qos: u8,
    /// MQTT 5 No Local.
    #[serde(default)]
    pub no_local: bool,
    /// MQTT 5 Retain As Published.
    #[serde(default)]
    pub retain_as_published: bool,
    /// MQTT 5 Retain Handling.
    #[serde(default)]
    pub retain_handling: u8,
    /// MQTT 5 Subscription Identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
}

impl StoredSubscription {
    /// The stored form of a subscription.
    pub fn new(filter: &str, options: SubscriptionOptions, id: Option<u32>) -> Self {
        StoredSubscription {
            filter: filter.to_owned(),
            qos: options.qos as u8,
            no_local: options.no_local,
            retain_as_published: options.retain_as_published,
            retain_handling: options.retain_handling,
            id,
        }
    }

    /// The subscription options; an unknown QoS reads as 0 (only a foreign writer produces one).
    pub fn options(&self) -> SubscriptionOptions {
        SubscriptionOptions {
            qos: QoS::try_from(self.qos).unwrap_or_default(),
            no_local: self.no_local,
            retain_as_published: self.retain_as_published,
            retain_handling: self.retain_handling,
        }
    }
}

impl SessionState {
    /// When the session expires, if it is disconnected and can expire.
    pub fn expires_at_ms(&self) -> Option<u64> {
        if self.expiry_secs == NEVER_EXPIRES {
            return None;
        }
        let at = self.disconnected_at_ms?;
        Some(at.saturating_add(u64::from(self.expiry_secs) * 1000))
    }

    /// True when the session has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms().is_some_and(|at| at <= now_ms)
    }

    /// When a disconnected session's Will is due: after its delay or when the session ends,
    /// whichever comes first (MQTT-3.1.3-9). `None` while connected or without a Will.
    pub fn will_due_at_ms(&self) -> Option<u64> {
        let will = self.will.as_ref()?;
        let at = self.disconnected_at_ms?;
        let delayed = at.saturating_add(u64::from(will.delay_secs) * 1000);
        Some(self.expires_at_ms().map_or(delayed, |end| end.min(delayed)))
    }
}

/// What a key of the sessions topic names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// `<client-id>#claim`.
    Claim(&'a str),
    /// `<client-id>`.
    State(&'a str),
    /// `<node>#node`.
    Node(&'a str),
}

/// Parses a key; `None` for keys that are not UTF-8.
pub fn parse_key(raw: &[u8]) -> Option<Key<'_>> {
    let key = std::str::from_utf8(raw).ok()?;
    Some(if let Some(cid) = key.strip_suffix(CLAIM_SUFFIX) {
        Key::Claim(cid)
    } else if let Some(node) = key.strip_suffix(NODE_SUFFIX) {
        Key::Node(node)
    } else {
        Key::State(key)
    })
}

/// The heartbeat key of broker process `node`.
pub fn node_key(node: &str) -> String {
    format!("{node}{NODE_SUFFIX}")
}

/// The claim key of `client_id`.
pub fn claim_key(client_id: &str) -> String {
    format!("{client_id}{CLAIM_SUFFIX}")
}

/// True for client ids we refuse because their state key would read as a claim or heartbeat key.
pub fn is_reserved(client_id: &str) -> bool {
    client_id.ends_with(CLAIM_SUFFIX) || client_id.ends_with(NODE_SUFFIX)
}

/// The partition of a client's records: FNV-1a (32 bit) of the client id modulo the partition
/// count. Stable across processes and versions, so every broker finds a client in one place.
pub fn partition_for(client_id: &str, partitions: usize) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in client_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let n = u32::try_from(partitions.max(1)).unwrap_or(u32::MAX);
    // The remainder is below the partition count, which Kafka keeps far below i32::MAX.
    i32::try_from(h % n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_tolerates_unknown_fields() {
        let s = SessionState {
            v: VERSION,
            epoch: 42,
            expiry_secs: 60,
            disconnected_at_ms: Some(1000),
            subscriptions: vec![StoredSubscription::new(
                "t/#",
                SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: false,
                    retain_handling: 2,
                },
                Some(7),
            )],
            cursors: Cursors::from([("k1".to_string(), BTreeMap::from([(0, 12), (3, 7)]))]),
            in_flight: vec![StoredFlight {
                topic: "k1".into(),
                partition: 3,
                offset: 6,
                packet_id: 9,
                qos: 2,
                released: true,
            }],
            inbound_qos2: vec![StoredIntent {
                packet_id: 4,
                publish_id: "c:42:1".into(),
                topic: "k1".into(),
                partition: 0,
                from: 11,
            }],
            will: Some(Box::new(StoredWill {
                topic: "status/c".into(),
                payload: Bytes::from_static(&[0, 0xff, b'x']),
                qos: 1,
                retain: true,
                delay_secs: 30,
                properties: WillProperties {
                    correlation_data: Some(Bytes::from_static(b"\x01\x02")),
                    user: vec![("k".into(), "v".into())],
                    ..WillProperties::default()
                },
            })),
        };
        let json = serde_json::to_vec(&s).unwrap_or_default();
        assert_eq!(serde_json::from_slice::<SessionState>(&json).ok(), Some(s.clone()));
        // A newer broker's extra fields (offsets, in-flight) are ignored by this one.
        let newer = br#"{"v":2,"epoch":42,"expiry_secs":60,"disconnected_at_ms":1000,"offsets":{"a":1},
            "subscriptions":[{"filter":"t/#","qos":1,"no_local":true,"retain_handling":2,"id":7,"x":0}]}"#;
        let parsed: SessionState = serde_json::from_slice(newer).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.subscriptions, s.subscriptions);
        assert_eq!(parsed.subscriptions[0].options().qos, QoS::AtLeastOnce);
    }

    #[test]
    fn expiry() {
        let mut s = SessionState {
            v: 1,
            epoch: 0,
            expiry_secs: 2,
            disconnected_at_ms: None,
            subscriptions: vec![],
            cursors: Cursors::new(),
            in_flight: vec![],
            inbound_qos2: vec![],
            will: None,
        };
        assert!(!s.is_expired(u64::MAX), "connected sessions do not expire");
        s.disconnected_at_ms = Some(1000);
        assert!(!s.is_expired(2999));
        assert!(s.is_expired(3000));
        s.expiry_secs = NEVER_EXPIRES;
        assert!(!s.is_expired(u64::MAX));
    }

    #[test]
    fn wills_are_due_after_their_delay_or_at_session_end() {
        let will = |delay_secs| {
            Box::new(StoredWill {
                topic: "t".into(),
                payload: Bytes::new(),
                qos: 0,
                retain: false,
                delay_secs,
                properties: WillProperties::default(),
            })
        };
        let mut s = SessionState {
            v: 1,
            epoch: 0,
            expiry_secs: 60,
            disconnected_at_ms: None,
            subscriptions: vec![],
            cursors: Cursors::new(),
            in_flight: vec![],
            inbound_qos2: vec![],
            will: Some(will(10)),
        };
        assert_eq!(s.will_due_at_ms(), None, "not while connected");
        s.disconnected_at_ms = Some(1_000);
        assert_eq!(s.will_due_at_ms(), Some(11_000), "after the delay");
        s.will = Some(will(600));
        assert_eq!(s.will_due_at_ms(), Some(61_000), "when the session ends, if sooner");
        s.expiry_secs = NEVER_EXPIRES;
        assert_eq!(s.will_due_at_ms(), Some(601_000));
        s.will = None;
        assert_eq!(s.will_due_at_ms(), None);
    }

    #[test]
    fn stored_will_becomes_the_message_with_expiry_from_publication() {
        let connect_will = crate::codec::LastWill {
            topic: "status/dev".into(),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: crate::codec::Properties {
                will_delay_interval: Some(5),
                message_expiry_interval: Some(60),
                content_type: Some("text/plain".into()),
                user_properties: vec![("a".into(), "b".into())],
                ..Default::default()
            },
        };
        let stored = StoredWill::from_connect(&connect_will);
        assert_eq!(stored.delay_secs, 5);
        let json = serde_json::to_string(&stored).unwrap_or_default();
        assert!(json.contains(r#""payload":"b2ZmbGluZQ==""#), "{json}");
        let back: StoredWill = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        let msg = back.to_message("dev", 1_000);
        assert_eq!(
            (msg.topic.as_str(), &msg.payload[..], msg.qos, msg.retain),
            ("status/dev", &b"offline"[..], QoS::AtLeastOnce, true)
        );
        assert_eq!(msg.publisher.as_deref(), Some("dev"));
        assert_eq!(msg.properties.expires_at_ms, Some(61_000));
        assert_eq!(msg.properties.content_type.as_deref(), Some("text/plain"));
        assert_eq!(msg.properties.user, vec![("a".to_string(), "b".to_string())]);
    }

    #[test]
    fn keys_and_partitions() {
        assert_eq!(parse_key(b"dev#claim"), Some(Key::Claim("dev")));
        assert_eq!(parse_key(b"dev"), Some(Key::State("dev")));
        assert_eq!(parse_key(b"a+#b"), Some(Key::State("a+#b")));
        assert_eq!(parse_key(&[0xff]), None);
        assert!(is_reserved("x#claim") && !is_reserved("x#clai"));
        assert!(is_reserved("x#node"));
        assert_eq!(parse_key(b"pod-1/1/99#node"), Some(Key::Node("pod-1/1/99")));
        assert_eq!(node_key("pod-1/1/99"), "pod-1/1/99#node");
        assert_eq!(claim_key("dev"), "dev#claim");
        // FNV-1a of "a" is 0xe40c292c.
        assert_eq!(partition_for("a", 1000), (0xe40c_292c_u32 % 1000) as i32);
        assert!((0..64).contains(&partition_for("some-client", 64)));
        assert_eq!(partition_for("x", 0), 0);
    }
}
