//! What each broker's periodic scan of the sessions view decides, without any I/O (so the
//! rules are unit-tested on their own): which sessions expired, which stale claims go, which
//! sessions have no live owner and fall to this broker, and which dead brokers' heartbeats can
//! be removed.

use std::collections::HashSet;
use std::sync::Arc;

use super::record::partition_for;
use super::view::{Entry, View};
use super::CLAIM_TIMEOUT;

/// Sessions without a live owner taken over per scan.
pub(super) const MAX_ADOPTIONS_PER_SCAN: usize = 5000;
/// Tombstones produced per scan, so one scan cannot flood the producer.
const MAX_TOMBSTONES_PER_SCAN: usize = 1000;
/// Claims of clients without stored state are removed after this long, so that every client id
/// ever seen does not stay in every broker's memory. Harmless for a clean session still
/// connected: take-over compares against the *new* claim's offset only.
const CLAIM_RETENTION_MS: u64 = 10 * 60 * 1000;
/// A claim this much older than the state it should have been followed by marks a connect or
/// adoption that failed after claiming (three claim timeouts: no live connect waits longer).
const STUCK_CLAIM_MS: u64 = 3 * 1000 * CLAIM_TIMEOUT.as_secs();
/// How long a broker never seen heartbeating counts as alive after its claim (a broker of a
/// version without heartbeats, during a rolling upgrade).
const UNKNOWN_NODE_GRACE_MS: u64 = 10 * 60 * 1000;

/// What one scan of the view found to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Scan {
    /// Expired sessions (true) and stale claims without state (false) to tombstone, with the
    /// claim seen (a newer one cancels the tombstones).
    pub expired: Vec<(String, bool, Option<i64>)>,
    /// Sessions without a live owner this broker takes over, with since when they are gone.
    pub orphans: Vec<(String, u64)>,
    /// Connected states of this broker, long claimed, with their epoch: orphans unless a
    /// local connection of that epoch exists (the caller checks its registry).
    pub unregistered: Vec<(String, i64)>,
    /// Dead brokers with nothing left to take over whose heartbeat key this broker removes.
    pub buried: Vec<String>,
}

/// Whether broker process `node` counts as alive at `now`, and if not since when it is gone.
fn liveness(view: &View, me: &str, node: Option<&Arc<str>>, entry: &Entry, timeout: u64, now: u64) -> Result<(), u64> {
    if node.is_some_and(|n| **n == *me) {
        return Ok(());
    }
    let (seen, stopped, timeout) = match node.and_then(|n| view.heartbeat(n)) {
        Some(h) => (h.at_ms, h.stopped, timeout),
        None if entry.claim.is_some() => (entry.claim_at_ms, false, timeout.max(UNKNOWN_NODE_GRACE_MS)),
        // A state whose claim is gone names no owner: nobody will ever release it, and
        // nothing says since when, so its clock starts now.
        None => return Err(now),
    };
    if !stopped && now < seen.saturating_add(timeout) {
        Ok(())
    } else {
        Err(seen.min(now))
    }
}

