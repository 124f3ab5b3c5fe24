//! The shutdown signal threaded through every task (mini-redis style).

use tokio::sync::watch;

/// Listens for the process-wide shutdown signal.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Sends the shutdown signal.
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// A connected trigger/listener pair.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    /// Tells every listener to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown was triggered (or the trigger was dropped).
    pub async fn recv(&mut self) {
        let _ = self.rx.wait_for(|s| *s).await;
    }
}
