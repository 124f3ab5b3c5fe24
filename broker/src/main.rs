//! `tributary-broker`: runs one broker process.

use anyhow::Context as _;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;

use tributary_broker::broker::Broker;
use tributary_broker::config::{Config, Overrides};
use tributary_broker::{admin, reload, server, shutdown, tls};

/// How long connections get to close after a shutdown signal before the process exits.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Kafka-native MQTT broker.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file (YAML).
    #[arg(long, env = "TRIBUTARY_CONFIG")]
    config: PathBuf,
    /// Overrides the address of the first `mqtt` listener.
    #[arg(long)]
    listen: Option<String>,
    /// Overrides `kafka.bootstrapServers`.
    #[arg(long)]
    kafka_bootstrap: Option<String>,
    /// Overrides `admin.address`.
    #[arg(long)]
    admin: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let args = Args::parse();
    let overrides = Overrides { listen: args.listen, kafka_bootstrap: args.kafka_bootstrap, admin: args.admin };
    let config = Config::load(&args.config)
        .and_then(|c| overrides.resolve(c))
        .with_context(|| format!("loading {}", args.config.display()))?;

    // TLS material first: a bad certificate fails the start before Kafka is touched.
    let mut acceptors = Vec::with_capacity(config.listeners.len());
    for l in &config.listeners {
        acceptors.push(match &l.tls {
            Some(t) => Some(tls::acceptor(t).with_context(|| format!("listener {}: TLS", l.name))?),
            None => None,
        });
    }
    let broker = Broker::start(config).await.context("starting broker")?;
    let (trigger, shutdown) = shutdown::channel();
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);

    for (l, tls) in broker.config.listeners.iter().zip(acceptors) {
        let listener = TcpListener::bind(l.address)
            .await
            .with_context(|| format!("binding listener {} on {}", l.name, l.address))?;
        tracing::info!(listener = %l.name, protocol = %l.protocol, address = %listener.local_addr()?, "mqtt listener ready");
        tokio::spawn(server::accept_loop(listener, tls, broker.clone(), shutdown.clone(), done_tx.clone()));
    }
    let admin_listener = TcpListener::bind(broker.config.admin.address)
        .await
        .with_context(|| format!("binding admin endpoint on {}", broker.config.admin.address))?;
    tracing::info!(address = %admin_listener.local_addr()?, "admin endpoint ready");
    tokio::spawn(admin::serve(admin_listener, broker.clone(), shutdown.clone()));
    tokio::spawn(reload::run(args.config, overrides, broker.clone(), shutdown.clone()));
    drop(done_tx);

    wait_for_signal().await;
    tracing::info!("shutting down");
    broker.set_draining();
    trigger.trigger();
    // Connections say goodbye and publish Wills; give them a bounded time.
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, done_rx.recv()).await;
    // Delayed Wills of the closed connections are left to the other brokers, at once.
    broker.sessions.stop().await;
    broker.publisher.flush(Duration::from_secs(10)).context("flushing kafka producer")?;
    Ok(())
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
