//! Which client ids are connected to this process, with their epochs, so that a newer CONNECT
//! with the same id takes the session over (MQTT-3.1.4-3), whether it arrives here or on
//! another broker (then the sessions view calls [`Registry::fence`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Why a connection is told to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// Another connection with the same client id arrived.
    TakenOver,
    /// This broker holds more than its share of the clients (see `crate::rebalance`).
    Rebalance,
}

struct Entry {
    session: u64,
    epoch: i64,
    kick: oneshot::Sender<Kick>,
}

/// The connected clients of this process.
#[derive(Default)]
pub struct Registry {
    next_session: AtomicU64,
    clients: Mutex<HashMap<Arc<str>, Entry>>,
}

/// What a new connection gets from the registry.
pub struct Registration {
    /// Process-unique id of this connection's session.
    pub session: u64,
    /// Fires when the connection must end.
    pub kicked: oneshot::Receiver<Kick>,
}

impl Registry {
    /// Registers `client_id` for a connection of `epoch`, telling a local connection of an older
    /// epoch to leave. If a newer one is already registered, the new registration is kicked at
    /// once (claims can reach a broker in any order relative to the connects waiting on them).
    pub fn register(&self, client_id: &Arc<str>, epoch: i64) -> Registration {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, kicked) = oneshot::channel();
        if let Ok(mut clients) = self.clients.lock() {
            let entry = Entry { session, epoch, kick: tx };
            match clients.get(client_id) {
                Some(current) if current.epoch > epoch => {
                    let _ = entry.kick.send(Kick::TakenOver);
                }
                _ => {
                    if let Some(old) = clients.insert(client_id.clone(), entry) {
                        // The old connection may have just ended by itself; then nobody listens.
                        let _ = old.kick.send(Kick::TakenOver);
                    }
                }
            }
        }
        Registration { session, kicked }
    }

    /// A claim of `epoch` for `client_id` was made (here or on another broker): a local
    /// connection of an older epoch leaves with "session taken over".
    pub fn fence(&self, client_id: &str, epoch: i64) {
        if let Ok(mut clients) = self.clients.lock() {
            if clients.get(client_id).is_some_and(|e| e.epoch < epoch) {
                if let Some(old) = clients.remove(client_id) {
                    let _ = old.kick.send(Kick::TakenOver);
                }
            }
        }
    }

    /// Sessions numbered so far: connections registered from now on get larger numbers.
    pub fn issued(&self) -> u64 {
        self.next_session.load(Ordering::Relaxed)
    }

    /// Tells up to `n` connections registered before session number `before` (see
    /// [`issued`](Self::issued)) to leave for another broker; returns how many were told. A
    /// client that comes back here is newer than `before`, so one shedding episode never sends
    /// the same client away twice.
    pub fn shed(&self, n: usize, before: u64) -> usize {
        let Ok(mut clients) = self.clients.lock() else { return 0 };
        let chosen: Vec<Arc<str>> =
            clients.iter().filter(|(_, e)| e.session <= before).take(n).map(|(id, _)| id.clone()).collect();
        for id in &chosen {
            if let Some(entry) = clients.remove(id) {
                let _ = entry.kick.send(Kick::Rebalance);
            }
        }
        chosen.len()
    }

    /// Removes `client_id` if it still belongs to `session` (not if it was taken over).
    pub fn unregister(&self, client_id: &Arc<str>, session: u64) {
        if let Ok(mut clients) = self.clients.lock() {
            if clients.get(client_id).is_some_and(|e| e.session == session) {
                clients.remove(client_id);
            }
        }
    }

    /// The epoch of the local connection of `client_id`, if there is one.
    pub fn epoch_of(&self, client_id: &str) -> Option<i64> {
        self.clients.lock().ok()?.get(client_id).map(|e| e.epoch)
    }

    /// Number of connected clients.
    pub fn len(&self) -> usize {
        self.clients.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// True when no client is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_registration_kicks_the_first() {
        let r = Registry::default();
        let id: Arc<str> = "c".into();
        let mut first = r.register(&id, 1);
        let mut second = r.register(&id, 5);
        assert_eq!(first.kicked.try_recv(), Ok(Kick::TakenOver));
        r.unregister(&id, first.session);
        assert_eq!(r.len(), 1, "the old session must not remove the new one");
        // A connect whose claim is older than the registered one loses at once.
        let mut late = r.register(&id, 3);
        assert_eq!(late.kicked.try_recv(), Ok(Kick::TakenOver));
        assert!(second.kicked.try_recv().is_err());
        r.unregister(&id, late.session);
        r.unregister(&id, second.session);
        assert!(r.is_empty());
    }

    #[test]
    fn shedding_takes_only_older_sessions_and_at_most_n() {
        let r = Registry::default();
        let mut old: Vec<Registration> = (0..5).map(|i| r.register(&format!("old-{i}").into(), 1)).collect();
        let before = r.issued();
        let mut newer = r.register(&"new".into(), 1);
        assert_eq!(r.shed(3, before), 3);
        assert_eq!(r.len(), 3);
        assert_eq!(r.shed(10, before), 2, "only the two older ones left to shed");
        assert!(old.iter_mut().all(|c| c.kicked.try_recv() == Ok(Kick::Rebalance)));
        assert!(newer.kicked.try_recv().is_err(), "registered after the episode began");
        assert_eq!(r.shed(10, before), 0);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn fence_kicks_only_older_epochs() {
        let r = Registry::default();
        let id: Arc<str> = "c".into();
        let mut conn = r.register(&id, 7);
        r.fence("c", 7);
        r.fence("c", 3);
        assert!(conn.kicked.try_recv().is_err(), "its own or an older claim does not kick");
        r.fence("c", 8);
        assert_eq!(conn.kicked.try_recv(), Ok(Kick::TakenOver));
        assert!(r.is_empty());
    }
}
