//! One MQTT client connection, from CONNECT to close.
//!
//! Each connection is a single task that owns its socket and state and `select!`s over: packets
//! from the client (paused while too many publishes wait for Kafka, which is the backpressure),
//! Kafka acknowledgements of its publishes, messages from its mailbox, the keep-alive deadline, a
//! take-over by a newer connection, and process shutdown.

mod aliases;
mod connect;
mod deliver;
mod intents;
mod persist;
mod publish;
mod rewind;
mod shared;
mod subscribe;

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::acl::{Identity, Request};
use crate::broker::Broker;
use crate::codec::{reason, DecodeError, Disconnect, Packet, Properties, ProtocolVersion, QoS, SubscriptionOptions};
use crate::connection::{Connection, ConnectionError};
use crate::delivery::mailbox::Mailbox;
use crate::message::now_ms;
use crate::registry::Kick;
use crate::session::record::{StoredSubscription, StoredWill};
use crate::session::{SessionError, Snapshot};
use crate::shutdown::Shutdown;

use aliases::OutboundAliases;
use deliver::Outbound;
use persist::Persist;
use publish::InboundAck;

/// How long a new connection may take to send CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Packets already in the read buffer handled in one loop turn.
const BATCH_PACKETS: usize = 64;
/// How often a connected persistent session saves its delivery cursors (when they moved): what
/// a pod crash can make a session receive twice (QoS 1 is at least once).
const CHECKPOINT: Duration = Duration::from_secs(2);
/// Longest a closing connection waits for its session state to reach Kafka.
const FINAL_SAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a connection ends; decides the DISCONNECT reason we send and whether the Will goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// The client sent DISCONNECT; `will` is true for MQTT 5 reason 0x04.
    ClientDisconnect { will: bool },
    /// The client closed the socket or it failed.
    Gone,
    /// We close for a protocol violation with this reason code.
    Protocol(u8),
    /// We close for a packet that broke a rule: the reason code, and the rule, which MQTT 5
    /// clients get in the DISCONNECT's Reason String.
    Violation(u8, Box<str>),
    /// No packet within 1.5 × keep-alive.
    KeepAlive,
    /// A newer connection took the client id over.
    TakenOver,
    /// The token the client authenticated with expired.
    TokenExpired,
    /// The process is shutting down.
    Shutdown,
    /// This broker sheds clients towards the average of the brokers (see `crate::rebalance`).
    Rebalance,
    /// Kafka refused a publish we cannot report in-band (MQTT 3.1.1).
    Kafka,
}

impl End {
    /// A packet broke a rule of the codec's (its error names the rule).
    fn malformed(e: &DecodeError) -> End {
        End::Violation(e.reason_code(), e.to_string().into())
    }

    /// A packet could not be read: malformed, or too large for the room left in the budget of
    /// packets being received; or the socket is gone.
    fn unreadable(e: &ConnectionError) -> End {
        match e {
            ConnectionError::Decode(d) => End::malformed(d),
            ConnectionError::OverBudget(_) => End::Violation(reason::QUOTA_EXCEEDED, e.to_string().into()),
            ConnectionError::Io(_) | ConnectionError::Truncated => End::Gone,
        }
    }

    /// DISCONNECT reason for MQTT 5 clients, when the server is the one closing.
    fn server_reason(&self) -> Option<u8> {
        match self {
            End::ClientDisconnect { .. } | End::Gone => None,
            End::Protocol(r) | End::Violation(r, _) => Some(*r),
            End::KeepAlive => Some(reason::KEEP_ALIVE_TIMEOUT),
            End::TakenOver => Some(reason::SESSION_TAKEN_OVER),
            // The time this connection was authorized for is over; the client reconnects
            // with a fresh token (0x87 would read as "never come back").
            End::TokenExpired => Some(reason::MAXIMUM_CONNECT_TIME),
            End::Shutdown => Some(reason::SERVER_SHUTTING_DOWN),
            End::Rebalance => Some(reason::USE_ANOTHER_SERVER),
            End::Kafka => Some(reason::UNSPECIFIED_ERROR),
        }
    }
}

