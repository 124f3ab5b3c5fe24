//! Persistent MQTT sessions in the compacted Kafka sessions topic, and fencing between broker
//! processes by epoch.
//!
//! Every broker process tails the whole sessions topic into a [`view::View`]. A CONNECT produces
//! a claim (`<client-id>#claim`) to the client's partition; the claim's offset is the
//! connection's *epoch*. The connection waits until the local view has applied that offset: it
//! has then seen every earlier record of the client (no read of the whole topic per connect),
//! and every process that applies the claim kicks its local connections of that client with a
//! smaller epoch (take-over across pods, DISCONNECT 0x8E). A process applies its own records
//! as soon as Kafka acknowledges them and nothing unread precedes them, so a CONNECT waits for
//! the tailer's next fetch only when another writer's records came first. State records carry their writer's
//! epoch; the view ignores those older than the newest claim. See docs/design.md.

mod open;
pub(crate) mod reaper;
pub mod record;
mod scan;
pub(crate) mod view;

use futures::StreamExt;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

use crate::config::Config;
use crate::kafka::log::{Log, OutRecord};
use crate::kafka::producer::ProduceError;
use crate::kafka::record::RecordRef;
use crate::kafka::tailer::{RecordSink, StartAt, Tailer, TailerError};
use crate::message::now_ms;
use crate::metrics::Metrics;
use crate::registry::Registry;
use record::{claim_key, node_key, partition_for, ClaimRecord, NodeRecord, SessionState, VERSION};
use view::View;

pub(crate) use open::{OpenError, OpenRequest, Opened, Snapshot};

/// Longest a CONNECT waits for its claim to be written and read back before it is refused
/// (Kafka unavailable).
const CLAIM_TIMEOUT: Duration = Duration::from_secs(10);
/// How often each broker looks for expired sessions and for sessions of dead brokers.
pub(crate) const EXPIRY_SCAN: Duration = Duration::from_secs(5);
/// Sessions taken over at once (their records share produce requests: the Kafka server's cost
/// is per request more than per record).
const ADOPTIONS_IN_PARALLEL: usize = 256;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Kafka refused the record.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// The claim was not written and read back in time.
    #[error("session claim timed out {0}")]
    Timeout(ClaimStage),
    /// A newer connection owns the session: this one must not write it.
    #[error("session owned by a newer connection")]
    NotOwner,
    /// The state could not be encoded.
    #[error("session encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Where a claim that timed out was waiting: which side (Kafka's producer path or this
/// broker's view of the sessions topic) was too slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimStage {
    /// For Kafka's acknowledgement.
    Acknowledgement,
    /// Acknowledged, for the records before it to be read.
    Reading,
}

impl std::fmt::Display for ClaimStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClaimStage::Acknowledgement => "waiting for Kafka's acknowledgement",
            ClaimStage::Reading => "reading the sessions topic up to it",
        })
    }
}

/// Another live broker process as its latest heartbeat describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerLoad {
    /// When the heartbeat was written (Unix ms, the peer's clock).
    pub at_ms: u64,
    /// Its connected clients then.
    pub connections: u64,
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
    fn record(&self, r: RecordRef<'_>) {
        self.update(|v| v.apply(r.partition, r.offset, r.key, r.value));
    }
}

