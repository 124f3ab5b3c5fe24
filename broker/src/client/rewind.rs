//! Rewinding subscriptions: a SUBSCRIBE carrying the MQTT 5 user property `tributary-rewind`
//! (a Unix time in milliseconds, or an ISO-8601 duration back from now such as `PT15M`) gets
//! the records its filters match replayed from Kafka from that time, in order, then goes on
//! live without a gap or a duplicate.
//!
//! The subscription goes live first (router, tailers); the replay then reads each Kafka topic
//! from the offsets of that time (Kafka's offsets-for-times) up to the end offsets taken as the
//! reader reaches it, which are never below the live tailer's position. While it runs the
//! mailbox is held. The *seam* is, per rewound filter and partition, the first and the last
//! offset replayed: a live or read-back delivery between them was replayed already and is
//! dropped. A persistent session's replayed records at or past its cursor count in its cursor
//! and stored in-flight state like any delivery; older ones are outside them: a rewind is not
//! resumed by the session's next connection.

use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::Client;
use crate::codec::{EncodeError, Properties, QoS};
use crate::delivery::catchup::{self, CatchUp};
use crate::delivery::{Delivery, Origin};
use crate::message::now_ms;
use crate::topic::matches;

/// The SUBSCRIBE user property that asks for a rewind.
const PROPERTY: &str = "tributary-rewind";

/// The first and the last offset replayed of each (Kafka topic, partition) a rewound filter
/// read: live deliveries between the two were replayed already.
type Seam = HashMap<(Arc<str>, i32), (i64, i64)>;

/// The replay of one rewinding SUBSCRIBE, and the seams of those that ran.
#[derive(Default)]
pub(super) struct Replays {
    running: Option<Running>,
    /// Per rewound filter: what it replayed of each (Kafka topic, partition).
    seams: HashMap<Box<str>, Seam>,
}

struct Running {
    rx: mpsc::Receiver<Delivery>,
    /// A replayed QoS 1/2 message waiting for room in the client's window.
    held: Option<Delivery>,
    /// The filters being replayed.
    filters: Vec<Box<str>>,
}

impl Replays {
    /// A replay is running: the mailbox waits for it.
    pub(super) fn running(&self) -> bool {
        self.running.is_some()
    }

    /// The replay has something to hand over and no message waiting for room.
    pub(super) fn ready(&self) -> bool {
        self.running.as_ref().is_some_and(|r| r.held.is_none())
    }

    /// The replay's receiver, while it runs.
    pub(super) fn reader(&mut self) -> Option<&mut mpsc::Receiver<Delivery>> {
        self.running.as_mut().map(|r| &mut r.rx)
    }

    /// Forgets a filter no longer subscribed: its seam, and its part of a running replay
    /// (stopped when nothing is left of it, MQTT-3.10.4-2).
    pub(super) fn unsubscribed(&mut self, filter: &str) {
        self.seams.remove(filter);
        if let Some(r) = self.running.as_mut() {
            r.filters.retain(|f| **f != *filter);
            if r.filters.is_empty() {
                self.running = None;
            }
        }
    }

    /// Whether a delivery of `topic` from `origin` was replayed already; a live one past the
    /// seam ends it (everything later is new).
    fn replayed(&mut self, topic: &str, origin: &Origin) -> bool {
        let key = (origin.topic.clone(), origin.partition);
        let mut seen = false;
        for (filter, parts) in self.seams.iter_mut().filter(|(f, _)| matches(f, topic)) {
            match parts.get(&key) {
                Some(&(first, last)) if (first..=last).contains(&origin.offset) => seen = true,
                Some(&(_, last)) if origin.offset > last => {
                    parts.remove(&key);
                }
                // Before the replay's first record: the replay did not have it.
                Some(_) | None => {}
            }
            tracing::trace!(%filter, ?origin, seen, "seam checked");
        }
        self.seams.retain(|_, parts| !parts.is_empty());
        seen
    }

