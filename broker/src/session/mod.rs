//! Persistent MQTT sessions in the compacted Kafka sessions topic, and fencing between broker
//! processes by epoch.
//!
//! Every broker process tails the whole sessions topic into a [`view::View`]. A CONNECT produces
//! a claim (`<client-id>#claim`) to the client's partition; the claim's offset is the
//! connection's *epoch*. The connection waits until the local view has applied that offset: it
//! has then seen every earlier record of the client (no read of the whole topic per connect),
//! and every process that applies the claim kicks its local connections of that client with a
//! smaller epoch (take-over across pods, DISCONNECT 0x8E). State records carry their writer's
//! epoch; the view ignores those older than the newest claim. See docs/design.md.

pub mod catchup;
pub mod record;
pub mod view;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;

use crate::config::Config;
use crate::kafka::producer::{ProduceError, Producer};
use crate::kafka::tailer::{RecordSink, StartAt, Tailer, TailerError};
use crate::message::{now_ms, Message};
use crate::metrics::Metrics;
use crate::registry::Registry;
use record::{claim_key, partition_for, ClaimRecord, SessionState, VERSION};
use view::View;

/// Longest a CONNECT waits for its claim to be written and read back before it is refused
/// (Kafka unavailable).
const CLAIM_TIMEOUT: Duration = Duration::from_secs(10);
/// How often each broker looks for expired sessions.
pub const EXPIRY_SCAN: Duration = Duration::from_secs(5);
/// Claims of clients without stored state are removed after this long, so that every client id
/// ever seen does not stay in every broker's memory. Harmless for a clean session still
/// connected: take-over compares against the *new* claim's offset only.
const CLAIM_RETENTION_MS: u64 = 10 * 60 * 1000;
/// Tombstones produced per expiry scan, so one scan cannot flood the producer.
const MAX_TOMBSTONES_PER_SCAN: usize = 1000;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Kafka refused the record.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// The claim was not written and read back in time.
    #[error("session claim timed out")]
    Timeout,
    /// A newer connection owns the session: this one must not write it.
    #[error("session owned by a newer connection")]
    NotOwner,
    /// The state could not be encoded.
    #[error("session encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The view plus what applying records needs: the local registry to kick fenced connections.
struct Store {
    view: Mutex<View>,
    /// Bumped after every applied record; claim waiters re-check the view.
    progress: watch::Sender<u64>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

impl RecordSink for Store {
    fn deliver(&self, _partition: i32, _offset: i64, _msg: Message) {}

