//! Shared subscriptions (`$share/{group}/{filter}`): each message matching the filter goes to
//! one member of the group, over every broker process.
//!
//! Kafka spreads the messages over the processes: each shared subscription (share name and
//! filter) is one Kafka consumer group over the Kafka topics the filter needs, which every
//! process with a member of it joins; Kafka assigns each partition to one of them. A process
//! spreads the records of its partitions over its local members, round robin, skipping a
//! member whose window (its Receive Maximum, unacknowledged messages given to it) or mailbox
//! (beyond half its capacity: the session's own subscriptions keep the rest) is full; when none
//! has room, the group pauses its partitions until one has (backpressure, nothing dropped).
//!
//! A QoS 1/2 message given to a member carries a [`Ticket`]. The member's PUBACK (QoS 1) or
//! PUBREC (QoS 2) settles it; a ticket dropped unsettled (the member went away with the
//! message queued or unacknowledged) gives the message to another member — except a QoS 2
//! message already sent, which no other member may get (MQTT-4.8.2-5). Per partition the
//! group commits, as the offset to resume from, its oldest unsettled record or else what it
//! read: a partition that moves to another process, or a group whose members all left and
//! come back (persistent sessions), resumes there.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

use super::mailbox::Mailbox;
use super::{delivered_qos, Delivery, Origin};
use crate::codec::{QoS, SubscriptionOptions};
use crate::kafka::group::{GroupError, GroupMember, Progress};
use crate::kafka::log::Log;
use crate::message::Message;
use crate::metrics::{DropReason, Metrics};
use crate::topic::matches;

/// One member of a shared subscription: a subscription of one local session.
pub struct Member {
    /// Connection-unique id of the session.
    pub session: u64,
    /// Where its messages go.
    pub mailbox: Arc<Mailbox>,
    /// Options it subscribed with (granted QoS in `qos`).
    pub options: SubscriptionOptions,
    /// MQTT 5 subscription identifier.
    pub id: Option<u32>,
    /// Unsettled QoS 1/2 messages it may hold: its Receive Maximum.
    pub window: usize,
}

/// Why a shared subscription could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// This process already serves `limits.maxShareGroups` shared subscriptions.
    #[error("this broker serves its limit of {0} shared subscriptions")]
    Full(usize),
    /// Kafka could not take the consumer group.
    #[error(transparent)]
    Group(#[from] GroupError),
}

/// The groups running here, by share name and filter.
type Groups = HashMap<(Box<str>, Box<str>), Arc<ShareGroup>>;

/// The shared subscriptions of this process.
pub struct Shares {
    groups: Mutex<Groups>,
    /// Held while a group joins Kafka, so that two SUBSCRIBEs do not both join it.
    joining: tokio::sync::Mutex<()>,
    log: Arc<dyn Log>,
    metrics: Arc<Metrics>,
    max_groups: usize,
}

impl Shares {
    /// No shared subscriptions yet; at most `max_groups` at a time (each is a Kafka consumer).
    pub fn new(log: Arc<dyn Log>, metrics: Arc<Metrics>, max_groups: usize) -> Arc<Self> {
        Arc::new(Shares { groups: Mutex::default(), joining: tokio::sync::Mutex::new(()), log, metrics, max_groups })
    }

    /// Adds (or, for the same session, replaces) a member of `$share/{name}/{filter}`, whose
    /// messages are in Kafka topics `topics`; joins the Kafka consumer group when it is the
    /// first local member. Once this returns, every matching message appended to `topics` goes
    /// to some member of the group.
    pub async fn join(&self, name: &str, filter: &str, topics: &[String], member: Member) -> Result<(), ShareError> {
        let key = (Box::<str>::from(name), Box::<str>::from(filter));
        let member = match self.add_to_existing(&key, member) {
            None => return Ok(()),
            Some(member) => member,
        };
        let _joining = self.joining.lock().await;
        let member = match self.add_to_existing(&key, member) {
            None => return Ok(()),
            Some(member) => member,
        };
        if self.lock().len() >= self.max_groups {
            return Err(ShareError::Full(self.max_groups));
        }
        let consumer = self.log.join_group(&group_id(name, filter, topics), topics).await?;
        let group = ShareGroup::new(filter, consumer.progress().clone(), self.metrics.clone());
        group.add(member);
        let (stop, stopped) = oneshot::channel();
        *group.stop.lock().unwrap_or_else(PoisonError::into_inner) = Some(stop);
        tokio::spawn(group.clone().run(consumer, stopped));
        self.lock().insert(key, group);
        tracing::debug!(share = %name, %filter, ?topics, "shared subscription joined its kafka group");
        Ok(())
    }

