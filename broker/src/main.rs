//! `tributary-broker`: runs one broker process.

use clap::Parser;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

use tributary_broker::config::Overrides;

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
    tributary_broker::run(args.config, overrides).await?;
    Ok(())
}
