//! Process-wide counters, exported in the Prometheus text format on the admin endpoint.
//! `tributary_connections` is what the HorizontalPodAutoscaler scales on.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The broker's metrics. All counters are monotonic except `connections`.
#[derive(Default)]
pub struct Metrics {
    /// Currently open MQTT connections (after CONNACK).
    pub connections: AtomicI64,
    /// Session states held in the sessions view (persistent sessions, connected or not).
    pub sessions_stored: AtomicI64,
    /// Accepted MQTT connections since start.
    pub connections_total: AtomicU64,
    /// PUBLISH packets received from clients.
    pub publish_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub publish_sent: AtomicU64,
    /// Records Kafka refused (the client was told or disconnected).
    pub produce_failed: AtomicU64,
    /// Messages not queued for a client because its queue was full.
    pub delivery_dropped: AtomicU64,
    /// Connections closed for a protocol violation or malformed packet.
    pub protocol_errors: AtomicU64,
    /// CONNECTs refused for their credentials.
    pub auth_failed: AtomicU64,
    /// Publishes, subscriptions and Wills refused by the access rules.
    pub acl_denied: AtomicU64,
    /// CONNECTs refused by `limits` (connect rate, connections per address).
    pub connects_refused_by_limits: AtomicU64,
    /// Packets refused by `limits` (topic length or levels, subscriptions per session).
    pub limits_exceeded: AtomicU64,
    /// TLS handshakes that failed or timed out (bad or missing client certificates, plain
    /// MQTT sent to a TLS port, ...).
    pub tls_handshake_failed: AtomicU64,
    /// WebSocket upgrades refused, failed or timed out (wrong path, no `mqtt` subprotocol,
    /// not HTTP).
    pub websocket_handshake_failed: AtomicU64,
    /// Sessions of dead broker processes this one took over.
    pub sessions_adopted: AtomicU64,
    /// Last Wills published (at a connection's end, after their delay, or for a dead broker).
    pub wills_published: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(1024);
        let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, c: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", c.load(Ordering::Relaxed));
        };
        gauge(&mut out, "tributary_connections", "Open MQTT connections.", self.connections.load(Ordering::Relaxed));
        gauge(
            &mut out,
            "tributary_sessions_stored",
            "Persistent sessions stored in the sessions topic.",
            self.sessions_stored.load(Ordering::Relaxed),
        );
        counter(&mut out, "tributary_connections_total", "MQTT connections accepted.", &self.connections_total);
        counter(
            &mut out,
            "tributary_publish_received_total",
            "PUBLISH packets received from clients.",
            &self.publish_received,
        );
        counter(&mut out, "tributary_publish_sent_total", "PUBLISH packets sent to clients.", &self.publish_sent);
        counter(&mut out, "tributary_produce_failed_total", "Records Kafka did not accept.", &self.produce_failed);
        counter(
            &mut out,
            "tributary_delivery_dropped_total",
            "Messages dropped because a client queue was full.",
            &self.delivery_dropped,
        );
        counter(
            &mut out,
            "tributary_protocol_errors_total",
            "Connections closed for protocol errors.",
            &self.protocol_errors,
        );
        counter(&mut out, "tributary_auth_failed_total", "CONNECTs refused for their credentials.", &self.auth_failed);
        counter(
            &mut out,
            "tributary_acl_denied_total",
            "Publishes, subscriptions and Wills refused by the access rules.",
            &self.acl_denied,
        );
        counter(
            &mut out,
            "tributary_connects_refused_by_limits_total",
            "CONNECTs refused by the connect rate or connections per address.",
            &self.connects_refused_by_limits,
        );
        counter(
            &mut out,
            "tributary_limits_exceeded_total",
            "Topics, filters and subscriptions refused by the limits.",
            &self.limits_exceeded,
        );
        counter(
            &mut out,
            "tributary_tls_handshake_failed_total",
            "TLS handshakes that failed or timed out.",
            &self.tls_handshake_failed,
        );
        counter(
            &mut out,
            "tributary_websocket_handshake_failed_total",
            "WebSocket upgrades refused, failed or timed out.",
            &self.websocket_handshake_failed,
        );
        counter(
            &mut out,
            "tributary_sessions_adopted_total",
            "Sessions of dead brokers taken over.",
            &self.sessions_adopted,
        );
        counter(&mut out, "tributary_wills_published_total", "Last Wills published.", &self.wills_published);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_connections_gauge() {
        let m = Metrics::default();
        m.connections.store(3, Ordering::Relaxed);
        inc(&m.publish_received);
        let text = m.render();
        assert!(text.contains("\ntributary_connections 3\n"));
        assert!(text.contains("# TYPE tributary_connections gauge"));
        assert!(text.contains("tributary_publish_received_total 1"));
    }
}
