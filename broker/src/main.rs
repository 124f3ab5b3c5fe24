//! `tributary-broker`: runs one broker process.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::io::BufRead as _;
use std::path::PathBuf;

use tributary_broker::config::Overrides;
use tributary_broker::Telemetry;

/// Kafka-native MQTT broker.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file (YAML); required to run the broker.
    #[arg(long, env = "TRIBUTARY_CONFIG")]
    config: Option<PathBuf>,
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

#[derive(Subcommand)]
enum Command {
    /// Reads a password from the first line of standard input and prints the argon2id hash a
    /// line of the password file holds (`username:<hash>`), with `--user`, the whole line.
    HashPassword {
        /// Prints `USER:<hash>`.
        #[arg(long)]
        user: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::HashPassword { user }) = args.command {
        return hash_password(user);
    }
    let path = args.config.context("--config <FILE> (or TRIBUTARY_CONFIG) is required to run the broker")?;
    let overrides = Overrides { listen: args.listen, kafka_bootstrap: args.kafka_bootstrap, admin: args.admin };
    // The configuration first: it says how to log and where spans go.
    let config = tributary_broker::load(&path, &overrides)?;
    let telemetry = Telemetry::install(&config)?;
    let result = tributary_broker::run(path, overrides, config).await;
    // Bounded: an unreachable collector does not hold the exit up.
    telemetry.shutdown().await;
    Ok(result?)
}

fn hash_password(user: Option<String>) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    let hash = tributary_broker::hash_password(password.as_bytes())?;
    match user {
        Some(user) => println!("{user}:{hash}"),
        None => println!("{hash}"),
    }
    Ok(())
}