/// A client's names for access rules, and when its token expires.
#[derive(Debug, Default)]
struct Names {
    /// The authenticated username.
    username: Option<Box<str>>,
    /// The verified client certificate's name (`cn:` rules).
    cert_name: Option<Box<str>>,
    /// The token's groups.
    groups: Vec<Box<str>>,
    /// When the token expires: the connection ends then.
    token_expires: Option<Instant>,
}

impl Names {
    /// The names of an authenticated client; `None` (no allocation) when it has none.
    fn boxed(a: crate::auth::Authenticated, cert_name: Option<Box<str>>) -> Option<Box<Names>> {
        if a.username.is_none() && cert_name.is_none() && a.groups.is_empty() && a.expires_at.is_none() {
            return None;
        }
        // An `exp` too far ahead for the clock (the token's issuer chose it) means no deadline.
        let token_expires = a.expires_at.and_then(|exp| {
            let left = exp.saturating_mul(1000).saturating_sub(now_ms());
            Instant::now().checked_add(Duration::from_millis(left))
        });
        Some(Box::new(Names { username: a.username, cert_name, groups: a.groups, token_expires }))
    }
}

/// What the listener learned about a connection before MQTT started.
/// Boxed, so that the connection task stays the size it is without a certificate.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The source IP address (`None` for in-process streams): failed authentications and
    /// `limits.maxConnectionsPerAddress` are counted by it.
    pub address: Option<std::net::IpAddr>,
    /// The client certificate the TLS layer verified (mTLS), if any: an identity without a
    /// password.
    pub certificate: Option<Box<VerifiedCertificate>>,
    /// The open-connections gauge of the listener it came through.
    pub listener: Gauge,
}

/// What an open connection counts in.
struct Counted {
    /// The open-connections gauge of its listener, counted from CONNACK to the end.
    listener: Gauge,
    /// Its place among the connections of its source address, until the connection ends.
    _address_slot: Option<crate::admission::AddressSlot>,
}

/// A client certificate verified against the listener's client CA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifiedCertificate {
    /// The name `cn:` access rules match: its subject common name, or the subject alternative
    /// name `authentication.certificateName` selects.
    pub name: Option<Box<str>>,
}

impl Peer {
    /// The name of the verified client certificate, if there is one and it has one.
    fn cert_name(&self) -> Option<&str> {
        self.certificate.as_ref().and_then(|c| c.name.as_deref())
    }
}

/// Serves one client connection until it ends. `peer` is boxed: the future keeps its
/// arguments for its whole life, and every byte of it is paid per idle connection.
pub async fn serve<S>(stream: S, peer: Box<Peer>, broker: Arc<Broker>, shutdown: Shutdown)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // The handshake and the goodbye are boxed so that their futures are not held inline for the
    // whole life of the connection: the idle state is what decides memory per connection.
    let Some(mut client) = Box::pin(handshake(stream, *peer, broker, shutdown)).await else { return };
    let end = client.run().await;
    Box::pin(client.finish(end)).await;
}

/// Reads and answers CONNECT; `None` when the connection was refused or went away.
async fn handshake<S>(stream: S, peer: Peer, broker: Arc<Broker>, shutdown: Shutdown) -> Option<Client<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let limits = &broker.config.limits;
    let mut conn = Connection::new(stream, limits.max_packet_size, broker.read_budget.clone(), broker.metrics.clone());
    let connect = match tokio::time::timeout(CONNECT_TIMEOUT, conn.read_packet()).await {
        Ok(Ok(Some(Packet::Connect(c)))) => c,
        Ok(Err(ConnectionError::Decode(e))) => {
            broker.metrics.protocol_errors.inc();
            if let Some(code) = connect::refuse_undecodable(&mut conn, &e).await {
                broker.metrics.connack(code);
            }
            return None;
        }
        // Timeout, I/O error, clean close, or a first packet that is not CONNECT (MQTT-3.1.0-1).
        _ => return None,
    };
    // Until CONNACK (the session claimed, a stored one resumed); outside the connection's main
    // loop, inside this boxed future, so that idle connections do not hold it.
    let span = tracing::info_span!(
        "mqtt.connect",
        client_id = %connect.client_id,
        protocol = connect.protocol.level(),
        clean_start = connect.clean_start,
        session_present = tracing::field::Empty,
        reason = tracing::field::Empty,
    );
    Client::accept(conn, connect, peer, broker, shutdown).instrument(span).await
}

