//! CONNECT handling: client id rules, keep-alive, Will validation, the session claim (take-over
//! across brokers), resuming a stored session, and CONNACK.

use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::aliases::OutboundAliases;
use super::deliver::Outbound;
use super::persist::Persist;
use super::{Client, Counted, Names, Peer};
use crate::acl::{Identity, Request};
use crate::admission::AddressSlot;
use crate::auth::{Authenticated, Credentials};
use crate::broker::Broker;
use crate::codec::{reason, ConnAck, Connect, DecodeError, Packet, Properties, ProtocolVersion};
use crate::connection::Connection;
use crate::delivery::mailbox::Mailbox;
use crate::message::now_ms;
use crate::session::record::{is_reserved, SessionState, StoredWill, NEVER_EXPIRES};
use crate::session::{OpenError, OpenRequest, Opened};
use crate::shutdown::Shutdown;
use crate::topic::{validate_topic_name, within};

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

/// Answers a CONNECT that could not be decoded: MQTT 5 clients get a CONNACK with the reason
/// (and the broken rule as Reason String); others one only where 3.1.1 has a return code for it
/// (unacceptable protocol level, identifier rejected), as MQTT-3.1.2-2 asks. A level above 5
/// is answered in the MQTT 5 format, the newest we speak (0x84 Unsupported Protocol Version);
/// older levels, MQTT 3.1's 3 among them, in the 3.1.1 format their clients read. Returns the
/// reason code of the CONNACK sent, if one was.
pub(super) async fn refuse_undecodable<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    e: &DecodeError,
) -> Option<u8> {
    let code = e.reason_code();
    let has_v311_code = code == reason::UNSUPPORTED_PROTOCOL_VERSION || code == reason::CLIENT_IDENTIFIER_NOT_VALID;
    let version = match conn.failed_connect_level() {
        Some(level) if level >= ProtocolVersion::V5.level() => Some(ProtocolVersion::V5),
        Some(_) if has_v311_code => Some(ProtocolVersion::V311),
        _ => None,
    };
    tracing::debug!(error = %e, "refusing undecodable CONNECT");
    let Some(version) = version else {
        conn.close_with(None).await;
        return None;
    };
    conn.version = Some(version);
    conn.close_with(Some(&Refusal::because(code, e.to_string()).connack())).await;
    Some(code)
}

/// What the broker granted a CONNECT it accepted, before its session is opened.
struct Terms {
    client_id: Arc<str>,
    /// CONNACK properties (MQTT 5).
    props: Properties,
    /// Keep-alive in seconds after `limits.maxKeepAlive`; 0 = none.
    keep_alive: u16,
    /// Session Expiry Interval; 0 = the session ends with the connection.
    expiry: u32,
    /// Outbound window (the client's Receive Maximum within ours).
    window: u16,
    /// Topic aliases the client accepts on deliveries (its Topic Alias Maximum; 0 for 3.1.1).
    topic_aliases: u16,
    will: Option<Box<StoredWill>>,
    /// The verified client certificate's common name (`cn:` access rules).
    cert_name: Option<Box<str>>,
    /// The user, groups and token expiry authentication found.
    authenticated: Authenticated,
    /// The open-connections gauge of the connection's listener.
    listener: Gauge,
    /// This connection counted against its source address (`limits.maxConnectionsPerAddress`).
    address_slot: Option<AddressSlot>,
}

/// Why a CONNECT is refused: the CONNACK reason code and, where it helps, a Reason String
/// (MQTT 5 only; left out when the client's Maximum Packet Size is too small for it).
struct Refusal {
    code: u8,
    why: Option<String>,
}

impl Refusal {
    /// A refusal with `code` that explains itself.
    fn because(code: u8, why: String) -> Refusal {
        Refusal { code, why: Some(why) }
    }

    /// The CONNACK that says so.
    fn connack(&self) -> Packet {
        let properties = Properties { reason_string: self.why.clone(), ..Properties::default() };
        Packet::ConnAck(ConnAck { session_present: false, reason: self.code, properties })
    }
}

impl From<u8> for Refusal {
    fn from(code: u8) -> Refusal {
        Refusal { code, why: None }
    }
}

