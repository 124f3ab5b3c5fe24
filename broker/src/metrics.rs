//! Process-wide metrics, exported in the Prometheus text format on the admin endpoint.
//!
//! The `prometheus-client` crate (from the Prometheus project) holds and encodes them: labelled
//! families, histograms and the exposition format are its job. Counters appear with a `_total`
//! suffix. `tributary_connections` is what the HorizontalPodAutoscaler scales on and what the
//! operator reads from every pod.
//!
//! Most series are counted where things happen; the retained message count and consumer lags
//! are state, copied in at scrape time ([`crate::broker::Broker::observe`]).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QosLabel {
    qos: u8,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

/// Why a message was not delivered to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The client's queue was full (`limits.maxQueuedMessages`).
    QueueFull,
    /// Its Message Expiry Interval passed before it could be sent.
    Expired,
    /// It exceeds the Maximum Packet Size the client announced (MQTT-3.1.2-25).
    TooLarge,
}

impl DropReason {
    const ALL: [DropReason; 3] = [DropReason::QueueFull, DropReason::Expired, DropReason::TooLarge];

    fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Expired => "expired",
            DropReason::TooLarge => "too_large",
        }
    }
}

/// The broker's metrics. Every field is a cheap handle: clones count into the same series.
pub struct Metrics {
    registry: Registry,
    /// Open MQTT connections (after CONNACK), all listeners.
    pub connections: Gauge,
    listener_connections: Family<ListenerLabel, Gauge>,
    /// Session states held in the sessions view (persistent sessions, connected or not).
    pub sessions_stored: Gauge,
    /// Seconds the sessions topic took to load at start.
    pub sessions_load_seconds: Gauge<f64, AtomicU64>,
    /// Retained messages held (set at scrape time).
    pub retained_messages: Gauge,
    /// Subscriptions in this process's router.
    pub subscriptions: Gauge,
    /// Readers replaying Kafka records right now: offline delivery and rewinds.
    pub catchup_readers: Gauge,
    kafka_consumer_lag: Family<TopicLabel, Gauge>,
    /// 1 while the process drains its connections before it stops.
    pub draining: Gauge,
    /// Accepted MQTT connections since start.
    pub connections_total: Counter,
    connects: Family<CodeLabel, Counter>,
    messages_received: [Counter; 3],
    messages_sent: [Counter; 3],
    /// Bytes read from client sockets (MQTT packets, after TLS and WebSocket framing).
    pub bytes_received: Counter,
    /// Bytes of MQTT packets written to client sockets.
    pub bytes_sent: Counter,
    dropped: [Counter; 3],
    /// Connections closed because the same client id connected again (here or on another pod).
    pub takeovers: Counter,
    /// QoS 1/2 deliveries a full queue refused, which the session read back from Kafka instead.
    pub deferred: Counter,
    /// Records Kafka refused (the client was told or disconnected).
    pub produce_failed: Counter,
    /// Time from handing a QoS 1/2 or Will record to the producer until the publishing task saw
    /// Kafka's acknowledgement.
    pub kafka_produce_seconds: Histogram,
    /// Connections closed for a protocol violation or malformed packet.
    pub protocol_errors: Counter,
    /// CONNECTs refused for their credentials.
    pub auth_failed: Counter,
    /// Publishes, subscriptions and Wills refused by the access rules.
    pub acl_denied: Counter,
    /// CONNECTs refused by `limits` (connect rate, connections per address).
    pub connects_refused_by_limits: Counter,
    /// Packets refused by `limits` (topic length or levels, subscriptions per session).
    pub limits_exceeded: Counter,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failed: Counter,
    /// WebSocket upgrades refused, failed or timed out.
    pub websocket_handshake_failed: Counter,
    /// Sessions of dead broker processes this one took over.
    pub sessions_adopted: Counter,
    /// Last Wills published (at a connection's end, after their delay, or for a dead broker).
    pub wills_published: Counter,
    /// Connections closed by the drain before the process stops.
    pub drain_disconnected: Counter,
    /// Connections sent to other brokers because this one held more than its share.
    pub rebalance_disconnected: Counter,
    /// Rewinding SUBSCRIBEs accepted (their replays started).
    pub rewinds: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("tributary");
        let gauge = |r: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        };
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let by_qos = |r: &mut Registry, name: &str, help: &str| {
            let family = Family::<QosLabel, Counter>::default();
            r.register(name, help, family.clone());
            [0, 1, 2].map(|qos| family.get_or_create_owned(&QosLabel { qos }))
        };

        let connections = gauge(&mut r, "connections", "Open MQTT connections");
        let listener_connections = Family::<ListenerLabel, Gauge>::default();
        r.register("listener_connections", "Open MQTT connections by listener", listener_connections.clone());
        let sessions_stored = gauge(&mut r, "sessions_stored", "Persistent sessions stored in the sessions topic");
        let sessions_load_seconds = Gauge::<f64, AtomicU64>::default();
        r.register(
            "sessions_load_seconds",
            "Seconds the sessions topic took to load at start",
            sessions_load_seconds.clone(),
        );
        let retained_messages = gauge(&mut r, "retained_messages", "Retained messages held");
        let subscriptions = gauge(&mut r, "subscriptions", "Subscriptions of the connected clients");
        let catchup_readers = gauge(
            &mut r,
            "catchup_readers",
            "Readers replaying records: resumed sessions' offline delivery and rewinds",
        );
        let kafka_consumer_lag = Family::<TopicLabel, Gauge>::default();
        r.register(
            "kafka_consumer_lag",
            "Records behind the high watermark, per tailed Kafka topic",
            kafka_consumer_lag.clone(),
        );
        let draining = gauge(&mut r, "draining", "1 while connections are drained before stopping");
        let connections_total = counter(&mut r, "connections", "MQTT connections accepted");
        let connects = Family::<CodeLabel, Counter>::default();
        r.register("connects", "CONNECTs answered, by CONNACK reason code", connects.clone());
        let messages_received = by_qos(&mut r, "messages_received", "PUBLISH packets received from clients, by QoS");
        let messages_sent = by_qos(&mut r, "messages_sent", "PUBLISH packets sent to clients, by QoS");
        let bytes_received = counter(&mut r, "bytes_received", "Bytes of MQTT packets read from clients");
        let bytes_sent = counter(&mut r, "bytes_sent", "Bytes of MQTT packets written to clients");
        let drops = Family::<ReasonLabel, Counter>::default();
        r.register("dropped", "Messages not delivered to a subscriber, by reason", drops.clone());
        let dropped = DropReason::ALL.map(|d| drops.get_or_create_owned(&ReasonLabel { reason: d.label() }));
        let takeovers = counter(&mut r, "takeovers", "Connections taken over by a new connection of the same client");
        let deferred = counter(
            &mut r,
            "deliveries_deferred",
            "QoS 1/2 deliveries a full client queue refused and the session read back from Kafka",
        );
        let produce_failed = counter(&mut r, "produce_failed", "Records Kafka did not accept");
        // 0.5 ms to ~16 s: a healthy cluster acknowledges in milliseconds, an outage in seconds.
        let kafka_produce_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        r.register_with_unit(
            "kafka_produce",
            "Time from producing a record to Kafka's acknowledgement",
            Unit::Seconds,
            kafka_produce_seconds.clone(),
        );
        let protocol_errors = counter(&mut r, "protocol_errors", "Connections closed for protocol errors");
        let auth_failed = counter(&mut r, "auth_failed", "CONNECTs refused for their credentials");
        let acl_denied =
            counter(&mut r, "acl_denied", "Publishes, subscriptions and Wills refused by the access rules");
        let connects_refused_by_limits = counter(
            &mut r,
            "connects_refused_by_limits",
            "CONNECTs refused by the connect rate or connections per address",
        );
        let limits_exceeded =
            counter(&mut r, "limits_exceeded", "Topics, filters and subscriptions refused by the limits");
        let tls_handshake_failed = counter(&mut r, "tls_handshake_failed", "TLS handshakes that failed or timed out");
        let websocket_handshake_failed =
            counter(&mut r, "websocket_handshake_failed", "WebSocket upgrades refused, failed or timed out");
        let sessions_adopted = counter(&mut r, "sessions_adopted", "Sessions of dead brokers taken over");
        let wills_published = counter(&mut r, "wills_published", "Last Wills published");
        let drain_disconnected =
            counter(&mut r, "drain_disconnected", "Connections closed by the drain before stopping");
        let rebalance_disconnected = counter(
            &mut r,
            "rebalance_disconnected",
            "Connections sent to other brokers because this one held more than its share",
        );
        let rewinds = counter(&mut r, "rewinds", "Rewinding subscriptions whose replay from Kafka started");
        Metrics {
            registry: r,
            connections,
            listener_connections,
            sessions_stored,
            sessions_load_seconds,
            retained_messages,
            subscriptions,
            catchup_readers,
            kafka_consumer_lag,
            draining,
            connections_total,
            connects,
            messages_received,
            messages_sent,
            bytes_received,
            bytes_sent,
            dropped,
            takeovers,
            deferred,
            produce_failed,
            kafka_produce_seconds,
            protocol_errors,
            auth_failed,
            acl_denied,
            connects_refused_by_limits,
            limits_exceeded,
            tls_handshake_failed,
            websocket_handshake_failed,
            sessions_adopted,
            wills_published,
            drain_disconnected,
            rebalance_disconnected,
            rewinds,
        }
    }

    /// The open-connections gauge of one listener.
    pub fn listener(&self, name: &str) -> Gauge {
        self.listener_connections.get_or_create_owned(&ListenerLabel { listener: name.to_owned() })
    }

    /// Counts a CONNACK sent with `code`, an MQTT 5 reason code also for 3.1.1 clients (the
    /// encoder maps it to their return code), so one series means one outcome.
    pub fn connack(&self, code: u8) {
        self.connects.get_or_create(&CodeLabel { code: format!("0x{code:02X}") }).inc();
    }

    /// Counts a PUBLISH received at `qos`.
    pub fn received(&self, qos: u8) {
        self.messages_received[usize::from(qos.min(2))].inc();
    }

    /// Counts a PUBLISH sent at `qos`.
    pub fn sent(&self, qos: u8) {
        self.messages_sent[usize::from(qos.min(2))].inc();
    }

    /// Counts a message not delivered, for `reason`.
    pub fn dropped(&self, reason: DropReason) {
        self.dropped[reason as usize].inc();
    }

    /// Sets the consumer lag series of `lags` (Kafka topic, records behind). Tailers are never
    /// stopped, so series are only ever added or updated, never cleared (a concurrent scrape
    /// would see them missing).
    pub fn set_lags(&self, lags: impl IntoIterator<Item = (String, i64)>) {
        for (topic, lag) in lags {
            self.kafka_consumer_lag.get_or_create(&TopicLabel { topic }).set(lag);
        }
    }

    /// The metrics in the Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_gauges_counters_families_and_histograms() {
        let m = Metrics::new();
        m.connections.set(3);
        m.listener("mqtt").inc();
        m.received(1);
        m.connack(0x86);
        m.dropped(DropReason::Expired);
        m.kafka_produce_seconds.observe(0.002);
        m.set_lags([("mqtt-messages".to_owned(), 7)]);
        let text = m.render();
        for line in [
            "tributary_connections 3",
            "# TYPE tributary_connections gauge",
            "tributary_listener_connections{listener=\"mqtt\"} 1",
            "tributary_messages_received_total{qos=\"1\"} 1",
            "tributary_messages_received_total{qos=\"0\"} 0",
            "tributary_connects_total{code=\"0x86\"} 1",
            "tributary_dropped_total{reason=\"expired\"} 1",
            "tributary_dropped_total{reason=\"queue_full\"} 0",
            "tributary_kafka_produce_seconds_count 1",
            "tributary_kafka_consumer_lag{topic=\"mqtt-messages\"} 7",
            "tributary_connections_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn lags_are_updated_in_place() {
        let m = Metrics::new();
        m.set_lags([("a".to_owned(), 1)]);
        m.set_lags([("a".to_owned(), 4), ("b".to_owned(), 2)]);
        let text = m.render();
        assert!(text.lines().any(|l| l == "tributary_kafka_consumer_lag{topic=\"a\"} 4"), "{text}");
        assert!(text.lines().any(|l| l == "tributary_kafka_consumer_lag{topic=\"b\"} 2"), "{text}");
    }
}
