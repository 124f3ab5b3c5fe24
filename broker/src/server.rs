//! Accepts MQTT connections on the configured listeners and runs each on its own task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::broker::Broker;
use crate::shutdown::Shutdown;

/// How long to back off after `accept` fails (usually: out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections on `listener` until shutdown. Every connection task holds a clone of
/// `done`; the caller knows all connections ended when its receiver sees the channel close.
pub async fn accept_loop(listener: TcpListener, broker: Arc<Broker>, mut shutdown: Shutdown, done: mpsc::Sender<()>) {
    let max = broker.config.limits.max_connections as usize;
    let permits = (max > 0).then(|| Arc::new(Semaphore::new(max)));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.recv() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let permit = match &permits {
            Some(p) => match p.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                // Over the limit: refuse by closing at once, before reading anything.
                Err(_) => continue,
            },
            None => None,
        };
        tokio::spawn(serve_tcp(stream, peer, broker.clone(), shutdown.clone(), done.clone(), permit));
    }
}

async fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    shutdown: Shutdown,
    _done: mpsc::Sender<()>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    // MQTT packets are small and latency matters more than segment count.
    let _ = stream.set_nodelay(true);
    tracing::trace!(%peer, "tcp connection");
    crate::client::serve(stream, broker, shutdown).await;
}