/// A CONNACK refusing a connection with `code`.
fn refusal(code: u8) -> Packet {
    Refusal::from(code).connack()
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    /// Validates a CONNECT, opens its session and answers it; `None` when the connection was
    /// refused and closed.
    pub(super) async fn accept(
        mut conn: Connection<S>,
        connect: Connect,
        peer: Peer,
        broker: Arc<Broker>,
        shutdown: Shutdown,
    ) -> Option<Self> {
        conn.version = Some(connect.protocol);
        // Before any answer: the CONNACK, a refusal too, must fit (MQTT-3.1.2-24).
        if let Some(max) = connect.properties.maximum_packet_size {
            conn.max_outgoing = max;
        }
        let terms = match validate(&connect, &peer, &broker).await {
            Ok(terms) => terms,
            Err(refused) => {
                answered(&broker, refused.code);
                conn.close_with(Some(&refused.connack())).await;
                return None;
            }
        };
        if connect.client_id.is_empty() {
            tracing::Span::current().record("client_id", &*terms.client_id);
        }
        let request = OpenRequest {
            client_id: &terms.client_id,
            clean_start: connect.clean_start,
            expiry_secs: terms.expiry,
            will: terms.will.as_deref(),
        };
        // The claim in the sessions topic and, for a stored session, reading its state.
        let open =
            broker.sessions.open(request, &broker.publisher).instrument(tracing::info_span!("mqtt.session.open"));
        let opened = match open.await {
            Ok(opened) => opened,
            Err(OpenError::Superseded) => {
                conn.close_with(None).await;
                return None;
            }
            Err(OpenError::Session(e)) => {
                tracing::warn!(client = %terms.client_id, error = %e, "cannot take the session over");
                answered(&broker, reason::SERVER_UNAVAILABLE);
                conn.close_with(Some(&refusal(reason::SERVER_UNAVAILABLE))).await;
                return None;
            }
        };
        Client::opened(conn, connect.protocol, terms, opened, broker, shutdown).connack().await
    }

    /// The connection of a session just opened, before CONNACK.
    fn opened(
        conn: Connection<S>,
        version: ProtocolVersion,
        terms: Terms,
        opened: Opened,
        broker: Arc<Broker>,
        shutdown: Shutdown,
    ) -> Connecting<S> {
        let resumed = opened.resumed;
        // Cursors and in-flight state come with every resumed session, also when this
        // connection ends it (MQTT 5 Session Expiry 0 resuming one stored with an expiry):
        // what was queued while the client was away is delivered before the session ends.
        let persist = (terms.expiry > 0 || resumed.is_some()).then(|| {
            let empty = Default::default();
            let (cursors, in_flight, intents) = match resumed.as_deref() {
                Some(s) => (&s.cursors, &s.in_flight[..], &s.inbound_qos2[..]),
                None => (&empty, &[][..], &[][..]),
            };
            Box::new(Persist::new(cursors, in_flight, intents))
        });
        let client = Client {
            conn,
            version,
            session: opened.registration.session,
            epoch: opened.epoch,
            expiry: terms.expiry,
            kicked: Some(opened.registration.kicked),
            mailbox: Arc::new(Mailbox::new(queued_max(&broker))),
            counted: Box::new(Counted { listener: terms.listener, _address_slot: terms.address_slot }),
            subscriptions: Default::default(),
            stored: opened.stored,
            names: Names::boxed(terms.authenticated, terms.cert_name),
            will: terms.will,
            keep_alive: terms.keep_alive,
            last_seen: Instant::now(),
            shutdown,
            pending: Default::default(),
            qos2: Default::default(),
            aliases: Box::default(),
            out_aliases: OutboundAliases::new(terms.topic_aliases),
            outbound: Outbound::new(terms.window),
            persist,
            replays: None,
            client_id: terms.client_id,
            broker,
        };
        Connecting { client, resumed, props: terms.props }
    }
}

