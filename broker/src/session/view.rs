//! The materialized view of the sessions topic and its fencing rules, without any I/O (so the
//! rules are unit-tested on their own).

use std::collections::HashMap;
use std::sync::Arc;

use super::record::{parse_key, ClaimRecord, Key, SessionState};

/// What the view knows about one client id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// Offset of the newest claim (the current epoch), if any.
    pub claim: Option<i64>,
    /// When that claim was made (Unix ms).
    pub claim_at_ms: u64,
    /// The session state, if stored. Shared so that readers clone a pointer, not the state.
    pub state: Option<Arc<SessionState>>,
}

/// Latest claim and state per client id, plus how far each partition has been applied.
#[derive(Debug, Default)]
pub struct View {
    entries: HashMap<Box<str>, Entry>,
    applied: HashMap<i32, i64>,
    stored: usize,
}

/// A claim the view just applied: local connections of `client_id` with an older epoch must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClaim {
    /// The client id.
    pub client_id: Box<str>,
    /// Its new epoch.
    pub epoch: i64,
}

impl View {
    /// Applies the record at (`partition`, `offset`), in partition order. Returns the claim it
    /// made, if it was one.
    pub fn apply(&mut self, partition: i32, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Option<NewClaim> {
        let applied = self.applied.entry(partition).or_insert(offset);
        *applied = (*applied).max(offset);
        let key = parse_key(key?)?;
        match (key, value) {
            (Key::Claim(cid), Some(v)) => {
                let Ok(claim) = serde_json::from_slice::<ClaimRecord>(v) else {
                    tracing::warn!(partition, offset, "skipping undecodable session claim");
                    return None;
                };
                let e = self.entries.entry(cid.into()).or_default();
                // Offsets grow within the partition, so a later claim always wins.
                if e.claim.is_some_and(|c| c >= offset) {
                    return None;
                }
                e.claim = Some(offset);
                e.claim_at_ms = claim.at_ms;
                Some(NewClaim { client_id: cid.into(), epoch: offset })
            }
            (Key::Claim(cid), None) => {
                if let Some(e) = self.entries.get_mut(cid) {
                    e.claim = None;
                }
                self.prune(cid);
                None
            }
            (Key::State(cid), Some(v)) => {
                let Ok(state) = serde_json::from_slice::<SessionState>(v) else {
                    tracing::warn!(partition, offset, "skipping undecodable session state");
                    return None;
                };
                let e = self.entries.entry(cid.into()).or_default();
                // A writer fenced off by a newer claim (a zombie pod) must not replace the state.
                if e.claim.is_some_and(|c| state.epoch < c) {
                    tracing::debug!(client = %cid, epoch = state.epoch, "ignoring session state of an older epoch");
                    return None;
                }
                if e.state.is_none() {
                    self.stored += 1;
                }
                e.state = Some(Arc::new(state));
                None
            }
            (Key::State(cid), None) => {
                if let Some(e) = self.entries.get_mut(cid) {
                    if e.state.take().is_some() {
                        self.stored -= 1;
                    }
                }
                self.prune(cid);
                None
            }
        }
    }

    fn prune(&mut self, cid: &str) {
        if self.entries.get(cid).is_some_and(|e| e.claim.is_none() && e.state.is_none()) {
            self.entries.remove(cid);
        }
    }

    /// The entry of `client_id`.
    pub fn get(&self, client_id: &str) -> Option<&Entry> {
        self.entries.get(client_id)
    }

    /// True once the record at `offset` of `partition` (or a later one) was applied.
    pub fn has_applied(&self, partition: i32, offset: i64) -> bool {
        self.applied.get(&partition).is_some_and(|o| *o >= offset)
    }

    /// Number of stored session states.
    pub fn stored(&self) -> usize {
        self.stored
    }

    /// Every entry (for the expiry scan).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::VERSION;
    use super::*;

    fn claim() -> Vec<u8> {
        serde_json::to_vec(&ClaimRecord { v: VERSION, node: "n".into(), at_ms: 5 }).unwrap_or_default()
    }

    fn state(epoch: i64, filter: &str) -> Vec<u8> {
        let s = SessionState {
            v: VERSION,
            epoch,
            expiry_secs: 10,
            disconnected_at_ms: None,
            subscriptions: vec![super::super::record::StoredSubscription::new(filter, Default::default(), None)],
            cursors: Default::default(),
            in_flight: vec![],
            inbound_qos2: vec![],
        };
        serde_json::to_vec(&s).unwrap_or_default()
    }

    fn filter_of(v: &View, cid: &str) -> Option<String> {
        v.get(cid)?.state.as_ref().map(|s| s.subscriptions[0].filter.clone())
    }

    #[test]
    fn claims_set_the_epoch_and_report_it() {
        let mut v = View::default();
        assert_eq!(v.apply(0, 3, Some(b"c#claim"), Some(&claim())), Some(NewClaim { client_id: "c".into(), epoch: 3 }));
        assert_eq!(v.get("c").and_then(|e| e.claim), Some(3));
        assert!(v.has_applied(0, 3) && !v.has_applied(0, 4) && !v.has_applied(1, 0));
        // A replayed (older) claim changes nothing.
        assert_eq!(v.apply(0, 2, Some(b"c#claim"), Some(&claim())), None);
        assert_eq!(v.apply(0, 9, Some(b"c#claim"), Some(&claim())).map(|c| c.epoch), Some(9));
    }

    #[test]
    fn state_of_an_older_epoch_is_ignored() {
        let mut v = View::default();
        v.apply(0, 1, Some(b"c#claim"), Some(&claim()));
        v.apply(0, 2, Some(b"c"), Some(&state(1, "old")));
        assert_eq!(filter_of(&v, "c"), Some("old".into()));
        // Take-over: claim at 5; the old owner (epoch 1) writes again afterwards: a zombie.
        v.apply(0, 5, Some(b"c#claim"), Some(&claim()));
        assert_eq!(filter_of(&v, "c"), Some("old".into()), "the state survives a take-over");
        v.apply(0, 6, Some(b"c"), Some(&state(1, "zombie")));
        assert_eq!(filter_of(&v, "c"), Some("old".into()));
        v.apply(0, 7, Some(b"c"), Some(&state(5, "new")));
        assert_eq!(filter_of(&v, "c"), Some("new".into()));
        assert_eq!(v.stored(), 1);
    }

    #[test]
    fn tombstones_remove_and_prune() {
        let mut v = View::default();
        v.apply(1, 1, Some(b"c#claim"), Some(&claim()));
        v.apply(1, 2, Some(b"c"), Some(&state(1, "f")));
        v.apply(1, 3, Some(b"c"), None);
        assert_eq!(v.stored(), 0);
        assert!(v.get("c").is_some_and(|e| e.state.is_none() && e.claim == Some(1)));
        v.apply(1, 4, Some(b"c#claim"), None);
        assert!(v.get("c").is_none(), "nothing left: the entry goes");
        // Tombstones of unknown ids and garbage are harmless.
        v.apply(1, 5, Some(b"x"), None);
        v.apply(1, 6, Some(b"y"), Some(b"not json"));
        v.apply(1, 7, None, Some(b"{}"));
        assert!(v.get("x").is_none() && v.get("y").is_none());
        assert!(v.has_applied(1, 7));
    }

    /// docs/design.md estimates memory per stored session from these sizes.
    #[test]
    fn entry_sizes_stay_small() {
        assert!(std::mem::size_of::<Entry>() <= 32);
        assert!(std::mem::size_of::<SessionState>() <= 128);
        assert!(std::mem::size_of::<super::super::record::StoredSubscription>() <= 40);
    }

    #[test]
    fn state_without_claim_is_accepted() {
        // Claims of sessions may have been compacted or removed; the state stands on its own.
        let mut v = View::default();
        v.apply(0, 0, Some(b"c"), Some(&state(0, "f")));
        assert_eq!(filter_of(&v, "c"), Some("f".into()));
    }
}
