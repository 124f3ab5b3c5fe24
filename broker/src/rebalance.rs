//! Rebalancing after a scale-out. A load balancer spreads new connections, but the clients of
//! the pods that were already running stay where they are: a new pod starts empty and stays
//! nearly so. With `rebalance.enabled`, a broker that holds well above the average of the live
//! brokers (every broker's heartbeat in the sessions topic carries its connection count, so
//! each one sees the same picture, no coordinator) sends a bounded number of clients per second
//! away (MQTT 5: DISCONNECT 0x9C) until it is back under the line. They reconnect through the
//! load balancer, most of them elsewhere.
//!
//! The peers' counts are as old as their last heartbeat, so the line is computed once per
//! episode, from heartbeats all written after the previous episode settled: shedding never
//! chases counts that do not show the clients it just moved yet.

use std::sync::Arc;
use std::time::Duration;

use crate::broker::Broker;
use crate::config::Rebalance;
use crate::message::now_ms;
use crate::session::PeerLoad as Peer;
use crate::shutdown::Shutdown;

/// How often the broker decides.
const TICK: Duration = Duration::from_secs(1);
/// After an episode, how long moved clients get to reconnect before the peers' heartbeats
/// count as showing them.
const SETTLE: Duration = Duration::from_secs(5);

/// A shedding in progress: down to `line`, among the connections registered before `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Episode {
    line: u64,
    before: u64,
}

/// What to do now: tell `count` connections registered before session `before` to leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shed {
    pub count: usize,
    pub before: u64,
}

/// One broker's rebalancing decisions, kept between ticks.
#[derive(Debug, Default)]
pub(crate) struct Balancer {
    episode: Option<Episode>,
    /// When the last episode ended (Unix ms); peers' heartbeats must be newer than this plus
    /// [`SETTLE`] before the next one starts.
    quiet_since_ms: u64,
}

impl Balancer {
    /// Decides at `now_ms`, with `own` connections here, `peers` (`None` when some live peer
    /// does not report a count), `issued` the registry's session counter, and `settings`.
    pub(crate) fn step(
        &mut self,
        now_ms: u64,
        own: u64,
        peers: Option<&[Peer]>,
        issued: u64,
        settings: &Rebalance,
    ) -> Option<Shed> {
        let budget = u64::from(settings.per_second) * TICK.as_secs().max(1);
        let Some(peers) = peers.filter(|_| settings.enabled) else {
            self.end(now_ms);
            return None;
        };
        if let Some(episode) = self.episode {
            if own <= episode.line {
                self.end(now_ms);
                return None;
            }
            return Some(Shed { count: to_usize((own - episode.line).min(budget)), before: episode.before });
        }
        let settled = self.quiet_since_ms.saturating_add(SETTLE.as_millis() as u64);
        if peers.is_empty() || peers.iter().any(|p| p.at_ms < settled) {
            return None;
        }
        let counts: Vec<u64> = peers.iter().map(|p| p.connections).collect();
        let line = line(own, &counts, settings.tolerance_percent);
        if own <= line {
            return None;
        }
        self.episode = Some(Episode { line, before: issued });
        Some(Shed { count: to_usize((own - line).min(budget)), before: issued })
    }

    /// The line of the episode in progress, if one is.
    pub(crate) fn line(&self) -> Option<u64> {
        self.episode.map(|e| e.line)
    }

