//! The materialized view of the sessions topic and its fencing rules, without any I/O (so the
//! rules are unit-tested on their own).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::record::{parse_key, ClaimRecord, Key, NodeRecord, SessionState};

/// Node index of claims whose node is not known (claims from before heartbeats existed).
const NO_NODE: u32 = u32::MAX;

/// What the view knows about one client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Offset of the newest claim (the current epoch), if any.
    pub claim: Option<i64>,
    /// When that claim was made (Unix ms).
    pub claim_at_ms: u64,
    /// The session state, if stored. Shared so that readers clone a pointer, not the state.
    pub state: Option<Arc<SessionState>>,
    /// The broker process of the newest claim, as an index into the view's node names (a few
    /// bytes per session instead of a name).
    node: u32,
}

impl Default for Entry {
    fn default() -> Self {
        Entry { claim: None, claim_at_ms: 0, state: None, node: NO_NODE }
    }
}

/// The last heartbeat of a broker process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Heartbeat {
    /// When it was written (Unix ms, the writer's clock).
    pub at_ms: u64,
    /// The process stopped cleanly.
    pub stopped: bool,
    /// Its connected clients, when it says.
    pub connections: Option<u64>,
}

/// Latest claim and state per client id, the broker processes' heartbeats, plus how far each
/// partition has been applied.
///
/// Records are applied in partition order, each once: those the tailer reads, and this
/// process's own records as soon as Kafka has acknowledged them and everything before them in
/// their partition is applied ([`View::apply_own`]). A CONNECT then waits for its own claim's
/// acknowledgement, not for the tailer's next fetch, unless other writers' records precede it.
#[derive(Debug, Default)]
pub(crate) struct View {
    entries: HashMap<Box<str>, Entry>,
    /// Highest offset applied per partition; every offset below it was applied or does not exist.
    applied: HashMap<i32, i64>,
    /// Own acknowledged records waiting for an earlier offset of their partition (bounded).
    own: HashMap<i32, BTreeMap<i64, OwnRecord>>,
    own_waiting: usize,
    own_waiting_bytes: usize,
    stored: usize,
    /// Node names by index, and their indexes (claims name their node; few distinct names).
    node_names: Vec<Arc<str>>,
    node_index: HashMap<Arc<str>, u32>,
    heartbeats: HashMap<u32, Heartbeat>,
    /// When each broker wrote the last heartbeat the tailer itself read (Unix ms): a broker's
    /// own heartbeats are applied from their acknowledgement, so only these show that its
    /// tailer keeps up (see [`View::heartbeat_read`]).
    heartbeats_read: HashMap<u32, u64>,
    /// Client ids whose state is disconnected with a Will still to publish.
    pending_wills: HashSet<Box<str>>,
    /// Client ids for which a fenced-off writer's state record was just ignored (bounded).
    stale_writes: Vec<Box<str>>,
}

/// At most this many ignored stale writes wait for [`View::take_overwritten`].
const MAX_STALE_WRITES: usize = 10_000;

/// At most this many own records, and this many bytes of them, wait for earlier offsets; past
/// either they are left to the tailer (only slower: the tailer reads them anyway).
const MAX_OWN_WAITING: usize = 100_000;
const MAX_OWN_WAITING_BYTES: usize = 64 << 20;

/// A record this process wrote, as Kafka acknowledged it.
#[derive(Debug)]
struct OwnRecord {
    key: Box<[u8]>,
    value: Option<Box<[u8]>>,
}

impl OwnRecord {
    fn size(&self) -> usize {
        self.key.len() + self.value.as_ref().map_or(0, |v| v.len())
    }
}

/// A claim the view just applied: local connections of `client_id` with an older epoch must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewClaim {
    /// The client id.
    pub client_id: Box<str>,
    /// Its new epoch.
    pub epoch: i64,
}

