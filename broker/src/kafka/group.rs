//! Consumer groups: this process as one member of a Kafka consumer group reading some topics.
//! Kafka spreads the topics' partitions over the members (one per broker process that needs
//! the group), moves them when members come and go, and keeps the offsets the group resumes
//! from. The reader of the records says how far each partition is done ([`Progress`]); the
//! member commits that, so a partition that moves, or a group that empties and fills again,
//! resumes after what was done and no earlier than what was not.

use futures::future::BoxFuture;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

use super::record::{Record, RecordRef};
use super::tailer::METADATA_TIMEOUT;
use crate::config::Kafka;

/// Why a group member could not start or read.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// Kafka refused or did not answer.
    #[error("kafka consumer group {group}: {source}")]
    Kafka {
        /// The consumer group.
        group: String,
        /// Underlying error.
        source: KafkaError,
    },
    /// A topic of the group does not exist (or has no partitions).
    #[error("kafka topic {0} has no partitions")]
    NoPartitions(String),
    /// The blocking metadata call was cancelled, or the log went away.
    #[error("kafka metadata task failed or the log is gone")]
    Join,
}

/// Per partition, the offset the group resumes from: everything below it was handled.
#[derive(Default)]
pub struct Progress {
    /// The offsets, and whether one changed since the last commit.
    done: Mutex<(Offsets, bool)>,
}

/// An offset per (topic, partition).
type Offsets = HashMap<(Arc<str>, i32), i64>;

impl Progress {
    /// Records that partition `partition` of `topic` resumes at `next`.
    pub fn set(&self, topic: &Arc<str>, partition: i32, next: i64) {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        if done.0.insert((topic.clone(), partition), next) != Some(next) {
            done.1 = true;
        }
    }

    /// The offsets to commit, if any changed since the last call (`all`: every one, changed
    /// or not).
    pub(crate) fn take(&self, all: bool) -> Vec<(Arc<str>, i32, i64)> {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        if !done.1 && !all {
            return Vec::new();
        }
        done.1 = false;
        done.0.iter().map(|((t, p), o)| (t.clone(), *p, *o)).collect()
    }
}

/// A member's reading of its assigned partitions (see [`super::log::Log::join_group`]).
pub(crate) trait Read: Send + Sync {
    /// The next record of an assigned partition; waits for one. Cancel-safe: a record is
    /// taken only when returned.
    fn next(&self) -> BoxFuture<'_, Result<Record, GroupError>>;
    /// Stops (`true`) or resumes fetching the assigned partitions; `next` keeps serving the
    /// group's rebalances meanwhile.
    fn pause(&self, paused: bool);
    /// Commits the progress for good and leaves the group.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// This process's membership of a consumer group; dropping it leaves the group.
pub struct GroupMember {
    inner: Box<dyn Read>,
    progress: Arc<Progress>,
}

impl GroupMember {
    /// The member reading as `inner`, committing `progress`.
    pub(crate) fn new(inner: impl Read + 'static, progress: Arc<Progress>) -> Self {
        GroupMember { inner: Box::new(inner), progress }
    }

    /// Where the reader records how far each partition is done.
    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// The next record of a partition assigned to this member (cancel-safe).
    pub async fn next(&self) -> Result<Record, GroupError> {
        self.inner.next().await
    }

    /// Stops (`true`) or resumes fetching: backpressure while no local member has room.
    /// Keep calling [`GroupMember::next`] while paused: it serves the group's rebalances (a
    /// record fetched before the pause may still come).
    pub fn pause(&self, paused: bool) {
        self.inner.pause(paused)
    }

    /// Commits what is done, then leaves the group.
    pub async fn close(self) {
        self.inner.close().await
    }
}

/// Offsets are committed this often while records are handled: what a moved partition or a
/// restarted group may deliver again.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

const GROUP_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    // Only for a partition whose committed offset expired: `join` commits a start for the rest.
    ("auto.offset.reset", "latest"),
    // A dead pod's partitions move after 10 s rather than librdkafka's 45 s: about the
    // broker's own `limits.nodeTimeout` for sessions (Kafka's minimum is 6 s by default).
    ("session.timeout.ms", "10000"),
    ("heartbeat.interval.ms", "3000"),
    // Records fetched ahead per group (librdkafka's default is 64 MiB): up to
    // `limits.maxShareGroups` groups run per process, and a paused one holds what it fetched.
    ("queued.max.messages.kbytes", "1024"),
];

