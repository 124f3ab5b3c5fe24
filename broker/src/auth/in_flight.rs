//! Identical password attempts in progress (same user name, same password): the first is
//! verified, the others wait for its verdict instead of being verified, and counted, again.
//!
//! A fleet sharing one account that connects at once while its password is not remembered yet
//! (right after a broker starts, or after the password file changed) then costs one
//! verification. Without this, every attempt in progress counted as a failure for the spacing
//! of its address and user (see `super::penalty`), and past eight waiting the rest were refused
//! with Connection rate exceeded. A guesser gains nothing: an identical guess is no new guess.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use tokio::sync::watch;

/// User name and an HMAC of the password under the process's memo key (never the password).
pub(super) type Key = (Box<str>, [u8; 32]);

/// The attempts being verified, by key.
#[derive(Default)]
pub(super) struct InFlight {
    attempts: Mutex<HashMap<Key, watch::Receiver<Option<bool>>>>,
}

/// What an attempt does.
pub(super) enum Attempt<'a> {
    /// An identical attempt was verified meanwhile: its verdict.
    Decided(bool),
    /// None was in progress: this one is verified, and the others wait for it.
    Lead(Lead<'a>),
    /// The identical attempt in progress went without a verdict: ask again.
    Alone,
}

/// The attempt the identical ones wait for; dropping it without a verdict lets them go on alone.
pub(super) struct Lead<'a> {
    flights: &'a InFlight,
    key: Option<Key>,
    verdict: watch::Sender<Option<bool>>,
}

impl InFlight {
    /// Leads the attempt of `key`, or waits for the verdict of the identical one in progress.
    pub(super) async fn attempt(&self, key: Key) -> Attempt<'_> {
        let mut waiting = {
            let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
            match attempts.get(&key) {
                Some(verdict) => verdict.clone(),
                None => {
                    let (verdict, rx) = watch::channel(None);
                    attempts.insert(key.clone(), rx);
                    return Attempt::Lead(Lead { flights: self, key: Some(key), verdict });
                }
            }
        };
        let verdict = match waiting.wait_for(Option::is_some).await {
            Ok(verdict) => *verdict,
            Err(_) => None,
        };
        verdict.map_or(Attempt::Alone, Attempt::Decided)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Lead<'_> {
    /// Tells the waiting identical attempts whether the password was right.
    pub(super) fn finish(self, accepted: bool) {
        self.verdict.send_replace(Some(accepted));
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.flights.attempts.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str) -> Key {
        (user.into(), [7; 32])
    }

    #[tokio::test]
    async fn identical_attempts_wait_for_the_verdict_of_the_first() {
        let flights = InFlight::default();
        let Attempt::Lead(lead) = flights.attempt(key("dev")).await else { panic!("nothing in progress: leads") };
        assert!(matches!(flights.attempt(key("other")).await, Attempt::Lead(_)), "another user is not held");
        let (waiter, finish) = tokio::join!(flights.attempt(key("dev")), async move { lead.finish(true) });
        let () = finish;
        assert!(matches!(waiter, Attempt::Decided(true)));
        assert_eq!(flights.len(), 0, "the entry goes with its lead");
        // A lead that goes away without a verdict lets the waiting attempt go on alone.
        let Attempt::Lead(lead) = flights.attempt(key("dev")).await else { panic!("leads again") };
        let (waiter, ()) = tokio::join!(flights.attempt(key("dev")), async move { drop(lead) });
        assert!(matches!(waiter, Attempt::Alone));
    }
}