    /// Adds `member` to the group `key` if it runs here; gives the member back if not.
    fn add_to_existing(&self, key: &(Box<str>, Box<str>), member: Member) -> Option<Member> {
        match self.lock().get(key) {
            Some(group) => {
                group.add(member);
                None
            }
            None => Some(member),
        }
    }

    /// Removes `session` from `$share/{name}/{filter}`; the last local member leaving takes
    /// this process out of the Kafka group (its partitions go to the other processes). Returns
    /// whether it was a member.
    pub fn leave(&self, name: &str, filter: &str, session: u64) -> bool {
        let key = (Box::<str>::from(name), Box::<str>::from(filter));
        let mut groups = self.lock();
        let Some(group) = groups.get(&key) else { return false };
        let (was_member, now_empty) = group.remove(session);
        if now_empty {
            if let Some(group) = groups.remove(&key) {
                group.stop();
            }
        }
        was_member
    }

    fn lock(&self) -> MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The Kafka consumer group of `$share/{name}/{filter}` over `topics`. Readable for operators
/// (`kafka-consumer-groups --list`), and the same on every process: the filter and topics are
/// hashed because a group id should stay short and free of MQTT wildcards.
fn group_id(name: &str, filter: &str, topics: &[String]) -> String {
    // FNV-1a: stable across processes and versions, unlike the std hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in filter.bytes().chain(topics.iter().flat_map(|t| [0].into_iter().chain(t.bytes()))) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("tributary-share.{name}.{hash:016x}")
}

/// How long a group with records to give waits for a full member before looking again: a
/// mailbox that empties does not notify the group.
const RETRY: Duration = Duration::from_millis(50);

/// One shared subscription in this process.
struct ShareGroup {
    filter: Box<str>,
    state: Mutex<State>,
    /// Woken when a member may have room (a settlement, a new member, a released message).
    room: Notify,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    metrics: Arc<Metrics>,
}

/// What a group knows of its members and of the records it handed out.
struct State {
    members: Vec<Slot>,
    /// Where the round robin continues.
    cursor: usize,
    /// Messages whose member went away, to give to another.
    released: VecDeque<(Origin, Arc<Message>)>,
    /// Per partition, the unsettled and released offsets and the next offset to read.
    partitions: HashMap<(Arc<str>, i32), Open>,
    progress: Arc<Progress>,
}

struct Slot {
    member: Member,
    /// Unsettled messages given to it.
    holding: usize,
}

impl Slot {
    /// Whether the member can take another message: its window and its mailbox have room.
    fn has_room(&self) -> bool {
        self.holding < self.member.window && self.member.mailbox.has_room_for_shared()
    }
}

/// One partition as this process reads it for the group.
#[derive(Default)]
struct Open {
    /// Offsets handed out and not settled, or waiting for another member.
    offsets: BTreeSet<i64>,
    /// The next offset to read: everything below it was handed out here.
    next: i64,
}

/// A QoS 1/2 message of a shared subscription on its way to a member: settle it when the
/// member has it; dropping it unsettled gives the message to another member, unless its
/// QoS 2 delivery had begun.
pub struct Ticket {
    group: Arc<ShareGroup>,
    /// The member it was given to.
    session: u64,
    origin: Origin,
    msg: Arc<Message>,
    /// Whether another member may get the message if this one goes away with it.
    handover: bool,
    settled: bool,
}

impl Ticket {
    /// The member has the message (PUBACK, PUBREC), or will never get it (expired, too large):
    /// no other member gets it.
    pub fn settle(mut self) {
        self.settled = true;
        self.group.settled(&self.origin, self.session, None);
    }

    /// The member was sent the message at QoS 2: if its connection breaks now, no other member
    /// may get it (MQTT-4.8.2-5); the message is settled then, as the client may have it.
    pub fn delivering_qos2(&mut self) {
        self.handover = false;
    }

    /// Where the message sits in Kafka.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled {
            let again = self.handover.then(|| self.msg.clone());
            self.group.settled(&self.origin, self.session, again);
        }
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("filter", &self.group.filter).field("origin", &self.origin).finish()
    }
}