/// The state of one accepted connection.
struct Client<S> {
    broker: Arc<Broker>,
    conn: Connection<S>,
    version: ProtocolVersion,
    client_id: Arc<str>,
    session: u64,
    /// Offset of this connection's claim in the sessions topic: newer claims take over.
    epoch: i64,
    /// Session Expiry Interval in seconds; 0 = the session ends with the connection (nothing
    /// stored), `NEVER_EXPIRES` for 3.1.1 persistent sessions.
    expiry: u32,
    mailbox: Arc<Mailbox>,
    /// Where the connection is counted while it is open (boxed: one pointer per connection).
    counted: Box<Counted>,
    /// Filters this connection subscribed to, with options and identifier (removed from the
    /// router at the end, stored for persistent sessions).
    subscriptions: HashMap<Box<str>, (SubscriptionOptions, Option<u32>)>,
    /// The Last Will, also in the stored session state (so it survives this broker). Boxed:
    /// most clients have none, and a Will with its properties is a few hundred bytes.
    will: Option<Box<StoredWill>>,
    /// A session state was written at CONNECT (persistent, or keeping a Will).
    stored: bool,
    /// Who the client is for access rules beyond its client id; `None` (no allocation) for an
    /// anonymous client without a certificate, most of a fleet behind a gateway.
    names: Option<Box<Names>>,
    /// Keep-alive in seconds, 0 for none (a `u16`, not a `Duration`: 14 bytes less per
    /// idle connection).
    keep_alive: u16,
    last_seen: Instant,
    kicked: Option<oneshot::Receiver<Kick>>,
    shutdown: Shutdown,
    /// Publishes handed to Kafka, acknowledged to the client in arrival order.
    pending: FuturesOrdered<InboundAck>,
    /// Inbound QoS 2 packet ids: `false` while Kafka has not acknowledged, `true` once PUBREC
    /// was sent and we wait for PUBREL. A DUP of either is not produced again.
    qos2: HashMap<u16, bool>,
    /// MQTT 5 topic aliases set by the client (a boxed slice, not a `Vec`: 8 bytes less per
    /// idle connection).
    aliases: Box<[Option<Box<str>>]>,
    /// MQTT 5 topic aliases the broker sets on its deliveries.
    out_aliases: OutboundAliases,
    outbound: Outbound,
    /// Delivery cursors of a persistent or resumed session, or of a clean one whose mailbox
    /// refused deliveries (boxed: other clean sessions have none).
    /// A resumed session whose expiry is 0 has them for its offline delivery only: its state
    /// was removed at CONNECT and nothing is saved again.
    persist: Option<Box<Persist>>,
    /// A rewinding subscription's replay and seams (boxed: almost no connection has one).
    replays: Option<Box<rewind::Replays>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    /// The main loop; returns how the connection ended.
    async fn run(&mut self) -> End {
        let max_pending = usize::from(self.broker.config.limits.max_inflight);
        loop {
            if let Err(e) = self.drain_mailbox() {
                tracing::warn!(client = %self.client_id, error = %e, "cannot encode a delivery");
                return End::Protocol(reason::UNSPECIFIED_ERROR);
            }
            // Write-ahead for QoS 2: what the client is about to see (packet ids, releases) and
            // what is about to be produced is in the session state first. Boxed: rare and large.
            if self.persist.as_ref().is_some_and(|p| p.needs_write_ahead()) {
                if let Err(end) = Box::pin(self.save_then_produce()).await {
                    return end;
                }
            }
            if self.conn.flush().await.is_err() {
                return End::Gone;
            }
            if self.persist.as_ref().is_some_and(|p| p.checkpoint_due(CHECKPOINT)) {
                // Boxed for the same reason as packet handling: rare and large.
                if let Err(e) = Box::pin(self.save_state(None)).await {
                    tracing::warn!(client = %self.client_id, error = %e, "session cursors not saved");
                }
            }
            let (deadline, expired) = match self.deadline() {
                Some((at, end)) => (Some(at), Some(end)),
                None => (None, None),
            };
            let can_read = self.pending.len() < max_pending;
            let catching_up = self.persist.as_ref().is_some_and(|p| p.reader_ready());
            // Packet handling is boxed: a packet (up to ~850 bytes) or its handler (a PUBLISH
            // waiting for room in the producer, a SUBSCRIBE starting a tailer) must not be part
            // of every idle connection's task.
            let mut result = self.next_step(can_read, catching_up, deadline, expired).await;
            // Packets that arrived together are handled together: one session save and one
            // flush then serve all of them (a burst of PUBRECs, PUBRELs or QoS 2 PUBLISHes).
            for _ in 0..BATCH_PACKETS {
                if result.is_err() || self.pending.len() >= max_pending {
                    break;
                }
                match self.conn.buffered_packet() {
                    Ok(Some(p)) => result = Box::pin(self.handle(p)).await,
                    Ok(None) => break,
                    Err(e) => result = Err(End::unreadable(&e)),
                }
            }
            if let Err(end) = result {
                return end;
            }
        }
    }