    fn end(&mut self, now_ms: u64) {
        if self.episode.take().is_some() {
            self.quiet_since_ms = now_ms;
        }
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The most connections a broker may hold: the average over it and its `peers`, plus
/// `tolerance_percent` of the average, rounded up (a broker at the line is even enough).
pub(crate) fn line(own: u64, peers: &[u64], tolerance_percent: u16) -> u64 {
    let total = u128::from(own) + peers.iter().map(|&p| u128::from(p)).sum::<u128>();
    let brokers = peers.len() as u128 + 1;
    let line = (total * (100 + u128::from(tolerance_percent))).div_ceil(brokers * 100);
    u64::try_from(line).unwrap_or(u64::MAX)
}

/// Decides once per [`TICK`] until shutdown; does nothing while the broker drains.
pub(crate) async fn run(broker: Arc<Broker>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut balancer = Balancer::default();
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            _ = tick.tick() => {}
        }
        let settings = broker.rebalance();
        let peers = broker.is_ready().then(|| broker.sessions.peer_connections()).flatten();
        let own = u64::try_from(broker.registry.len()).unwrap_or(u64::MAX);
        let starting = balancer.line().is_none();
        let Some(shed) = balancer.step(now_ms(), own, peers.as_deref(), broker.registry.issued(), &settings) else {
            continue;
        };
        if starting {
            let peers: Vec<u64> = peers.iter().flatten().map(|p| p.connections).collect();
            tracing::info!(
                connections = own,
                ?peers,
                line = balancer.line(),
                "above the average: shedding connections"
            );
        }
        let told = broker.registry.shed(shed.count, shed.before);
        tracing::debug!(told, "connections sent to other brokers");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(per_second: u32) -> Rebalance {
        Rebalance { enabled: true, tolerance_percent: 10, per_second }
    }

    fn peer(at_ms: u64, connections: u64) -> Peer {
        Peer { at_ms, connections }
    }

    #[test]
    fn the_line_is_the_average_plus_the_tolerance_rounded_up() {
        assert_eq!(line(40, &[0], 10), 22);
        assert_eq!(line(100, &[50, 0], 10), 55);
        assert_eq!(line(3, &[3, 3], 1), 4, "rounded up: a broker at the average never sheds");
        assert_eq!(line(u64::MAX, &[u64::MAX], 1000), u64::MAX, "saturates");
    }

    #[test]
    fn sheds_at_the_rate_down_to_the_line_then_waits_for_fresh_heartbeats() {
        let mut b = Balancer::default();
        let settings = on(10);
        let peers = [peer(101_000, 0)];
        // 40 here, 0 on the new pod: the line is 22, shed 18 at 10 per tick.
        assert_eq!(b.step(102_000, 40, Some(&peers), 40, &settings), Some(Shed { count: 10, before: 40 }));
        // The peer's heartbeat is stale now, yet the line holds: no chasing the old count.
        assert_eq!(b.step(103_000, 30, Some(&peers), 45, &settings), Some(Shed { count: 8, before: 40 }));
        assert_eq!(b.step(104_000, 22, Some(&peers), 50, &settings), None, "at the line: episode over");
        // Heartbeats written before the episode settled do not start another one.
        let stale = [peer(108_000, 0)];
        assert_eq!(b.step(105_000, 40, Some(&stale), 60, &settings), None);
        let fresh = [peer(109_500, 18)];
        assert_eq!(b.step(110_000, 22, Some(&fresh), 60, &settings), None, "22 of 40 is within 10 % of 20");
        let fresh = [peer(109_500, 10)];
        assert_eq!(b.step(110_000, 30, Some(&fresh), 70, &settings), Some(Shed { count: 8, before: 70 }));
    }

    #[test]
    fn nothing_without_a_picture_or_when_off() {
        let mut b = Balancer::default();
        assert_eq!(b.step(102_000, 40, None, 1, &on(10)), None, "a peer of an older version");
        assert_eq!(b.step(102_000, 40, Some(&[]), 1, &on(10)), None, "alone");
        let off = Rebalance { enabled: false, ..on(10) };
        assert_eq!(b.step(102_000, 40, Some(&[peer(101_000, 0)]), 1, &off), None);
        // Switched off mid-episode: the episode ends.
        assert!(b.step(102_000, 40, Some(&[peer(101_000, 0)]), 1, &on(10)).is_some());
        assert_eq!(b.step(103_000, 30, Some(&[peer(101_000, 0)]), 1, &off), None);
        assert_eq!(b.line(), None);
    }
}