/// A connection whose session is open and whose CONNACK is not sent yet.
struct Connecting<S> {
    client: Client<S>,
    resumed: Option<Arc<SessionState>>,
    props: Properties,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Connecting<S> {
    /// Puts a resumed session's subscriptions back, sends CONNACK, then starts redelivery and
    /// offline delivery; `None` when the connection failed on the way (its state is then saved
    /// as disconnected).
    async fn connack(self) -> Option<Client<S>> {
        let Connecting { mut client, resumed, props } = self;
        // The resumed subscriptions are live before CONNACK; retained messages are not sent
        // again (the spec sends them on SUBSCRIBE only).
        for sub in resumed.iter().flat_map(|s| s.subscriptions.iter()) {
            client.restore_subscription(sub).await;
        }
        // Before CONNACK, so that the client's retransmissions find the answer ready.
        if let Err(e) = client.resolve_intents().await {
            tracing::warn!(client = %client.client_id, error = %e, "cannot check stored QoS 2 publications");
            answered(&client.broker, reason::SERVER_UNAVAILABLE);
            client.conn.close_with(Some(&refusal(reason::SERVER_UNAVAILABLE))).await;
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
        if let Some(state) = &resumed {
            client.resume_in_flight(&state.in_flight);
            client.start_catchup();
        }
        let broker = &client.broker;
        broker.metrics.connections_total.inc();
        broker.metrics.connections.inc();
        client.counted.listener.inc();
        answered(broker, reason::SUCCESS);
        tracing::Span::current().record("session_present", resumed.is_some());
        tracing::debug!(client = %client.client_id, version = ?client.version, keep_alive = ?client.keep_alive, epoch = client.epoch, session_present = resumed.is_some(), "client connected");
        Some(client)
    }
}

/// Checks a CONNECT before anything is written to Kafka for its client id: authentication
/// method, identifier, Will, credentials, the Will's access rights; then works out what the
/// broker grants.
async fn validate(connect: &Connect, peer: &Peer, broker: &Broker) -> Result<Terms, Refusal> {
    let version = connect.protocol;
    // First, before anything costs: a storm is refused here, cheaply, and clients back off.
    let address_slot = broker.admission.admit(peer.address).map_err(|refused| {
        broker.metrics.connects_refused_by_limits.inc();
        tracing::debug!(address = ?peer.address, ?refused, "connect not admitted");
        Refusal::because(refused.reason_code(), refused.explain().to_owned())
    })?;
    // Enhanced authentication is optional and we support no method (MQTT-4.12.0-1).
    if let Some(method) = &connect.properties.authentication_method {
        broker.metrics.auth_failed.inc();
        return Err(Refusal::because(
            reason::BAD_AUTHENTICATION_METHOD,
            format!("authentication method {method:?} is not supported"),
        ));
    }
    let mut props = Properties::default();
    // Client identifier (MQTT-3.1.3-6..8): an empty id gets one assigned, except for a 3.1.1
    // client asking for a persistent session.
    let client_id: Arc<str> = if connect.client_id.is_empty() {
        if version == ProtocolVersion::V311 && !connect.clean_start {
            return Err(reason::CLIENT_IDENTIFIER_NOT_VALID.into());
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
        return Err(reason::CLIENT_IDENTIFIER_NOT_VALID.into());
    }
    if let Some(w) = &connect.will {
        if validate_topic_name(&w.topic).is_err() {
            return Err(reason::TOPIC_NAME_INVALID.into());
        }
        let limits = &broker.config.limits;
        if !within(&w.topic, limits.max_topic_length, limits.max_topic_levels) {
            broker.metrics.limits_exceeded.inc();
            return Err(Refusal::because(reason::TOPIC_NAME_INVALID, "the Will topic exceeds the limits".into()));
        }
        // Wills are stored in the session state, which every broker holds in memory. The
        // payload is at most 65,535 bytes by the protocol; properties are not.
        let size = will_size(w);
        if size > MAX_WILL_BYTES {
            tracing::debug!(client = %connect.client_id, size, "will too large");
            return Err(Refusal::because(
                reason::PACKET_TOO_LARGE,
                format!("a Will is at most {MAX_WILL_BYTES} bytes"),
            ));
        }
    }
    let credentials = Credentials {
        username: connect.username.as_deref(),
        password: connect.password.as_deref(),
        certificate: peer.certificate.is_some(),
        address: peer.address,
    };
    let authenticated = match broker.auth.check(credentials).await {
        Ok(a) => a,
        Err(code) => {
            broker.metrics.auth_failed.inc();
            tracing::debug!(client = %client_id, user = ?connect.username, code, "authentication failed");
            return Err(code.into());
        }
    };
    // A Will the client may not publish would be refused when it is due: refuse it now.
    if let Some(w) = &connect.will {
        let who = Identity {
            client_id: &client_id,
            username: authenticated.username.as_deref(),
            cert_name: peer.cert_name(),
            groups: &authenticated.groups,
        };
        if !broker.acl().allows(who, Request::Publish, &w.topic) {
            broker.metrics.acl_denied.inc();
            return Err(reason::NOT_AUTHORIZED.into());
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
        props.shared_subscription_available = Some(u8::from(limits.max_share_groups > 0));
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
    let will = connect.will.as_ref().map(|w| Box::new(StoredWill::from_connect(w)));
    let topic_aliases = connect.properties.topic_alias_maximum.unwrap_or(0);
    let cert_name = peer.cert_name().map(Box::from);
    Ok(Terms {
        client_id,
        props,
        keep_alive,
        expiry,
        window,
        topic_aliases,
        will,
        cert_name,
        authenticated,
        listener: peer.listener.clone(),
        address_slot,
    })
}

/// Counts a CONNACK's reason code, and records it on the connect span.
fn answered(broker: &Broker, code: u8) {
    broker.metrics.connack(code);
    tracing::Span::current().record("reason", code);
}

/// Messages queued for one connected client (`limits.maxQueuedMessages`).
fn queued_max(broker: &Broker) -> usize {
    usize::try_from(broker.config.limits.max_queued_messages).unwrap_or(usize::MAX)
}

/// A unique client id for clients that sent none: process start time plus a counter is unique
/// enough within a pod; the pod's hostname keeps pods apart.
fn assign_client_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    format!("tributary-{host}-{:x}-{}", now_ms(), COUNTER.fetch_add(1, Ordering::Relaxed))
}