    /// Waits for the next thing to do and does it: the select only decides, packet handling
    /// runs after it, boxed (see `run`).
    /// At `deadline` the connection ends as `expired` says (see `deadline`).
    async fn next_step(
        &mut self,
        can_read: bool,
        catching_up: bool,
        deadline: Option<Instant>,
        expired: Option<End>,
    ) -> Result<(), End> {
        let draining = self.shutdown.is_triggered();
        // A replay waits for an offline read-back to finish (it cannot start during one).
        let rewinding = !catching_up && self.replays.as_ref().is_some_and(|r| r.ready());
        let step: Result<Option<BoxFuture<'_, Result<(), End>>>, End> = tokio::select! {
            // Shutdown wakes the loop once: its turn in the drain window becomes the deadline.
            _ = self.shutdown.recv(), if !draining => Ok(None),
            kick = recv_kick(&mut self.kicked), if self.kicked.is_some() => match kick {
                Some(Kick::TakenOver) => Err(End::TakenOver),
                Some(Kick::Rebalance) => Err(End::Rebalance),
                // The registry dropped us without a kick: keep serving, stop listening.
                None => Ok(None),
            },
            Some(ack) = self.pending.next(), if !self.pending.is_empty() => self.on_kafka_ack(ack).map(|_| None),
            packet = self.conn.read_packet(), if can_read => match packet {
                Ok(Some(p)) => {
                    self.last_seen = Instant::now();
                    Ok(Some(Box::pin(self.handle(p))))
                }
                Ok(None) => Err(End::Gone),
                Err(e) => {
                    tracing::debug!(client = %self.client_id, error = %e, "packet not read");
                    Err(End::unreadable(&e))
                }
            },
            d = recv_catchup(&mut self.persist), if catching_up => {
                match self.on_catchup(d) {
                    Ok(()) => Ok(None),
                    Err(_) => Err(End::Protocol(reason::UNSPECIFIED_ERROR)),
                }
            }
            d = recv_rewind(&mut self.replays), if rewinding => {
                match self.on_rewind(d) {
                    Ok(()) => Ok(None),
                    Err(_) => Err(End::Protocol(reason::UNSPECIFIED_ERROR)),
                }
            }
            _ = self.mailbox.notified() => Ok(None),
            _ = sleep_until(deadline), if deadline.is_some() => Err(expired.unwrap_or(End::KeepAlive)),
        };
        match step {
            Ok(Some(work)) => work.await,
            Ok(None) => Ok(()),
            Err(end) => Err(end),
        }
    }

    /// Handles one packet from the client.
    async fn handle(&mut self, packet: Packet) -> Result<(), End> {
        match packet {
            Packet::Publish(p) => self.on_publish(p).await,
            Packet::PubAck(r) => self.on_puback(r),
            Packet::PubRec(r) => self.on_pubrec(r),
            Packet::PubComp(r) => self.on_pubcomp(r),
            Packet::PubRel(r) => self.on_pubrel(r),
            Packet::Subscribe(s) => self.on_subscribe(s).await,
            Packet::Unsubscribe(u) => self.on_unsubscribe(u).await,
            Packet::PingReq => self.send(&Packet::PingResp),
            Packet::Disconnect(d) => {
                // MQTT 5 lets DISCONNECT change the expiry, but not make a session that ends with
                // its connection persistent (MQTT-3.14.2-2); such a request is ignored.
                if let (Some(e), true) = (d.properties.session_expiry_interval, self.expiry > 0) {
                    self.expiry = e;
                }
                Err(End::ClientDisconnect { will: d.reason == reason::DISCONNECT_WITH_WILL_MESSAGE })
            }
            // We announce no authentication method, so AUTH is a protocol error (MQTT-3.15.0-?).
            // A second CONNECT is one too (MQTT-3.1.0-2); server-to-client packets likewise.
            _ => Err(End::Protocol(reason::PROTOCOL_ERROR)),
        }
    }

    /// When the connection ends unless something happens, and why: the keep-alive's deadline,
    /// the token's expiry or, while the broker drains, this connection's turn, whichever comes
    /// first. One timer serves all three, and the computation stays out of the idle task's
    /// state.
    fn deadline(&self) -> Option<(Instant, End)> {
        let keep_alive = (self.keep_alive > 0)
            .then(|| (self.last_seen + Duration::from_millis(u64::from(self.keep_alive) * 1500), End::KeepAlive));
        let token = self.names.as_ref().and_then(|n| n.token_expires).map(|t| (t, End::TokenExpired));
        let drain = self.shutdown.turn(self.session).map(|t| (t, End::Shutdown));
        [keep_alive, token, drain].into_iter().flatten().min_by_key(|(at, _)| *at)
    }

    /// Queues a packet for the client.
    fn send(&mut self, packet: &Packet) -> Result<(), End> {
        match self.conn.queue(packet) {
            Ok(_) => Ok(()),
            Err(_) => Err(End::Protocol(reason::UNSPECIFIED_ERROR)),
        }
    }

    /// Says goodbye, publishes the Will when due and removes every trace of the connection.
    async fn finish(&mut self, end: End) {
        if let End::Protocol(_) | End::Violation(..) = end {
            self.broker.metrics.protocol_errors.inc();
        }
        let goodbye = match (self.version, end.server_reason()) {
            (ProtocolVersion::V5, Some(reason)) => {
                let reason_string = match &end {
                    End::Violation(_, rule) => Some(rule.to_string()),
                    _ => None,
                };
                // A drain or a rebalance that names another server sends the client there
                // (MQTT 5 §4.11).
                let moved = self
                    .broker
                    .config
                    .limits
                    .drain_server_reference
                    .as_ref()
                    .filter(|_| matches!(end, End::Shutdown | End::Rebalance));
                let reason = if moved.is_some() { reason::USE_ANOTHER_SERVER } else { reason };
                let properties =
                    Properties { reason_string, server_reference: moved.cloned(), ..Properties::default() };
                Some(Packet::Disconnect(Disconnect { reason, properties }))
            }
            _ => None,
        };
        // Packets whose session state was not saved must not reach the client: it gets them
        // again, consistently, from whichever connection resumes the session.
        if self.persist.as_ref().is_some_and(|p| p.needs_write_ahead()) {
            self.conn.discard_writes();
        }
        self.conn.close_with(goodbye.as_ref()).await;
        // Closed now: the Will and the final save below may wait on Kafka, and an HPA must not
        // count this connection meanwhile.
        self.broker.metrics.connections.dec();
        self.counted.listener.dec();
        // Shared subscriptions' messages go to other members now, not after the Will and the
        // final save.
        self.leave_shares();
        if end == End::TakenOver {
            self.broker.metrics.takeovers.inc();
        } else if end == End::Shutdown {
            self.broker.metrics.drain_disconnected.inc();
        } else if end == End::Rebalance {
            self.broker.metrics.rebalance_disconnected.inc();
        }
        // The Will: none after a normal DISCONNECT; on a take-over the new connection decides
        // from the stored state (see session::open); otherwise at once, unless it
        // has a delay and the session outlives the connection: then it stays in the saved state
        // and is published when due by whichever broker owns the session (session::reaper).
        let will = self.will.take();
        let delayed = will.as_ref().is_some_and(|w| w.delay_secs > 0 && self.expiry > 0);
        match end {
            End::ClientDisconnect { will: false } | End::TakenOver => {}
            _ if delayed => self.will = will,
            _ => {
                if let Some(w) = will {
                    // Before the state forgets it: a crash in between publishes it twice, not never.
                    let msg = w.to_message(&self.client_id, now_ms());
                    if let Err(e) = self.broker.publisher.publish_will(&self.client_id, msg).await {
                        tracing::warn!(client = %self.client_id, error = %e, "last will not published");
                    }
                }
            }
        }
        // A session taken over belongs to the new connection now: it must not be written.
        if end != End::TakenOver {
            let saved = tokio::time::timeout(FINAL_SAVE_TIMEOUT, self.save_state(Some(now_ms()))).await;
            if !matches!(saved, Ok(Ok(()))) {
                tracing::warn!(client = %self.client_id, "session state not saved at disconnect");
            }
        }
        self.release();
        tracing::debug!(client = %self.client_id, ?end, "connection closed");
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    /// Whether the access rules in force let this client do `request` on `topic`.
    fn allowed(&self, request: Request, topic: &str) -> bool {
        let names = self.names.as_deref();
        let who = Identity {
            client_id: &self.client_id,
            username: names.and_then(|n| n.username.as_deref()),
            cert_name: names.and_then(|n| n.cert_name.as_deref()),
            groups: names.map_or(&[], |n| &n.groups[..]),
        };
        let allowed = self.broker.acl().allows(who, request, topic);
        if !allowed {
            self.broker.metrics.acl_denied.inc();
            tracing::debug!(client = %self.client_id, ?request, %topic, "denied by the access rules");
        }
        allowed
    }

    /// Removes the connection's subscriptions from the router and its registration.
    fn release(&mut self) {
        for (filter, _) in std::mem::take(&mut self.subscriptions) {
            if self.leave_share(&filter).is_none() {
                self.broker.router.unsubscribe(&filter, self.session);
            }
        }
        self.broker.registry.unregister(&self.client_id, self.session);
    }

    /// Undoes a CONNECT that failed after its session state was written as connected: the
    /// state is saved as disconnected without this connection's Will (a refused connection has
    /// none), so it expires and is not taken for a live one; then the connection is released.
    async fn abandon(&mut self) {
        self.will = None;
        let saved = tokio::time::timeout(FINAL_SAVE_TIMEOUT, self.save_state(Some(now_ms()))).await;
        if !matches!(saved, Ok(Ok(()))) {
            tracing::warn!(client = %self.client_id, "session state of a failed connect not saved");
        }
        self.release();
    }

    /// Saves the session state, then produces the inbound QoS 2 publications that waited for
    /// their intent to be in it.
    async fn save_then_produce(&mut self) -> Result<(), End> {
        tracing::trace!(client = %self.client_id, "write-ahead save");
        match self.save_state(None).await {
            Ok(()) => tracing::trace!(client = %self.client_id, "write-ahead saved"),
            Err(SessionError::NotOwner) => return Err(End::TakenOver),
            Err(e) => {
                tracing::warn!(client = %self.client_id, error = %e, "session state not saved");
                return Err(End::Kafka);
            }
        }
        let parked = self.persist.as_mut().map(|p| p.take_parked()).unwrap_or_default();
        for (id, msg, placement) in parked {
            self.produce(Some(id), QoS::ExactlyOnce, msg, Some(&placement)).await?;
        }
        Ok(())
    }

    /// Writes the session state of a persistent session and waits for Kafka's ack;
    /// `disconnected_at` starts the expiry clock. A session ending with its connection only
    /// has a state to keep its Will: it is removed at disconnect. The state is built before the
    /// returned future runs, which holds no reference to the connection (it is not `Sync`).
    fn save_state(&mut self, disconnected_at: Option<u64>) -> impl Future<Output = Result<(), SessionError>> + Send {
        let (cursors, in_flight, inbound_qos2) = match self.persist.as_mut() {
            Some(p) => {
                let (cursors, redeliveries, intents) = p.take_for_save();
                let mut in_flight = self.outbound.stored();
                in_flight.extend(redeliveries);
                (cursors, in_flight, intents)
            }
            None => Default::default(),
        };
        let snapshot = (self.expiry > 0).then(|| Snapshot {
            expiry_secs: self.expiry,
            disconnected_at_ms: disconnected_at,
            subscriptions: self
                .subscriptions
                .iter()
                .map(|(filter, (options, id))| StoredSubscription::new(filter, *options, *id))
                .collect(),
            cursors,
            in_flight,
            inbound_qos2,
            will: self.will.clone(),
        });
        // A stored session whose expiry is 0 now (a clean session keeping its Will, or a
        // DISCONNECT setting the expiry to 0) ends here.
        let remove = self.expiry == 0 && disconnected_at.is_some() && self.stored;
        let (broker, client_id, epoch) = (self.broker.clone(), self.client_id.clone(), self.epoch);
        async move {
            match snapshot {
                Some(snapshot) => broker.sessions.save(&client_id, epoch, snapshot).await,
                None if remove => broker.sessions.remove_state(&client_id, epoch).await,
                None => Ok(()),
            }
        }
    }
}

