//! Accepts MQTT connections on the configured listeners and runs each on its own task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::broker::Broker;
use crate::client::Peer;
use crate::metrics::inc;
use crate::shutdown::Shutdown;

/// How long to back off after `accept` fails (usually: out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a TLS client may take to complete the handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` until shutdown, through `tls` for `mqtts` listeners.
/// Every connection task holds a clone of `done`; the caller knows all connections ended when
/// its receiver sees the channel close.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    broker: Arc<Broker>,
    mut shutdown: Shutdown,
    done: mpsc::Sender<()>,
) {
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
        let (broker, shutdown, done) = (broker.clone(), shutdown.clone(), done.clone());
        tokio::spawn(serve_tcp(
            stream,
            peer,
            tls.clone(),
            Connected { broker, shutdown, _done: done, _permit: permit },
        ));
    }
}

/// What a connection task holds besides its socket: the broker, the shutdown signal, and
/// tokens whose drop tells that the connection ended.
struct Connected {
    broker: Arc<Broker>,
    shutdown: Shutdown,
    _done: mpsc::Sender<()>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

async fn serve_tcp(stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>, c: Connected) {
    // MQTT packets are small and latency matters more than segment count.
    let _ = stream.set_nodelay(true);
    tracing::trace!(%peer, "tcp connection");
    let Some(tls) = tls else {
        crate::client::serve(stream, Peer::default(), c.broker, c.shutdown).await;
        return;
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
        // Boxed: the TLS state is large, and the connection's own future stays as small as for
        // plain TCP (see client::serve).
        Ok(Ok(stream)) => {
            // rustls only completes the handshake with a certificate its verifier accepted.
            let peer = Peer { tls_verified: stream.get_ref().1.peer_certificates().is_some() };
            crate::client::serve(Box::new(stream), peer, c.broker, c.shutdown).await
        }
        Ok(Err(e)) => {
            inc(&c.broker.metrics.tls_handshake_failed);
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            inc(&c.broker.metrics.tls_handshake_failed);
            tracing::debug!(%peer, "TLS handshake timed out");
        }
    }
}
