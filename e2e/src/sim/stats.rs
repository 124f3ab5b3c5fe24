//! What the simulator counts: per-process counters and latency histograms, reported by each
//! worker process once a second as a JSON line and added up by the parent.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Buckets of a histogram: each ~3 % wider than the one before, from 10 µs to ~150 s.
const BUCKETS: usize = 560;
const GROWTH: f64 = 1.03;
const FIRST_US: f64 = 10.0;

/// Latencies in log-scale buckets: percentiles within ~3 %, in constant memory, mergeable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// (bucket, count) of the non-empty buckets.
    counts: Vec<(u16, u64)>,
}

impl Histogram {
    fn bucket(d: Duration) -> u16 {
        let us = d.as_secs_f64() * 1e6;
        let i = if us <= FIRST_US { 0.0 } else { ((us / FIRST_US).ln() / GROWTH.ln()).ceil() };
        (i as usize).min(BUCKETS - 1) as u16
    }

    /// Adds one latency.
    pub fn record(&mut self, d: Duration) {
        self.add(Self::bucket(d), 1);
    }

    fn add(&mut self, bucket: u16, n: u64) {
        match self.counts.binary_search_by_key(&bucket, |(b, _)| *b) {
            Ok(i) => self.counts[i].1 += n,
            Err(i) => self.counts.insert(i, (bucket, n)),
        }
    }

    /// Adds every latency of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for &(b, n) in &other.counts {
            self.add(b, n);
        }
    }

    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }

    /// The latency below which a share `p` (0..=1) of them lie (the bucket's upper bound).
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64 * p).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for &(b, n) in &self.counts {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_secs_f64(FIRST_US * GROWTH.powi(i32::from(b)) / 1e6));
            }
        }
        None
    }
}

/// One worker's report: its counters since it started, its latencies since its last report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Counters since the start.
    pub counters: Counters,
    /// Latencies since the previous report.
    pub latencies: Latencies,
}

/// What a worker's devices did so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Devices connected now.
    pub connected: i64,
    /// CONNACKs accepted.
    pub connects: u64,
    /// Connection attempts that failed or were refused.
    pub failed: u64,
    /// Connections lost (not closed by the device).
    pub lost: u64,
    /// Reconnects after a lost connection that found their session (persistent devices).
    pub resumed: u64,
    /// PUBLISHes sent by devices.
    pub sent: u64,
    /// PUBACKs received.
    pub acked: u64,
    /// Messages received by subscribers.
    pub delivered: u64,
}

impl Counters {
    /// Adds another worker's counters.
    pub fn add(&mut self, other: &Counters) {
        self.connected += other.connected;
        self.connects += other.connects;
        self.failed += other.failed;
        self.lost += other.lost;
        self.resumed += other.resumed;
        self.sent += other.sent;
        self.acked += other.acked;
        self.delivered += other.delivered;
    }
}

/// Latencies measured over some time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latencies {
    /// PUBLISH → PUBACK.
    pub ack: Histogram,
    /// PUBLISH → delivery to a subscriber (from the send time in the payload).
    pub deliver: Histogram,
    /// Connection lost → CONNACK again.
    pub reconnect: Histogram,
}

impl Latencies {
    /// Adds the latencies of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        self.ack.merge(&other.ack);
        self.deliver.merge(&other.deliver);
        self.reconnect.merge(&other.reconnect);
    }
}

/// The live counters of one worker, shared by its devices.
#[derive(Default)]
pub struct Stats {
    pub connected: AtomicI64,
    pub connects: AtomicU64,
    pub failed: AtomicU64,
    pub lost: AtomicU64,
    pub resumed: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
    pub ack: Mutex<Histogram>,
    pub deliver: Mutex<Histogram>,
    pub reconnect: Mutex<Histogram>,
}

impl Stats {
    /// Records a latency into `h`.
    pub fn time(h: &Mutex<Histogram>, d: Duration) {
        h.lock().unwrap_or_else(PoisonError::into_inner).record(d);
    }

    /// The counters now and the latencies since the last call.
    pub fn take(&self) -> Snapshot {
        let take = |h: &Mutex<Histogram>| std::mem::take(&mut *h.lock().unwrap_or_else(PoisonError::into_inner));
        let counters = Counters {
            connected: self.connected.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            resumed: self.resumed.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
        };
        let latencies =
            Latencies { ack: take(&self.ack), deliver: take(&self.deliver), reconnect: take(&self.reconnect) };
        Snapshot { counters, latencies }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_bucket_and_histograms_merge() {
        let mut a = Histogram::default();
        for ms in 1..=100 {
            a.record(Duration::from_millis(ms));
        }
        let p50 = a.percentile(0.5).unwrap_or_default().as_secs_f64() * 1000.0;
        assert!((50.0..=51.6).contains(&p50), "{p50}");
        let mut b = Histogram::default();
        b.record(Duration::from_secs(10));
        a.merge(&b);
        assert_eq!(a.count(), 101);
        assert!(a.percentile(1.0).unwrap_or_default() >= Duration::from_secs(10));
        assert_eq!(Histogram::default().percentile(0.5), None);
    }
}
