//! CONNECT handling: client id rules, keep-alive, Will validation, the session claim (take-over
//! across brokers), resuming a stored session, and CONNACK.

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::deliver::Outbound;
use super::persist::Persist;
use super::{Client, Peer, MAILBOX_CAPACITY};
use crate::acl::{Identity, Request};
use crate::broker::Broker;
use crate::codec::{reason, ConnAck, Connect, DecodeError, Packet, Properties, ProtocolVersion};
use crate::connection::Connection;
use crate::delivery::mailbox::Mailbox;
use crate::message::now_ms;
use crate::metrics::inc;
use crate::session::reaper::WILL_PUBLISH_TIMEOUT;
use crate::session::record::{is_reserved, SessionState, StoredWill, NEVER_EXPIRES, VERSION};
use crate::session::SessionError;
use crate::shutdown::Shutdown;
use crate::topic::validate_topic_name;

/// Topic aliases a client may set (MQTT 5 Topic Alias Maximum). Small: each costs a topic string.
pub(super) const TOPIC_ALIAS_MAX: u16 = 16;
/// Largest Will accepted, topic, payload and properties together (bytes); larger ones are
/// refused with 0x95 Packet too large.
pub(super) const MAX_WILL_BYTES: usize = 128 * 1024;

/// The bytes a Will keeps in the session state (its variable-size parts).
fn will_size(w: &crate::codec::LastWill) -> usize {
    let p = &w.properties;
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    w.topic.len()
        + w.payload.len()
        + text(&p.content_type)
        + text(&p.response_topic)
        + p.correlation_data.as_ref().map_or(0, |c| c.len())
        + p.user_properties.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

/// Answers a CONNECT that could not be decoded: MQTT 5 clients get a CONNACK with the reason;
/// others one only where 3.1.1 has a return code for it (unacceptable protocol level, identifier
/// rejected), as MQTT-3.1.2-2 asks.
pub(super) async fn refuse_undecodable<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Connection<S>, e: &DecodeError) {
    let code = e.reason_code();
    let has_v311_code = code == reason::UNSUPPORTED_PROTOCOL_VERSION || code == reason::CLIENT_IDENTIFIER_NOT_VALID;
    let version = match conn.failed_connect_level() {
        Some(5) => Some(ProtocolVersion::V5),
        Some(_) if has_v311_code => Some(ProtocolVersion::V311),
        _ => None,
    };
    tracing::debug!(error = %e, "refusing undecodable CONNECT");
    let Some(version) = version else {
        conn.close_with(None).await;
        return;
    };
    conn.version = Some(version);
    let ack = Packet::ConnAck(ConnAck { session_present: false, reason: code, properties: Properties::default() });
    conn.close_with(Some(&ack)).await;
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    /// Validates a CONNECT and answers it; `None` when the connection was refused and closed.
    pub(super) async fn accept(
        mut conn: Connection<S>,
        connect: Connect,
        peer: Peer,
        broker: Arc<Broker>,
        shutdown: Shutdown,
    ) -> Option<Self> {
        let version = connect.protocol;
        conn.version = Some(version);
        let mut props = Properties::default();
        let refuse = |code: u8| ConnAck { session_present: false, reason: code, properties: Properties::default() };

        // Client identifier (MQTT-3.1.3-6..8): an empty id gets one assigned, except for a
        // 3.1.1 client asking for a persistent session.
        let client_id: Arc<str> = if connect.client_id.is_empty() {
            if version == ProtocolVersion::V311 && !connect.clean_start {
                conn.close_with(Some(&Packet::ConnAck(refuse(reason::CLIENT_IDENTIFIER_NOT_VALID)))).await;
                return None;
            }
            let id = assign_client_id();
            if version == ProtocolVersion::V5 {
                props.assigned_client_identifier = Some(id.clone());
            }
            id.into()
        } else {
            connect.client_id.as_str().into()
        };
        // Its state key would read as another client's claim key (see session::record).
        if is_reserved(&client_id) {
            conn.close_with(Some(&Packet::ConnAck(refuse(reason::CLIENT_IDENTIFIER_NOT_VALID)))).await;
            return None;
        }

        if let Some(w) = &connect.will {
            if validate_topic_name(&w.topic).is_err() {
                conn.close_with(Some(&Packet::ConnAck(refuse(reason::TOPIC_NAME_INVALID)))).await;
                return None;
            }
            // Wills are stored in the session state, which every broker holds in memory. The
            // payload is at most 65,535 bytes by the protocol; properties are not.
            let size = will_size(w);
            if size > MAX_WILL_BYTES {
                tracing::debug!(client = %connect.client_id, size, "will too large");
                conn.close_with(Some(&Packet::ConnAck(refuse(reason::PACKET_TOO_LARGE)))).await;
                return None;
            }
        }

        // Before anything is written to Kafka for this client id.
        let password = connect.password.as_deref();
        if let Err(code) = broker.auth.check(connect.username.as_deref(), password, peer.tls_verified) {
            inc(&broker.metrics.auth_failed);
            tracing::debug!(client = %client_id, user = ?connect.username, code, "authentication failed");
            conn.close_with(Some(&Packet::ConnAck(refuse(code)))).await;
            return None;
        }

        // A Will the client may not publish would be refused when it is due: refuse it now.
        if let Some(w) = &connect.will {
            let who = Identity { client_id: &client_id, username: connect.username.as_deref() };
            if !broker.acl().allows(who, Request::Publish, &w.topic) {
                inc(&broker.metrics.acl_denied);
                conn.close_with(Some(&Packet::ConnAck(refuse(reason::NOT_AUTHORIZED)))).await;
                return None;
            }
        }

        let limits = &broker.config.limits;
        let keep_alive = match (connect.keep_alive, limits.max_keep_alive) {
            (ka, 0) => ka,
            (0, max) => max,
            (ka, max) => ka.min(max),
        };
        if keep_alive != connect.keep_alive && version == ProtocolVersion::V5 {
            props.server_keep_alive = Some(keep_alive);
        }
        if version == ProtocolVersion::V5 {
            props.receive_maximum = Some(limits.max_inflight);
            props.maximum_packet_size = Some(limits.max_packet_size);
            props.topic_alias_maximum = Some(TOPIC_ALIAS_MAX);
            props.retain_available = Some(1);
            props.wildcard_subscription_available = Some(1);
            props.subscription_identifiers_available = Some(1);
            props.shared_subscription_available = Some(0);
        }
        if let Some(max) = connect.properties.maximum_packet_size {
            conn.max_outgoing = max;
        }
        // Our own in-flight limit applies outbound too (MQTT 3.1.1 has no Receive Maximum): it
        // bounds what each connection holds and what a persistent session stores per save.
        let window = connect.properties.receive_maximum.unwrap_or(u16::MAX).min(limits.max_inflight);

        // Which sessions persist: 3.1.1 cleanSession=0 (never expires); MQTT 5 a Session Expiry
        // Interval above 0 (cleanStart only decides whether an existing session is resumed).
        let expiry = match version {
            ProtocolVersion::V311 if connect.clean_start => 0,
            ProtocolVersion::V311 => NEVER_EXPIRES,
            ProtocolVersion::V5 => connect.properties.session_expiry_interval.unwrap_or(0),
        };
        let unavailable = |e: SessionError| {
            tracing::warn!(client = %client_id, error = %e, "cannot take the session over");
            Packet::ConnAck(refuse(reason::SERVER_UNAVAILABLE))
        };
        // Claim first, on every connect: that is what makes a connection elsewhere leave. Once
        // the claim is read back, the view holds everything written for this client before it.
        let epoch = match broker.sessions.claim(&client_id).await {
            Ok(epoch) => epoch,
            Err(e) => {
                conn.close_with(Some(&unavailable(e))).await;
                return None;
            }
        };
        let registration = broker.registry.register(&client_id, epoch);
        if broker.sessions.newest_claim(&client_id).is_some_and(|newest| newest > epoch) {
            // An even newer connection claimed meanwhile; it wins.
            broker.registry.unregister(&client_id, registration.session);
            conn.close_with(None).await;
            return None;
        }
        let existing = broker.sessions.state(&client_id);
        let will = connect.will.as_ref().map(|w| Box::new(StoredWill::from_connect(w)));
        // The previous connection's Will, when this connect is what makes it due.
        if let Some((old, state)) = existing.as_ref().and_then(|s| Some((s.will.as_ref()?, s))) {
            if previous_will_due(state, old, connect.clean_start, now_ms()) {
                // Bounded: a stuck partition must not hold the CONNECT (the record stays queued
                // in the producer and goes out when Kafka takes it).
                let publish = broker.publish_will(&client_id, old.to_message(&client_id, now_ms()));
                match tokio::time::timeout(WILL_PUBLISH_TIMEOUT, publish).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(client = %client_id, error = %e, "previous connection's will not published")
                    }
                    Err(_) => {
                        tracing::warn!(client = %client_id, "previous connection's will not acknowledged in time")
                    }
                }
            }
        }
        let resumed = existing.clone().filter(|s| !connect.clean_start && !s.is_expired(now_ms()));
        let restored = resumed.as_ref().map(|s| s.subscriptions.clone()).unwrap_or_default();
        let cursors = resumed.as_ref().map(|s| s.cursors.clone()).unwrap_or_default();
        let in_flight = resumed.as_ref().map(|s| s.in_flight.clone()).unwrap_or_default();
        let intents = resumed.as_ref().map(|s| s.inbound_qos2.clone()).unwrap_or_default();
        // Record the new owner (which also resets the expiry clock), or end the stored session.
        // A session ending with its connection stores a state only to keep its Will, so that
        // the Will survives this broker (see session::reaper).
        let written = if expiry > 0 || will.is_some() {
            let state = SessionState {
                v: VERSION,
                epoch,
                expiry_secs: expiry,
                disconnected_at_ms: None,
                subscriptions: restored.clone(),
                cursors: cursors.clone(),
                in_flight: in_flight.clone(),
                inbound_qos2: intents.clone(),
                will: will.clone(),
            };
            broker.sessions.write_state(&client_id, &state).await
        } else if existing.is_some() {
            broker.sessions.remove_state(&client_id, epoch).await
        } else {
            Ok(())
        };
        if let Err(e) = written {
            broker.registry.unregister(&client_id, registration.session);
            conn.close_with(Some(&unavailable(e))).await;
            return None;
        }

        let mut client = Client {
            conn,
            version,
            session: registration.session,
            epoch,
            expiry,
            kicked: Some(registration.kicked),
            mailbox: Arc::new(Mailbox::new(MAILBOX_CAPACITY)),
            subscriptions: Default::default(),
            stored: expiry > 0 || will.is_some(),
            username: connect.username.as_deref().map(Box::from),
            will,
            keep_alive: (keep_alive > 0).then(|| Duration::from_secs(u64::from(keep_alive))),
            last_seen: Instant::now(),
            shutdown,
            pending: Default::default(),
            qos2: Default::default(),
            aliases: Vec::new(),
            outbound: Outbound::new(window),
            persist: (expiry > 0).then(|| Box::new(Persist::new(&cursors, &in_flight, &intents))),
            client_id,
            broker,
        };
        // The resumed subscriptions are live before CONNACK; retained messages are not sent
        // again (the spec sends them on SUBSCRIBE only).
        for sub in &restored {
            client.restore_subscription(sub).await;
        }
        // Before CONNACK, so that the client's retransmissions find the answer ready.
        if let Err(e) = client.resolve_intents().await {
            tracing::warn!(client = %client.client_id, error = %e, "cannot check stored QoS 2 publications");
            client.conn.close_with(Some(&Packet::ConnAck(refuse(reason::SERVER_UNAVAILABLE)))).await;
            client.abandon().await;
            return None;
        }
        let ack =
            Packet::ConnAck(ConnAck { session_present: resumed.is_some(), reason: reason::SUCCESS, properties: props });
        if client.conn.queue(&ack).is_err() || client.conn.flush().await.is_err() {
            client.abandon().await;
            return None;
        }
        // After CONNACK: unacknowledged messages of the previous connection (PUBREL at once,
        // the others as the offline reader reaches them), then what arrived while the client
        // was away, read back from Kafka now that its subscriptions are live again (see
        // session::catchup for the seam).
        if resumed.is_some() {
            client.resume_in_flight(&in_flight);
            client.start_catchup();
        }
        let broker = &client.broker;
        inc(&broker.metrics.connections_total);
        broker.metrics.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(client = %client.client_id, ?version, keep_alive, epoch, session_present = resumed.is_some(), "client connected");
        Some(client)
    }
}
/// A unique client id for clients that sent none: process start time plus a counter is unique
/// enough within a pod; the pod's hostname keeps pods apart.
fn assign_client_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    format!("tributary-{host}-{:x}-{}", now_ms(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Whether the stored Will of the previous connection is published because of this CONNECT.
/// The previous connection never publishes its Will on a take-over: the stored state decides,
/// here, also when that connection died with its broker. Its Will goes out when the session
/// ended (this connect starts clean, or the session ended with its connection) or its delay
/// has passed; a connection resuming the session within the delay cancels it (MQTT-3.1.3-9).
fn previous_will_due(state: &SessionState, will: &StoredWill, clean_start: bool, now_ms: u64) -> bool {
    if clean_start || state.expiry_secs == 0 {
        return true;
    }
    match state.disconnected_at_ms {
        // Still connected elsewhere (or its broker died): it is disconnected now.
        None => will.delay_secs == 0,
        Some(_) => state.will_due_at_ms().is_some_and(|due| due <= now_ms),
    }
}