    /// Whether a replayed delivery is still wanted: some filter it was replayed for is still
    /// subscribed.
    fn wanted(&self, d: &Delivery) -> bool {
        self.running.as_ref().is_some_and(|r| r.filters.iter().any(|f| matches(f, &d.msg.topic)))
    }

    /// Notes a replayed delivery at the seam of every rewound filter it matches.
    fn record(&mut self, d: &Delivery) {
        let (Some(running), Some(o)) = (&self.running, &d.origin) else { return };
        for f in running.filters.iter().filter(|f| matches(f, &d.msg.topic)) {
            let seam = self.seams.entry(f.clone()).or_default();
            let key = (o.topic.clone(), o.partition);
            seam.entry(key).and_modify(|(_, last)| *last = o.offset).or_insert((o.offset, o.offset));
        }
    }

    /// Nothing left to hold or check.
    fn idle(&self) -> bool {
        self.running.is_none() && self.seams.is_empty()
    }
}

/// Why a rewind was refused: the SUBACK's Reason String.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum RewindError {
    #[error("rewind is off on this broker (limits.maxRewindSeconds is 0)")]
    Off,
    #[error("tributary-rewind {0:?} is neither Unix milliseconds nor an ISO-8601 duration such as PT15M")]
    Invalid(String),
    #[error("tributary-rewind reaches {0} s back, beyond limits.maxRewindSeconds ({1} s)")]
    TooFar(u64, u32),
    #[error("tributary-rewind is in the future")]
    Future,
    #[error("a rewind or an offline delivery is already running on this connection")]
    Busy,
    #[error("rewind offsets not found in Kafka: {0}")]
    Kafka(String),
}

/// The time (Unix ms) a `tributary-rewind` value asks to replay from, `now` being the time now
/// and `max_secs` the furthest back allowed (0: rewind is off).
pub(super) fn start_time(value: &str, now: u64, max_secs: u32) -> Result<u64, RewindError> {
    if max_secs == 0 {
        return Err(RewindError::Off);
    }
    let value = value.trim();
    let invalid = || RewindError::Invalid(value.to_owned());
    let at = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        value.parse::<u64>().map_err(|_| invalid())?
    } else {
        let secs = duration_secs(value).ok_or_else(invalid)?;
        now.saturating_sub(secs.saturating_mul(1000))
    };
    if at > now {
        return Err(RewindError::Future);
    }
    let back = (now - at).div_ceil(1000);
    if back > u64::from(max_secs) {
        return Err(RewindError::TooFar(back, max_secs));
    }
    Ok(at)
}

