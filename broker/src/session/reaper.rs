//! The background work of a broker process for sessions without a connection here: its
//! heartbeat, delayed and orphaned Wills, session expiry, taking over the sessions of broker
//! processes that died, and rewriting states a fenced-off writer wrote over.
//!
//! A Will lives in the session state from CONNECT on. When a connection ends without
//! DISCONNECT and its Will has a delay, the state is saved as disconnected with the Will, and
//! the owning process publishes it here once due (delay elapsed, or the session ended). When a
//! process dies (kill -9, node loss), its heartbeat stops; after `limits.nodeTimeout` another
//! process adopts each of its sessions (a claim, so a reconnecting client still wins) and the
//! same path publishes their Wills and starts their expiry.
//!
//! Three tasks, so that none waits for another: a slow Kafka partition holding up a Will must
//! not stop the heartbeat (others would take this broker for dead) nor expiry and adoption.

use futures::StreamExt;
use std::sync::Weak;
use std::time::Duration;

use super::{Sessions, EXPIRY_SCAN};
use crate::message::now_ms;
use crate::publisher::Publisher;

/// How often due Wills are looked for (the resolution of the Will Delay Interval).
const WILL_TICK: Duration = Duration::from_millis(500);
/// Wills published at once (a dead broker's clients' Wills come due together).
const WILLS_IN_PARALLEL: usize = 256;
/// Longest wait for one Will to reach Kafka; it stays due and is tried again after.
pub(crate) const WILL_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the heartbeat, Will and scan tasks; each ends when `sessions` (or, for Wills,
/// `publisher`) is dropped.
pub(crate) fn start(sessions: Weak<Sessions>, publisher: Weak<Publisher>) {
    tokio::spawn(heartbeat(sessions.clone()));
    tokio::spawn(wills(sessions.clone(), publisher));
    tokio::spawn(scans(sessions));
}

/// Writes this broker's heartbeat.
async fn heartbeat(sessions: Weak<Sessions>) {
    let Some(interval) = sessions.upgrade().map(|s| s.heartbeat_interval()) else { return };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(sessions) = sessions.upgrade() else { return };
        if let Err(e) = sessions.heartbeat().await {
            tracing::warn!(error = %e, "heartbeat not written");
        }
    }
}

/// Publishes the Wills that came due in sessions this broker owns, then clears them.
async fn wills(sessions: Weak<Sessions>, publisher: Weak<Publisher>) {
    let mut tick = tokio::time::interval(WILL_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (Some(sessions), Some(publisher)) = (sessions.upgrade(), publisher.upgrade()) else { return };
        futures::stream::iter(sessions.due_wills())
            .for_each_concurrent(WILLS_IN_PARALLEL, |(client_id, state)| {
                let (sessions, publisher) = (&sessions, &publisher);
                async move {
                    let Some(will) = &state.will else { return };
                    // Published before it is forgotten: a crash in between publishes it twice
                    // rather than never (a Will is at least once across broker failures).
                    let msg = will.to_message(&client_id, now_ms());
                    match tokio::time::timeout(WILL_PUBLISH_TIMEOUT, publisher.publish_will(&client_id, msg)).await {
                        Ok(Ok(())) => {
                            if let Err(e) = sessions.will_published(&client_id, &state).await {
                                tracing::warn!(client = %client_id, error = %e, "published will not cleared");
                            }
                        }
                        Ok(Err(e)) => tracing::warn!(client = %client_id, error = %e, "will not published; will retry"),
                        Err(_) => tracing::warn!(client = %client_id, "will not acknowledged in time; will retry"),
                    }
                }
            })
            .await;
        sessions.rewrite_overwritten().await;
    }
}

/// Expiry, adoption and burial of dead brokers' heartbeats, every [`EXPIRY_SCAN`].
async fn scans(sessions: Weak<Sessions>) {
    let mut tick = tokio::time::interval(EXPIRY_SCAN);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(sessions) = sessions.upgrade() else { return };
        sessions.scan_and_expire().await;
    }
}
