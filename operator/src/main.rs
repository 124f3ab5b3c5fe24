//! `tributary-operator crd` prints the CustomResourceDefinition; `tributary-operator run` runs
//! the controller against the cluster of `KUBECONFIG` or the in-cluster configuration.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tributary_operator::reconcile::{run, Settings};

#[derive(Parser)]
#[command(name = "tributary-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the MqttBroker CustomResourceDefinition as YAML.
    Crd,
    /// Run the controller.
    Run {
        /// Watch only this namespace (default: all namespaces).
        #[arg(long, env = "WATCH_NAMESPACE")]
        namespace: Option<String>,
        /// Broker image for MqttBrokers without spec.image.
        #[arg(long, env = "TRIBUTARY_BROKER_IMAGE")]
        broker_image: Option<String>,
        /// Seconds to wait for each Kafka bootstrap server's TCP connect.
        #[arg(long, default_value_t = 3)]
        kafka_timeout_secs: u64,
        /// Seconds to wait for Kafka to create the missing topics.
        #[arg(long, default_value_t = 15)]
        topics_timeout_secs: u64,
        /// Only check that Kafka is reachable; leave creating missing topics to the brokers
        /// (for Kafka clusters whose ACLs do not let the operator create topics).
        #[arg(long)]
        no_create_topics: bool,
        /// Do not read tributary_connections from the broker pods (status.connections stays empty).
        #[arg(long)]
        no_scrape_metrics: bool,
        /// Seconds between periodic reconciles of a healthy broker.
        #[arg(long, default_value_t = 60)]
        resync_secs: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", tributary_operator::crd_yaml()?);
            Ok(())
        }
        Command::Run {
            namespace,
            broker_image,
            kafka_timeout_secs,
            topics_timeout_secs,
            no_create_topics,
            no_scrape_metrics,
            resync_secs,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .init();
            rustls::crypto::ring::default_provider()
                .install_default()
                .map_err(|_| anyhow::anyhow!("a rustls CryptoProvider was already installed"))?;
            let client =
                kube::Client::try_default().await.context("no Kubernetes configuration (KUBECONFIG or in-cluster)")?;
            let mut settings = Settings {
                kafka_timeout: Duration::from_secs(kafka_timeout_secs),
                topics_timeout: Duration::from_secs(topics_timeout_secs),
                create_topics: !no_create_topics,
                scrape_metrics: !no_scrape_metrics,
                resync: Duration::from_secs(resync_secs.max(4)),
                ..Settings::default()
            };
            if let Some(image) = broker_image {
                settings.default_image = image;
            }
            run(client, settings, namespace).await.context("controller failed")
        }
    }
}
