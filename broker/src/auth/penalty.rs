//! Failed authentications counted per source address, and the delay they cost: password
//! guessing from one address gets slower with every failure.
//!
//! A few failures are free (a device with a mistyped password, a user retrying). From the
//! fourth on, attempts from the address are served one at a time, each after the previous
//! one's delay (250 ms, doubling with each failure up to 10 s), so parallel connections
//! guess no faster than serial ones. The wait is a timer in the connection's own task, never a
//! blocking sleep; connections waiting per address and in all are bounded, and beyond those
//! bounds a CONNECT is refused at once. Failures are forgotten 10 minutes after the last one.
//! Successful logins from the address do not reset the count (an attacker with one valid
//! account could otherwise keep resetting it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Failures from an address that cost nothing.
const FREE_FAILURES: u32 = 3;
/// The delay after the first failure beyond the free ones; it doubles with each further one.
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// The longest delay between two attempts from one address.
const MAX_DELAY: Duration = Duration::from_secs(10);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Addresses remembered; when full, stale ones are dropped, then new ones are not counted.
const MAX_ADDRESSES: usize = 100_000;
/// CONNECTs from one address waiting for their turn.
const MAX_WAITING_PER_ADDRESS: u32 = 8;
/// CONNECTs waiting for their turn, over all addresses.
const MAX_WAITING: u32 = 4096;

/// What is known of one address's failures.
#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    /// When the next attempt may be checked.
    next_at: Instant,
    /// Attempts waiting now.
    waiting: u32,
}

#[derive(Default)]
struct State {
    addresses: HashMap<IpAddr, Record>,
    waiting: u32,
}

/// Failure counts of every source address.
#[derive(Default)]
pub(super) struct Penalties {
    state: Mutex<State>,
}

/// A CONNECT refused because too many attempts from its address (or in all) are waiting.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TooManyWaiting;

/// An attempt that waited for its turn; it stops counting as waiting when dropped.
pub(super) struct Turn<'a> {
    penalties: &'a Penalties,
    address: Option<IpAddr>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let Some(address) = self.address else { return };
        let mut state = self.penalties.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.waiting = state.waiting.saturating_sub(1);
        if let Some(r) = state.addresses.get_mut(&address) {
            r.waiting = r.waiting.saturating_sub(1);
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

impl Penalties {
    /// Waits until an attempt from `address` may be checked: at once for an address without
    /// recent failures, else in turn after the previous attempt's delay.
    pub(super) async fn turn(&self, address: Option<IpAddr>) -> Result<Turn<'_>, TooManyWaiting> {
        let none = Turn { penalties: self, address: None };
        let Some(address) = address else { return Ok(none) };
        let now = Instant::now();
        let at = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let total = state.waiting;
            let Some(r) = state.addresses.get_mut(&address) else { return Ok(none) };
            if now.saturating_duration_since(r.last_failure) > FORGET_AFTER {
                state.addresses.remove(&address);
                return Ok(none);
            }
            if r.waiting >= MAX_WAITING_PER_ADDRESS || total >= MAX_WAITING {
                return Err(TooManyWaiting);
            }
            let at = r.next_at.max(now);
            r.next_at = at + delay(r.failures);
            r.waiting += 1;
            state.waiting += 1;
            at
        };
        let turn = Turn { penalties: self, address: Some(address) };
        tokio::time::sleep_until(at).await;
        Ok(turn)
    }

    /// Counts a failed authentication from `address`.
    pub(super) fn failed(&self, address: Option<IpAddr>) {
        let Some(address) = address else { return };
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.addresses.len() >= MAX_ADDRESSES && !state.addresses.contains_key(&address) {
            state.addresses.retain(|_, r| now.saturating_duration_since(r.last_failure) <= FORGET_AFTER);
            if state.addresses.len() >= MAX_ADDRESSES {
                return;
            }
        }
        let r = state.addresses.entry(address).or_insert(Record {
            failures: 0,
            last_failure: now,
            next_at: now,
            waiting: 0,
        });
        r.failures = r.failures.saturating_add(1);
        r.last_failure = now;
        r.next_at = r.next_at.max(now + delay(r.failures));
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

    #[tokio::test(start_paused = true)]
    async fn failures_make_the_next_attempts_of_that_address_wait_in_turn() {
        let p = Penalties::default();
        let start = Instant::now();
        drop(p.turn(A).await);
        assert_eq!(start.elapsed(), Duration::ZERO, "no failures: no wait");
        for _ in 0..5 {
            p.failed(A);
        }
        // Five failures: 500 ms between attempts, also when they come at once.
        let (first, second) = tokio::join!(
            async {
                let _t = p.turn(A).await;
                start.elapsed()
            },
            async {
                let _t = p.turn(A).await;
                start.elapsed()
            }
        );
        assert_eq!((first, second), (Duration::from_millis(500), Duration::from_secs(1)));
        let before = Instant::now();
        drop(p.turn(B).await);
        assert_eq!(before.elapsed(), Duration::ZERO, "another address is not slowed");
        tokio::time::advance(FORGET_AFTER + Duration::from_secs(1)).await;
        let before = Instant::now();
        drop(p.turn(A).await);
        assert_eq!(before.elapsed(), Duration::ZERO, "forgotten after a while");
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_attempts_are_bounded() {
        let p = Penalties::default();
        for _ in 0..10 {
            p.failed(A);
        }
        let waiting: Vec<_> = (0..MAX_WAITING_PER_ADDRESS).map(|_| Box::pin(p.turn(A))).collect();
        let mut waiting = waiting;
        for w in &mut waiting {
            // Register each attempt (they wait on timers); none is done yet.
            assert!(futures::poll!(w.as_mut()).is_pending());
        }
        assert_eq!(p.turn(A).await.err(), Some(TooManyWaiting), "the next one is refused at once");
        drop(waiting);
        assert_eq!(p.state.lock().map(|s| s.waiting).unwrap_or(u32::MAX), 0, "dropped attempts stop waiting");
    }
}
