//! Accepts MQTT connections on the configured listeners and runs each on its own task: TCP,
//! then TLS for `mqtts` and `wss`, then the WebSocket upgrade for `ws` and `wss`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::broker::Broker;
use crate::client::{Peer, VerifiedCertificate};
use crate::shutdown::Shutdown;

/// How long to back off after `accept` fails (usually: out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long a client may take to complete each handshake before MQTT: TLS, then for `wss` the
/// WebSocket upgrade.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The layers a listener puts between TCP and MQTT.
#[derive(Clone)]
pub(crate) struct Transport {
    /// TLS for `mqtts` and `wss`, reloaded when its files change.
    pub(crate) tls: Option<Arc<crate::tls::ListenerTls>>,
    /// What every connection of the listener shares (one pointer, not two fields: each
    /// connection task holds this for its whole life).
    pub(crate) listener: Arc<ListenerShared>,
}

/// The parts of a listener its connections share.
pub(crate) struct ListenerShared {
    /// The HTTP path of the upgrade for `ws` and `wss`.
    pub(crate) ws_path: Option<Box<str>>,
    /// The listener's open-connections gauge, handed to each of its connections.
    pub(crate) connections: Gauge,
}

/// Accepts connections on `listener` until shutdown, through the listener's `transport`.
/// Every connection task holds a clone of `done`; the caller knows all connections ended when
/// its receiver sees the channel close.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    transport: Transport,
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
            transport.clone(),
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

async fn serve_tcp(stream: TcpStream, peer: SocketAddr, transport: Transport, c: Connected) {
    // MQTT packets are small and latency matters more than segment count.
    let _ = stream.set_nodelay(true);
    tracing::trace!(%peer, "tcp connection");
    let Some(tls) = transport.tls else {
        let plain = Box::new(Peer {
            address: Some(peer.ip()),
            certificate: None,
            listener: transport.listener.connections.clone(),
        });
        serve_upgraded(stream, peer, plain, transport.listener.ws_path.as_deref(), c).await;
        return;
    };
    // The handshake is boxed and the stream boxed in a statement of its own, so that neither is
    // part of the task's state while MQTT runs: each idle connection keeps only the MQTT
    // connection's future (see client::serve).
    let failed = &c.broker.metrics.tls_handshake_failed;
    let Some(stream) = handshake("TLS", failed, peer, Box::pin(tls.acceptor().accept(stream))).await.map(Box::new)
    else {
        return;
    };
    // rustls only completes the handshake with a certificate its verifier accepted.
    let certificates = stream.get_ref().1.peer_certificates();
    let which = c.broker.config.authentication.certificate_name;
    let certificate = certificates.map(|c| {
        Box::new(VerifiedCertificate { name: c.first().and_then(|c| crate::tls::certificate_name(c, which)) })
    });
    let verified =
        Box::new(Peer { address: Some(peer.ip()), certificate, listener: transport.listener.connections.clone() });
    serve_upgraded(stream, peer, verified, transport.listener.ws_path.as_deref(), c).await
}

/// Serves MQTT on `stream` (TCP or TLS), after the WebSocket upgrade when the listener has a
/// `ws_path`.
async fn serve_upgraded<S>(stream: S, peer: SocketAddr, verified: Box<Peer>, ws_path: Option<&str>, c: Connected)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Some(path) = ws_path else {
        crate::client::serve(stream, verified, c.broker, c.shutdown).await;
        return;
    };
    // A frame or message larger than a packet may be is refused as it arrives, so a client can
    // make the pod hold no more than it could over TCP.
    let max = usize::try_from(c.broker.config.limits.max_packet_size).unwrap_or(usize::MAX);
    // Boxed like the TLS handshake and stream: the framing state stays out of the task's.
    let failed = &c.broker.metrics.websocket_handshake_failed;
    let upgrade = Box::pin(crate::ws::accept(stream, path, max));
    let Some(ws) = handshake("WebSocket", failed, peer, upgrade).await.map(Box::new) else { return };
    crate::client::serve(ws, verified, c.broker, c.shutdown).await
}

/// Runs one handshake within [`HANDSHAKE_TIMEOUT`]; a failure is counted in `failed`, logged,
/// and ends the connection (`None`).
async fn handshake<T, E: std::fmt::Display>(
    what: &str,
    failed: &Counter,
    peer: SocketAddr,
    run: impl Future<Output = Result<T, E>>,
) -> Option<T> {
    let error = match tokio::time::timeout(HANDSHAKE_TIMEOUT, run).await {
        Ok(Ok(done)) => return Some(done),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    failed.inc();
    tracing::debug!(%peer, %error, "{what} handshake failed");
    None
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use tokio::net::TcpStream;

    /// The spawned task of every connection is this future: the MQTT connection's (at most
    /// 1536 bytes, client::serve) and what the listener keeps beside it. The TLS and WebSocket
    /// handshakes and streams are boxed out of it; inline, the task was 4 KiB.
    #[test]
    fn connection_task_stays_small() {
        fn task<F>(_: impl FnOnce(TcpStream, SocketAddr, super::Transport, super::Connected) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let size = task(super::serve_tcp);
        assert!(size <= 2048, "connection task is {size} bytes");
    }
}
