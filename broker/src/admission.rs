//! Whether a CONNECT may start a session at all, before its credentials cost anything:
//! `limits.maxConnectRate` (CONNECTs per second for the process) and
//! `limits.maxConnectionsPerAddress` (live connections from one source IP).
//!
//! Both answer at CONNECT rather than at `accept`, so that MQTT 5 clients learn why (0x9F
//! Connection rate exceeded, 0x97 Quota exceeded) and back off instead of retrying at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::codec::reason;
use crate::config::Limits;

/// Admission control of one broker process.
pub(crate) struct Admission {
    per_address_max: u32,
    /// Live connections by source address; only addresses with at least one are kept.
    addresses: Mutex<HashMap<IpAddr, u32>>,
    /// `None`: no rate limit.
    rate: Option<Mutex<Bucket>>,
}

/// A token bucket: `rate` tokens a second, holding at most one second's worth, so a burst of
/// `rate` CONNECTs passes at once and a longer storm is spread at `rate` per second.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A connection counted against its source address; the count goes down when it is dropped.
pub(crate) struct AddressSlot {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut addresses = self.admission.addresses.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = addresses.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                addresses.remove(&self.address);
            }
        }
    }
}

/// Why a CONNECT is not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Over `limits.maxConnectRate`.
    Rate,
    /// Over `limits.maxConnectionsPerAddress`.
    Address,
}

impl Refused {
    /// The MQTT 5 CONNACK reason code.
    pub(crate) fn reason_code(self) -> u8 {
        match self {
            Refused::Rate => reason::CONNECTION_RATE_EXCEEDED,
            Refused::Address => reason::QUOTA_EXCEEDED,
        }
    }

    /// What the MQTT 5 Reason String says.
    pub(crate) fn explain(self) -> &'static str {
        match self {
            Refused::Rate => "the broker accepts no more connections per second now: retry later",
            Refused::Address => "too many connections from this address",
        }
    }
}

impl Admission {
    /// The admission control `limits` ask for.
    pub(crate) fn new(limits: &Limits) -> Arc<Admission> {
        let rate = (limits.max_connect_rate > 0).then(|| {
            let rate = f64::from(limits.max_connect_rate);
            Mutex::new(Bucket { rate, tokens: rate, at: Instant::now() })
        });
        Arc::new(Admission { per_address_max: limits.max_connections_per_address, addresses: Mutex::default(), rate })
    }

    /// Admits one CONNECT from `address` (unknown for in-process streams): takes a token of
    /// the rate and, when connections per address are limited, a slot that the connection
    /// holds until it ends.
    pub(crate) fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Option<AddressSlot>, Refused> {
        // The address first: one over its own limit must not spend everyone's rate.
        let slot = match (address, self.per_address_max > 0) {
            (Some(address), true) => {
                let mut addresses = self.addresses.lock().unwrap_or_else(PoisonError::into_inner);
                let n = addresses.entry(address).or_insert(0);
                if *n >= self.per_address_max {
                    return Err(Refused::Address);
                }
                *n += 1;
                Some(AddressSlot { admission: self.clone(), address })
            }
            _ => None,
        };
        if let Some(bucket) = &self.rate {
            // A refusal drops the slot again.
            if !bucket.lock().unwrap_or_else(PoisonError::into_inner).take(Instant::now()) {
                return Err(Refused::Rate);
            }
        }
        Ok(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(rate: u32, per_address: u32) -> Limits {
        Limits { max_connect_rate: rate, max_connections_per_address: per_address, ..Limits::default() }
    }

    #[test]
    fn the_rate_allows_a_burst_of_one_second_then_refills() {
        let start = Instant::now();
        let mut b = Bucket { rate: 10.0, tokens: 10.0, at: start };
        assert_eq!((0..15).filter(|_| b.take(start)).count(), 10, "one second's worth at once");
        assert!(!b.take(start + Duration::from_millis(50)), "half a token");
        assert!(b.take(start + Duration::from_millis(100)), "a token a tenth of a second");
        assert_eq!((0..30).filter(|_| b.take(start + Duration::from_secs(60))).count(), 10, "never above the burst");
    }

    #[test]
    fn connections_per_address_are_counted_until_dropped() {
        let a = Admission::new(&limits(0, 2));
        let (one, two): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let first = a.admit(Some(one));
        let second = a.admit(Some(one));
        assert!(matches!((&first, &second), (Ok(Some(_)), Ok(Some(_)))));
        assert_eq!(a.admit(Some(one)).err(), Some(Refused::Address));
        assert!(matches!(a.admit(Some(two)), Ok(Some(_))), "another address has its own count");
        drop(first);
        assert!(matches!(a.admit(Some(one)), Ok(Some(_))), "a slot came back");
        assert!(matches!(a.admit(None), Ok(None)), "no address, nothing to count");
        drop(second);
        assert!(
            a.addresses.lock().map(|m| m.is_empty()).unwrap_or(false),
            "no entry for addresses without connections"
        );
    }

    #[test]
    fn no_limits_admit_everything() {
        let a = Admission::new(&limits(0, 0));
        assert!((0..10_000).all(|_| matches!(a.admit(Some([10, 0, 0, 1].into())), Ok(None))));
        let rated = Admission::new(&limits(3, 0));
        let admitted = (0..10).filter(|_| rated.admit(None).is_ok()).count();
        assert_eq!(admitted, 3);
        assert_eq!(rated.admit(None).err(), Some(Refused::Rate));
    }
}