    fn deliver_raw(&self, partition: i32, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> bool {
        let (claim, stored) = match self.view.lock() {
            Ok(mut v) => (v.apply(partition, offset, key, value), v.stored()),
            Err(_) => return true,
        };
        self.metrics.sessions_stored.store(i64::try_from(stored).unwrap_or(i64::MAX), Ordering::Relaxed);
        // Kick after releasing the view: the registry is locked by connects that then read the view.
        if let Some(c) = claim {
            self.registry.fence(&c.client_id, c.epoch);
        }
        self.progress.send_modify(|n| *n = n.wrapping_add(1));
        true
    }
}

/// Sessions of this broker process: the tailed view and the writes to the sessions topic.
pub struct Sessions {
    store: Arc<Store>,
    producer: Producer,
    topic: String,
    partitions: usize,
    node: String,
    _tailer: Tailer,
}

impl Sessions {
    /// Reads the sessions topic up to its end, keeps tailing it, and starts the expiry scan.
    pub async fn start(
        config: &Config,
        producer: Producer,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Sessions>, TailerError> {
        let store =
            Arc::new(Store { view: Mutex::new(View::default()), progress: watch::channel(0).0, registry, metrics });
        let sink: Arc<dyn RecordSink> = store.clone();
        let topic = config.topics.sessions.clone();
        let tailer = Tailer::start(&config.kafka, &topic, StartAt::Beginning, sink).await?;
        tailer.caught_up().await;
        producer.warm_up(&topic).await;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        let sessions = Arc::new(Sessions {
            store,
            producer,
            topic,
            partitions: tailer.partitions(),
            node: format!("{host}/{}", std::process::id()),
            _tailer: tailer,
        });
        tracing::info!(stored = sessions.stored(), "sessions loaded");
        tokio::spawn(expiry_loop(Arc::downgrade(&sessions)));
        Ok(sessions)
    }

    fn partition(&self, client_id: &str) -> i32 {
        partition_for(client_id, self.partitions)
    }

    /// Claims `client_id` for a new connection and returns its epoch once the local view has
    /// applied the claim (and so every earlier record of the client).
    pub async fn claim(&self, client_id: &str) -> Result<i64, SessionError> {
        let value = serde_json::to_vec(&ClaimRecord { v: VERSION, node: self.node.clone(), at_ms: now_ms() })?;
        let work = async {
            let ack = self
                .producer
                .enqueue_raw(&self.topic, self.partition(client_id), claim_key(client_id).as_bytes(), Some(&value))
                .await?
                .await?;
            let mut progress = self.store.progress.subscribe();
            let applied =
                |_: &u64| self.store.view.lock().map(|v| v.has_applied(ack.partition, ack.offset)).unwrap_or(true);
            // An error means the store is gone (shutting down): nothing more to wait for.
            let _ = progress.wait_for(applied).await;
            Ok::<_, SessionError>(ack.offset)
        };
        tokio::time::timeout(CLAIM_TIMEOUT, work).await.map_err(|_| SessionError::Timeout)?
    }

    /// Epoch of the newest claim of `client_id` the view has seen.
    pub fn newest_claim(&self, client_id: &str) -> Option<i64> {
        self.store.view.lock().ok()?.get(client_id)?.claim
    }

    /// The stored state of `client_id`.
    pub fn state(&self, client_id: &str) -> Option<Arc<SessionState>> {
        self.store.view.lock().ok()?.get(client_id)?.state.clone()
    }

    /// Number of stored session states.
    pub fn stored(&self) -> usize {
        self.store.view.lock().map(|v| v.stored()).unwrap_or(0)
    }

    /// Writes `state` (its `epoch` is the writer's) and waits for Kafka's ack. Refused when a
    /// newer claim is known: the writer has been taken over.
    pub async fn write_state(&self, client_id: &str, state: &SessionState) -> Result<(), SessionError> {
        self.check_owner(client_id, state.epoch)?;
        let value = serde_json::to_vec(state)?;
        self.produce(client_id.as_bytes(), client_id, Some(&value)).await
    }

    /// Deletes the state of `client_id` (tombstone), as the connection of `epoch`.
    pub async fn remove_state(&self, client_id: &str, epoch: i64) -> Result<(), SessionError> {
        self.check_owner(client_id, epoch)?;
        self.produce(client_id.as_bytes(), client_id, None).await
    }

    fn check_owner(&self, client_id: &str, epoch: i64) -> Result<(), SessionError> {
        match self.newest_claim(client_id) {
            Some(newest) if newest > epoch => Err(SessionError::NotOwner),
            _ => Ok(()),
        }
    }

    async fn produce(&self, key: &[u8], client_id: &str, value: Option<&[u8]>) -> Result<(), SessionError> {
        self.producer.enqueue_raw(&self.topic, self.partition(client_id), key, value).await?.await?;
        Ok(())
    }

    /// Tombstones expired sessions (state and claim) and old claims of clients without state.
    /// Every broker runs it; tombstoning twice is harmless.
    async fn expire(&self) {
        let now = now_ms();
        let due: Vec<(String, bool)> = match self.store.view.lock() {
            Ok(v) => v
                .entries()
                .filter_map(|(cid, e)| match &e.state {
                    Some(s) if s.is_expired(now) => Some((cid.to_owned(), true)),
                    None if e.claim.is_some() && e.claim_at_ms.saturating_add(CLAIM_RETENTION_MS) <= now => {
                        Some((cid.to_owned(), false))
                    }
                    _ => None,
                })
                .take(MAX_TOMBSTONES_PER_SCAN)
                .collect(),
            Err(_) => return,
        };
        for (cid, has_state) in due {
            if has_state {
                tracing::debug!(client = %cid, "session expired");
                if let Err(e) = self.produce(cid.as_bytes(), &cid, None).await {
                    tracing::warn!(client = %cid, error = %e, "cannot remove expired session");
                }
            }
            if let Err(e) = self.produce(claim_key(&cid).as_bytes(), &cid, None).await {
                tracing::warn!(client = %cid, error = %e, "cannot remove session claim");
            }
        }
    }
}

/// Runs the expiry scan until the sessions are dropped.
async fn expiry_loop(sessions: Weak<Sessions>) {
    let mut tick = tokio::time::interval(EXPIRY_SCAN);
    loop {
        tick.tick().await;
        let Some(s) = sessions.upgrade() else { return };
        s.expire().await;
    }
}
