//! Failed password checks counted per source address and user name, and the delay they cost:
//! guessing a password from one address gets slower with every failure.
//!
//! A few failures are free (a device with a mistyped password, a user retrying). Beyond them,
//! attempts are spaced: 250 ms after the fourth failure, doubling with each further one up to
//! 10 s. Attempts in progress count as failures for the spacing until they are decided, so a
//! burst of parallel connections guesses no faster than serial ones. The wait is a timer in the
//! connection's own task, never a blocking sleep; attempts waiting per key and in all are
//! bounded, and beyond those bounds a CONNECT is refused at once. Failures are forgotten 10
//! minutes after the last one.
//!
//! Keyed by user name as well as address, so that devices behind one NAT address, each with
//! its own account, do not slow each other down; IPv6 addresses count by their /64, which one
//! subscriber usually holds whole. A password the broker already verified skips all this (see
//! `super::Authenticator::check`), so a fleet sharing an account reconnects at full speed, and
//! identical attempts in progress wait for one verdict instead of each taking a turn
//! (`super::in_flight`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Failures that cost nothing.
const FREE_FAILURES: u32 = 3;
/// The delay after the first failure beyond the free ones; it doubles with each further one.
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// The longest delay between two attempts of one key.
const MAX_DELAY: Duration = Duration::from_secs(10);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Keys remembered; when full, stale ones are dropped (at most once a second), then new ones
/// are not counted.
const MAX_KEYS: usize = 100_000;
/// How often a full table may be swept for stale keys.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Attempts of one key waiting for their turn.
const MAX_WAITING_PER_KEY: u32 = 8;
/// Attempts waiting for their turn, over all keys.
const MAX_WAITING: u32 = 4096;

/// Who is guessing: the source address (IPv6 by /64) and the user name tried.
type Key = (IpAddr, Box<str>);

/// What is known of one key's attempts.
#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    /// When the next attempt may be checked.
    next_at: Instant,
    /// Attempts waiting or being checked now.
    pending: u32,
}

#[derive(Default)]
struct State {
    keys: HashMap<Key, Record>,
    pending: u32,
    last_sweep: Option<Instant>,
}

/// Failure counts by source address and user name.
#[derive(Default)]
pub(super) struct Penalties {
    state: Mutex<State>,
}

/// A CONNECT refused because too many attempts of its key (or in all) are waiting.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TooManyWaiting;

/// An attempt that had its turn; it stops counting as pending when dropped.
pub(super) struct Turn<'a> {
    penalties: &'a Penalties,
    key: Key,
}

impl Turn<'_> {
    /// Counts this attempt as failed.
    pub(super) fn failed(&self) {
        let now = Instant::now();
        let mut state = self.penalties.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = state.keys.get_mut(&self.key) {
            r.failures = r.failures.saturating_add(1);
            r.last_failure = now;
            r.next_at = r.next_at.max(now + delay(r.failures));
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut state = self.penalties.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.pending = state.pending.saturating_sub(1);
        if let Some(r) = state.keys.get_mut(&self.key) {
            r.pending = r.pending.saturating_sub(1);
            if r.pending == 0 && r.failures == 0 {
                state.keys.remove(&self.key);
            }
        }
    }
}

/// The delay that `failures` failures cost.
fn delay(failures: u32) -> Duration {
    if failures <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES - 1).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// The address as counted: IPv6 by its /64.
