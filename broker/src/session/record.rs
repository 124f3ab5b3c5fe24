//! The records of the sessions topic: keys, versioned JSON values, and the partition a client's
//! records go to.
//!
//! Two keys per client, both in the same partition (chosen by us, see [`partition_for`]):
//! `<client-id>#claim` ([`ClaimRecord`]: whose connection it is; the record's offset is the
//! epoch) and `<client-id>` ([`SessionState`]). A null value is a tombstone. Values are JSON with
//! a version field `v`; fields added later carry `#[serde(default)]`, and unknown fields are
//! ignored, so older and newer brokers can share the topic during a rolling upgrade.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::codec::{QoS, SubscriptionOptions};

/// Suffix of claim keys. Client ids ending with it are refused at CONNECT, so that a state key
/// can never be mistaken for a claim key.
pub const CLAIM_SUFFIX: &str = "#claim";

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
}

/// What a key of the sessions topic names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// `<client-id>#claim`.
    Claim(&'a str),
    /// `<client-id>`.
    State(&'a str),
}

/// Parses a key; `None` for keys that are not UTF-8.
pub fn parse_key(raw: &[u8]) -> Option<Key<'_>> {
    let key = std::str::from_utf8(raw).ok()?;
    Some(match key.strip_suffix(CLAIM_SUFFIX) {
        Some(cid) => Key::Claim(cid),
        None => Key::State(key),
    })
}

/// The claim key of `client_id`.
pub fn claim_key(client_id: &str) -> String {
    format!("{client_id}{CLAIM_SUFFIX}")
}

/// True for client ids we refuse because their state key would read as a claim key.
pub fn is_reserved(client_id: &str) -> bool {
    client_id.ends_with(CLAIM_SUFFIX)
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
        };
        assert!(!s.is_expired(u64::MAX), "connected sessions do not expire");
        s.disconnected_at_ms = Some(1000);
        assert!(!s.is_expired(2999));
        assert!(s.is_expired(3000));
        s.expiry_secs = NEVER_EXPIRES;
        assert!(!s.is_expired(u64::MAX));
    }

    #[test]
    fn keys_and_partitions() {
        assert_eq!(parse_key(b"dev#claim"), Some(Key::Claim("dev")));
        assert_eq!(parse_key(b"dev"), Some(Key::State("dev")));
        assert_eq!(parse_key(b"a+#b"), Some(Key::State("a+#b")));
        assert_eq!(parse_key(&[0xff]), None);
        assert!(is_reserved("x#claim") && !is_reserved("x#clai"));
        assert_eq!(claim_key("dev"), "dev#claim");
        // FNV-1a of "a" is 0xe40c292c.
        assert_eq!(partition_for("a", 1000), (0xe40c_292c_u32 % 1000) as i32);
        assert!((0..64).contains(&partition_for("some-client", 64)));
        assert_eq!(partition_for("x", 0), 0);
    }
}