/// What the group does next.
enum Step {
    /// Give a released message to the member of this session.
    Give(u64, Origin, Arc<Message>),
    /// Read the next record from Kafka (a member has room).
    Read,
    /// Wait until a member has room.
    Wait,
}

impl ShareGroup {
    fn new(filter: &str, progress: Arc<Progress>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(ShareGroup {
            filter: filter.into(),
            state: Mutex::new(State {
                members: Vec::new(),
                cursor: 0,
                released: VecDeque::new(),
                partitions: HashMap::new(),
                progress,
            }),
            room: Notify::new(),
            stop: Mutex::new(None),
            metrics,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, member: Member) {
        // A replaced member is dropped after the lock: its mailbox may hold tickets.
        let _replaced = {
            let mut state = self.lock();
            match state.members.iter_mut().find(|s| s.member.session == member.session) {
                Some(slot) => Some(std::mem::replace(&mut slot.member, member)),
                None => {
                    state.members.push(Slot { member, holding: 0 });
                    None
                }
            }
        };
        self.room.notify_one();
    }

    /// Removes `session`; returns whether it was a member and whether none is left.
    fn remove(&self, session: u64) -> (bool, bool) {
        let (removed, empty) = {
            let mut state = self.lock();
            let at = state.members.iter().position(|s| s.member.session == session);
            (at.map(|i| state.members.remove(i)), state.members.is_empty())
        };
        // Dropped after the lock, as in `add`.
        (removed.is_some(), empty)
    }

    fn stop(&self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = stop.send(());
        }
    }

    /// A ticket was settled (`again` is `None`) or dropped unsettled (`again`: the message to
    /// give to another member).
    fn settled(&self, origin: &Origin, session: u64, again: Option<Arc<Message>>) {
        {
            let mut state = self.lock();
            if let Some(slot) = state.members.iter_mut().find(|s| s.member.session == session) {
                slot.holding = slot.holding.saturating_sub(1);
            }
            match again {
                Some(msg) => state.released.push_back((origin.clone(), msg)),
                None => state.done(origin),
            }
        }
        self.room.notify_one();
    }

    /// Reads the group's partitions and hands the records out until stopped, then commits.
    async fn run(self: Arc<Self>, consumer: GroupMember, mut stop: oneshot::Receiver<()>) {
        let mut paused = false;
        loop {
            let step = self.lock().next_step();
            let waiting = matches!(step, Step::Wait);
            if waiting != paused {
                // Only on a change: new assignments follow the state (see kafka::group).
                consumer.pause(waiting);
                paused = waiting;
            }
            let read = match step {
                Step::Give(session, origin, msg) => {
                    self.give(session, origin, msg);
                    continue;
                }
                // Still polled while paused: that is what answers the group's rebalances. A
                // record fetched before the pause is kept for the next member with room.
                Step::Wait => tokio::select! {
                    _ = &mut stop => break,
                    _ = self.room.notified() => continue,
                    _ = tokio::time::sleep(RETRY) => continue,
                    r = consumer.next() => r,
                },
                Step::Read => tokio::select! {
                    _ = &mut stop => break,
                    // A released message goes out before the next record (reads are
                    // cancel-safe).
                    _ = self.room.notified() => continue,
                    r = consumer.next() => r,
                },
            };
            match read {
                Ok(record) => self.on_record(&record),
                Err(e) => {
                    // librdkafka reconnects by itself; report and keep reading.
                    tracing::warn!(filter = %self.filter, error = %e, "shared subscription: kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        consumer.close().await;
    }

    /// A record read from Kafka: a message the filter matches goes to a member; anything else
    /// is done with at once.
    fn on_record(self: &Arc<Self>, record: &crate::kafka::record::Record) {
        let origin = Origin { topic: record.topic.clone(), partition: record.partition, offset: record.offset };
        let msg = Message::from_tailed(record.view()).filter(|m| matches(&self.filter, &m.topic));
        let mut state = self.lock();
        let open = state.partitions.entry((origin.topic.clone(), origin.partition)).or_default();
        if origin.offset < open.next {
            // Read again after a rebalance gave the partition back from its commit: it was
            // handed out here already, and is settled or open here.
            return;
        }
        open.next = origin.offset + 1;
        let Some(msg) = msg else {
            state.done(&origin);
            return;
        };
        // Open until settled: the partition does not resume past it before.
        open.offsets.insert(origin.offset);
        match state.pick() {
            Some(session) => {
                drop(state);
                self.give(session, origin, Arc::new(msg));
            }
            // Room went between the decision to read and the record (a member left).
            None => state.released.push_back((origin, Arc::new(msg))),
        }
    }

    /// Queues `msg` for the member of `session`. A QoS 1/2 delivery carries a ticket; a
    /// mailbox that refuses it drops the ticket, which puts the message back for another
    /// member.
    fn give(self: &Arc<Self>, session: u64, origin: Origin, msg: Arc<Message>) {
        let (mailbox, delivery) = {
            let mut state = self.lock();
            // The member may have left since it was picked.
            let Some(s) = state.members.iter_mut().find(|s| s.member.session == session) else {
                state.released.push_back((origin, msg));
                return;
            };
            let qos = delivered_qos(msg.qos, s.member.options.qos);
            let d = Delivery {
                msg: msg.clone(),
                qos,
                retain: s.member.options.retain_as_published && msg.retain,
                subscription_ids: s.member.id.into_iter().collect(),
                origin: None,
                share: None,
            };
            let mailbox = s.member.mailbox.clone();
            if qos == QoS::AtMostOnce {
                state.done(&origin);
                (mailbox, d)
            } else {
                s.holding += 1;
                let ticket = Ticket { group: self.clone(), session, origin, msg, handover: true, settled: false };
                (mailbox, Delivery { share: Some(Box::new(ticket)), ..d })
            }
        };
        // Outside the lock: a refused delivery drops its ticket, which takes the lock and puts
        // the message back; only a QoS 0 one is lost.
        if let Err(refused) = mailbox.offer(delivery) {
            if refused.share.is_none() {
                self.metrics.dropped(DropReason::QueueFull);
            }
        }
    }
}

impl State {
    fn next_step(&mut self) -> Step {
        if self.released.is_empty() {
            return if self.members.iter().any(Slot::has_room) { Step::Read } else { Step::Wait };
        }
        let Some(slot) = self.pick() else { return Step::Wait };
        match self.released.pop_front() {
            Some((origin, msg)) => Step::Give(slot, origin, msg),
            None => Step::Read,
        }
    }

    /// The session of the next member with room, round robin.
    fn pick(&mut self) -> Option<u64> {
        let n = self.members.len();
        let found = (0..n).map(|i| (self.cursor + i) % n).find(|&i| self.members[i].has_room())?;
        self.cursor = found + 1;
        Some(self.members[found].member.session)
    }

    /// The record at `origin` needs nothing more: the partition may resume past it.
    fn done(&mut self, origin: &Origin) {
        let open = self.partitions.entry((origin.topic.clone(), origin.partition)).or_default();
        open.offsets.remove(&origin.offset);
        let resume = open.offsets.first().copied().unwrap_or(open.next);
        self.progress.set(&origin.topic, origin.partition, resume);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::log::OutRecord;
    use crate::kafka::memory::MemoryLog;
    use bytes::Bytes;

    const FILTER: &str = "s/#";

    fn topics() -> Vec<String> {
        vec!["t".to_owned()]
    }

    fn setup() -> (Arc<MemoryLog>, Arc<Shares>) {
        let log = Arc::new(MemoryLog::new());
        log.create_topic("t", 1);
        let shares = Shares::new(log.clone(), Arc::default(), 10);
        (log, shares)
    }

    fn member(session: u64, mailbox: &Arc<Mailbox>, window: usize) -> Member {
        let options = SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        };
        Member { session, mailbox: mailbox.clone(), options, id: None, window }
    }

    fn message(topic: &str, n: u8, qos: QoS) -> Message {
        Message {
            topic: topic.into(),
            payload: Bytes::from(vec![n]),
            qos,
            retain: false,
            publisher: None,
            publish_id: None,
            properties: Default::default(),
        }
    }

    async fn publish(log: &MemoryLog, topic: &str, n: u8, qos: QoS) {
        let msg = message(topic, n, qos);
        let ack = log.append(OutRecord::of("t", Some(0), &msg, false)).await.unwrap_or_else(|e| panic!("{e}"));
        ack.await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// The next `n` deliveries of `m`, waiting up to 5 s for them.
    async fn take(m: &Mailbox, n: usize) -> Vec<Delivery> {
        let mut got = Vec::new();
        let wait = async {
            while got.len() < n {
                match m.pop() {
                    Some(d) => got.push(d),
                    None => m.notified().await,
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), wait).await.is_err() {
            panic!("{} of {n} deliveries", got.len());
        }
        got
    }

    fn payloads(ds: &[Delivery]) -> Vec<u8> {
        ds.iter().map(|d| d.msg.payload[0]).collect()
    }

    #[tokio::test]
    async fn spreads_round_robin_and_skips_a_member_without_room() {
        let (log, shares) = setup();
        let (a, b) = (Arc::new(Mailbox::new(100)), Arc::new(Mailbox::new(100)));
        shares.join("g", FILTER, &topics(), member(1, &a, 1)).await.unwrap_or_else(|e| panic!("{e}"));
        shares.join("g", FILTER, &topics(), member(2, &b, 5)).await.unwrap_or_else(|e| panic!("{e}"));
        publish(&log, "other/topic", 9, QoS::AtLeastOnce).await;
        for n in 0..4 {
            publish(&log, "s/x", n, QoS::AtLeastOnce).await;
        }
        let to_a = take(&a, 1).await;
        let to_b = take(&b, 3).await;
        assert_eq!(payloads(&to_a), [0], "a holds its window of one");
        assert_eq!(payloads(&to_b), [1, 2, 3], "so b takes the rest; the other topic is not matched");
        assert!(a.pop().is_none());
        to_a.into_iter().for_each(|d| d.share.map_or((), |t| t.settle()));
        publish(&log, "s/x", 4, QoS::AtLeastOnce).await;
        let to_a = take(&a, 1).await;
        assert_eq!(payloads(&to_a), [4], "a has room again and is next in turn");
        to_a.into_iter().for_each(|d| d.share.map_or((), |t| t.settle()));
        // QoS 0 takes no room in a window: a, with a window of one, gets two in turn.
        for n in 5..9 {
            publish(&log, "s/x", n, QoS::AtMostOnce).await;
        }
        let (qos0_a, qos0_b) = (take(&a, 2).await, take(&b, 2).await);
        for d in qos0_a.iter().chain(&qos0_b) {
            assert!(d.share.is_none() && d.qos == QoS::AtMostOnce, "{d:?}");
        }
        drop(to_b);
    }

    #[tokio::test]
    async fn a_message_its_member_did_not_settle_goes_to_another_member() {
        let (log, shares) = setup();
        let (a, b) = (Arc::new(Mailbox::new(100)), Arc::new(Mailbox::new(100)));
        shares.join("g", FILTER, &topics(), member(1, &a, 5)).await.unwrap_or_else(|e| panic!("{e}"));
        shares.join("g", FILTER, &topics(), member(2, &b, 5)).await.unwrap_or_else(|e| panic!("{e}"));
        publish(&log, "s/x", 7, QoS::ExactlyOnce).await;
        let to_a = take(&a, 1).await;
        assert!(to_a[0].share.is_some(), "a QoS 2 delivery carries a ticket");
        assert!(shares.leave("g", FILTER, 1), "a leaves");
        drop(to_a);
        let again = take(&b, 1).await;
        assert_eq!((payloads(&again), again[0].qos), (vec![7], QoS::ExactlyOnce));
    }

    #[tokio::test]
    async fn a_group_comes_back_after_what_was_settled_and_at_what_was_not() {
        let (log, shares) = setup();
        let group = group_id("g", FILTER, &topics());
        let a = Arc::new(Mailbox::new(100));
        shares.join("g", FILTER, &topics(), member(1, &a, 5)).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(log.committed(&group, "t", 0), Some(0), "a new group starts at the end");
        publish(&log, "s/x", 0, QoS::AtLeastOnce).await;
        publish(&log, "s/x", 1, QoS::AtLeastOnce).await;
        let mut got = take(&a, 2).await;
        let unsettled = got.pop();
        got.into_iter().for_each(|d| d.share.map_or((), |t| t.settle()));
        assert!(shares.leave("g", FILTER, 1), "the last member leaves: the group stops and commits");
        let committed = async {
            while log.committed(&group, "t", 0) != Some(1) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        assert!(tokio::time::timeout(Duration::from_secs(5), committed).await.is_ok(), "resumes at the unsettled one");
        drop(unsettled);
        let c = Arc::new(Mailbox::new(100));
        shares.join("g", FILTER, &topics(), member(3, &c, 5)).await.unwrap_or_else(|e| panic!("{e}"));
        publish(&log, "s/x", 2, QoS::AtLeastOnce).await;
        assert_eq!(payloads(&take(&c, 2).await), [1, 2]);
    }

    #[tokio::test]
    async fn a_member_with_its_share_of_the_mailbox_full_waits_and_nothing_is_dropped() {
        let (log, shares) = setup();
        // Capacity 2: a shared subscription may fill one place, the session keeps the other.
        let a = Arc::new(Mailbox::new(2));
        shares.join("g", FILTER, &topics(), member(1, &a, 10)).await.unwrap_or_else(|e| panic!("{e}"));
        for n in 0..5 {
            publish(&log, "s/x", n, QoS::AtMostOnce).await;
        }
        let mut got = Vec::new();
        while got.len() < 5 {
            let d = take(&a, 1).await;
            assert!(a.pop().is_none(), "never more than its share queued");
            got.extend(payloads(&d));
        }
        assert_eq!(got, [0, 1, 2, 3, 4], "in order, QoS 0 included, none dropped");
    }

    #[tokio::test]
    async fn a_qos2_message_already_sent_goes_to_no_other_member() {
        let (log, shares) = setup();
        let (a, b) = (Arc::new(Mailbox::new(100)), Arc::new(Mailbox::new(100)));
        shares.join("g", FILTER, &topics(), member(1, &a, 5)).await.unwrap_or_else(|e| panic!("{e}"));
        shares.join("g", FILTER, &topics(), member(2, &b, 5)).await.unwrap_or_else(|e| panic!("{e}"));
        publish(&log, "s/x", 1, QoS::ExactlyOnce).await;
        let mut to_a = take(&a, 1).await;
        if let Some(t) = to_a[0].share.as_mut() {
            t.delivering_qos2();
        }
        assert!(shares.leave("g", FILTER, 1));
        drop(to_a);
        publish(&log, "s/x", 2, QoS::ExactlyOnce).await;
        assert_eq!(payloads(&take(&b, 1).await), [2], "b gets the next one, not the one a may have");
        assert!(b.pop().is_none());
    }

    #[test]
    fn a_record_read_again_after_a_rebalance_is_not_handed_out_twice() {
        let group = ShareGroup::new(FILTER, Arc::default(), Arc::default());
        let a = Arc::new(Mailbox::new(100));
        group.add(member(1, &a, 5));
        let msg = message("s/x", 0, QoS::AtLeastOnce);
        let headers = crate::kafka::record::ToRecord::record_headers(&msg);
        let record = crate::kafka::record::Record::copy(
            "t".into(),
            crate::kafka::record::RecordRef {
                topic: "t",
                partition: 0,
                offset: 3,
                key: Some(crate::kafka::record::ToRecord::record_key(&msg)),
                value: Some(crate::kafka::record::ToRecord::record_value(&msg)),
                headers: Some(headers.as_borrowed()),
            },
        );
        group.on_record(&record);
        group.on_record(&record);
        let first = a.pop();
        assert!(first.is_some(), "handed out once");
        assert!(a.pop().is_none(), "and only once");
        drop(first);
    }

    #[tokio::test]
    async fn the_number_of_groups_is_bounded() {
        let log = Arc::new(MemoryLog::new());
        log.create_topic("t", 1);
        let shares = Shares::new(log, Arc::default(), 1);
        let a = Arc::new(Mailbox::new(10));
        shares.join("g", FILTER, &topics(), member(1, &a, 5)).await.unwrap_or_else(|e| panic!("{e}"));
        shares.join("g", FILTER, &topics(), member(2, &a, 5)).await.unwrap_or_else(|e| panic!("{e}"));
        let refused = shares.join("h", FILTER, &topics(), member(1, &a, 5)).await;
        assert!(matches!(refused, Err(ShareError::Full(1))), "{refused:?}");
    }

    #[test]
    fn group_ids_are_stable_and_tell_filters_apart() {
        let id = group_id("g", "a/#", &topics());
        assert_eq!(id, group_id("g", "a/#", &topics()));
        assert!(id.starts_with("tributary-share.g."));
        assert_ne!(id, group_id("g", "a/+", &topics()));
        assert_ne!(id, group_id("g", "a/#", &["u".to_owned()]));
    }
}