impl View {
    /// Applies the record the tailer read at (`partition`, `offset`), then the own records it
    /// was the last gap before. Returns the claims made, in log order.
    pub(crate) fn apply(
        &mut self,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Vec<NewClaim> {
        match (key.and_then(parse_key), value) {
            (Some(Key::Node(node)), Some(v)) => {
                if let Ok(beat) = serde_json::from_slice::<NodeRecord>(v) {
                    let index = self.intern(node);
                    self.heartbeats_read.insert(index, beat.at_ms);
                }
            }
            (Some(Key::Node(node)), None) => {
                if let Some(index) = self.node_index.get(node) {
                    self.heartbeats_read.remove(index);
                }
            }
            _ => {}
        }
        let mut claims: Vec<NewClaim> = self.apply_one(partition, offset, key, value).into_iter().collect();
        self.apply_waiting(partition, &mut claims);
        claims
    }

    /// Applies a record this process wrote, acknowledged at (`partition`, `offset`), now if
    /// every earlier offset of its partition is applied, else once the tailer has read them.
    /// Returns the claims made now, in log order.
    pub(crate) fn apply_own(&mut self, partition: i32, offset: i64, key: &[u8], value: Option<&[u8]>) -> Vec<NewClaim> {
        let mut claims = Vec::new();
        if self.is_next(partition, offset) {
            claims.extend(self.apply_one(partition, offset, Some(key), value));
            self.apply_waiting(partition, &mut claims);
        } else if !self.has_applied(partition, offset)
            && self.own_waiting < MAX_OWN_WAITING
            && self.own_waiting_bytes < MAX_OWN_WAITING_BYTES
        {
            let record = OwnRecord { key: key.into(), value: value.map(Into::into) };
            let size = record.size();
            if self.own.entry(partition).or_default().insert(offset, record).is_none() {
                self.own_waiting += 1;
                self.own_waiting_bytes += size;
            }
        }
        claims
    }

    /// Whether `offset` is the next record of `partition`: the one after the last applied (the
    /// first ever record, 0, when nothing was).
    fn is_next(&self, partition: i32, offset: i64) -> bool {
        self.applied.get(&partition).map_or(offset == 0, |a| *a + 1 == offset)
    }

    /// Forgets own records the log has been applied past, and applies those that are next.
    fn apply_waiting(&mut self, partition: i32, claims: &mut Vec<NewClaim>) {
        let Some(mut waiting) = self.own.remove(&partition) else { return };
        while let Some(entry) = waiting.first_entry() {
            let offset = *entry.key();
            let record = if self.has_applied(partition, offset) {
                entry.remove()
            } else if self.is_next(partition, offset) {
                let record = entry.remove();
                claims.extend(self.apply_one(partition, offset, Some(&record.key), record.value.as_deref()));
                record
            } else {
                break;
            };
            self.own_waiting -= 1;
            self.own_waiting_bytes -= record.size();
        }
        if !waiting.is_empty() {
            self.own.insert(partition, waiting);
        }
    }

    /// Applies one record, unless its offset was applied already (an own record the tailer
    /// reads again): applying a record twice could undo what followed it.
    fn apply_one(&mut self, partition: i32, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Option<NewClaim> {
        if self.has_applied(partition, offset) {
            return None;
        }
        self.applied.insert(partition, offset);
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
                let node = self.intern(&claim.node);
                if let Some(e) = self.entries.get_mut(cid) {
                    e.node = node;
                }
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
                    if self.stale_writes.len() < MAX_STALE_WRITES {
                        self.stale_writes.push(cid.into());
                    }
                    return None;
                }
                if e.state.is_none() {
                    self.stored += 1;
                }
                let pending = state.will.is_some() && state.disconnected_at_ms.is_some();
                e.state = Some(Arc::new(state));
                if pending {
                    self.pending_wills.insert(cid.into());
                } else {
                    self.pending_wills.remove(cid);
                }
                None
            }
            (Key::State(cid), None) => {
                if let Some(e) = self.entries.get_mut(cid) {
                    if e.state.take().is_some() {
                        self.stored -= 1;
                    }
                }
                self.pending_wills.remove(cid);
                self.prune(cid);
                None
            }
            (Key::Node(node), Some(v)) => {
                let Ok(beat) = serde_json::from_slice::<NodeRecord>(v) else {
                    tracing::warn!(partition, offset, "skipping undecodable broker heartbeat");
                    return None;
                };
                let index = self.intern(node);
                self.heartbeats.insert(
                    index,
                    Heartbeat { at_ms: beat.at_ms, stopped: beat.stopped, connections: beat.connections },
                );
                None
            }
            (Key::Node(node), None) => {
                if let Some(index) = self.node_index.get(node) {
                    self.heartbeats.remove(index);
                }
                None
            }
        }
    }

    /// The index of node name `name`, added on first sight.
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(i) = self.node_index.get(name) {
            return *i;
        }
        let i = u32::try_from(self.node_names.len()).unwrap_or(NO_NODE);
        let name: Arc<str> = name.into();
        self.node_names.push(name.clone());
        self.node_index.insert(name, i);
        i
    }

    /// The broker process of `entry`'s newest claim, if known.
    pub(crate) fn node_of(&self, entry: &Entry) -> Option<&Arc<str>> {
        self.node_names.get(usize::try_from(entry.node).ok()?)
    }

    /// The last heartbeat of broker process `node`.
    pub(crate) fn heartbeat(&self, node: &str) -> Option<Heartbeat> {
        self.heartbeats.get(self.node_index.get(node)?).copied()
    }

    /// When the last heartbeat of `node` that the tailer read was written (Unix ms), even if it
    /// had been applied already from its acknowledgement.
    pub(crate) fn heartbeat_read(&self, node: &str) -> Option<u64> {
        self.heartbeats_read.get(self.node_index.get(node)?).copied()
    }

    /// Every broker process with a heartbeat record, with it.
    pub(crate) fn heartbeats(&self) -> impl Iterator<Item = (&Arc<str>, Heartbeat)> {
        self.heartbeats.iter().filter_map(|(i, h)| Some((self.node_names.get(usize::try_from(*i).ok()?)?, *h)))
    }

    /// Sessions whose accepted state was followed in the log by a fenced-off writer's record
    /// and that broker process `node` owns, disconnected (a connected owner saves again
    /// anyway). Compaction keeps only the last record of a key, so a broker started later would
    /// see the stale one: the owner writes the accepted state again. Clears the list.
    pub(crate) fn take_overwritten(&mut self, node: &str) -> Vec<(Box<str>, Arc<SessionState>)> {
        let stale = std::mem::take(&mut self.stale_writes);
        let Some(&index) = self.node_index.get(node) else { return Vec::new() };
        stale
            .into_iter()
            .filter_map(|cid| {
                let e = self.entries.get(&cid)?;
                let state = e.state.as_ref()?;
                let own = e.node == index && e.claim == Some(state.epoch) && state.disconnected_at_ms.is_some();
                own.then(|| (cid, state.clone()))
            })
            .collect()
    }

    /// Disconnected sessions whose Will is due at `now_ms` and whose newest claim (and state)
    /// belongs to broker process `node`: that process publishes them.
    pub(crate) fn due_wills(&self, node: &str, now_ms: u64) -> Vec<(Box<str>, Arc<SessionState>)> {
        let Some(&index) = self.node_index.get(node) else { return Vec::new() };
        self.pending_wills
            .iter()
            .filter_map(|cid| {
                let e = self.entries.get(cid)?;
                let state = e.state.as_ref()?;
                let owned = e.node == index && e.claim == Some(state.epoch);
                (owned && state.will_due_at_ms()? <= now_ms).then(|| (cid.clone(), state.clone()))
            })
            .collect()
    }

    fn prune(&mut self, cid: &str) {
        if self.entries.get(cid).is_some_and(|e| e.claim.is_none() && e.state.is_none()) {
            self.entries.remove(cid);
        }
    }

    /// The entry of `client_id`.
    pub(crate) fn get(&self, client_id: &str) -> Option<&Entry> {
        self.entries.get(client_id)
    }

    /// True once the record at `offset` of `partition` (or a later one) was applied.
    pub(crate) fn has_applied(&self, partition: i32, offset: i64) -> bool {
        self.applied.get(&partition).is_some_and(|o| *o >= offset)
    }

    /// Number of stored session states.
    pub(crate) fn stored(&self) -> usize {
        self.stored
    }

    /// Every entry (for the expiry scan).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::{NodeRecord, VERSION};
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
            will: None,
        };
        serde_json::to_vec(&s).unwrap_or_default()
    }

    fn filter_of(v: &View, cid: &str) -> Option<String> {
        v.get(cid)?.state.as_ref().map(|s| s.subscriptions[0].filter.clone())
    }

    #[test]
    fn claims_set_the_epoch_and_report_it() {
        let mut v = View::default();
        assert_eq!(v.apply(0, 3, Some(b"c#claim"), Some(&claim())), [NewClaim { client_id: "c".into(), epoch: 3 }]);
        assert_eq!(v.get("c").and_then(|e| e.claim), Some(3));
        assert!(v.has_applied(0, 3) && !v.has_applied(0, 4) && !v.has_applied(1, 0));
        // A replayed (older) claim changes nothing.
        assert_eq!(v.apply(0, 2, Some(b"c#claim"), Some(&claim())), []);
        assert_eq!(v.apply(0, 9, Some(b"c#claim"), Some(&claim())).pop().map(|c| c.epoch), Some(9));
    }

    #[test]
    fn own_records_apply_at_once_when_nothing_precedes_them() {
        let mut v = View::default();
        // The first record of a partition, then the next: no fetch needed for either.
        assert_eq!(v.apply_own(0, 0, b"c#claim", Some(&claim())).pop().map(|c| c.epoch), Some(0));
        v.apply_own(0, 1, b"c", Some(&state(0, "f")));
        assert_eq!(filter_of(&v, "c"), Some("f".into()));
        // The tailer reads both again later: nothing changes, no claim is reported twice.
        assert!(v.apply(0, 0, Some(b"c#claim"), Some(&claim())).is_empty());
        assert!(v.apply(0, 1, Some(b"c"), Some(&state(0, "f"))).is_empty());
        assert_eq!(v.stored(), 1);
    }

    #[test]
    fn own_records_wait_for_earlier_offsets_and_are_applied_in_order() {
        let mut v = View::default();
        v.apply(0, 4, Some(b"x#claim"), Some(&claim()));
        // Offsets 5 and 6 are another writer's, not read yet: 7 and 8 wait for them.
        assert!(v.apply_own(0, 8, b"c", None).is_empty());
        assert!(v.apply_own(0, 7, b"c#claim", Some(&claim())).is_empty());
        assert_eq!(v.get("c"), None);
        assert!(!v.has_applied(0, 7));
        // Another writer claimed c at 5 and stored a state at 6; reading 6 applies 7 and 8 too.
        assert_eq!(v.apply(0, 5, Some(b"c#claim"), Some(&claim())).len(), 1);
        let claims = v.apply(0, 6, Some(b"c"), Some(&state(5, "theirs")));
        assert_eq!(claims, [NewClaim { client_id: "c".into(), epoch: 7 }]);
        assert!(v.has_applied(0, 8));
        assert!(v.get("c").is_some_and(|e| e.claim == Some(7) && e.state.is_none()), "own tombstone applied last");
        assert_eq!(v.own_waiting, 0);
    }

    #[test]
    fn only_heartbeats_the_tailer_read_show_it_keeps_up() {
        let mut v = View::default();
        let beat = |at_ms| {
            serde_json::to_vec(&NodeRecord { v: VERSION, at_ms, stopped: false, connections: None }).unwrap_or_default()
        };
        v.apply_own(0, 0, b"me#node", Some(&beat(10)));
        assert_eq!(v.heartbeat("me").map(|h| h.at_ms), Some(10), "applied from its acknowledgement");
        assert_eq!(v.heartbeat_read("me"), None, "but not read by the tailer yet");
        v.apply(0, 0, Some(b"me#node"), Some(&beat(10)));
        assert_eq!(v.heartbeat_read("me"), Some(10), "read again: skipped, yet seen");
    }

    #[test]
    fn a_record_read_again_does_not_undo_what_followed_it() {
        let mut v = View::default();
        v.apply_own(0, 0, b"c#claim", Some(&claim()));
        v.apply_own(0, 1, b"c", None);
        v.apply_own(0, 2, b"c", Some(&state(0, "kept")));
        // The tailer reads the tombstone at 1 after the state at 2 was applied.
        v.apply(0, 0, Some(b"c#claim"), Some(&claim()));
        v.apply(0, 1, Some(b"c"), None);
        assert_eq!(filter_of(&v, "c"), Some("kept".into()));
        // An own record the tailer already passed is dropped, not kept waiting.
        v.apply(0, 3, Some(b"d#claim"), Some(&claim()));
        assert!(v.apply_own(0, 3, b"d#claim", Some(&claim())).is_empty());
        assert_eq!(v.own_waiting, 0);
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
        assert!(std::mem::size_of::<Entry>() <= 40);
        assert!(std::mem::size_of::<SessionState>() <= 136);
        assert!(std::mem::size_of::<super::super::record::StoredSubscription>() <= 40);
    }

    fn claim_by(node: &str, at_ms: u64) -> Vec<u8> {
        serde_json::to_vec(&ClaimRecord { v: VERSION, node: node.into(), at_ms }).unwrap_or_default()
    }

    fn disconnected_with_will(epoch: i64, at_ms: u64, delay_secs: u32) -> Vec<u8> {
        let s = SessionState {
            v: VERSION,
            epoch,
            expiry_secs: 3600,
            disconnected_at_ms: Some(at_ms),
            subscriptions: vec![],
            cursors: Default::default(),
            in_flight: vec![],
            inbound_qos2: vec![],
            will: Some(Box::new(super::super::record::StoredWill {
                topic: "w".into(),
                payload: Default::default(),
                qos: 0,
                retain: false,
                delay_secs,
                properties: Default::default(),
            })),
        };
        serde_json::to_vec(&s).unwrap_or_default()
    }

    #[test]
    fn claims_name_their_node_and_heartbeats_are_tracked() {
        let mut v = View::default();
        v.apply(0, 1, Some(b"c#claim"), Some(&claim_by("pod-a/1/5", 5)));
        let e = v.get("c").cloned().unwrap_or_default();
        assert_eq!(v.node_of(&e).map(|n| n.to_string()), Some("pod-a/1/5".to_string()));
        assert_eq!(v.heartbeat("pod-a/1/5"), None);
        let beat = serde_json::to_vec(&NodeRecord { v: VERSION, at_ms: 77, stopped: false, connections: Some(12) })
            .unwrap_or_default();
        v.apply(1, 0, Some(b"pod-a/1/5#node"), Some(&beat));
        assert_eq!(v.heartbeat("pod-a/1/5"), Some(Heartbeat { at_ms: 77, stopped: false, connections: Some(12) }));
        assert_eq!(v.heartbeats().count(), 1);
        v.apply(1, 1, Some(b"pod-a/1/5#node"), None);
        assert_eq!(v.heartbeat("pod-a/1/5"), None);
        assert!(v.get("pod-a/1/5").is_none(), "a heartbeat is not a session");
        assert_eq!(v.stored(), 0);
    }

    #[test]
    fn due_wills_are_those_of_this_node_past_their_delay() {
        let mut v = View::default();
        v.apply(0, 1, Some(b"mine#claim"), Some(&claim_by("me", 0)));
        v.apply(0, 2, Some(b"mine"), Some(&disconnected_with_will(1, 1_000, 5)));
        v.apply(0, 3, Some(b"theirs#claim"), Some(&claim_by("other", 0)));
        v.apply(0, 4, Some(b"theirs"), Some(&disconnected_with_will(3, 1_000, 0)));
        let due = |v: &View, now| v.due_wills("me", now).into_iter().map(|(c, _)| c.to_string()).collect::<Vec<_>>();
        assert!(due(&v, 5_999).is_empty(), "delay not over");
        assert_eq!(due(&v, 6_000), ["mine"]);
        assert!(v.due_wills("nobody", 10_000).is_empty());
        // A reconnect (a newer claim) takes the Will back, before and after its state arrives.
        v.apply(0, 5, Some(b"mine#claim"), Some(&claim_by("me", 0)));
        assert!(due(&v, 6_000).is_empty());
        v.apply(0, 6, Some(b"mine"), Some(&state(5, "f")));
        assert!(due(&v, 6_000).is_empty());
        assert!(!v.pending_wills.contains("mine"));
    }

    #[test]
    fn a_disconnected_owner_rewrites_a_state_a_zombie_wrote_over() {
        let mut v = View::default();
        v.apply(0, 1, Some(b"c#claim"), Some(&claim_by("old", 0)));
        v.apply(0, 2, Some(b"d#claim"), Some(&claim_by("me", 0)));
        v.apply(0, 3, Some(b"c#claim"), Some(&claim_by("me", 0)));
        v.apply(0, 4, Some(b"c"), Some(&disconnected_with_will(3, 1_000, 0)));
        v.apply(0, 5, Some(b"d"), Some(&state(2, "connected")));
        // Late writes of fenced-off owners (epochs 1 and 0) follow the accepted states.
        v.apply(0, 6, Some(b"c"), Some(&state(1, "zombie")));
        v.apply(0, 7, Some(b"d"), Some(&state(0, "zombie")));
        let again = v.take_overwritten("me");
        assert_eq!(again.len(), 1, "d is connected: its connection saves again by itself");
        assert_eq!((&*again[0].0, again[0].1.epoch), ("c", 3));
        assert!(v.take_overwritten("me").is_empty(), "taken once");
        v.apply(0, 8, Some(b"c"), Some(&state(1, "zombie")));
        assert!(v.take_overwritten("old").is_empty(), "only the owner rewrites");
    }

    #[test]
    fn state_without_claim_is_accepted() {
        // Claims of sessions may have been compacted or removed; the state stands on its own.
        let mut v = View::default();
        v.apply(0, 0, Some(b"c"), Some(&state(0, "f")));
        assert_eq!(filter_of(&v, "c"), Some("f".into()));
    }
}
