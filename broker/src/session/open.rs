//! The session side of a CONNECT and of every later save: the session module alone builds
//! [`SessionState`] records, so their version and epoch are stamped in one place.
//!
//! Opening a session claims the client id (take-over across pods), registers the connection
//! locally, publishes the previous connection's Will when this CONNECT makes it due, and
//! records the new owner, in that order: a Will goes out before the state that forgets it is
//! written (a crash in between publishes it twice, never zero times).

use std::sync::Arc;

use super::reaper::WILL_PUBLISH_TIMEOUT;
use super::record::{Cursors, SessionState, StoredFlight, StoredIntent, StoredSubscription, StoredWill, VERSION};
use super::{SessionError, Sessions};
use crate::message::now_ms;
use crate::publisher::Publisher;
use crate::registry::Registration;

/// What a CONNECT asks of its session.
#[derive(Debug)]
pub struct OpenRequest<'a> {
    /// The client identifier (assigned or sent).
    pub client_id: &'a Arc<str>,
    /// Clean Start (3.1.1 cleanSession): an existing session is not resumed.
    pub clean_start: bool,
    /// Session Expiry Interval of the new connection; 0 ends the session with the connection.
    pub expiry_secs: u32,
    /// The new connection's Last Will.
    pub will: Option<&'a StoredWill>,
}

/// A session opened for a new connection.
pub struct Opened {
    /// Offset of the connection's claim: newer claims take over.
    pub epoch: i64,
    /// The connection's local registration (kicked by a newer claim).
    pub registration: Registration,
    /// The stored state this connection resumes (session present).
    pub resumed: Option<Arc<SessionState>>,
    /// A state was written for the connection (it persists, or keeps a Will).
    pub stored: bool,
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// An even newer connection claimed the client id meanwhile; it wins.
    #[error("a newer connection claimed the client id")]
    Superseded,
    /// Kafka did not take the claim or the state.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// What a connection stores of its session; [`Sessions::save`] adds version and epoch.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Session Expiry Interval in seconds; 0 means the session ends with its connection.
    pub expiry_secs: u32,
    /// When the connection ended (starts the expiry clock); `None` while connected.
    pub disconnected_at_ms: Option<u64>,
    /// Subscriptions with their options and identifiers.
    pub subscriptions: Vec<StoredSubscription>,
    /// Delivery cursors.
    pub cursors: Cursors,
    /// Outbound QoS 1/2 messages not acknowledged yet.
    pub in_flight: Vec<StoredFlight>,
    /// Inbound QoS 2 publications not released yet.
    pub inbound_qos2: Vec<StoredIntent>,
    /// The Last Will still to publish.
    pub will: Option<Box<StoredWill>>,
}

impl Snapshot {
    /// The record of this snapshot written by the connection of `epoch`.
    fn into_state(self, epoch: i64) -> SessionState {
        SessionState {
            v: VERSION,
            epoch,
            expiry_secs: self.expiry_secs,
            disconnected_at_ms: self.disconnected_at_ms,
            subscriptions: self.subscriptions,
            cursors: self.cursors,
            in_flight: self.in_flight,
            inbound_qos2: self.inbound_qos2,
            will: self.will,
        }
    }

    /// What a resumed `state` hands to its new connection: everything but the Will, which is
    /// the new connection's own.
    fn resuming(state: Option<&SessionState>, expiry_secs: u32, will: Option<&StoredWill>) -> Snapshot {
        let mut snapshot = state
            .map(|s| Snapshot {
                subscriptions: s.subscriptions.clone(),
                cursors: s.cursors.clone(),
                in_flight: s.in_flight.clone(),
                inbound_qos2: s.inbound_qos2.clone(),
                ..Snapshot::default()
            })
            .unwrap_or_default();
        snapshot.expiry_secs = expiry_secs;
        snapshot.will = will.map(|w| Box::new(w.clone()));
        snapshot
    }
}

impl Sessions {
    /// Opens the session of a new connection: claim, local registration, the previous Will when
    /// this CONNECT makes it due (published through `publisher`), then the new owner's state (or
    /// the end of a stored session the connection does not keep).
    pub async fn open(&self, request: OpenRequest<'_>, publisher: &Publisher) -> Result<Opened, OpenError> {
        let client_id = request.client_id;
        // Claim first, on every connect: that is what makes a connection elsewhere leave. Once
        // the claim is read back, the view holds everything written for this client before it.
        let epoch = self.claim(client_id).await?;
        let registration = self.store.registry.register(client_id, epoch);
        if self.newest_claim(client_id).is_some_and(|newest| newest > epoch) {
            self.store.registry.unregister(client_id, registration.session);
            return Err(OpenError::Superseded);
        }
        let existing = self.state(client_id);
        if let Some(state) = &existing {
            self.publish_previous_will(client_id, state, request.clean_start, publisher).await;
        }
        let resumed = existing.clone().filter(|s| !request.clean_start && !s.is_expired(now_ms()));
        // Record the new owner (which also resets the expiry clock), or end the stored session.
        // A session ending with its connection stores a state only to keep its Will, so that
        // the Will survives this broker (see session::reaper).
        let stored = request.expiry_secs > 0 || request.will.is_some();
        let written = if stored {
            let snapshot = Snapshot::resuming(resumed.as_deref(), request.expiry_secs, request.will);
            self.save(client_id, epoch, snapshot).await
        } else if existing.is_some() {
            self.remove_state(client_id, epoch).await
        } else {
            Ok(())
        };
        if let Err(e) = written {
            self.store.registry.unregister(client_id, registration.session);
            return Err(e.into());
        }
        Ok(Opened { epoch, registration, resumed, stored })
    }

    /// Writes the state of `client_id` as the connection of `epoch` and waits for Kafka's ack.
    /// Refused when a newer claim is known: the writer has been taken over.
    pub async fn save(&self, client_id: &str, epoch: i64, snapshot: Snapshot) -> Result<(), SessionError> {
        self.write_state(client_id, &snapshot.into_state(epoch)).await
    }

    /// Publishes the previous connection's Will when this CONNECT makes it due. Bounded: a stuck
    /// partition must not hold the CONNECT (the record stays queued in the producer and goes
    /// out when Kafka takes it).
    async fn publish_previous_will(
        &self,
        client_id: &str,
        state: &SessionState,
        clean_start: bool,
        publisher: &Publisher,
    ) {
        let Some(will) = state.will.as_ref() else { return };
        if !previous_will_due(state, will, clean_start, now_ms()) {
            return;
        }
        let publish = publisher.publish_will(client_id, will.to_message(client_id, now_ms()));
        match tokio::time::timeout(WILL_PUBLISH_TIMEOUT, publish).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(client = %client_id, error = %e, "previous connection's will not published"),
            Err(_) => tracing::warn!(client = %client_id, "previous connection's will not acknowledged in time"),
        }
    }
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