/// Plans the scan of broker `me` over `view` at `now`, brokers silent for `timeout` ms being
/// dead. A session that needs an owner (connected, or holding a Will) has none when the broker
/// of its newest claim is dead, or when that claim is long older than the state (a connect or
/// adoption that failed after claiming). Each such session falls to one live broker, by hash
/// of the client id over the sorted live brokers. A broker whose own heartbeat is stale in its
/// own view (it lags, or its writes are stuck) takes nothing over: it would take the live
/// brokers for dead. Its own heartbeats count as the tailer read them back, not as applied
/// from their acknowledgement (which says nothing about its reading).
pub(super) fn plan(view: &View, me: &str, timeout: u64, now: u64) -> Scan {
    let fresh = view.heartbeat_read(me).is_some_and(|at| now < at.saturating_add(timeout / 2));
    let mut live: Vec<&str> = view
        .heartbeats()
        .filter(|(_, h)| !h.stopped && now < h.at_ms.saturating_add(timeout))
        .map(|(n, _)| &**n)
        .collect();
    live.push(me);
    live.sort_unstable();
    live.dedup();
    let falls_to_me = |key: &str| {
        let i = usize::try_from(partition_for(key, live.len())).unwrap_or(0);
        fresh && live.get(i).is_some_and(|n| *n == me)
    };
    let mut scan = Scan::default();
    let mut orphaned_nodes: HashSet<&str> = HashSet::new();
    for (cid, e) in view.entries() {
        match &e.state {
            // A pending Will keeps the session until it is published (see `will_published`).
            Some(s) if s.is_expired(now) && s.will.is_none() => {
                if scan.expired.len() < MAX_TOMBSTONES_PER_SCAN {
                    scan.expired.push((cid.to_owned(), true, e.claim));
                }
                // Not to the arms below, also when the tombstones of this scan are used up.
                continue;
            }
            // Connected, or waiting to publish a Will: it needs a live owner.
            Some(s) if s.disconnected_at_ms.is_none() || s.will.is_some() => {
                let node = view.node_of(e);
                let long_claimed = now >= e.claim_at_ms.saturating_add(STUCK_CLAIM_MS);
                let orphaned = match liveness(view, me, node, e, timeout, now) {
                    Err(dead_since) => Some(dead_since),
                    Ok(()) if long_claimed && e.claim.is_some_and(|c| c > s.epoch) => Some(e.claim_at_ms),
                    Ok(()) => None,
                };
                if let Some(since) = orphaned {
                    if let Some(n) = node {
                        orphaned_nodes.insert(n);
                    }
                    if scan.orphans.len() < MAX_ADOPTIONS_PER_SCAN && falls_to_me(cid) {
                        scan.orphans.push((cid.to_owned(), since));
                    }
                } else if node.is_some_and(|n| **n == *me)
                    && s.disconnected_at_ms.is_none()
                    && e.claim == Some(s.epoch)
                    && long_claimed
                    && scan.unregistered.len() < MAX_ADOPTIONS_PER_SCAN
                {
                    scan.unregistered.push((cid.to_owned(), s.epoch));
                }
            }
            None if e.claim.is_some()
                && e.claim_at_ms.saturating_add(CLAIM_RETENTION_MS) <= now
                && scan.expired.len() < MAX_TOMBSTONES_PER_SCAN =>
            {
                scan.expired.push((cid.to_owned(), false, e.claim));
            }
            _ => {}
        }
    }
    scan.buried = view
        .heartbeats()
        .filter(|(n, h)| {
            let dead = h.stopped || now >= h.at_ms.saturating_add(timeout);
            dead && ***n != *me && !orphaned_nodes.contains(&***n) && falls_to_me(n)
        })
        .map(|(n, _)| n.to_string())
        .collect();
    scan
}

#[cfg(test)]
mod tests {
    use super::super::record::{ClaimRecord, NodeRecord, SessionState, StoredWill, VERSION};
    use super::*;

    const T: u64 = 15_000;
    /// "Now" in these tests: late enough for every grace period to be measurable.
    const NOW: u64 = 100_000_000;

    struct Log {
        view: View,
        offset: i64,
    }

    impl Log {
        fn new() -> Self {
            Log { view: View::default(), offset: 0 }
        }

        fn put(&mut self, key: &str, value: Option<Vec<u8>>) -> i64 {
            self.offset += 1;
            self.view.apply(0, self.offset, Some(key.as_bytes()), value.as_deref());
            self.offset
        }

        fn beat(&mut self, node: &str, at_ms: u64, stopped: bool) {
            let v = serde_json::to_vec(&NodeRecord { v: VERSION, at_ms, stopped, connections: None }).ok();
            self.put(&format!("{node}#node"), v);
        }

        fn claim(&mut self, cid: &str, node: &str, at_ms: u64) -> i64 {
            let v = serde_json::to_vec(&ClaimRecord { v: VERSION, node: node.into(), at_ms }).ok();
            self.put(&format!("{cid}#claim"), v)
        }

        fn state(&mut self, cid: &str, epoch: i64, disconnected_at_ms: Option<u64>, will: bool, expiry_secs: u32) {
            let s = SessionState {
                v: VERSION,
                epoch,
                expiry_secs,
                disconnected_at_ms,
                subscriptions: vec![],
                cursors: Default::default(),
                in_flight: vec![],
                inbound_qos2: vec![],
                will: will.then(|| {
                    Box::new(StoredWill {
                        topic: "w".into(),
                        payload: Default::default(),
                        qos: 0,
                        retain: false,
                        delay_secs: 0,
                        properties: Default::default(),
                    })
                }),
            };
            self.put(cid, serde_json::to_vec(&s).ok());
        }

        /// A connected session of `node`, claimed at `at_ms`.
        fn connected(&mut self, cid: &str, node: &str, at_ms: u64) {
            let epoch = self.claim(cid, node, at_ms);
            self.state(cid, epoch, None, false, 3600);
        }
    }

    fn orphans(s: &Scan) -> Vec<String> {
        let mut o: Vec<String> = s.orphans.iter().map(|(c, _)| c.clone()).collect();
        o.sort_unstable();
        o
    }

