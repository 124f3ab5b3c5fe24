//! Which client ids are connected to this process, so that a second CONNECT with the same id
//! takes the session over (MQTT-3.1.4-3).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Why a connection is told to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// Another connection with the same client id arrived.
    TakenOver,
}

struct Entry {
    session: u64,
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
    /// Registers `client_id`, telling a connection already using it to leave.
    pub fn register(&self, client_id: &Arc<str>) -> Registration {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, kicked) = oneshot::channel();
        if let Ok(mut clients) = self.clients.lock() {
            if let Some(old) = clients.insert(client_id.clone(), Entry { session, kick: tx }) {
                // The old connection may have just ended by itself; then nobody listens.
                let _ = old.kick.send(Kick::TakenOver);
            }
        }
        Registration { session, kicked }
    }

    /// Removes `client_id` if it still belongs to `session` (not if it was taken over).
    pub fn unregister(&self, client_id: &Arc<str>, session: u64) {
        if let Ok(mut clients) = self.clients.lock() {
            if clients.get(client_id).is_some_and(|e| e.session == session) {
                clients.remove(client_id);
            }
        }
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
        let mut first = r.register(&id);
        let second = r.register(&id);
        assert_eq!(first.kicked.try_recv(), Ok(Kick::TakenOver));
        r.unregister(&id, first.session);
        assert_eq!(r.len(), 1, "the old session must not remove the new one");
        r.unregister(&id, second.session);
        assert!(r.is_empty());
    }
}
