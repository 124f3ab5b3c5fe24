//! The bytes one process may hold in MQTT packets still being received, over all its
//! connections (`limits.maxPendingBytes`). Without it, clients that each start a large PUBLISH
//! and never finish it make the pod hold all of them at once: the maximum packet size bounds one
//! packet, not their number.
//!
//! A packet larger than [`SMALL_PACKET`] reserves its declared size when its fixed header
//! arrives and gives it back once it is complete (or its connection ends); when the budget is
//! spent, the connection that asks is closed (MQTT 5: DISCONNECT 0x97, Quota exceeded) instead of
//! growing the pod. Small packets, which are nearly all of an IoT fleet's traffic, never ask.

use std::sync::atomic::{AtomicU64, Ordering};

/// Packets up to this size are read without asking the budget: the read buffer's usual size.
pub(crate) const SMALL_PACKET: usize = 4096;

/// A process-wide budget of bytes in partially received packets.
#[derive(Debug)]
pub(crate) struct ReadBudget {
    limit: u64,
    held: AtomicU64,
}

impl ReadBudget {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: u64) -> Self {
        ReadBudget { limit, held: AtomicU64::new(0) }
    }

    /// Takes `bytes` from the budget; false, taking nothing, when that would exceed it.
    pub(crate) fn reserve(&self, bytes: u64) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    /// Gives back `bytes` taken with [`reserve`](Self::reserve).
    pub(crate) fn release(&self, bytes: u64) {
        let _ = self.held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| Some(held.saturating_sub(bytes)));
    }

    /// Bytes reserved now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_limit_and_come_back() {
        let budget = ReadBudget::new(100);
        assert!(budget.reserve(60));
        assert!(!budget.reserve(50), "over the limit: refused");
        assert_eq!(budget.held(), 60, "a refusal takes nothing");
        assert!(budget.reserve(40));
        budget.release(60);
        assert!(budget.reserve(50));
        assert_eq!(budget.held(), 90);
    }
}