    #[test]
    fn sessions_of_dead_or_stopped_brokers_are_taken_over_from_their_last_heartbeat() {
        let mut l = Log::new();
        l.beat("me", NOW - 1_000, false);
        l.beat("alive", NOW - 2_000, false);
        l.beat("dead", NOW - T - 1, false);
        l.beat("stopped", NOW - 500, true);
        l.connected("a", "alive", NOW - 60_000);
        l.connected("d", "dead", NOW - 60_000);
        l.connected("s", "stopped", NOW - 60_000);
        l.connected("m", "me", NOW - 1_000);
        // With one other live broker, each orphan falls to exactly one of the two.
        let mine = plan(&l.view, "me", T, NOW);
        let theirs = plan(&l.view, "alive", T, NOW);
        let mut all = [orphans(&mine), orphans(&theirs)].concat();
        all.sort_unstable();
        assert_eq!(all, ["d", "s"]);
        let since: Vec<u64> = mine.orphans.iter().chain(&theirs.orphans).map(|(_, t)| *t).collect();
        assert!(since.contains(&(NOW - T - 1)) || since.contains(&(NOW - 500)), "{since:?}");
        assert!(mine.buried.is_empty() && theirs.buried.is_empty(), "not while they have sessions");
    }

    #[test]
    fn a_broker_lagging_behind_its_own_heartbeat_takes_nothing_over() {
        let mut l = Log::new();
        l.beat("me", NOW - T / 2 - 1, false);
        l.beat("dead", NOW - T - 1, false);
        l.connected("d", "dead", NOW - 60_000);
        assert!(plan(&l.view, "me", T, NOW).orphans.is_empty());
        l.beat("me", NOW, false);
        assert_eq!(orphans(&plan(&l.view, "me", T, NOW)), ["d"]);
    }

    #[test]
    fn unknown_brokers_get_a_grace_period_and_stateless_orphans_start_now() {
        let mut l = Log::new();
        l.beat("me", NOW, false);
        l.connected("recent", "old-version", NOW - UNKNOWN_NODE_GRACE_MS + 1_000);
        l.connected("ancient", "old-version-2", NOW - UNKNOWN_NODE_GRACE_MS - 1);
        // A state whose claim was removed.
        l.state("unclaimed", 0, None, true, 0);
        let s = plan(&l.view, "me", T, NOW);
        assert_eq!(orphans(&s), ["ancient", "unclaimed"]);
        assert!(s.orphans.contains(&("unclaimed".to_string(), NOW)));
    }

    #[test]
    fn a_claim_never_followed_by_its_state_orphans_the_session_after_a_while() {
        let mut l = Log::new();
        l.beat("me", NOW, false);
        l.beat("alive", NOW, false);
        let old = l.claim("c", "alive", NOW - 100_000);
        l.state("c", old, None, true, 0);
        // A connect claimed and failed before writing its state.
        l.claim("c", "alive", NOW - STUCK_CLAIM_MS + 1_000);
        let both = |l: &Log| [orphans(&plan(&l.view, "me", T, NOW)), orphans(&plan(&l.view, "alive", T, NOW))].concat();
        assert!(both(&l).is_empty(), "a connect may still be under way");
        l.claim("c", "alive", NOW - STUCK_CLAIM_MS);
        assert_eq!(both(&l), ["c"]);
    }

    #[test]
    fn own_connected_states_long_claimed_are_checked_against_the_registry() {
        let mut l = Log::new();
        l.beat("me", NOW, false);
        l.connected("long", "me", NOW - STUCK_CLAIM_MS);
        l.connected("new", "me", NOW - 1_000);
        let s = plan(&l.view, "me", T, NOW);
        assert_eq!(s.unregistered.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), ["long"]);
        assert!(s.orphans.is_empty());
    }

    #[test]
    fn expiry_keeps_pending_wills_and_records_the_claim_seen() {
        let mut l = Log::new();
        l.beat("me", NOW, false);
        let e1 = l.claim("gone", "me", NOW - 20_000);
        l.state("gone", e1, Some(NOW - 20_000), false, 10);
        let e2 = l.claim("will", "me", NOW - 20_000);
        l.state("will", e2, Some(NOW - 20_000), true, 10);
        let e3 = l.claim("stale-claim", "me", NOW - CLAIM_RETENTION_MS);
        let s = plan(&l.view, "me", T, NOW);
        let mut expired = s.expired.clone();
        expired.sort();
        assert_eq!(expired, [("gone".to_string(), true, Some(e1)), ("stale-claim".to_string(), false, Some(e3))]);
        assert!(s.orphans.is_empty(), "its owner is alive: the Will is published by it");
    }

    #[test]
    fn dead_brokers_without_sessions_are_buried_once_and_never_oneself() {
        let mut l = Log::new();
        l.beat("me", NOW, false);
        l.beat("gone", NOW - T - 1, false);
        l.beat("left", NOW - 1, true);
        let s = plan(&l.view, "me", T, NOW);
        let mut buried = s.buried.clone();
        buried.sort();
        assert_eq!(buried, ["gone", "left"]);
        l.beat("me", NOW - T - 1, false);
        assert!(!plan(&l.view, "me", T, NOW).buried.contains(&"me".to_string()));
    }
}
