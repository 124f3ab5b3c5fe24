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

use futures::StreamExt;
use std::sync::Weak;
use std::time::Duration;
use tokio::time::Instant;

use super::EXPIRY_SCAN;
use crate::broker::Broker;
use crate::message::now_ms;

/// How often due Wills are looked for (the resolution of the Will Delay Interval).
const WILL_TICK: Duration = Duration::from_millis(500);
/// Wills published at once (a dead broker's clients' Wills come due together).
const WILLS_IN_PARALLEL: usize = 256;

/// Runs until the broker is dropped.
pub async fn run(broker: Weak<Broker>) {
    // Its own task: a long adoption or a burst of Wills must not look like this broker dying.
    tokio::spawn(heartbeat(broker.clone()));
    let mut tick = tokio::time::interval(WILL_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_scan = Instant::now();
    loop {
        tick.tick().await;
        let Some(broker) = broker.upgrade() else { return };
        let sessions = &broker.sessions;
        futures::stream::iter(sessions.due_wills())
            .for_each_concurrent(WILLS_IN_PARALLEL, |(client_id, state)| {
                let broker = &broker;
                async move {
                    let Some(will) = &state.will else { return };
                    // Published before it is forgotten: a crash in between publishes it twice
                    // rather than never (a Will is at least once across broker failures).
                    match broker.publish_will(&client_id, will.to_message(&client_id, now_ms())).await {
                        Ok(()) => {
                            if let Err(e) = broker.sessions.will_published(&client_id, &state).await {
                                tracing::warn!(client = %client_id, error = %e, "published will not cleared");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(client = %client_id, error = %e, "delayed will not published; will retry")
                        }
                    }
                }
            })
            .await;
        sessions.rewrite_overwritten().await;
        if last_scan.elapsed() >= EXPIRY_SCAN {
            last_scan = Instant::now();
            sessions.scan_and_expire().await;
        }
    }
}

/// Writes this broker's heartbeat until the broker is dropped.
async fn heartbeat(broker: Weak<Broker>) {
    let Some(interval) = broker.upgrade().map(|b| b.sessions.heartbeat_interval()) else { return };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(broker) = broker.upgrade() else { return };
        if let Err(e) = broker.sessions.heartbeat().await {
            tracing::warn!(error = %e, "heartbeat not written");
        }
    }
}
