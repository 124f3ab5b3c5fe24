//! One broker process from configuration to exit: TLS material, the broker on Kafka, the MQTT
//! listeners, the admin endpoint and the configuration reload; on SIGTERM or Ctrl-C, a bounded
//! drain (goodbyes and Wills), the `stopped` heartbeat and a producer flush.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::broker::{Broker, StartError};
use crate::config::{Config, ConfigError, Overrides};
use crate::kafka::producer::ProduceError;
use crate::{admin, rebalance, reload, server, shutdown, tls};

/// How long connections get to close after the drain window before the process goes on.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Longest wait for the stopped heartbeat to reach Kafka.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait at exit for the records still queued to reach Kafka.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration file is unusable.
    #[error("loading {path}: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: ConfigError,
    },
    /// A listener's TLS material is unusable (checked before Kafka is touched).
    #[error("listener {listener}: TLS: {source}")]
    Tls {
        /// The listener's name.
        listener: String,
        /// What is wrong.
        source: tls::TlsError,
    },
    /// The broker could not start (Kafka, topics, password file).
    #[error("starting broker: {0}")]
    Start(#[from] StartError),
    /// A listening socket could not be bound.
    #[error("binding {what} on {address}: {source}")]
    Bind {
        /// Which endpoint.
        what: String,
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Records were still unacknowledged by Kafka at exit.
    #[error("flushing kafka producer: {0}")]
    Flush(#[from] ProduceError),
}

/// Reads the configuration file `path` and applies `overrides`: the configuration [`run`] starts
/// with. Separate from `run` so that the caller can set up logging and tracing from it first.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, RunError> {
    Config::load(path)
        .and_then(|c| overrides.resolve(c))
        .map_err(|source| RunError::Config { path: path.to_owned(), source })
}

/// Runs a broker with `loaded`, the configuration [`load`] read from the file `config` (which
/// the reload watches, with the same `overrides`), until a shutdown signal.
pub async fn run(config: PathBuf, overrides: Overrides, loaded: Config) -> Result<(), RunError> {
    // TLS material first: a bad certificate fails the start before Kafka is touched.
    let mut acceptors = Vec::with_capacity(loaded.listeners.len());
    for l in &loaded.listeners {
        acceptors.push(match &l.tls {
            Some(t) => {
                Some(tls::ListenerTls::load(t).map_err(|source| RunError::Tls { listener: l.name.clone(), source })?)
            }
            None => None,
        });
    }
    // A broker whose Kafka is unreachable waits here; a signal must still end it.
    let broker = tokio::select! {
        started = Broker::start(loaded) => started?,
        _ = wait_for_signal() => {
            tracing::info!("shutting down before the broker started");
            return Ok(());
        }
    };
    let (trigger, shutdown) = shutdown::channel();
    // The admin endpoint outlives the drain: readiness answers 503 and metrics stay scrapable.
    let (admin_trigger, admin_shutdown) = shutdown::channel();
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);

    for (l, tls) in broker.config.listeners.iter().zip(acceptors) {
        let listener = bind(&format!("listener {}", l.name), l.address).await?;
        let local = listener.local_addr().unwrap_or(l.address);
        let ws_path = l.protocol.uses_websocket().then(|| Box::from(l.ws_path()));
        tracing::info!(listener = %l.name, protocol = %l.protocol, address = %local, path = ws_path.as_deref(), "mqtt listener ready");
        if let Some(t) = &tls {
            tokio::spawn(tls::watch(Arc::downgrade(t)));
        }
        let shared = server::ListenerShared { ws_path, connections: broker.metrics.listener(&l.name) };
        let transport = server::Transport { tls, listener: Arc::new(shared) };
        tokio::spawn(server::accept_loop(listener, transport, broker.clone(), shutdown.clone(), done_tx.clone()));
    }
    let admin_listener = bind("admin endpoint", broker.config.admin.address).await?;
    let local = admin_listener.local_addr().unwrap_or(broker.config.admin.address);
    tracing::info!(address = %local, "admin endpoint ready");
    tokio::spawn(admin::serve(admin_listener, broker.clone(), admin_shutdown));
    tokio::spawn(reload::run(config, overrides, broker.clone(), shutdown.clone()));
    tokio::spawn(rebalance::run(broker.clone(), shutdown.clone()));
    drop(done_tx);

    wait_for_signal().await;
    let window = Duration::from_secs(u64::from(broker.config.limits.drain_seconds));
    tracing::info!(drain = ?window, "shutting down: no new connections, closing the open ones over the drain window");
    broker.set_draining();
    trigger.drain(window);
    // Connections close in their turns, say goodbye and publish Wills; a connection stuck on
    // Kafka (unreachable) gets a bounded grace after the window.
    let _ = tokio::time::timeout(window + CLOSE_GRACE, done_rx.recv()).await;
    // Delayed Wills of the closed connections are left to the other brokers, at once; bounded,
    // since Kafka may be the reason for the shutdown.
    if tokio::time::timeout(STOP_TIMEOUT, broker.sessions.stop()).await.is_err() {
        tracing::warn!("the stop could not be announced in the sessions topic: other brokers will notice the silence");
    }
    // librdkafka's flush blocks: off the async threads.
    let publisher = broker.publisher.clone();
    match tokio::task::spawn_blocking(move || publisher.flush(FLUSH_TIMEOUT)).await {
        Ok(flushed) => flushed?,
        Err(_) => tracing::warn!("producer flush task failed"),
    }
    admin_trigger.trigger();
    Ok(())
}

async fn bind(what: &str, address: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(address).await.map_err(|source| RunError::Bind { what: what.to_owned(), address, source })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