fn counted(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

impl Penalties {
    /// Waits until an attempt of `user` from `address` may be checked: at once without recent
    /// failures or attempts in progress, else in turn. `None` without an address (nothing to
    /// count by).
    pub(super) async fn turn(&self, address: Option<IpAddr>, user: &str) -> Result<Option<Turn<'_>>, TooManyWaiting> {
        let Some(address) = address else { return Ok(None) };
        let key: Key = (counted(address), user.into());
        let now = Instant::now();
        let at = {
            let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let state = &mut *guard;
            if state.keys.len() >= MAX_KEYS && !state.keys.contains_key(&key) {
                if state.last_sweep.is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_INTERVAL) {
                    state.last_sweep = Some(now);
                    state
                        .keys
                        .retain(|_, r| r.pending > 0 || now.saturating_duration_since(r.last_failure) <= FORGET_AFTER);
                }
                if state.keys.len() >= MAX_KEYS {
                    return Ok(None);
                }
            }
            let fresh = Record { failures: 0, last_failure: now, next_at: now, pending: 0 };
            let r = state.keys.entry(key.clone()).or_insert(fresh);
            if r.pending == 0 && now.saturating_duration_since(r.last_failure) > FORGET_AFTER {
                *r = fresh;
            }
            if r.pending >= MAX_WAITING_PER_KEY || state.pending >= MAX_WAITING {
                return Err(TooManyWaiting);
            }
            r.pending += 1;
            let at = r.next_at.max(now);
            // Pending attempts count as failures until decided: a burst is spaced like a series.
            r.next_at = at + delay(r.failures + r.pending);
            state.pending += 1;
            at
        };
        let turn = Turn { penalties: self, key };
        tokio::time::sleep_until(at).await;
        Ok(Some(turn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));

    #[test]
    fn delays_double_up_to_the_maximum() {
        assert_eq!(delay(FREE_FAILURES), Duration::ZERO, "the first failures are free");
        assert_eq!(delay(4), Duration::from_millis(250));
        assert_eq!(delay(5), Duration::from_millis(500));
        assert_eq!(delay(7), Duration::from_secs(2));
        assert_eq!(delay(9), Duration::from_secs(8));
        assert_eq!(delay(10), MAX_DELAY);
        assert_eq!(delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn ipv6_counts_by_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap_or(IpAddr::from([0; 4]));
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(counted(a), counted(b));
        assert_eq!(counted(IpAddr::from([10, 0, 0, 1])), IpAddr::from([10, 0, 0, 1]));
    }

    async fn fail(p: &Penalties, address: Option<IpAddr>, user: &str) {
        if let Ok(Some(t)) = p.turn(address, user).await {
            t.failed();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_make_the_next_attempts_of_that_key_wait_in_turn() {
        let p = Penalties::default();
        let start = Instant::now();
        for _ in 0..5 {
            fail(&p, A, "dev").await;
        }
        // Free, free, free, then 250 ms after the fourth failure.
        assert_eq!(start.elapsed(), Duration::from_millis(250));
        // Five failures: the next two attempts, coming at once, are spaced.
        let now = Instant::now();
        let (first, second) = tokio::join!(
            async {
                let _t = p.turn(A, "dev").await;
                now.elapsed()
            },
            async {
                let _t = p.turn(A, "dev").await;
                now.elapsed()
            }
        );
        // The second counts the first as a failure while it is pending: 1 s after it.
        assert_eq!((first, second), (Duration::from_millis(500), Duration::from_millis(500) + delay(6)));
        let before = Instant::now();
        drop(p.turn(B, "dev").await);
        drop(p.turn(A, "other-device").await);
        assert_eq!(before.elapsed(), Duration::ZERO, "another address, or another user, is not slowed");
        tokio::time::advance(FORGET_AFTER + MAX_DELAY * 2).await;
        let before = Instant::now();
        drop(p.turn(A, "dev").await);
        assert_eq!(before.elapsed(), Duration::ZERO, "forgotten after a while");
    }

    #[tokio::test(start_paused = true)]
    async fn a_parallel_burst_is_spaced_like_a_series() {
        let p = Penalties::default();
        let start = Instant::now();
        let burst = (0..6).map(|_| async {
            let turn = p.turn(A, "dev").await;
            (start.elapsed(), turn)
        });
        let done = futures::future::join_all(burst).await;
        let times: Vec<Duration> = done.iter().map(|(at, _)| *at).collect();
        // Four at once (three free plus the first counted), then 250 ms and 500 ms apart.
        let ms = |n| Duration::from_millis(n);
        assert_eq!(times, [ms(0), ms(0), ms(0), ms(0), ms(250), ms(750)]);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_attempts_are_bounded() {
        let p = Penalties::default();
        for _ in 0..10 {
            fail(&p, A, "dev").await;
        }
        let mut waiting: Vec<_> = (0..MAX_WAITING_PER_KEY).map(|_| Box::pin(p.turn(A, "dev"))).collect();
        for w in &mut waiting {
            // Register each attempt (they wait on timers); none is done yet.
            assert!(futures::poll!(w.as_mut()).is_pending());
        }
        assert!(matches!(p.turn(A, "dev").await, Err(TooManyWaiting)), "the next one is refused at once");
        drop(waiting);
        assert_eq!(p.state.lock().map(|s| s.pending).unwrap_or(u32::MAX), 0, "dropped attempts stop waiting");
    }
}