/// Seconds in an ISO-8601 duration of whole units: `nW`, `nD` and, after `T`, `nH`, `nM`,
/// `nS`, each unit at most once and in that order (e.g. `PT15M`, `P1DT2H`, `P1W`). Years and
/// months are refused: their length varies.
fn duration_secs(s: &str) -> Option<u64> {
    let rest = s.strip_prefix('P').or_else(|| s.strip_prefix('p'))?;
    let (date, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut total = 0u64;
    let mut any = false;
    for (part, units) in
        [(date, &[('W', 604_800), ('D', 86_400)][..]), (time.unwrap_or(""), &[('H', 3600), ('M', 60), ('S', 1)][..])]
    {
        let mut digits = String::new();
        let mut next_unit = 0;
        for c in part.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let at = units.iter().skip(next_unit).position(|(u, _)| c.eq_ignore_ascii_case(u))? + next_unit;
            let n: u64 = digits.parse().ok()?;
            total = total.checked_add(n.checked_mul(units[at].1)?)?;
            digits.clear();
            next_unit = at + 1;
            any = true;
        }
        if !digits.is_empty() {
            return None;
        }
    }
    any.then_some(total)
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    /// The time a SUBSCRIBE asks to rewind to: `None` without the property.
    pub(super) fn rewind_request(&self, properties: &Properties) -> Option<Result<u64, RewindError>> {
        let (_, value) = properties.user_properties.iter().find(|(k, _)| k == PROPERTY)?;
        let max = self.broker.config.limits.max_rewind_seconds;
        let busy = self.replays.as_ref().is_some_and(|r| r.running())
            || self.persist.as_ref().is_some_and(|p| p.reading_back());
        Some(start_time(value, now_ms(), max).and_then(|at| if busy { Err(RewindError::Busy) } else { Ok(at) }))
    }

    /// Where each Kafka topic of `filters` holds its first record from `at_ms` on. The future
    /// holds no reference to the connection (it is not `Sync`).
    pub(super) fn rewind_plan(
        &self,
        filters: &[Box<str>],
        at_ms: u64,
    ) -> impl std::future::Future<Output = Result<Vec<CatchUp>, RewindError>> + Send {
        let topics = self.kafka_topics(filters.iter().map(AsRef::as_ref));
        let log = self.broker.log.clone();
        let at = i64::try_from(at_ms).unwrap_or(i64::MAX);
        async move {
            let mut plan = Vec::with_capacity(topics.len());
            for topic in topics {
                let from = log.offsets_for_time(&topic, at).await.map_err(|e| RewindError::Kafka(e.to_string()))?;
                plan.push(CatchUp { topic, from });
            }
            Ok(plan)
        }
    }

    /// Starts replaying `plan` for the subscribed `filters`. A record they match is delivered
    /// as all the session's subscriptions would have had it (highest QoS, every identifier): the
    /// seam then drops the live copy of it.
    pub(super) fn start_rewind(&mut self, plan: Vec<CatchUp>, filters: Vec<Box<str>>) {
        let kind = catchup::Kind::Rewind(filters.iter().map(|f| f.to_string()).collect());
        tracing::debug!(client = %self.client_id, ?plan, "rewinding");
        self.broker.metrics.rewinds.inc();
        let rx = self.spawn_reader(plan, kind);
        self.replays.get_or_insert_with(Default::default).running = Some(Running { rx, held: None, filters });
    }

    /// Delivers what the replay sent (`Some`), or notes that it is done (`None`): the mailbox
    /// is then delivered, past the seams.
    pub(super) fn on_rewind(&mut self, d: Option<Delivery>) -> Result<(), EncodeError> {
        let Some(r) = self.replays.as_mut() else { return Ok(()) };
        match d {
            Some(d) if d.qos == QoS::AtMostOnce || self.outbound.has_room() => self.deliver_replayed(d),
            Some(d) => {
                if let Some(running) = r.running.as_mut() {
                    running.held = Some(d);
                }
                Ok(())
            }
            None => {
                tracing::debug!(client = %self.client_id, "rewind done");
                r.running = None;
                if r.idle() {
                    self.replays = None;
                }
                Ok(())
            }
        }
    }

    /// While a replay runs: delivers its held message when the window has room. Returns
    /// whether the mailbox must wait.
    pub(super) fn drain_replay(&mut self) -> Result<bool, EncodeError> {
        let Some(r) = self.replays.as_mut().and_then(|r| r.running.as_mut()) else { return Ok(false) };
        if self.outbound.has_room() {
            if let Some(d) = r.held.take() {
                self.deliver_replayed(d)?;
            }
        }
        Ok(true)
    }

    /// Delivers a replayed message. One the persistent session is owed anyway (at or past its
    /// cursor: published around the SUBSCRIBE) keeps its Kafka position, so the cursor and the
    /// stored in-flight state count it as any delivery; older ones are outside them.
    fn deliver_replayed(&mut self, mut d: Delivery) -> Result<(), EncodeError> {
        let Some(r) = self.replays.as_mut() else { return Ok(()) };
        if !r.wanted(&d) {
            return Ok(());
        }
        r.record(&d);
        let owed = matches!((&self.persist, &d.origin), (Some(p), Some(o)) if p.owes(o));
        if !owed {
            d.origin = None;
        }
        self.deliver_from(d, true)
    }

    /// Whether a live or read-back delivery was replayed already (see the module's seam).
    pub(super) fn replayed(&mut self, d: &Delivery) -> bool {
        let (Some(r), Some(o)) = (self.replays.as_mut(), &d.origin) else { return false };
        let seen = r.replayed(&d.msg.topic, o);
        if r.idle() {
            self.replays = None;
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn durations_and_timestamps_give_the_start() {
        assert_eq!(start_time("PT15M", NOW, 3600), Ok(NOW - 900_000));
        assert_eq!(start_time("P1DT2H3M4S", NOW, 200_000), Ok(NOW - 93_784_000));
        assert_eq!(start_time("P1W", NOW, 700_000), Ok(NOW - 604_800_000));
        assert_eq!(start_time(&(NOW - 5_000).to_string(), NOW, 10), Ok(NOW - 5_000));
        assert_eq!(start_time("PT0S", NOW, 10), Ok(NOW));
    }

    #[test]
    fn bad_far_future_and_disabled_rewinds_are_refused() {
        for bad in ["", "P", "PT", "15M", "PT15", "P1M", "P1Y", "PT1M1H", "P1DT", "-5", "PT1.5S"] {
            assert!(matches!(start_time(bad, NOW, 3600), Err(RewindError::Invalid(_))), "{bad:?}");
        }
        assert_eq!(start_time("PT2H", NOW, 3600), Err(RewindError::TooFar(7200, 3600)));
        assert_eq!(start_time(&(NOW + 1).to_string(), NOW, 3600), Err(RewindError::Future));
        assert_eq!(start_time("PT1M", NOW, 0), Err(RewindError::Off));
        assert_eq!(start_time("P99999999999999999999D", NOW, 3600).ok(), None, "overflow is refused");
    }

    fn delivery(topic: &str, partition: i32, offset: i64) -> Delivery {
        Delivery {
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: Vec::new(),
            origin: Some(Origin { topic: "k".into(), partition, offset }),
            share: None,
            msg: Arc::new(Message {
                topic: topic.into(),
                payload: bytes::Bytes::new(),
                qos: QoS::AtLeastOnce,
                retain: false,
                publisher: None,
                publish_id: None,
                properties: Default::default(),
            }),
        }
    }

    #[test]
    fn an_unsubscribe_stops_its_part_of_the_replay() {
        let (_tx, rx) = mpsc::channel(1);
        let filters = vec!["a/#".into(), "b/#".into()];
        let mut r = Replays { running: Some(Running { rx, held: None, filters }), ..Default::default() };
        r.record(&delivery("a/1", 0, 1));
        r.unsubscribed("a/#");
        assert!(!r.wanted(&delivery("a/1", 0, 2)), "no longer replayed");
        assert!(r.seams.is_empty(), "its seam is gone");
        assert!(r.running());
        r.unsubscribed("b/#");
        assert!(!r.running(), "nothing left to replay: the reader is dropped");
    }

    #[test]
    fn the_seam_drops_what_was_replayed_and_ends_past_it() {
        let (_tx, rx) = mpsc::channel(1);
        let mut r =
            Replays { running: Some(Running { rx, held: None, filters: vec!["a/#".into()] }), ..Default::default() };
        r.record(&delivery("a/1", 0, 5));
        r.record(&delivery("a/1", 0, 7));
        assert!(r.wanted(&delivery("a/9", 0, 8)) && !r.wanted(&delivery("b/1", 0, 8)));
        r.running = None;
        assert!(!r.replayed("b/1", &delivery("b/1", 0, 3).origin.unwrap_or_else(|| unreachable!())), "other filter");
        let at = |d: Delivery| d.origin.unwrap_or_else(|| unreachable!());
        assert!(!r.replayed("a/1", &at(delivery("a/1", 1, 2))), "another partition was not replayed");
        assert!(!r.replayed("a/1", &at(delivery("a/1", 0, 4))), "before the replay's first record");
        assert!(r.replayed("a/1", &at(delivery("a/1", 0, 6))), "within the seam");
        assert!(r.replayed("a/2", &at(delivery("a/2", 0, 7))), "at the seam");
        assert!(!r.replayed("a/1", &at(delivery("a/1", 0, 8))), "past the seam");
        assert!(r.idle(), "the seam ended");
        assert!(!r.replayed("a/1", &at(delivery("a/1", 0, 5))));
    }
}