/// Commits the progress of partitions being taken away before they go, so that their next
/// owner resumes after what this member handled.
struct GroupContext {
    progress: Arc<Progress>,
    /// Whether fetching is paused: librdkafka keeps a partition's pause across a revoke and a
    /// new assignment, so every assignment is paused or resumed to match this.
    paused: Arc<AtomicBool>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::debug!(partitions = list.count(), "group partitions assigned");
                let paused = self.paused.load(Ordering::Relaxed);
                let done = if paused { consumer.pause(list) } else { consumer.resume(list) };
                if let Err(e) = done {
                    tracing::warn!(paused, error = %e, "assigned partitions not paused or resumed");
                }
            }
            Rebalance::Revoke(list) => tracing::debug!(partitions = list.count(), "group partitions revoked"),
            Rebalance::Error(e) => tracing::warn!(error = %e, "group rebalance failed"),
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            let list = commit_list(&self.progress.take(true), Some(revoked));
            if list.count() > 0 {
                if let Err(e) = consumer.commit(&list, CommitMode::Sync) {
                    tracing::warn!(error = %e, "offsets of revoked partitions not committed");
                }
            }
        }
    }
}

/// The offsets of `done` as a commit, limited to the partitions of `within` when given.
fn commit_list(done: &[(Arc<str>, i32, i64)], within: Option<&TopicPartitionList>) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (topic, partition, offset) in done {
        if within.is_some_and(|w| w.find_partition(topic, *partition).is_none()) {
            continue;
        }
        // Cannot fail for an explicit offset.
        let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
    }
    list
}

/// The Kafka member: a librdkafka consumer in group `group`.
struct KafkaMember {
    consumer: Arc<StreamConsumer<GroupContext>>,
    group: String,
    topics: HashMap<String, Arc<str>>,
    progress: Arc<Progress>,
    /// Shared with the context, which applies it to new assignments.
    paused: Arc<AtomicBool>,
    _stop: oneshot::Sender<()>,
}

/// Joins consumer group `group` reading `topics`. A group that has no committed offset for a
/// partition gets the partition's end committed first (while it has no members Kafka takes a
/// commit from outside it): every record appended after this returns is then read by some
/// member, whenever the partitions are assigned.
pub(crate) async fn join_kafka(kafka: &Kafka, group: &str, topics: &[String]) -> Result<GroupMember, GroupError> {
    let err = |source| GroupError::Kafka { group: group.to_owned(), source };
    let progress = Arc::new(Progress::default());
    let mut cfg = super::client_config(&kafka.bootstrap_servers, &kafka.properties, GROUP_DEFAULTS);
    cfg.set("group.id", group);
    let paused = Arc::new(AtomicBool::new(false));
    let context = GroupContext { progress: progress.clone(), paused: paused.clone() };
    let consumer: StreamConsumer<GroupContext> = cfg.create_with_context(context).map_err(err)?;
    let consumer = Arc::new(consumer);
    {
        let (consumer, topics, group) = (consumer.clone(), topics.to_vec(), group.to_owned());
        tokio::task::spawn_blocking(move || commit_missing_starts(&consumer, &group, &topics))
            .await
            .map_err(|_| GroupError::Join)??;
    }
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).map_err(err)?;
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(commit_loop(Arc::downgrade(&consumer), progress.clone(), stopped));
    let topics = topics.iter().map(|t| (t.clone(), Arc::from(t.as_str()))).collect();
    let member =
        KafkaMember { consumer, group: group.to_owned(), topics, progress: progress.clone(), paused, _stop: stop };
    Ok(GroupMember::new(member, progress))
}

