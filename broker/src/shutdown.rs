//! The shutdown signal threaded through every task (mini-redis style), with a drain window:
//! listeners and background tasks stop at once, while each connection takes its own turn
//! within the window, so a rolling upgrade does not send every client to the other pods in the
//! same instant.

use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// A shutdown in progress: when it started and over how long connections are closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Drain {
    started: Instant,
    window: Duration,
}

/// Listens for the process-wide shutdown signal.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Option<Drain>>,
}

/// Sends the shutdown signal.
pub struct ShutdownTrigger {
    tx: watch::Sender<Option<Drain>>,
}

/// A connected trigger/listener pair.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(None);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    /// Tells every listener to stop, and every connection to close now.
    pub fn trigger(&self) {
        self.drain(Duration::ZERO);
    }

    /// Tells every listener to stop, and connections to close spread over `window`.
    pub fn drain(&self, window: Duration) {
        self.tx.send_replace(Some(Drain { started: Instant::now(), window }));
    }
}

impl Shutdown {
    /// Resolves once shutdown was triggered (or the trigger was dropped).
    pub async fn recv(&mut self) {
        let _ = self.rx.wait_for(Option::is_some).await;
    }

    /// Whether shutdown was triggered.
    pub fn is_triggered(&self) -> bool {
        self.rx.borrow().is_some()
    }

    /// When the connection with `key` (any number that differs between connections) is to be
    /// closed, once shutdown was triggered: a point of the drain window that spreads keys
    /// evenly, whatever their pattern.
    pub fn turn(&self, key: u64) -> Option<Instant> {
        let drain = (*self.rx.borrow())?;
        // Fibonacci hashing, then the top 24 bits as a fraction of the window.
        let fraction = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64;
        Some(drain.started + drain.window.mul_f64(fraction))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn turns_spread_over_the_window() {
        let (trigger, mut shutdown) = channel();
        assert_eq!(shutdown.turn(1), None, "not triggered");
        trigger.drain(Duration::from_secs(10));
        shutdown.recv().await;
        let start = Instant::now();
        // Sequential keys (connection numbers) land in every tenth of the window.
        let mut tenths = [0u32; 10];
        for key in 0..1000 {
            let at = shutdown.turn(key).unwrap_or(start) - start;
            assert!(at < Duration::from_secs(10));
            tenths[(at.as_secs_f64()) as usize] += 1;
        }
        assert!(tenths.iter().all(|n| (70..=130).contains(n)), "{tenths:?}");
        trigger.trigger();
        assert_eq!(shutdown.turn(42), Some(Instant::now()), "no window: now");
    }
}