/// The next record of a resumed session's offline delivery; `None` once the reader is done.
async fn recv_catchup(persist: &mut Option<Box<Persist>>) -> Option<crate::delivery::Delivery> {
    match persist.as_mut().and_then(|p| p.reader()) {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next record of a rewinding subscription's replay; `None` once it is done.
async fn recv_rewind(replays: &mut Option<Box<rewind::Replays>>) -> Option<crate::delivery::Delivery> {
    match replays.as_mut().and_then(|r| r.reader()) {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Waits for a take-over; clears the receiver once it has answered so it is never polled again.
async fn recv_kick(kicked: &mut Option<oneshot::Receiver<Kick>>) -> Option<Kick> {
    let rx = kicked.as_mut()?;
    let kick = rx.await.ok();
    *kicked = None;
    kick
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    /// Size of the future a function returns, without running it.
    fn future_size<A, B, C, D, F>(_: impl FnOnce(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle connection holds this future for its whole life; packets and their handlers
    /// must stay boxed out of it (BENCHMARKS.md, memory per idle connection). Inlining the
    /// PUBLISH or SUBSCRIBE handling makes it several KiB.
    #[test]
    fn connection_task_stays_small() {
        let size = future_size(super::serve::<tokio::net::TcpStream>);
        assert!(size <= 1536, "connection future is {size} bytes");
    }
}