/// Commits the end of every partition of `topics` the group has no offset for.
fn commit_missing_starts(
    consumer: &StreamConsumer<GroupContext>,
    group: &str,
    topics: &[String],
) -> Result<(), GroupError> {
    let err = |source| GroupError::Kafka { group: group.to_owned(), source };
    let mut all = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT).map_err(err)?;
        let partitions = super::partitions_of(&metadata, topic);
        if partitions.is_empty() {
            return Err(GroupError::NoPartitions(topic.clone()));
        }
        for p in partitions {
            all.add_partition(topic, p);
        }
    }
    let committed = consumer.committed_offsets(all, METADATA_TIMEOUT).map_err(err)?;
    let mut starts = TopicPartitionList::new();
    for e in committed.elements().iter().filter(|e| !matches!(e.offset(), Offset::Offset(_))) {
        let (_, high) = consumer.fetch_watermarks(e.topic(), e.partition(), METADATA_TIMEOUT).map_err(err)?;
        starts.add_partition_offset(e.topic(), e.partition(), Offset::Offset(high)).map_err(err)?;
    }
    if starts.count() > 0 {
        match consumer.commit(&starts, CommitMode::Sync) {
            Ok(()) => {}
            // Refused while the group has members: they are reading, so it has positions.
            Err(e) if group_is_active(&e) => {
                tracing::debug!(%group, error = %e, "group starts not committed: the group is active")
            }
            // Anything else would leave the partitions to `auto.offset.reset` at assignment,
            // seconds after SUBACK: the SUBSCRIBE fails rather than miss what comes between.
            Err(e) => return Err(err(e)),
        }
    }
    Ok(())
}

/// Whether a commit from outside the group was refused because the group has members.
fn group_is_active(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(e.rdkafka_error_code(), Some(Code::UnknownMemberId | Code::IllegalGeneration | Code::RebalanceInProgress))
}

/// Commits the progress every [`COMMIT_INTERVAL`] while it changes, until the member is gone.
async fn commit_loop(
    consumer: std::sync::Weak<StreamConsumer<GroupContext>>,
    progress: Arc<Progress>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut every = tokio::time::interval(COMMIT_INTERVAL);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = every.tick() => {}
        }
        let Some(consumer) = consumer.upgrade() else { return };
        let Ok(assigned) = consumer.assignment() else { continue };
        let list = commit_list(&progress.take(false), Some(&assigned));
        if list.count() > 0 {
            // An async commit that fails (a rebalance under way) is retried with the next change.
            if let Err(e) = consumer.commit(&list, CommitMode::Async) {
                tracing::debug!(error = %e, "group offsets not committed");
            }
        }
    }
}

impl Read for KafkaMember {
    fn next(&self) -> BoxFuture<'_, Result<Record, GroupError>> {
        Box::pin(async move {
            let m =
                self.consumer.recv().await.map_err(|source| GroupError::Kafka { group: self.group.clone(), source })?;
            let record = RecordRef::of(&m);
            let topic = self.topics.get(record.topic).cloned().unwrap_or_else(|| record.topic.into());
            Ok(Record::copy(topic, record))
        })
    }

    fn pause(&self, paused: bool) {
        if self.paused.swap(paused, Ordering::Relaxed) == paused {
            return;
        }
        let Ok(assigned) = self.consumer.assignment() else { return };
        let done = if paused { self.consumer.pause(&assigned) } else { self.consumer.resume(&assigned) };
        if let Err(e) = done {
            tracing::debug!(group = %self.group, paused, error = %e, "group fetching not paused or resumed");
        }
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Blocking: a commit round trip, then leaving the group as the consumer drops.
            let done = tokio::task::spawn_blocking(move || {
                let assigned = self.consumer.assignment().ok();
                let list = commit_list(&self.progress.take(true), assigned.as_ref());
                let failed = if list.count() > 0 { self.consumer.commit(&list, CommitMode::Sync).err() } else { None };
                drop(self);
                failed
            });
            if let Ok(Some(e)) = done.await {
                tracing::warn!(error = %e, "group offsets not committed at leave");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reports_changes_once_and_everything_when_asked() {
        let p = Progress::default();
        let t: Arc<str> = "t".into();
        assert!(p.take(false).is_empty());
        p.set(&t, 0, 5);
        assert_eq!(p.take(false), vec![(t.clone(), 0, 5)]);
        assert!(p.take(false).is_empty(), "unchanged");
        p.set(&t, 0, 5);
        assert!(p.take(false).is_empty(), "the same offset is no change");
        assert_eq!(p.take(true), vec![(t.clone(), 0, 5)]);
    }

    #[test]
    fn commits_keep_to_the_partitions_given() {
        let t: Arc<str> = "t".into();
        let mut within = TopicPartitionList::new();
        within.add_partition("t", 1);
        let list = commit_list(&[(t.clone(), 0, 3), (t.clone(), 1, 4)], Some(&within));
        assert_eq!(list.count(), 1);
        assert_eq!(list.find_partition("t", 1).map(|e| e.offset()), Some(Offset::Offset(4)));
    }
}