impl Store {
    /// Applies records to the view with `apply`, then kicks the local connections its claims
    /// fenced off and wakes the claim waiters.
    fn update(&self, apply: impl FnOnce(&mut View) -> Vec<view::NewClaim>) {
        let (claims, stored) = match self.view.lock() {
            Ok(mut v) => (apply(&mut v), v.stored()),
            Err(_) => return,
        };
        self.metrics.sessions_stored.set(i64::try_from(stored).unwrap_or(i64::MAX));
        // Kick after releasing the view: the registry is locked by connects that then read the view.
        for c in claims {
            self.registry.fence(&c.client_id, c.epoch);
        }
        self.progress.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Sessions of this broker process: the tailed view and the writes to the sessions topic.
pub struct Sessions {
    store: Arc<Store>,
    log: Arc<dyn Log>,
    topic: String,
    partitions: usize,
    /// This process: `<hostname>/<pid>/<start ms>`, unique even when a container restarts
    /// with the same hostname and pid.
    node: String,
    /// Silence after which another broker process counts as dead (`limits.nodeTimeout`).
    node_timeout_ms: u64,
    /// Set by [`Sessions::stop`]: no more heartbeats.
    stopped: AtomicBool,
    /// Wills published whose cleared state the view has not read back yet (client id, epoch):
    /// not published again meanwhile.
    wills_done: Mutex<HashSet<(Box<str>, i64)>>,
    tailer: Tailer,
}

impl Sessions {
    /// Reads the sessions topic up to its end, keeps tailing it, and starts the expiry scan.
    pub async fn start(
        config: &Config,
        log: Arc<dyn Log>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Sessions>, TailerError> {
        let started = std::time::Instant::now();
        let load_seconds = metrics.sessions_load_seconds.clone();
        let store =
            Arc::new(Store { view: Mutex::new(View::default()), progress: watch::channel(0).0, registry, metrics });
        let sink: Arc<dyn RecordSink> = store.clone();
        let topic = config.topics.sessions.clone();
        let tailer = log.tail(&topic, StartAt::Beginning, sink).await?;
        tailer.caught_up().await;
        log.warm_up(&topic).await;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        let sessions = Arc::new(Sessions {
            store,
            log,
            topic,
            partitions: tailer.partitions(),
            node: format!("{host}/{}/{}", std::process::id(), now_ms()),
            node_timeout_ms: u64::from(config.limits.node_timeout) * 1000,
            stopped: AtomicBool::new(false),
            wills_done: Mutex::new(HashSet::new()),
            tailer,
        });
        load_seconds.set(started.elapsed().as_secs_f64());
        tracing::info!(stored = sessions.stored(), node = %sessions.node, "sessions loaded");
        Ok(sessions)
    }

    /// Records of the sessions topic not read yet.
    pub fn lag(&self) -> i64 {
        self.tailer.lag()
    }

    /// How often heartbeats are written: five per node timeout, so a few lost ones are fine.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis((self.node_timeout_ms / 5).max(200))
    }

    /// Writes this process's heartbeat, unless it has stopped.
    pub async fn heartbeat(&self) -> Result<(), SessionError> {
        if self.stopped.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.write_heartbeat(false).await
    }

    /// Announces a clean stop, after the connections were closed: other brokers take over the
    /// sessions still waiting for a delayed Will at once instead of after the node timeout.
    pub async fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        if let Err(e) = self.write_heartbeat(true).await {
            tracing::warn!(error = %e, "cannot announce the stop to other brokers");
        }
    }

    async fn write_heartbeat(&self, stopped: bool) -> Result<(), SessionError> {
        let connections = Some(u64::try_from(self.store.registry.len()).unwrap_or(u64::MAX));
        let value = serde_json::to_vec(&NodeRecord { v: VERSION, at_ms: now_ms(), stopped, connections })?;
        self.produce(node_key(&self.node).as_bytes(), &self.node, Some(&value)).await
    }

    /// Connected clients of every other live broker process (heartbeat fresher than the node
    /// timeout, not stopped), as their heartbeats say; `None` when one of them does not say
    /// (a broker of an older version during a rolling upgrade): no picture, no rebalance.
    pub(crate) fn peer_connections(&self) -> Option<Vec<PeerLoad>> {
        let now = now_ms();
        let view = self.store.view.lock().ok()?;
        view.heartbeats()
            .filter(|(node, h)| {
                ***node != *self.node && !h.stopped && now < h.at_ms.saturating_add(self.node_timeout_ms)
            })
            .map(|(_, h)| Some(PeerLoad { at_ms: h.at_ms, connections: h.connections? }))
            .collect()
    }

    fn partition(&self, client_id: &str) -> i32 {
        partition_for(client_id, self.partitions)
    }

    /// Claims `client_id` for a new connection and returns its epoch once the local view has
    /// applied the claim (and so every earlier record of the client).
    pub async fn claim(&self, client_id: &str) -> Result<i64, SessionError> {
        let value = serde_json::to_vec(&ClaimRecord { v: VERSION, node: self.node.clone(), at_ms: now_ms() })?;
        let mut stage = ClaimStage::Acknowledgement;
        let work = async {
            let ack = self.append(claim_key(client_id).as_bytes(), client_id, Some(&value)).await?;
            stage = ClaimStage::Reading;
            let mut progress = self.store.progress.subscribe();
            let applied =
                |_: &u64| self.store.view.lock().map(|v| v.has_applied(ack.partition, ack.offset)).unwrap_or(true);
            // An error means the store is gone (shutting down): nothing more to wait for.
            let _ = progress.wait_for(applied).await;
            Ok::<_, SessionError>(ack.offset)
        };
        let done = tokio::time::timeout(CLAIM_TIMEOUT, work).await;
        done.map_err(|_| SessionError::Timeout(stage))?
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
        self.append(key, client_id, value).await?;
        Ok(())
    }

    /// Appends a record of `client_id` (its claim, its state, or a heartbeat when `client_id`
    /// is the node) to the client's partition, which we choose ourselves (see [`record`]), and
    /// applies it to the view once Kafka acknowledged it (see [`View::apply_own`]).
    async fn append(
        &self,
        key: &[u8],
        client_id: &str,
        value: Option<&[u8]>,
    ) -> Result<crate::kafka::producer::Delivered, ProduceError> {
        let partition = Some(self.partition(client_id));
        let record = OutRecord { topic: &self.topic, partition, key, value, headers: None };
        let delivered = self.log.append(record).await?.await?;
        self.store.update(|v| v.apply_own(delivered.partition, delivered.offset, key, value));
        Ok(delivered)
    }

    /// Disconnected sessions whose Will is due now and that this process owns, except those
    /// just published.
    pub fn due_wills(&self) -> Vec<(Box<str>, Arc<SessionState>)> {
        // Once stopped, the brokers taking this one's sessions over publish them.
        if self.stopped.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let Ok(view) = self.store.view.lock() else { return Vec::new() };
        let due = view.due_wills(&self.node, now_ms());
        let Ok(mut done) = self.wills_done.lock() else { return due };
        // Once the view shows the cleared state (or anything newer), the mark has done its job.
        done.retain(|(cid, epoch)| {
            view.get(cid).and_then(|e| e.state.as_ref()).is_some_and(|s| s.epoch == *epoch && s.will.is_some())
        });
        due.into_iter().filter(|(cid, s)| !done.contains(&(cid.clone(), s.epoch))).collect()
    }

    /// Writes again the states of this process's disconnected sessions that a fenced-off
    /// writer's late record followed in the log (see [`View::take_overwritten`]).
    pub async fn rewrite_overwritten(&self) {
        let overwritten = match self.store.view.lock() {
            Ok(mut v) => v.take_overwritten(&self.node),
            Err(_) => return,
        };
        let done: HashSet<Box<str>> =
            self.wills_done.lock().map(|d| d.iter().map(|(cid, _)| cid.clone()).collect()).unwrap_or_default();
        // A Will just published: the view's copy still has it, and writing it back would bring
        // the Will back.
        for (cid, state) in overwritten.into_iter().filter(|(cid, _)| !done.contains(cid)) {
            if let Err(e) = self.write_state(&cid, &state).await {
                tracing::warn!(client = %cid, error = %e, "cannot rewrite a session state written over");
            }
        }
    }

    /// After a stored Will was published: the session forgets it, or ends when it had expired
    /// or ends with its connection (expiry 0).
    pub async fn will_published(&self, client_id: &str, state: &SessionState) -> Result<(), SessionError> {
        let mark = (Box::<str>::from(client_id), state.epoch);
        if let Ok(mut done) = self.wills_done.lock() {
            done.insert(mark.clone());
        }
        // The claim stays: tombstoning it could remove a reconnecting client's newer claim; the
        // scan removes claims without state after a while.
        let cleared = if state.expiry_secs == 0 || state.is_expired(now_ms()) {
            self.remove_state(client_id, state.epoch).await
        } else {
            let mut rest = state.clone();
            rest.will = None;
            self.write_state(client_id, &rest).await
        };
        // Not cleared: the Will stays due and is published again rather than never.
        if cleared.is_err() {
            if let Ok(mut done) = self.wills_done.lock() {
                done.remove(&mark);
            }
        }
        cleared
    }

    /// Tombstones expired sessions (state and claim) and old claims of clients without state,
    /// takes over the sessions that have no live owner and fall to this process (see
    /// [`scan::plan`]), and removes the heartbeat keys of dead brokers with nothing left.
    /// Every broker runs it; a tombstone twice is harmless, and two brokers adopting one
    /// session resolve by claim order.
    pub async fn scan_and_expire(&self) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        let now = now_ms();
        let mut scan = match self.store.view.lock() {
            Ok(v) => scan::plan(&v, &self.node, self.node_timeout_ms, now),
            Err(_) => return,
        };
        // Checked after the view's lock is released: connects lock the registry, then the view.
        for (cid, epoch) in std::mem::take(&mut scan.unregistered) {
            if self.store.registry.epoch_of(&cid) != Some(epoch) {
                scan.orphans.push((cid, now));
            }
        }
        for (cid, has_state, claim) in scan.expired {
            // The scan's view may be a moment old: a client that reconnected since has a newer
            // claim and a fresh state, which tombstones must not remove.
            let still = match self.store.view.lock() {
                Ok(v) => v.get(&cid).is_some_and(|e| {
                    e.claim == claim && e.state.as_ref().map_or(!has_state, |s| has_state && s.is_expired(now_ms()))
                }),
                Err(_) => false,
            };
            if !still {
                continue;
            }
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
        if !scan.orphans.is_empty() {
            tracing::info!(sessions = scan.orphans.len(), "taking over sessions without a live owner");
        }
        futures::stream::iter(scan.orphans)
            .for_each_concurrent(ADOPTIONS_IN_PARALLEL, |(cid, dead_since)| async move {
                if let Err(e) = self.adopt(&cid, dead_since).await {
                    tracing::warn!(client = %cid, error = %e, "cannot take over a session without a live owner");
                }
            })
            .await;
        for node in scan.buried {
            tracing::info!(%node, "dead broker has no sessions left");
            if let Err(e) = self.produce(node_key(&node).as_bytes(), &node, None).await {
                tracing::warn!(%node, error = %e, "cannot remove the heartbeat of a dead broker");
            }
        }
    }

    /// Takes over a session without a live owner: claims it (a client connecting meanwhile
    /// claims after us and wins) and rewrites its state as disconnected since its owner was
    /// gone, so that its expiry runs and its Will is published by this process.
    async fn adopt(&self, client_id: &str, dead_since: u64) -> Result<(), SessionError> {
        let epoch = self.claim(client_id).await?;
        let Some(state) = self.state(client_id) else { return Ok(()) };
        if self.newest_claim(client_id) != Some(epoch) {
            return Ok(());
        }
        let mut adopted = (*state).clone();
        adopted.epoch = epoch;
        adopted.disconnected_at_ms = Some(state.disconnected_at_ms.unwrap_or(dead_since));
        tracing::debug!(client = %client_id, epoch, "adopted the session of a dead broker");
        self.write_state(client_id, &adopted).await?;
        self.store.metrics.sessions_adopted.inc();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::memory::MemoryLog;

    async fn start(log: &Arc<MemoryLog>) -> Arc<Sessions> {
        let config = Config::default();
        log.create_topic(&config.topics.sessions, 1);
        let started = Sessions::start(&config, log.clone(), Arc::default(), Arc::default()).await;
        started.unwrap_or_else(|e| panic!("sessions start: {e}"))
    }

    /// On the paused clock a claim that waited for the tailer would run into `CLAIM_TIMEOUT`.
    #[tokio::test(start_paused = true)]
    async fn a_claim_needs_no_fetch_unless_another_writer_came_first() {
        let log = Arc::new(MemoryLog::new());
        let sessions = start(&log).await;
        log.stall_tailers(&sessions.topic);
        let first = sessions.claim("c").await;
        assert!(matches!(first, Ok(0)), "own claim applied at its ack: {first:?}");
        assert_eq!(sessions.newest_claim("c"), Some(0));
        let second = sessions.claim("c").await;
        assert!(matches!(second, Ok(1)), "and the next one after it: {second:?}");

        // Another broker's claim at 2, not read yet: ours at 3 must wait for it.
        let claim = serde_json::to_vec(&ClaimRecord { v: VERSION, node: "other".into(), at_ms: 0 });
        let claim = claim.unwrap_or_default();
        let theirs = OutRecord {
            topic: &sessions.topic,
            partition: Some(0),
            key: b"c#claim",
            value: Some(&claim),
            headers: None,
        };
        let ack = log.append(theirs).await;
        assert!(matches!(ack.map(|_| ()), Ok(())));
        let waiting = tokio::time::timeout(CLAIM_TIMEOUT / 2, sessions.claim("c")).await;
        assert!(waiting.is_err(), "claimed past an unread record");
        log.resume_tailers(&sessions.topic);
        let after = sessions.claim("c").await;
        assert!(matches!(after, Ok(4)), "the tailer read the gap: {after:?}");
    }
}
